/**
 * wire.ts builds the heads of the server's envelopes and application responses so the bodies can
 * follow without a copy. Here the head + body is compared with the protocol's whole-message encoders
 * (`encodeEnvelope`, `encodeAppResponse`) byte for byte, for every length class of the CBOR byte-string
 * header (0..23, 1-, 2-, 4-byte lengths), sequences up to 2^53-1, and both null and present bodies.
 */

import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { hex } from '../../test/vectors/steve/vectors.js';
import { MAX_SEQUENCE, decodeAppResponse, decodeEnvelope, encodeAppResponse, encodeEnvelope } from '../protocol/index.js';
import { appResponseHead, byteStringHead, envelopeHead } from './wire.js';

const LENGTHS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000];
const SEQUENCES = [0, 1, 255, 2 ** 32 - 1, 2 ** 32, MAX_SEQUENCE];

describe('byteStringHead', () => {
  it('is the shortest CBOR head of a byte string', () => {
    expect(hex(byteStringHead(0))).toBe('40');
    expect(hex(byteStringHead(23))).toBe('57');
    expect(hex(byteStringHead(24))).toBe('5818');
    expect(hex(byteStringHead(256))).toBe('590100');
    expect(hex(byteStringHead(65_536))).toBe('5a00010000');
    expect(hex(byteStringHead(2 ** 32 - 1))).toBe('5affffffff');
    expect(code(() => byteStringHead(2 ** 32))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => byteStringHead(-1))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => byteStringHead(1.5))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('envelopeHead', () => {
  it('head || ciphertext equals encodeEnvelope for every length class and sequence', () => {
    const sessionId = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    for (const sequence of SEQUENCES) {
      for (const length of LENGTHS.filter((n) => n >= 16)) {
        const ciphertext = Uint8Array.from({ length }, (_, i) => i & 0xff);
        const ours = Buffer.concat([envelopeHead(sessionId, sequence, length), ciphertext]);
        const theirs = encodeEnvelope({ sessionId, sequence, ciphertext });
        expect(hex(ours), `${sequence}/${length}`).toBe(hex(theirs));
        expect(decodeEnvelope(ours).sequence).toBe(sequence);
      }
    }
  });

  it('refuses a wrong session id or sequence', () => {
    expect(code(() => envelopeHead(new Uint8Array(15), 1, 16))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => envelopeHead(new Uint8Array(16), -1, 16))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => envelopeHead(new Uint8Array(16), 2 ** 53, 16))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('appResponseHead', () => {
  const headers = [
    ['content-type', 'application/json'],
    ['set-cookie', 'a=1; Path=/'],
    ['set-cookie', 'b=2; Secure'],
    // Latin-1 text (undici decodes field values as latin1): two UTF-8 bytes each above 0x7f.
    ['x-latin', 'caf\u00e9 \u00ff\t!'],
    ['x-long', 'v'.repeat(300)],
    ['X-Mixed-Case', ''],
  ] as const;

  it('head || body equals encodeAppResponse, with null for an empty body (§3)', () => {
    for (const count of [0, 1, 23, 24, 300]) {
      const many = Array.from({ length: count }, (_, i) => [`h${i}`, `v${i}`] as const);
      expect(hex(appResponseHead(204, many, 0)), `${count} headers`).toBe(hex(encodeAppResponse({ status: 204, headers: many, body: null })));
    }
    for (const status of [200, 302, 404, 599]) {
      for (const length of LENGTHS) {
        const body = Uint8Array.from({ length }, (_, i) => (i * 7) & 0xff);
        const ours = Buffer.concat([appResponseHead(status, headers, length), body]);
        expect(hex(ours), `${status}/${length}`).toBe(hex(encodeAppResponse({ status, headers, body })));
        const decoded = decodeAppResponse(ours);
        expect(decoded.body === null ? 0 : decoded.body.length).toBe(length);
        expect(decoded.headers).toEqual(headers);
      }
    }
  });

  it('keeps the protocol encoder\'s checks (status range, header grammar)', () => {
    expect(code(() => appResponseHead(101, [], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [['bad name', 'x']], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [['x', 'a\r\nb']], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [['x', 'snow \u2603']], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [['x', 'lone \ud800']], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [['x'] as unknown as readonly [string, string]], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(600, [], 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => appResponseHead(200, [], -1))).toBe('STEVE_BAD_ARGUMENT');
  });
});
