/**
 * The fetch-like edges of the client without any server: how a call becomes the §3 request map (target
 * resolution, method normalisation, headers, bodies), how the §3 response map becomes a web Response,
 * and that the envelope size arithmetic matches the real encoder byte for byte.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeAppRequest, encodeEnvelope, MAX_REQUEST_ENVELOPE_BYTES, TAG_BYTES } from '../protocol/index.js';
import { buildResponse, encodeRequestPlaintext, envelopeBytes, prepareRequest, type SteveRequestInit } from './application.js';
import { SteveClientError } from './errors.js';

const ORIGIN = 'https://enclave.test';

function prepared(target: string | URL, init?: SteveRequestInit) {
  const out = prepareRequest(ORIGIN, target, init);
  return { ...out, decoded: decodeAppRequest(encodeRequestPlaintext(out, out.body, 'record')) };
}

function refused(target: string | URL, init?: SteveRequestInit): string {
  try {
    prepareRequest(ORIGIN, target, init);
  } catch (error) {
    expect(error).toBeInstanceOf(SteveClientError);
    return (error as SteveClientError).code;
  }
  return 'accepted';
}

describe('prepareRequest', () => {
  it('resolves paths and same-origin URLs to path + query, dropping the fragment', () => {
    expect(prepared('/a/b?c=1#frag').decoded.path).toBe('/a/b?c=1');
    expect(prepared('https://enclave.test/x?y').decoded.path).toBe('/x?y');
    expect(prepared(new URL('https://enclave.test/u')).decoded.path).toBe('/u');
    expect(prepared('/a/../b').decoded.path).toBe('/b');
    expect(prepared('/with space/é').decoded.path).toBe('/with%20space/%C3%A9');
    expect(prepared('relative').decoded.path).toBe('/relative');
  });

  it('refuses targets on another origin', () => {
    for (const target of ['//evil.test/x', 'https://evil.test/', 'http://enclave.test/', 'https://enclave.test:444/']) {
      expect(refused(target), target).toBe('STEVE_CLIENT_BAD_REQUEST');
    }
  });

  it('normalises methods like fetch and refuses the forbidden ones', () => {
    expect(prepared('/', { method: 'post', body: 'x' }).decoded.method).toBe('POST');
    expect(prepared('/', { method: 'patch', body: 'x' }).decoded.method).toBe('patch');
    expect(prepared('/', { method: 'PROPFIND' }).decoded.method).toBe('PROPFIND');
    for (const method of ['CONNECT', 'trace', 'TRACK', 'GE T', '']) expect(refused('/', { method }), method).toBe('STEVE_CLIENT_BAD_REQUEST');
    expect(refused('/', { method: 'GET', body: 'x' })).toBe('STEVE_CLIENT_BAD_REQUEST');
    expect(refused('/', { method: 'HEAD', body: new Uint8Array(1) })).toBe('STEVE_CLIENT_BAD_REQUEST');
  });

  it('lower-cases header names, joins repeats, and types a string body like fetch', () => {
    const { decoded } = prepared('/', {
      method: 'POST',
      headers: [['X-Trace', 'a'], ['x-trace', 'b'], ['Cookie', 'k=v']],
      body: 'hello',
    });
    expect({ ...decoded.headers }).toEqual({ 'x-trace': 'a, b', cookie: 'k=v', 'content-type': 'text/plain;charset=UTF-8' });
    expect(new TextDecoder().decode(decoded.body!)).toBe('hello');
    const typed = prepared('/', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{}' }).decoded;
    expect(typed.headers['content-type']).toBe('application/json');
    expect(refused('/', { headers: [['bad name', 'x']] })).toBe('STEVE_CLIENT_BAD_REQUEST');
    expect(refused('/', { headers: [['x', 'a\nb']] })).toBe('STEVE_CLIENT_BAD_REQUEST');
  });

  it('takes string, Uint8Array, ArrayBuffer and null bodies, and nothing else', () => {
    expect(prepared('/', { method: 'POST', body: new Uint8Array([1, 2]) }).decoded.body).toEqual(new Uint8Array([1, 2]));
    expect(prepared('/', { method: 'POST', body: new Uint8Array([3]).buffer }).decoded.body).toEqual(new Uint8Array([3]));
    expect(prepared('/', { method: 'POST', body: null }).decoded.body).toBeNull();
    expect(prepared('/', { method: 'POST', body: new Uint8Array(0) }).decoded.body).toBeNull();
    expect(prepared('/', { method: 'POST', body: '' }).bodyBytes).toBe(0);
    expect(refused('/', { method: 'POST', body: { a: 1 } as never })).toBe('STEVE_CLIENT_BAD_REQUEST');
    expect(refused('/', { method: 'POST', body: [1, 2] as never })).toBe('STEVE_CLIENT_BAD_REQUEST');
  });

  it('notes, byte-exactly, a request whose envelope would be over 32 MiB (only a stream can carry it)', () => {
    const init = (n: number): SteveRequestInit => ({ method: 'POST', headers: { 'x-a': 'b' }, body: new Uint8Array(n) });
    const probe = prepared('/p', init(MAX_REQUEST_ENVELOPE_BYTES - 1000));
    const overhead = envelopeBytes(encodeRequestPlaintext(probe, probe.body, 'record').length) - probe.bodyBytes;
    const fits = MAX_REQUEST_ENVELOPE_BYTES - overhead;
    const atLimit = prepareRequest(ORIGIN, '/p', init(fits));
    expect(envelopeBytes(encodeRequestPlaintext(atLimit, atLimit.body, 'record').length)).toBe(MAX_REQUEST_ENVELOPE_BYTES);
    expect(atLimit.tooLargeForRecord).toBe(false);
    expect(prepareRequest(ORIGIN, '/p', init(fits + 1)).tooLargeForRecord).toBe(true);
    // (Near 32 MiB a byte string's head is always 5 bytes: the boundary is the only case that matters.)
  });

  it('keeps a ReadableStream or async iterable body as a stream; refuses one on GET and a locked one', async () => {
    const stream = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array([1])), c.close()) });
    const p = prepareRequest(ORIGIN, '/', { method: 'POST', body: stream });
    expect({ body: p.body, stream: p.bodyStream === stream, bytes: p.bodyBytes }).toEqual({ body: null, stream: true, bytes: 0 });
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array([1, 2]);
      yield new Uint8Array([3]);
    }
    const fromIterable = prepareRequest(ORIGIN, '/', { method: 'PUT', body: chunks() });
    const read: number[] = [];
    const reader = fromIterable.bodyStream!.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) read.push(...next.value);
    expect(read).toEqual([1, 2, 3]);
    expect(refused('/', { method: 'GET', body: new ReadableStream() })).toBe('STEVE_CLIENT_BAD_REQUEST');
    const locked = new ReadableStream();
    locked.getReader();
    expect(refused('/', { method: 'POST', body: locked })).toBe('STEVE_CLIENT_BAD_REQUEST');
  });
});

describe('envelopeBytes', () => {
  it('is the exact size encodeEnvelope produces, at every CBOR length boundary', () => {
    const lengths = [0, 1, 7, 8, 239, 240, 65_519, 65_520, 70_000];
    for (const length of lengths) {
      const bytes = encodeEnvelope({ sessionId: new Uint8Array(16), sequence: 1, ciphertext: new Uint8Array(length + TAG_BYTES) });
      expect(envelopeBytes(length), String(length)).toBe(bytes.length);
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (length, sequence) => {
        const bytes = encodeEnvelope({ sessionId: new Uint8Array(16), sequence, ciphertext: new Uint8Array(length + TAG_BYTES) });
        return envelopeBytes(length) === bytes.length;
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});

describe('buildResponse', () => {
  it('keeps status and repeated headers; error-only answers become JSON; null-body statuses get none', async () => {
    const response = buildResponse({ status: 201, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['X-Case', 'v']], body: new Uint8Array([9]) });
    expect(response.status).toBe(201);
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(response.headers.get('x-case')).toBe('v');
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([9]));

    const error = buildResponse({ status: 502, headers: [], body: null, error: 'upstream_unreachable' });
    expect(await error.json()).toEqual({ error: 'upstream_unreachable' });
    // A body wins over error.
    expect(await buildResponse({ status: 500, headers: [], body: new Uint8Array([104, 105]), error: 'x' }).text()).toBe('hi');
    for (const status of [204, 205, 304]) {
      const empty = buildResponse({ status, headers: [], body: new Uint8Array([1]), error: 'x' });
      expect({ status: empty.status, body: empty.body }).toEqual({ status, body: null });
    }
  });
});
