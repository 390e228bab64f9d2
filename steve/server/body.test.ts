/**
 * body.ts on a real node:http server (127.0.0.1:0): a declared length over the cap is refused before a
 * byte of body is read, a chunked body as soon as the running count passes the cap, the shared memory
 * budget refuses what would overflow it and is given back, a slow body times out, and bodies arrive
 * intact with and without a declared length.
 */

import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SteveError } from '../errors.js';
import { createMemoryBudget, readBody, type BodyLimits } from './body.js';
import { ReplyError } from './replies.js';

let server: Server;
let port: number;
let limits: BodyLimits;

beforeAll(async () => {
  server = createServer((req, res) => {
    readBody(req, limits).then(
      ({ body, release }) => {
        const used = limits.budget.used;
        release();
        res.end(JSON.stringify({ bytes: body.length, first: body[0] ?? null, last: body[body.length - 1] ?? null, used, after: limits.budget.used }));
      },
      (err: unknown) => {
        const what = err instanceof SteveError ? err.code : err instanceof ReplyError ? err.reply.error : String(err);
        res.writeHead(400, { connection: 'close' });
        res.end(what);
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Sends `chunks` (with or without a declared length) and resolves with the answer; stops writing once it has one. */
function send(chunks: Uint8Array[], options: { declared?: number; pauseMs?: number } = {}): Promise<{ status: number; text: string; written: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const headers: Record<string, string> = options.declared === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(options.declared) };
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => {
      answered = true;
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, written }));
    });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    void (async () => {
      for (const chunk of chunks) {
        if (answered) return;
        req.write(chunk);
        written += chunk.length;
        await new Promise((r) => setTimeout(r, options.pauseMs ?? 1));
      }
      if (!answered) req.end();
    })();
  });
}

const chunk = (length: number, fill: number) => new Uint8Array(length).fill(fill);

describe('readBody', () => {
  it('reads bodies intact, with and without a declared length, and gives the budget back', async () => {
    limits = { maxBytes: 10_000, timeoutMs: 2000, budget: createMemoryBudget(1 << 20) };
    const declared = JSON.parse((await send([chunk(3000, 1), chunk(3000, 2)], { declared: 6000 })).text);
    expect(declared).toEqual({ bytes: 6000, first: 1, last: 2, used: 6000, after: 0 });
    // One chunk that is the whole declared body (kept as it arrived), as a small STEVE request is.
    const whole = JSON.parse((await send([Uint8Array.from([7, ...chunk(1198, 8), 9])], { declared: 1200 })).text);
    expect(whole).toEqual({ bytes: 1200, first: 7, last: 9, used: 1200, after: 0 });
    const chunked = JSON.parse((await send([chunk(10, 3), chunk(9990, 4)])).text);
    expect(chunked).toEqual({ bytes: 10_000, first: 3, last: 4, used: 10_000, after: 0 });
    const empty = JSON.parse((await send([], { declared: 0 })).text);
    expect(empty.bytes).toBe(0);
  });

  it('refuses a declared length over the cap before reading any body', async () => {
    limits = { maxBytes: 1000, timeoutMs: 2000, budget: createMemoryBudget(1 << 20) };
    const answer = await send([], { declared: 1001 });
    expect(answer.text).toBe('STEVE_TOO_LARGE');
    expect(limits.budget.used).toBe(0);
  });

  it('refuses a chunked body once the running count passes the cap, while it is still being sent', async () => {
    limits = { maxBytes: 1000, timeoutMs: 2000, budget: createMemoryBudget(1 << 20) };
    const answer = await send(Array.from({ length: 100 }, () => chunk(400, 5)), { pauseMs: 5 });
    expect(answer.text).toBe('STEVE_TOO_LARGE');
    expect(answer.written).toBeLessThan(100 * 400);
    expect(limits.budget.used).toBe(0);
  });

  it('refuses what would overflow the shared budget (429 busy), and frees it', async () => {
    limits = { maxBytes: 10_000, timeoutMs: 2000, budget: createMemoryBudget(5000) };
    expect((await send([chunk(3000, 1), chunk(3000, 1)], { declared: 6000 })).text).toBe('STEVE_BUSY');
    expect(limits.budget.used).toBe(0);
    expect(JSON.parse((await send([chunk(4000, 1)], { declared: 4000 })).text).bytes).toBe(4000);
  });

  it('times out a body that does not arrive', async () => {
    limits = { maxBytes: 10_000, timeoutMs: 150, budget: createMemoryBudget(1 << 20) };
    const started = performance.now();
    const answer = await send([chunk(10, 1), chunk(10, 1)], { declared: 100, pauseMs: 1000 });
    expect(answer.text).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(limits.budget.used).toBe(0);
  });
});
