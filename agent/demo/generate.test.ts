/**
 * The demo's fake LLM (generate.ts): its query limits, its deterministic words, and the event stream the
 * demo app serves at `GET /api/generate` on loopback: one SSE event per token, written one at a time
 * (each a separate chunk on the wire), then `[DONE]`; a reader that goes away stops it.
 */

import { once } from 'node:events';
import { request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoApp } from './app.js';
import { generateTokens, parseGenerateQuery, sseEvent } from './generate.js';

describe('parseGenerateQuery', () => {
  it('draws 24..40 tokens from the prompt and leaves the pause random by default', () => {
    for (const prompt of ['', 'hello', 'why is the sky blue?', 'x'.repeat(2_000)]) {
      const options = parseGenerateQuery(new URLSearchParams({ prompt }));
      expect(options).toMatchObject({ prompt, delayMs: null });
      const { tokens } = options as { tokens: number };
      expect(tokens).toBeGreaterThanOrEqual(24);
      expect(tokens).toBeLessThanOrEqual(40);
      expect(parseGenerateQuery(new URLSearchParams({ prompt }))).toEqual(options);
    }
  });

  it('takes tokens and delay_ms within their bounds, and names the parameter otherwise', () => {
    expect(parseGenerateQuery(new URLSearchParams('prompt=a&tokens=3&delay_ms=0'))).toEqual({ prompt: 'a', tokens: 3, delayMs: 0 });
    expect(parseGenerateQuery(new URLSearchParams('tokens=256&delay_ms=2000'))).toEqual({ prompt: '', tokens: 256, delayMs: 2_000 });
    expect(parseGenerateQuery(new URLSearchParams('tokens=0'))).toBe('"tokens" expected an integer 1..256');
    expect(parseGenerateQuery(new URLSearchParams('tokens=257'))).toBe('"tokens" expected an integer 1..256');
    expect(parseGenerateQuery(new URLSearchParams('tokens=1.5'))).toBe('"tokens" expected an integer 1..256');
    expect(parseGenerateQuery(new URLSearchParams('delay_ms=-1'))).toBe('"delay_ms" expected an integer 0..2000');
    expect(parseGenerateQuery(new URLSearchParams('delay_ms=2001'))).toBe('"delay_ms" expected an integer 0..2000');
    expect(parseGenerateQuery(new URLSearchParams({ prompt: 'x'.repeat(2_001) }))).toBe('"prompt" expected at most 2000 characters');
  });
});

describe('generateTokens', () => {
  it('gives the same words for the same prompt, a sentence of `count` words', () => {
    const words = generateTokens('hello', 30);
    expect(words).toHaveLength(30);
    expect(generateTokens('hello', 30)).toEqual(words);
    expect(generateTokens('hello!', 30)).not.toEqual(words);
    expect(words[0]).toMatch(/^[A-Z][a-z]* $/);
    expect(words.slice(1, -1).every((word) => /^[a-z]+ $/.test(word))).toBe(true);
    expect(words.at(-1)).toMatch(/^[a-z]+\.$/);
  });
});

describe('GET /api/generate on the demo app', () => {
  let app: Server;
  let port: number;

  beforeAll(async () => {
    app = createDemoApp({ bootstrap: new Map() });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    port = (app.address() as AddressInfo).port;
  });

  afterAll(async () => {
    app.closeAllConnections();
    await new Promise<void>((resolve) => app.close(() => resolve()));
  });

  /** The status, headers and each body chunk as it came off the socket. */
  async function get(path: string): Promise<{ status: number; headers: Record<string, unknown>; chunks: string[] }> {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    const chunks: string[] = [];
    for await (const chunk of res) chunks.push((chunk as Buffer).toString('utf8'));
    return { status: res.statusCode!, headers: res.headers, chunks };
  }

  it('streams one event per token, each in its own chunk, then [DONE]', async () => {
    const { status, headers, chunks } = await get('/api/generate?prompt=hi&tokens=5&delay_ms=20');
    expect(status).toBe(200);
    expect(headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(headers['cache-control']).toBe('no-store');
    const words = generateTokens('hi', 5);
    // 20 ms apart, so each write is its own chunk (a 20 ms pause is far longer than a loopback write).
    expect(chunks).toHaveLength(6);
    const events = chunks.slice(0, 5).map((chunk) => {
      const match = /^id: (\d+)\ndata: (.*)\n\n$/.exec(chunk);
      expect(match, chunk).not.toBeNull();
      return { id: Number(match![1]), data: JSON.parse(match![2]!) as { index: number; token: string; emittedAtMs: number } };
    });
    expect(events.map((event) => event.id)).toEqual([0, 1, 2, 3, 4]);
    expect(events.map((event) => event.data.index)).toEqual([0, 1, 2, 3, 4]);
    expect(events.map((event) => event.data.token)).toEqual(words);
    const times = events.map((event) => event.data.emittedAtMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(chunks[5]).toBe(sseEvent('[DONE]'));
  });

  it('refuses an out-of-range query with 400 and the parameter named', async () => {
    const { status, chunks } = await get('/api/generate?tokens=9999');
    expect(status).toBe(400);
    expect(JSON.parse(chunks.join(''))).toEqual({ error: '"tokens" expected an integer 1..256' });
  });

  it('stops writing when the reader goes away', async () => {
    let writes = 0;
    let serverRes: ServerResponse | undefined;
    const count = (_req: IncomingMessage, res: ServerResponse) => {
      serverRes = res;
      const write = res.write.bind(res) as (...args: unknown[]) => boolean;
      res.write = ((...args: unknown[]) => {
        writes++;
        return write(...args);
      }) as typeof res.write;
    };
    app.prependListener('request', count);
    try {
      const req = request({ host: '127.0.0.1', port, path: '/api/generate?tokens=200&delay_ms=10', method: 'GET' });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      await once(res, 'data');
      req.destroy();
      await once(serverRes!, 'close');
      const after = writes;
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Ten more pauses went by: no write was attempted, and far fewer than 200 tokens were written.
      expect(writes).toBe(after);
      expect(writes).toBeLessThan(50);
      expect(serverRes!.writableEnded).toBe(false);
    } finally {
      app.removeListener('request', count);
    }
  });
});
