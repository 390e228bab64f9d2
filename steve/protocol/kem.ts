/**
 * The two key exchanges of specs/steve.md §1 behind one `KeyExchange` interface, each a KEM seen from the
 * wire: the client generates a key pair and sends `material`; the server answers with its own material
 * and gets the 32-byte shared secret; the client finishes with the server's material.
 *
 * - X25519 (RFC 7748): client material = its public key; server material = an ephemeral public key;
 *   shared secret = X25519(own secret, peer public). An all-zero output (a low-order peer key) is refused.
 * - XWING-DRAFT10 (draft-connolly-cfrg-xwing-kem-10): client material = the 1216-byte encapsulation key
 *   from a 32-byte seed; server material = the 1120-byte ciphertext from a 64-byte eseed; shared secret =
 *   SHA3-256(ss_M || ss_X || ct_X || pk_X || "\.//^\"). This uses @noble/post-quantum's
 *   `ml_kem768_x25519`, which its README calls X-Wing; kem.test.ts checks it against the draft's three
 *   Appendix C vectors and recomputes the combiner by hand from ML-KEM-768 and X25519.
 *   Ours: a low-order X25519 component makes the exchange fail (noble refuses it) where the draft would
 *   hash an all-zero ss_X; honest peers never produce one, and §1 refuses all-zero X25519 output.
 *
 * Randomness is passed in (`random(length)`), never drawn here, and each function draws exactly once with
 * a documented length, so the same bytes give the same keys: the KATs rely on that. Every failure is
 * STEVE_KEY (or STEVE_BAD_ARGUMENT for a broken `random`). Pure: no I/O, no clock.
 */

import { x25519 } from '@noble/curves/ed25519.js';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { SteveError } from '../errors.js';
import { assertBytes, isAllZero, wipe } from './bytes.js';
import { CLIENT_KEY_MATERIAL_BYTES, SERVER_KEY_MATERIAL_BYTES, SHARED_SECRET_BYTES, isSuite, type Suite } from './constants.js';

/** Returns `length` fresh random bytes (crypto.getRandomValues on the caller's side). */
export type RandomBytes = (length: number) => Uint8Array;

export interface ClientKeyPair {
  /** What the session request carries as `client_key_material`. */
  material: Uint8Array;
  /** Kept by the client until `clientFinish`: the X25519 scalar or the X-Wing 32-byte seed. */
  secret: Uint8Array;
}

export interface ServerResponse {
  /** What the session response carries as `server_key_material`. */
  serverMaterial: Uint8Array;
  /** 32 bytes; hand it to deriveSessionKeys, which wipes it. */
  sharedSecret: Uint8Array;
}

export interface KeyExchange {
  readonly suite: Suite;
  readonly clientMaterialBytes: number;
  readonly serverMaterialBytes: number;
  /** How many random bytes `generateClientKeyPair` draws (its one call to `random`). */
  readonly clientRandomBytes: number;
  /** How many random bytes `serverRespond` draws. */
  readonly serverRandomBytes: number;
  generateClientKeyPair(random: RandomBytes): ClientKeyPair;
  serverRespond(clientMaterial: Uint8Array, random: RandomBytes): ServerResponse;
  clientFinish(secret: Uint8Array, serverMaterial: Uint8Array): Uint8Array;
}

function draw(random: RandomBytes, length: number): Uint8Array {
  if (typeof random !== 'function') throw new SteveError('STEVE_BAD_ARGUMENT', '"random" expected a function');
  const bytes = random(length);
  assertBytes(bytes, 'random()', length);
  // Copy: the caller's buffer may be reused (a pool), and we wipe what we drew.
  return bytes.slice();
}

/** Runs a library call, turning its exceptions (bad point, bad key) into STEVE_KEY. */
function keyOperation<T>(what: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof SteveError) throw error;
    throw new SteveError('STEVE_KEY', `${what} failed`, { cause: error });
  }
}

function checkShared(shared: Uint8Array): Uint8Array {
  if (shared.length !== SHARED_SECRET_BYTES || isAllZero(shared)) {
    wipe(shared);
    throw new SteveError('STEVE_KEY', 'shared secret is all zero');
  }
  return shared;
}

/** X25519 (§1, RFC 7748). Client and server each draw a 32-byte scalar. */
export const x25519Exchange: KeyExchange = Object.freeze({
  suite: 'X25519',
  clientMaterialBytes: CLIENT_KEY_MATERIAL_BYTES.X25519,
  serverMaterialBytes: SERVER_KEY_MATERIAL_BYTES.X25519,
  clientRandomBytes: 32,
  serverRandomBytes: 32,
  generateClientKeyPair(random: RandomBytes): ClientKeyPair {
    const secret = draw(random, 32);
    return { material: keyOperation('X25519 public key', () => x25519.getPublicKey(secret)), secret };
  },
  serverRespond(clientMaterial: Uint8Array, random: RandomBytes): ServerResponse {
    assertBytes(clientMaterial, 'clientMaterial', CLIENT_KEY_MATERIAL_BYTES.X25519, 'STEVE_KEY');
    const secret = draw(random, 32);
    try {
      const serverMaterial = keyOperation('X25519 public key', () => x25519.getPublicKey(secret));
      const sharedSecret = checkShared(keyOperation('X25519', () => x25519.getSharedSecret(secret, clientMaterial)));
      return { serverMaterial, sharedSecret };
    } finally {
      wipe(secret);
    }
  },
  clientFinish(secret: Uint8Array, serverMaterial: Uint8Array): Uint8Array {
    assertBytes(secret, 'secret', 32, 'STEVE_KEY');
    assertBytes(serverMaterial, 'serverMaterial', SERVER_KEY_MATERIAL_BYTES.X25519, 'STEVE_KEY');
    return checkShared(keyOperation('X25519', () => x25519.getSharedSecret(secret, serverMaterial)));
  },
});

/**
 * X-Wing draft-10 (§1). The client draws the 32-byte decapsulation key (draft §"Key generation": sk =
 * random(32), expanded with SHAKE256); the server draws the 64-byte eseed of EncapsulateDerand
 * (eseed[0:32] for ML-KEM, eseed[32:64] for the X25519 ephemeral).
 */
export const xwingExchange: KeyExchange = Object.freeze({
  suite: 'XWING-DRAFT10',
  clientMaterialBytes: CLIENT_KEY_MATERIAL_BYTES['XWING-DRAFT10'],
  serverMaterialBytes: SERVER_KEY_MATERIAL_BYTES['XWING-DRAFT10'],
  clientRandomBytes: 32,
  serverRandomBytes: 64,
  generateClientKeyPair(random: RandomBytes): ClientKeyPair {
    const seed = draw(random, 32);
    try {
      const { secretKey, publicKey } = keyOperation('X-Wing key generation', () => ml_kem768_x25519.keygen(seed));
      return { material: publicKey, secret: secretKey };
    } finally {
      wipe(seed);
    }
  },
  serverRespond(clientMaterial: Uint8Array, random: RandomBytes): ServerResponse {
    assertBytes(clientMaterial, 'clientMaterial', CLIENT_KEY_MATERIAL_BYTES['XWING-DRAFT10'], 'STEVE_KEY');
    const eseed = draw(random, 64);
    try {
      // ML-KEM's encapsulation-key check (FIPS 203 §7.2) throws for a malformed key: STEVE_KEY.
      const { cipherText, sharedSecret } = keyOperation('X-Wing encapsulation', () => ml_kem768_x25519.encapsulate(clientMaterial, eseed));
      return { serverMaterial: cipherText, sharedSecret: checkShared(sharedSecret) };
    } finally {
      wipe(eseed);
    }
  },
  clientFinish(secret: Uint8Array, serverMaterial: Uint8Array): Uint8Array {
    assertBytes(secret, 'secret', 32, 'STEVE_KEY');
    assertBytes(serverMaterial, 'serverMaterial', SERVER_KEY_MATERIAL_BYTES['XWING-DRAFT10'], 'STEVE_KEY');
    return checkShared(keyOperation('X-Wing decapsulation', () => ml_kem768_x25519.decapsulate(serverMaterial, secret)));
  },
});

/** The exchange for a suite (§1: a deployment pins exactly one). */
export function keyExchangeFor(suite: Suite): KeyExchange {
  if (!isSuite(suite)) throw new SteveError('STEVE_SUITE', '"suite" must be X25519 or XWING-DRAFT10');
  return suite === 'X25519' ? x25519Exchange : xwingExchange;
}
