/**
 * The demo's stand-in for an LLM: `GET /api/generate?prompt=...` answers `text/event-stream` with one
 * word per event, a pause between them, then `data: [DONE]`, so the demo page (and the browser test)
 * can watch an answer arrive token by token through STEVE's streams (steve/protocol/stream.md). It is
 * not a model: the words are drawn from a fixed list by a PRNG seeded with the prompt, so the same
 * prompt always gives the same answer (and tests can predict it).
 *
 * Each token event carries its index and the app's clock when it was written (`emittedAtMs`, epoch ms),
 * so a reader can compare when tokens left the app with when they arrived. Query overrides for tests:
 * `tokens` (how many, 1..MAX_TOKENS) and `delay_ms` (a fixed pause, 0..MAX_DELAY_MS). The pauses stop
 * when the reader goes away; nothing here reads a clock other than through `now`.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

/** The default answer length is drawn from this range (inclusive), as a short chat reply. */
const DEFAULT_TOKENS = { min: 24, max: 40 } as const;
/** The default pause between tokens is drawn from this range (inclusive), about a hosted LLM's pace. */
const DEFAULT_DELAY_MS = { min: 80, max: 150 } as const;
/** Upper bounds of the query overrides: an answer stays under a minute and a few KiB. */
const MAX_TOKENS = 256;
const MAX_DELAY_MS = 2_000;
/** The prompt is echoed into nothing, only hashed; still bounded, as every input. */
const MAX_PROMPT_CHARS = 2_000;

const WORDS = (
  'the enclave answers only through a channel it sealed itself so the host in between carries ciphertext ' +
  'each token leaves the app as one record and opens in your browser after its tag checked out ' +
  'nothing is buffered on the way a flipped byte ends the answer with an error instead of wrong words'
).split(' ');

export interface GenerateOptions {
  prompt: string;
  tokens: number;
  /** A fixed pause between tokens, or null for the default random 80-150 ms. */
  delayMs: number | null;
}

/** The options of a `/api/generate` query, or a message saying which parameter is out of range. */
export function parseGenerateQuery(search: URLSearchParams): GenerateOptions | string {
  const prompt = search.get('prompt') ?? '';
  if (prompt.length > MAX_PROMPT_CHARS) return `"prompt" expected at most ${MAX_PROMPT_CHARS} characters`;
  const integer = (name: string, max: number, min: number): number | null | string => {
    const text = search.get(name);
    if (text === null) return null;
    if (!/^\d{1,6}$/.test(text) || Number(text) < min || Number(text) > max) return `"${name}" expected an integer ${min}..${max}`;
    return Number(text);
  };
  const tokens = integer('tokens', MAX_TOKENS, 1);
  if (typeof tokens === 'string') return tokens;
  const delayMs = integer('delay_ms', MAX_DELAY_MS, 0);
  if (typeof delayMs === 'string') return delayMs;
  const random = seededRandom(prompt);
  return { prompt, tokens: tokens ?? between(random, DEFAULT_TOKENS.min, DEFAULT_TOKENS.max), delayMs };
}

/** FNV-1a of the prompt seeds xorshift32: a deterministic, well-spread sequence, not a secret one. */
function seededRandom(prompt: string): () => number {
  let state = 0x811c9dc5;
  for (let i = 0; i < prompt.length; i++) state = Math.imul(state ^ prompt.charCodeAt(i), 0x01000193) >>> 0;
  if (state === 0) state = 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** The words of the answer to `prompt`, each with the space that follows it (the last without). */
export function generateTokens(prompt: string, count: number): string[] {
  const random = seededRandom(`${prompt}\u0000words`);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    out.push(i === 0 ? word[0]!.toUpperCase() + word.slice(1) : word);
  }
  return out.map((word, i) => (i < count - 1 ? `${word} ` : `${word}.`));
}

/** One SSE event: `data:` lines only (the default `message` type, what EventSource's onmessage gets). */
export function sseEvent(data: string, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`;
}

/** Answers `GET /api/generate`: the tokens as SSE events, one per pause, then `[DONE]`. */
export function serveGenerate(req: IncomingMessage, res: ServerResponse, now: () => number = Date.now): void {
  const options = parseGenerateQuery(new URL(req.url ?? '/', 'http://demo.invalid').searchParams);
  if (typeof options === 'string') {
    res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ error: options }));
    return;
  }
  const tokens = generateTokens(options.prompt, options.tokens);
  const delays = seededRandom(`${options.prompt}\u0000delays`);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  let index = 0;
  let timer: NodeJS.Timeout | undefined;
  res.on('close', () => clearTimeout(timer)); // The reader went away: no more pauses, no more writes.
  const next = (): void => {
    if (res.destroyed) return;
    if (index === tokens.length) {
      res.end(sseEvent('[DONE]'));
      return;
    }
    res.write(sseEvent(JSON.stringify({ index, token: tokens[index], emittedAtMs: now() }), index));
    index++;
    timer = setTimeout(next, options.delayMs ?? between(delays, DEFAULT_DELAY_MS.min, DEFAULT_DELAY_MS.max));
  };
  next();
}
