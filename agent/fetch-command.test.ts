/**
 * `enclave-agent fetch` in process against the fake STEVE server (test/steve-client-fixtures.ts) whose
 * binding offers stream-1: each DATA record reaches stdout as its own write as it opens (the body is never
 * held whole), the status and headers go to stderr before it and the receipt after it; a stream that
 * fails midway (ABORT, a record that does not open) exits 1 with its code after the bytes that had opened.
 * The built CLI against the real agent is in steve/client/client.e2e.test.ts.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeServer, createMockAttester, type MockAttester, type StreamAnswer } from '../test/steve-client-fixtures.js';
import { runFetchCommand } from './fetch-command.js';

let work: string;
let attester: MockAttester;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fetch-command-'));
  attester = createMockAttester();
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  const pcrs = attester.profile.pcrs;
  await writeFile(join(work, 'pcrs.json'), JSON.stringify({ pcr0: hex(pcrs.get(0)!), pcr1: hex(pcrs.get(1)!), pcr2: hex(pcrs.get(2)!), verified_at: '2025-01-01T00:00:00Z' }));
  const base64 = Buffer.from(attester.root).toString('base64').replace(/.{64}/g, '$&\n');
  await writeFile(join(work, 'root.pem'), `-----BEGIN CERTIFICATE-----\n${base64}${base64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const text = (value: string) => new TextEncoder().encode(value);

/** Runs the command; `events` records stdout and stderr writes in order. */
async function run(answer: StreamAnswer, damage?: (frames: Uint8Array[]) => Uint8Array[]) {
  const server = createFakeServer({ suite: 'X25519', attester, extensions: ['stream-1'], streamApp: () => answer });
  if (damage) server.hooks.streamFrames = (frames) => damage(frames);
  const events: Array<['out' | 'err', string]> = [];
  const sink = (name: 'out' | 'err') => ({
    write(chunk: string | Uint8Array, callback?: (error?: Error | null) => void) {
      events.push([name, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()]);
      callback?.();
      return true;
    },
  });
  const status = await runFetchCommand({ pcrs: [join(work, 'pcrs.json')], root: join(work, 'root.pem') }, ['https://enclave.test/s'], {
    stdout: sink('out'),
    stderr: sink('err'),
    fetch: server.fetch,
  });
  return { status, events, server };
}

const ANSWER: StreamAnswer = { head: { status: 200, headers: [['content-type', 'text/plain']], body: null }, chunks: [text('one '), text('two '), text('three')] };

describe('enclave-agent fetch, streamed', () => {
  it('writes each record to stdout as it opens: head on stderr first, receipt last', async () => {
    const { status, events, server } = await run(ANSWER);
    expect(status).toBe(0);
    expect(server.hits).toMatchObject({ stream: 1, request: 0 });
    expect(events.map(([name]) => name)).toEqual(['err', 'out', 'out', 'out', 'err']);
    expect(events.filter(([name]) => name === 'out').map(([, chunk]) => chunk)).toEqual(['one ', 'two ', 'three']);
    expect(events[0]![1]).toBe('HTTP 200\n< content-type: text/plain\n');
    expect(events[4]![1]).toMatch(/^steve: X25519 session [0-9a-f]{32} sequence 1; .*\nsteve: sent \d+ bytes \(body 0\), received \d+ bytes \(body 13\), streamed\n$/);
  });

  it('an ABORT midway: exit 1 with STEVE_CLIENT_STREAM_ABORTED after the bytes that opened', async () => {
    const { status, events } = await run({ ...ANSWER, chunks: ANSWER.chunks.slice(0, 2), abort: 'upstream_aborted' });
    expect(status).toBe(1);
    expect(events.filter(([name]) => name === 'out').map(([, chunk]) => chunk).join('')).toBe('one two ');
    expect(events.at(-1)![1]).toContain('enclave-agent fetch: STEVE_CLIENT_STREAM_ABORTED (request)');
    expect(events.at(-1)![1]).toContain('upstream_aborted');
  });

  it('a record that does not open: exit 1 with STEVE_CLIENT_PROTOCOL, nothing of it on stdout', async () => {
    const { status, events } = await run(ANSWER, (frames) => {
      frames[2]![10]! ^= 1;
      return frames;
    });
    expect(status).toBe(1);
    expect(events.filter(([name]) => name === 'out').map(([, chunk]) => chunk).join('')).toBe('one ');
    expect(events.at(-1)![1]).toContain('STEVE_CLIENT_PROTOCOL (request)');
  });

  it('a cut before END: exit 1 with STEVE_CLIENT_TRUNCATED, never a short success', async () => {
    const { status, events } = await run(ANSWER, (frames) => frames.slice(0, -1));
    expect(status).toBe(1);
    expect(events.filter(([name]) => name === 'out').map(([, chunk]) => chunk).join('')).toBe('one two three');
    expect(events.at(-1)![1]).toContain('STEVE_CLIENT_TRUNCATED (request)');
  });
});
