/**
 * record.ts: AES-256-GCM test cases 13-16 of the GCM specification through `nobleAesGcm`, nobleAesGcm
 * cross-checked against node:crypto on random inputs, one conformance suite run on both (the pure Aead
 * and a node:crypto Aead written here, the shape the Node server will plug in), the exact §4 nonce and
 * AAD layouts, and sealRecord/openRecord refusing every change.
 */

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gcmVectors, hex, unhex } from '../../test/vectors/steve/vectors.js';
import { DIRECTION, MESSAGE_TYPE } from './constants.js';
import type { SessionKeys } from './kdf.js';
import { nobleAesGcm, openRecord, recordAad, recordNonce, sealRecord, type Aead, type RecordHeader } from './record.js';
import { code } from '../../test/steve-codes.js';

/** node:crypto behind the same interface (test-only). */
const nodeAesGcm: Aead = {
  seal(key, nonce, aad, plaintext) {
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(aad);
    return new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
  },
  open(key, nonce, aad, sealed) {
    if (sealed.length < 16) return null;
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    try {
      return new Uint8Array(Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]));
    } catch {
      return null;
    }
  },
};

const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));


describe('AES-256-GCM: GCM specification test cases 13-16 through nobleAesGcm', () => {
  for (const v of gcmVectors().cases) {
    it(`test case ${v.name}`, () => {
      const [key, iv, aad, plaintext] = [unhex(v.key), unhex(v.iv), unhex(v.aad), unhex(v.plaintext)];
      const sealed = nobleAesGcm.seal(key, iv, aad, plaintext);
      expect(hex(sealed)).toBe(v.ciphertext + v.tag);
      expect(hex(nobleAesGcm.open(key, iv, aad, sealed)!)).toBe(v.plaintext);
      expect(hex(nodeAesGcm.seal(key, iv, aad, plaintext))).toBe(v.ciphertext + v.tag);
    });
  }

  it('agrees with node:crypto aes-256-gcm on random inputs, both ways', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 300 }),
        (key, nonce, aad, plaintext) => {
          const sealed = nobleAesGcm.seal(key, nonce, aad, plaintext);
          expect(hex(sealed)).toBe(hex(nodeAesGcm.seal(key, nonce, aad, plaintext)));
          expect(hex(nodeAesGcm.open(key, nonce, aad, sealed)!)).toBe(hex(plaintext));
          expect(hex(nobleAesGcm.open(key, nonce, aad, sealed)!)).toBe(hex(plaintext));
        },
      ),
      { seed: 38, numRuns: 300 },
    );
  });
});

describe('record nonce and AAD (§4)', () => {
  it('nonce = iv_prefix(4) || u64be(sequence)', () => {
    expect(hex(recordNonce(unhex('a1b2c3d4'), 0))).toBe('a1b2c3d40000000000000000');
    expect(hex(recordNonce(unhex('a1b2c3d4'), 0x0102030405))).toBe('a1b2c3d40000000102030405');
    expect(hex(recordNonce(unhex('00000000'), Number.MAX_SAFE_INTEGER))).toBe('00000000001fffffffffffff');
  });

  it('AAD = MAGIC || type || direction || session_id || u64be(sequence), 39 bytes', () => {
    const sessionId = unhex('00112233445566778899aabbccddeeff');
    const aad = recordAad(MESSAGE_TYPE.APPLICATION, DIRECTION.S2C, sessionId, 258);
    expect(aad).toHaveLength(39);
    expect(hex(aad)).toBe(
      // "STEVE-E2P-V2" 00 | type 01 | direction 01 | session id | 0000000000000102
      '53544556452d4532502d563200' + '01' + '01' + '00112233445566778899aabbccddeeff' + '0000000000000102',
    );
    expect(hex(recordAad(MESSAGE_TYPE.CONFIRMATION, DIRECTION.C2S, sessionId, 0)).slice(26, 30)).toBe('0000');
  });

  it('refuses bad arguments', () => {
    expect(code(() => recordNonce(new Uint8Array(3), 1))).toBe('STEVE_KEY');
    expect(code(() => recordNonce(new Uint8Array(4), -1))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => recordNonce(new Uint8Array(4), 2 ** 53))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => recordNonce(new Uint8Array(4), 1.5))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => recordAad(2 as never, DIRECTION.C2S, new Uint8Array(16), 1))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => recordAad(MESSAGE_TYPE.APPLICATION, 2 as never, new Uint8Array(16), 1))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => recordAad(MESSAGE_TYPE.APPLICATION, DIRECTION.C2S, new Uint8Array(15), 1))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe.each([
  ['nobleAesGcm', nobleAesGcm],
  ['node:crypto (test Aead)', nodeAesGcm],
] as const)('Aead conformance and records: %s', (_name, aead) => {
  const keys: SessionKeys = { c2sKey: random(32), s2cKey: random(32), c2sIv: random(4), s2cIv: random(4), binder: random(32), streamC2sKey: random(32), streamS2cKey: random(32) };
  const header: RecordHeader = { type: MESSAGE_TYPE.APPLICATION, direction: DIRECTION.C2S, sessionId: random(16), sequence: 5 };

  it('seal then open gives the plaintext back; sealed = ciphertext || 16-byte tag', () => {
    for (const length of [0, 1, 15, 16, 17, 1000]) {
      const plaintext = random(length);
      const sealed = sealRecord(aead, keys, header, plaintext);
      expect(sealed).toHaveLength(length + 16);
      expect(hex(openRecord(aead, keys, header, sealed))).toBe(hex(plaintext));
    }
  });

  it('uses the direction\'s key and IV: a c2s record is c2sKey under c2sIv || u64be(seq)', () => {
    const plaintext = random(40);
    const sealed = sealRecord(aead, keys, header, plaintext);
    const direct = nobleAesGcm.seal(keys.c2sKey, recordNonce(keys.c2sIv, 5), recordAad(MESSAGE_TYPE.APPLICATION, DIRECTION.C2S, header.sessionId, 5), plaintext);
    expect(hex(sealed)).toBe(hex(direct));
  });

  it('refuses every change with STEVE_DECRYPT: a flipped bit, a truncation, another header field', () => {
    const sealed = sealRecord(aead, keys, header, random(33));
    for (let i = 0; i < sealed.length; i += 7) {
      const changed = sealed.slice();
      changed[i]! ^= 0x01;
      expect(code(() => openRecord(aead, keys, header, changed))).toBe('STEVE_DECRYPT');
    }
    expect(code(() => openRecord(aead, keys, header, sealed.subarray(0, sealed.length - 1)))).toBe('STEVE_DECRYPT');
    expect(code(() => openRecord(aead, keys, header, sealed.subarray(0, 15)))).toBe('STEVE_DECRYPT');
    expect(code(() => openRecord(aead, keys, { ...header, sequence: 6 }, sealed))).toBe('STEVE_DECRYPT');
    expect(code(() => openRecord(aead, keys, { ...header, direction: DIRECTION.S2C }, sealed))).toBe('STEVE_DECRYPT');
    const otherId = header.sessionId.slice();
    otherId[0]! ^= 1;
    expect(code(() => openRecord(aead, keys, { ...header, sessionId: otherId }, sealed))).toBe('STEVE_DECRYPT');
    // Same key and nonce but the confirmation type in the AAD (sequence 0 on both sides to isolate the type).
    const confirmation = sealRecord(aead, keys, { ...header, type: MESSAGE_TYPE.CONFIRMATION, sequence: 0 }, random(32));
    expect(aead.open(keys.c2sKey, recordNonce(keys.c2sIv, 0), recordAad(MESSAGE_TYPE.APPLICATION, DIRECTION.C2S, header.sessionId, 0), confirmation)).toBeNull();
  });

  it('enforces sequence 0 for confirmation and 1.. for application, before any cryptography', () => {
    expect(code(() => sealRecord(aead, keys, { ...header, sequence: 0 }, random(1)))).toBe('STEVE_PROTOCOL');
    expect(code(() => sealRecord(aead, keys, { ...header, type: MESSAGE_TYPE.CONFIRMATION, sequence: 1 }, random(1)))).toBe('STEVE_PROTOCOL');
    expect(code(() => openRecord(aead, keys, { ...header, sequence: 0 }, random(40)))).toBe('STEVE_PROTOCOL');
  });
});

describe('nobleAesGcm arguments', () => {
  it('refuses keys and nonces of the wrong length', () => {
    expect(code(() => nobleAesGcm.seal(new Uint8Array(16), new Uint8Array(12), new Uint8Array(0), new Uint8Array(1)))).toBe('STEVE_KEY');
    expect(code(() => nobleAesGcm.seal(new Uint8Array(32), new Uint8Array(16), new Uint8Array(0), new Uint8Array(1)))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nobleAesGcm.open(new Uint8Array(32), new Uint8Array(8), new Uint8Array(0), new Uint8Array(16)))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('works on offset views', () => {
    const big = random(200);
    const key = big.subarray(3, 35);
    const nonce = big.subarray(40, 52);
    const aad = big.subarray(60, 99);
    const plaintext = big.subarray(101, 190);
    const sealed = nobleAesGcm.seal(key, nonce, aad, plaintext);
    expect(hex(sealed)).toBe(hex(nodeAesGcm.seal(key.slice(), nonce.slice(), aad.slice(), plaintext.slice())));
    const framed = new Uint8Array(sealed.length + 10);
    framed.set(sealed, 5);
    expect(hex(nobleAesGcm.open(key, nonce, aad, framed.subarray(5, 5 + sealed.length))!)).toBe(hex(plaintext));
  });
});
