/**
 * X25519 (RFC 7748; specs/steve.md §1) on node:crypto behind the protocol's `KeyExchange` interface:
 * about 35k operations/s here against noble's few thousand (STYLE.md). Keys go in and out as raw 32-byte
 * arrays, so the same bytes give the same keys as `x25519Exchange` (the protocol's noble implementation):
 * `x25519-node.test.ts` holds the two to the RFC's vectors and to each other. An all-zero shared secret
 * (a low-order peer key) is refused with STEVE_KEY (§1), whether OpenSSL refuses it first or not. Also
 * the v1 key agreement (§8) uses `x25519SharedSecret`.
 *
 * How keys cross into OpenSSL decides a handshake's cost (Node 20, OpenSSL 3.0, measured here in a
 * loop): a private key from PKCS#8 DER takes about 370 us and a public key from or to SPKI DER about
 * 85 us each (OpenSSL 3.0's decoder and encoder framework), against 40 us to generate a key and 4 to 10
 * us for a public key as JWK. So public keys (public data) travel as JWK; a private scalar only where
 * it must come from the caller's `random` (fixed test randomness, vectors) goes in as PKCS#8, since JWK
 * would hold it in a JavaScript string that nothing can wipe. With the system's generator
 * (`nodeRandomBytes`, the server's default) the server's ephemeral key is generated inside OpenSSL
 * instead (`ephemeralKeyPair`): the same distribution, never in JavaScript memory, and 0.4 ms less per
 * handshake.
 *
 * A generated key's public half is never exported from its KeyObject, only by the generation itself
 * (`publicKeyEncoding`). Node 20 exports a key as JWK holding the key's mutex while it allocates the
 * JavaScript strings; when that allocation starts a garbage collection which frees the finished
 * generation job (`generateKeyPairSync`'s, garbage as soon as it returned), the job's destructor takes the
 * same mutex and the thread waits for itself forever, at 0 % CPU. Seen as an agent that stopped answering
 * (gdb: `ExportJWKEdKey` -> V8 allocation -> GC -> `~KeyGenJob` -> `uv_mutex_lock`); under
 * `node --gc-interval=N` a loop of `serverRespond` stopped after 45,000 to 160,000 calls in five of nine runs. test/keygen-gc.test.ts runs
 * every key generation of the project under that flag. Keys imported from bytes have no job and may be
 * exported (`x25519PublicBytes`).
 */

import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { CLIENT_KEY_MATERIAL_BYTES, SERVER_KEY_MATERIAL_BYTES, type ClientKeyPair, type KeyExchange, type RandomBytes, type ServerResponse } from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { drawSecret, nodeRandomBytes } from './secret-bytes.js';

/** RFC 8410: PrivateKeyInfo { v0, id-X25519 (1.3.101.110), OCTET STRING { OCTET STRING (32) } }. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const KEY_BYTES = 32;

function assertKey(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SteveError('STEVE_KEY', `"${name}" expected Uint8Array, got ${value === null ? 'null' : typeof value}`);
  if (value.length !== KEY_BYTES) throw new SteveError('STEVE_KEY', `"${name}" expected ${KEY_BYTES} bytes, got ${value.length}`);
}

/** A private KeyObject from a 32-byte scalar (OpenSSL clamps it, as RFC 7748 §5 says). */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  assertKey(scalar, 'scalar');
  const der = Buffer.concat([PKCS8_PREFIX, scalar]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** `generateKeyPairSync` with only the public half encoded, as JWK (Node takes it; @types/node has no such overload). */
const generateWithPublicJwk = generateKeyPairSync as unknown as (type: 'x25519', options: { publicKeyEncoding: { format: 'jwk' } }) => { publicKey: JsonWebKey; privateKey: KeyObject };

/** The u-coordinate of a JWK's `x`, 32 bytes. */
function jwkBytes(x: string | undefined): Uint8Array {
  const bytes = Buffer.from(x ?? '', 'base64url');
  if (bytes.length !== KEY_BYTES) throw new SteveError('STEVE_KEY', 'X25519 public key export failed');
  return new Uint8Array(bytes);
}

/**
 * The 32-byte public u-coordinate of a private KeyObject imported from bytes (as JWK: only the public half
 * is exported). Never of a generated key (the module's comment): `ephemeralKeyPair` gives its public bytes.
 */
export function x25519PublicBytes(privateKey: KeyObject): Uint8Array {
  return jwkBytes(createPublicKey(privateKey).export({ format: 'jwk' }).x);
}

/**
 * A fresh key pair for one exchange, the private key and its public u-coordinate: generated inside
 * OpenSSL when `random` is the system's generator (`nodeRandomBytes`), its public half encoded by the
 * generation; else from `random(32)`, which is then zeroed.
 */
export function ephemeralKeyPair(random: RandomBytes): { privateKey: KeyObject; publicBytes: Uint8Array } {
  if (random === nodeRandomBytes) {
    const { publicKey, privateKey } = generateWithPublicJwk('x25519', { publicKeyEncoding: { format: 'jwk' } });
    return { privateKey, publicBytes: jwkBytes(publicKey.x) };
  }
  const scalar = drawSecret(random, KEY_BYTES);
  try {
    const privateKey = x25519PrivateKey(scalar);
    return { privateKey, publicBytes: x25519PublicBytes(privateKey) };
  } finally {
    scalar.fill(0);
  }
}

/**
 * X25519(own private key, peer's u-coordinate): 32 bytes, never all zero. The peer's most significant
 * bit is masked first (RFC 7748 §5: "implementations of X25519 MUST mask the most significant bit"), so a
 * key with it set means the same as in noble and in the RFC.
 *
 * The result is the Buffer node:crypto returned, not a copy: it lives outside V8's heap, and once the
 * caller zeroes it no copy is left. (Returning a Uint8Array copy instead left the unwiped Buffer in the
 * agent's memory after every session, test/steve/secret-wipe.test.ts; and a copy of 32 bytes would
 * live in V8's heap, where native use or the garbage collector can move it and leave its bytes behind.)
 */
export function x25519SharedSecret(privateKey: KeyObject, peerPublic: Uint8Array): Uint8Array {
  assertKey(peerPublic, 'peer public key');
  const u = Buffer.from(peerPublic);
  u[u.length - 1]! &= 0x7f;
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url') }, format: 'jwk' }) });
  } catch (cause) {
    // OpenSSL refuses a low-order point itself (its output would be all zero).
    throw new SteveError('STEVE_KEY', 'X25519 failed', { cause });
  }
  let acc = 0;
  for (let i = 0; i < shared.length; i++) acc |= shared[i]!;
  if (acc === 0 || shared.length !== KEY_BYTES) {
    shared.fill(0);
    throw new SteveError('STEVE_KEY', 'shared secret is all zero');
  }
  return shared;
}

/** X25519 on node:crypto; wire- and KAT-identical to the protocol's `x25519Exchange`. */
export const nodeX25519Exchange: KeyExchange = Object.freeze({
  suite: 'X25519',
  clientMaterialBytes: CLIENT_KEY_MATERIAL_BYTES.X25519,
  serverMaterialBytes: SERVER_KEY_MATERIAL_BYTES.X25519,
  clientRandomBytes: 32,
  serverRandomBytes: 32,
  generateClientKeyPair(random: RandomBytes): ClientKeyPair {
    const secret = drawSecret(random, 32);
    return { material: x25519PublicBytes(x25519PrivateKey(secret)), secret };
  },
  serverRespond(clientMaterial: Uint8Array, random: RandomBytes): ServerResponse {
    assertKey(clientMaterial, 'clientMaterial');
    const { privateKey, publicBytes } = ephemeralKeyPair(random);
    const sharedSecret = x25519SharedSecret(privateKey, clientMaterial);
    return { serverMaterial: publicBytes, sharedSecret };
  },
  clientFinish(secret: Uint8Array, serverMaterial: Uint8Array): Uint8Array {
    assertKey(secret, 'secret');
    return x25519SharedSecret(x25519PrivateKey(secret), serverMaterial);
  },
});
