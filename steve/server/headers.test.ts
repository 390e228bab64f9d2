/**
 * headers.ts: the one policy for what request headers reach the app, on fixed cases and on random
 * header sets (fast-check, fixed seed): no hop-by-hop or forwarding header of the client's ever passes,
 * `host` is the app's and `x-forwarded-proto` the agent's, and a bootstrap request carries only the
 * allow-list.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BOOTSTRAP_REQUEST_HEADERS, appRequestHeaders, isForwardingHeader, isHopByHop, connectionTokens } from './headers.js';

const SEED = 0x4ead;
const options = { host: '127.0.0.1:8083', proto: 'https' as const };

describe('appRequestHeaders', () => {
  it('drops hop-by-hop headers, those the Connection header lists, and forwarding headers; sets host and x-forwarded-proto', () => {
    const out = appRequestHeaders(
      {
        connection: 'keep-alive, X-Secret-Hop',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        trailer: 'x',
        'transfer-encoding': 'chunked',
        upgrade: 'h2c',
        'proxy-authorization': 'Basic x',
        'x-secret-hop': 'hop',
        host: 'evil.example',
        'content-length': '3',
        expect: '100-continue',
        forwarded: 'for=1.2.3.4',
        'x-forwarded-for': '1.2.3.4',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-port': '1',
        'x-forwarded-proto': 'http',
        'x-real-ip': '1.2.3.4',
        'x-original-url': '/admin',
        'x-rewrite-url': '/admin',
        cookie: 'a=1',
        authorization: 'Bearer t',
        'set-cookie': ['x', 'y'],
        'x-custom': 'kept',
      },
      options,
    );
    expect({ ...out }).toEqual({ cookie: 'a=1', authorization: 'Bearer t', 'set-cookie': ['x', 'y'], 'x-custom': 'kept', host: '127.0.0.1:8083', 'x-forwarded-proto': 'https' });
  });

  it('passes only the allow-list for a bootstrap request', () => {
    const out = appRequestHeaders(
      { accept: 'text/html', 'accept-encoding': 'gzip', 'accept-language': 'en', 'user-agent': 'ua', 'if-none-match': '"e"', 'if-modified-since': 'x', cookie: 'a=1', authorization: 'b', 'x-api-key': 'k', referer: 'r', origin: 'o' },
      { ...options, proto: 'http', bootstrap: true },
    );
    expect(Object.keys(out).sort()).toEqual([...BOOTSTRAP_REQUEST_HEADERS, 'host', 'x-forwarded-proto'].sort());
    expect(out['x-forwarded-proto']).toBe('http');
  });

  it('holds on random header sets (fast-check)', () => {
    const name = fc.oneof(
      fc.constantFrom('connection', 'keep-alive', 'te', 'upgrade', 'proxy-x', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-anything', 'x-real-ip', 'host', 'cookie', 'accept', 'user-agent', 'x-a', 'x-b'),
      fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/),
    );
    fc.assert(
      fc.property(fc.dictionary(name, fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 3 }))), fc.boolean(), (headers, bootstrap) => {
        const out = appRequestHeaders(headers, { ...options, bootstrap });
        expect(out.host).toBe(options.host);
        expect(out['x-forwarded-proto']).toBe(options.proto);
        const listed = connectionTokens(typeof headers.connection === 'string' || Array.isArray(headers.connection) ? headers.connection : undefined);
        for (const key of Object.keys(out)) {
          if (key === 'host' || key === 'x-forwarded-proto') continue;
          expect(isForwardingHeader(key)).toBe(false);
          expect(isHopByHop(key, listed)).toBe(false);
          if (bootstrap) expect(BOOTSTRAP_REQUEST_HEADERS.has(key)).toBe(true);
          else expect(out[key]).toEqual(headers[key]);
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});
