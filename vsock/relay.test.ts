/**
 * openDialRelay's own checks, before any socket exists: the IPv4 parser that decides which dials the relay
 * may make (property tests against Node's own parser), and the refusals of bad targets and deadlines,
 * coded VSOCK_BAD_ARGUMENT by relay.c. Its relaying and its connect failures and deadlines are tested through the
 * bridges (bridge/forwarder.test.ts, over TCP on 127.0.0.1; never vsock on this machine).
 */

import { isIPv4 } from 'node:net';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ipv4Bytes, openDialRelay } from './relay.js';

describe('ipv4Bytes', () => {
  it('gives the four bytes of any dotted address', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
        expect(ipv4Bytes(Array.from(bytes).join('.'))).toEqual(bytes);
      }),
    );
  });

  it('takes nothing Node would not take as IPv4, and no leading zeros', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[0-9.]{1,20}$/)), (text) => {
        const bytes = ipv4Bytes(text);
        if (bytes !== undefined) {
          expect(isIPv4(text)).toBe(true);
          expect(Array.from(bytes).join('.')).toBe(text);
        }
      }),
    );
    for (const text of ['localhost', '::1', '127.0.0.01', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4 ', '']) {
      expect(ipv4Bytes(text)).toBeUndefined();
    }
  });
});

describe('openDialRelay refuses bad arguments before it makes a socket', () => {
  const end = (): void => {
    throw new Error('no relay should start');
  };
  const options = { bufferBytes: 65_536, splice: false, connectTimeoutMs: 1000 };
  const LOOPBACK = Uint8Array.of(127, 0, 0, 1);

  it.each([
    ['an address of 16 bytes', { kind: 'tcp', address: new Uint8Array(16), port: 80 }, options],
    ['port 0', { kind: 'tcp', address: LOOPBACK, port: 0 }, options],
    ['port 65536', { kind: 'tcp', address: LOOPBACK, port: 65_536 }, options],
    ['a CID over 32 bits', { kind: 'vsock', cid: 2 ** 32, port: 1 }, options],
    ['a connect timeout of 0', { kind: 'tcp', address: LOOPBACK, port: 80 }, { ...options, connectTimeoutMs: 0 }],
    ['a buffer under a page', { kind: 'tcp', address: LOOPBACK, port: 80 }, { ...options, bufferBytes: 1024 }],
  ] as const)('%s: VSOCK_BAD_ARGUMENT', (_name, target, opts) => {
    // fd 0 is never read: the arguments are checked first.
    expect(() => openDialRelay(0, target, opts, end)).toThrow(expect.objectContaining({ code: 'VSOCK_BAD_ARGUMENT' }));
  });
});
