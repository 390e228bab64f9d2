/**
 * The node:crypto implementation of `P384Verifier` (see ecdsa.ts): the hot path on Node. Public keys
 * are imported from their raw point through JWK and cached, since a chain reuses the same few keys.
 */

import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { P384Verifier } from './ecdsa.js';

const P384_POINT_BYTES = 97; // 0x04 || X(48) || Y(48)
const KEY_CACHE_LIMIT = 256;
const keyCache = new Map<string, KeyObject>();

function importPoint(point: Uint8Array): KeyObject | null {
  if (point.length !== P384_POINT_BYTES || point[0] !== 0x04) return null;
  const id = Buffer.from(point).toString('base64');
  let key = keyCache.get(id);
  if (key === undefined) {
    key = createPublicKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-384',
        x: Buffer.from(point.subarray(1, 49)).toString('base64url'),
        y: Buffer.from(point.subarray(49)).toString('base64url'),
      },
    });
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    keyCache.set(id, key);
  }
  return key;
}

export const nodeP384Verifier: P384Verifier = {
  verify(signature, format, message, publicKey) {
    try {
      const key = importPoint(publicKey);
      if (key === null) return false;
      return verify('sha384', message, { key, dsaEncoding: format === 'der' ? 'der' : 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  },
};
