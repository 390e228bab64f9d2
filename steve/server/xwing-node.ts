/**
 * X-Wing draft-10 (specs/steve.md §1) for the server's side, `serverRespond`, built from its parts so that
 * the server owns the intermediates and can wipe them (§4): ML-KEM-768 from @noble/post-quantum, the
 * X25519 component on node:crypto (x25519-node.ts), and the draft's combiner SHA3-256(ss_M || ss_X ||
 * ct_X || pk_X || XWingLabel) hashed by noble from, and into, ArrayBuffers of our own. The client side
 * (`generateClientKeyPair`, `clientFinish`) is the protocol's `xwingExchange`. xwing-node.test.ts holds
 * this to the draft's Appendix C vectors and to `xwingExchange` on random inputs.
 *
 * Why not `ml_kem768_x25519.encapsulate` whole: measured in a running agent (test/steve/secret-wipe
 * .test.ts), it left per session the final shared secret (its combiner output, copied and not wiped),
 * ss_M || ss_X (the combiner's input, not wiped) and ss_X again (noble's X25519 runs on BigInts, which
 * cannot be wiped). What remains with this file: ML-KEM's own G output K || r, which noble hashes
 * into a 64-byte on-heap array and then moves out of V8's heap by taking a subarray, so a copy of ss_M
 * stays behind as garbage until the heap reuses the space; and the ephemeral X25519 key, held by a
 * KeyObject until the garbage collector frees it (OpenSSL cleanses it then). Neither is in reach of
 * JavaScript here.
 *
 * The exchange fails where the noble one does: a malformed encapsulation key (FIPS 203 §7.2 modulus
 * check) or a low-order X25519 component (all-zero ss_X, §1) is STEVE_KEY.
 */

import type { KeyObject } from 'node:crypto';
import { sha3_256 } from '@noble/hashes/sha3.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { CLIENT_KEY_MATERIAL_BYTES, SERVER_KEY_MATERIAL_BYTES, SHARED_SECRET_BYTES, xwingExchange, type KeyExchange, type RandomBytes, type ServerResponse } from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { drawSecret, nodeRandomBytes } from './secret-bytes.js';
import { ephemeralKeyPair, x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from './x25519-node.js';

/** draft-10 §"Combiner": XWingLabel = "\.//^\" (6 bytes). */
const LABEL = Buffer.from('5c2e2f2f5e5c', 'hex');
/** ML-KEM-768: encapsulation key 1184 bytes, ciphertext 1088 (FIPS 203 Table 3); X25519 32 each. */
const ML_KEM_PUBLIC_BYTES = 1184;
const ML_KEM_CIPHERTEXT_BYTES = 1088;
const X25519_BYTES = 32;
/** draft-10 EncapsulateDerand: eseed[0:32] is ML-KEM's m, eseed[32:64] the X25519 ephemeral key. */
const ESEED_BYTES = 64;
const ML_KEM_SEED_BYTES = 32;
const COMBINER_INPUT_BYTES = SHARED_SECRET_BYTES + X25519_BYTES + X25519_BYTES + X25519_BYTES + LABEL.length;

function mlKemEncapsulate(publicKey: Uint8Array, m: Uint8Array): { cipherText: Uint8Array; sharedSecret: Uint8Array } {
  try {
    return ml_kem768.encapsulate(publicKey, m);
  } catch (cause) {
    throw new SteveError('STEVE_KEY', 'X-Wing encapsulation failed', { cause });
  }
}

/** X-Wing draft-10 with the server's side on node:crypto where it can be; wire- and KAT-identical to `xwingExchange`. */
export const nodeXwingExchange: KeyExchange = Object.freeze({
  suite: xwingExchange.suite,
  clientMaterialBytes: CLIENT_KEY_MATERIAL_BYTES['XWING-DRAFT10'],
  serverMaterialBytes: SERVER_KEY_MATERIAL_BYTES['XWING-DRAFT10'],
  clientRandomBytes: xwingExchange.clientRandomBytes,
  serverRandomBytes: ESEED_BYTES,
  generateClientKeyPair: xwingExchange.generateClientKeyPair,
  clientFinish: xwingExchange.clientFinish,
  serverRespond(clientMaterial: Uint8Array, random: RandomBytes): ServerResponse {
    if (!(clientMaterial instanceof Uint8Array) || clientMaterial.length !== CLIENT_KEY_MATERIAL_BYTES['XWING-DRAFT10']) {
      throw new SteveError('STEVE_KEY', `"clientMaterial" expected ${CLIENT_KEY_MATERIAL_BYTES['XWING-DRAFT10']} bytes`);
    }
    const publicM = clientMaterial.subarray(0, ML_KEM_PUBLIC_BYTES);
    const publicX = clientMaterial.subarray(ML_KEM_PUBLIC_BYTES);
    // With the system's generator the X25519 half of eseed is generated inside OpenSSL
    // (x25519-node.ts `ephemeralKeyPair`): only ML-KEM's m is drawn.
    const system = random === nodeRandomBytes;
    const eseed = drawSecret(random, system ? ML_KEM_SEED_BYTES : ESEED_BYTES);
    let sharedM: Uint8Array | undefined;
    let sharedX: Uint8Array | undefined;
    const input = new Uint8Array(new ArrayBuffer(COMBINER_INPUT_BYTES));
    try {
      const encapsulated = mlKemEncapsulate(publicM, eseed.subarray(0, ML_KEM_SEED_BYTES));
      sharedM = encapsulated.sharedSecret;
      let key: KeyObject;
      let cipherX: Uint8Array;
      if (system) ({ privateKey: key, publicBytes: cipherX } = ephemeralKeyPair(random));
      else {
        key = x25519PrivateKey(eseed.subarray(ML_KEM_SEED_BYTES));
        cipherX = x25519PublicBytes(key);
      }
      // STEVE_KEY when pk_X is a low-order point (all-zero output).
      sharedX = x25519SharedSecret(key, publicX);
      let at = 0;
      for (const part of [sharedM, sharedX, cipherX, publicX, LABEL]) {
        input.set(part, at);
        at += part.length;
      }
      const sharedSecret = new Uint8Array(new ArrayBuffer(SHARED_SECRET_BYTES));
      sha3_256.create().update(input).digestInto(sharedSecret);
      const serverMaterial = new Uint8Array(ML_KEM_CIPHERTEXT_BYTES + X25519_BYTES);
      serverMaterial.set(encapsulated.cipherText, 0);
      serverMaterial.set(cipherX, ML_KEM_CIPHERTEXT_BYTES);
      return { serverMaterial, sharedSecret };
    } finally {
      eseed.fill(0);
      input.fill(0);
      sharedM?.fill(0);
      sharedX?.fill(0);
    }
  },
});
