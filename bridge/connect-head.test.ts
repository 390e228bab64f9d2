/**
 * The CONNECT wire: accepted targets in canonical form, every refusal with its code and status, the exact
 * answer bytes, the allowlist, and fast-check properties over random and mutated heads (only coded
 * BridgeErrors, and a well-defined status for each, ever come out of the parsers).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  CONNECT_STATUS,
  MAX_HEAD_BYTES,
  connectResponse,
  createAllowlist,
  encodeConnectRequest,
  findHeadEnd,
  parseAuthority,
  parseConnectRequest,
  parseConnectResponse,
  statusForError,
} from './connect-head.js';
import { BridgeError } from './errors.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    return (error as BridgeError).code;
  }
}

describe('parseConnectRequest', () => {
  it('accepts names, IPv4 and IPv6 targets in canonical form', () => {
    expect(parseConnectRequest(bytes('CONNECT Example.COM:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'))).toEqual({
      host: 'example.com',
      port: 443,
      authority: 'example.com:443',
    });
    expect(parseConnectRequest(bytes('CONNECT 10.0.0.1:8443 HTTP/1.0\r\n\r\n'))).toEqual({ host: '10.0.0.1', port: 8443, authority: '10.0.0.1:8443' });
    expect(parseConnectRequest(bytes('CONNECT [0:0::1]:80 HTTP/1.1\r\n\r\n'))).toEqual({ host: '::1', port: 80, authority: '[::1]:80' });
    expect(parseConnectRequest(bytes('CONNECT localhost:65535 HTTP/1.1\r\nProxy-Connection: keep-alive\r\nX-Empty:\r\n\r\n')).authority).toBe('localhost:65535');
  });

  it('answers what undici sends', () => {
    const head = 'CONNECT 127.0.0.1:41234 HTTP/1.1\r\nhost: 127.0.0.1:41234\r\nproxy-connection: keep-alive\r\nconnection: close\r\n\r\n';
    expect(parseConnectRequest(bytes(head)).authority).toBe('127.0.0.1:41234');
  });

  const refusals: Array<[string, string]> = [
    ['GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n', 'BRIDGE_CONNECT_METHOD'],
    ['POST / HTTP/1.1\r\n\r\n', 'BRIDGE_CONNECT_METHOD'],
    ['connect example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_CONNECT_METHOD'],
    ['CONNECT example.com:443 HTTP/2.0\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443  HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT  example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:0 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:65536 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:0443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:+443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT http://example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT user@example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT exa_mple.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT -example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example..com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com.:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT 2130706433:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT 127.1:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT 127.000.0.1:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT 256.0.0.1:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT [::1%25eth0]:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT [::1]80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT [zz::1]:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT ::1:80 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['\r\nCONNECT example.com:443 HTTP/1.1\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost : x\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\nno colon\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\nHost: x\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost: x\ry\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost: \0\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\n\r\nextra', 'BRIDGE_HEAD_MALFORMED'],
    ['CONNECT example.com:443 HTTP/1.1\r\n', 'BRIDGE_HEAD_MALFORMED'],
    ['\r\n\r\n', 'BRIDGE_HEAD_MALFORMED'],
  ];

  it.each(refusals)('refuses %j with %s', (head, code) => {
    expect(codeOf(() => parseConnectRequest(bytes(head)))).toBe(code);
  });

  it('refuses a head over MAX_HEAD_BYTES with BRIDGE_HEAD_TOO_LARGE (431)', () => {
    const head = `CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    expect(codeOf(() => parseConnectRequest(bytes(head)))).toBe('BRIDGE_HEAD_TOO_LARGE');
    expect(CONNECT_STATUS.BRIDGE_HEAD_TOO_LARGE).toBe(431);
  });

  it('takes a head of exactly MAX_HEAD_BYTES', () => {
    const start = 'CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ';
    const head = `${start}${'a'.repeat(MAX_HEAD_BYTES - start.length - 4)}\r\n\r\n`;
    expect(head.length).toBe(MAX_HEAD_BYTES);
    expect(parseConnectRequest(bytes(head)).authority).toBe('example.com:443');
  });
});

describe('findHeadEnd', () => {
  it('finds the end across calls that each scan only new bytes', () => {
    const head = bytes('CONNECT a.b:1 HTTP/1.1\r\nHost: a.b:1\r\n\r\nrest');
    let scanned = 0;
    let end = -1;
    for (let length = 1; length <= head.length && end === -1; length += 1) {
      end = findHeadEnd(head, scanned - 3, length);
      scanned = length;
    }
    expect(end).toBe(head.length - 4);
  });

  it('refuses a bare LF at once', () => {
    expect(codeOf(() => findHeadEnd(bytes('CONNECT a.b:1 HTTP/1.1\n'), 0, 23))).toBe('BRIDGE_HEAD_MALFORMED');
    expect(codeOf(() => findHeadEnd(bytes('\n'), 0, 1))).toBe('BRIDGE_HEAD_MALFORMED');
  });
});

describe('parseConnectResponse', () => {
  it('reads the status of a well-formed answer', () => {
    expect(parseConnectResponse(connectResponse(200))).toBe(200);
    expect(parseConnectResponse(connectResponse(403))).toBe(403);
    expect(parseConnectResponse(bytes('HTTP/1.0 200\r\n\r\n'))).toBe(200);
    expect(parseConnectResponse(bytes('HTTP/1.1 502 Bad Gateway\r\nVia: x\r\n\r\n'))).toBe(502);
  });

  it.each(['HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 200OK\r\n\r\n', 'ICY 200 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 200 OK\r\nbad\r\n\r\n', 'HTTP/1.1 099 x\r\n\r\n'])(
    'refuses %j',
    (head) => {
      expect(codeOf(() => parseConnectResponse(bytes(head)))).toBe('BRIDGE_HEAD_MALFORMED');
    },
  );
});

describe('answers', () => {
  it('has exact bytes for every status', () => {
    expect(text(connectResponse(200))).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
    expect(text(connectResponse(403))).toBe('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(405))).toBe('HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(400))).toBe('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(431))).toBe('HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(502))).toBe('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(504))).toBe('HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(text(connectResponse(408))).toBe('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(codeOf(() => connectResponse(418))).toBe('BRIDGE_CONFIG_INVALID');
  });

  it('maps every refusal code to one status, and anything else to 502', () => {
    for (const [code, status] of Object.entries(CONNECT_STATUS)) {
      expect(statusForError(new BridgeError(code as BridgeError['code'], 'x'))).toBe(status);
      expect(() => connectResponse(status!)).not.toThrow();
    }
    expect(statusForError(new Error('x'))).toBe(502);
    expect(statusForError(undefined)).toBe(502);
  });

  it('forwards only the target, never header lines the app sent', () => {
    const target = parseConnectRequest(bytes('CONNECT Example.com:443 HTTP/1.1\r\nProxy-Authorization: secret\r\n\r\n'));
    expect(text(encodeConnectRequest(target))).toBe('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
  });
});

describe('allowlist', () => {
  it('matches exact host:port, names case-insensitively, IPv6 canonically', () => {
    const list = createAllowlist(['API.example.com:443', '10.0.0.1:80', '[0::1]:8080']);
    expect(list.allows(parseAuthority('api.example.com:443'))).toBe(true);
    expect(list.allows(parseAuthority('api.EXAMPLE.com:443'))).toBe(true);
    expect(list.allows(parseAuthority('api.example.com:80'))).toBe(false);
    expect(list.allows(parseAuthority('x.api.example.com:443'))).toBe(false);
    expect(list.allows(parseAuthority('example.com:443'))).toBe(false);
    expect(list.allows(parseAuthority('10.0.0.1:80'))).toBe(true);
    expect(list.allows(parseAuthority('[::1]:8080'))).toBe(true);
    expect(list.entries).toEqual(['api.example.com:443', '10.0.0.1:80', '[::1]:8080']);
  });

  it.each(['*.example.com:443', 'example.com', 'example.com:*', 'http://example.com:443', ''])('refuses the entry %j', (entry) => {
    expect(codeOf(() => createAllowlist([entry]))).toBe('BRIDGE_CONFIG_INVALID');
  });
});

describe('properties (fast-check)', () => {
  const KNOWN_CODES = new Set(['BRIDGE_HEAD_MALFORMED', 'BRIDGE_HEAD_TOO_LARGE', 'BRIDGE_CONNECT_METHOD']);

  /** Runs a parser; it may only return or throw a BridgeError with a known code whose status exists. */
  function onlyCodedErrors(parse: (data: Uint8Array) => unknown, data: Uint8Array): void {
    try {
      parse(data);
    } catch (error) {
      if (!(error instanceof BridgeError) || !KNOWN_CODES.has(error.code)) throw error;
      expect(() => connectResponse(statusForError(error))).not.toThrow();
    }
  }

  const validHead = fc
    .record({
      host: fc.constantFrom('example.com', 'a.b.c', '127.0.0.1', '[::1]', 'localhost'),
      port: fc.integer({ min: 1, max: 65_535 }),
      headers: fc.array(fc.tuple(fc.constantFrom('Host', 'X-A', 'proxy-connection'), fc.string({ maxLength: 20 })), { maxLength: 4 }),
    })
    .map(({ host, port, headers }) => bytes(`CONNECT ${host}:${port} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v.replace(/[\r\n]/g, '')}\r\n`).join('')}\r\n`));

  it('random bytes give a target or a coded error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        onlyCodedErrors(parseConnectRequest, data);
        onlyCodedErrors(parseConnectResponse, data);
      }),
      { seed: 7, numRuns: 3000 },
    );
  });

  it('mutated valid heads give a canonical target or a coded error', () => {
    fc.assert(
      fc.property(validHead, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (head, edits) => {
        const mutated = Uint8Array.from(head);
        for (const [at, value] of edits) mutated[at % mutated.length] = value;
        try {
          const target = parseConnectRequest(mutated);
          // Whatever is accepted re-parses to itself.
          expect(parseAuthority(target.authority)).toEqual(target);
          expect(parseConnectRequest(encodeConnectRequest(target))).toEqual(target);
        } catch (error) {
          if (!(error instanceof BridgeError) || !KNOWN_CODES.has(error.code)) throw error;
        }
      }),
      { seed: 11, numRuns: 3000 },
    );
  });

  it('truncated valid heads are refused as malformed', () => {
    fc.assert(
      fc.property(validHead, fc.nat(), (head, cut) => {
        const truncated = head.subarray(0, cut % head.length);
        expect(codeOf(() => parseConnectRequest(truncated))).toBe('BRIDGE_HEAD_MALFORMED');
      }),
      { seed: 13, numRuns: 1000 },
    );
  });

  it('valid heads round-trip', () => {
    fc.assert(
      fc.property(validHead, (head) => {
        const target = parseConnectRequest(head);
        expect(parseConnectRequest(encodeConnectRequest(target))).toEqual(target);
      }),
      { seed: 17, numRuns: 500 },
    );
  });
});
