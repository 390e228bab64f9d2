/**
 * In-process microbenchmarks (bench/aead.mjs, bench/handshake-crypto.mjs): their two options, and a call
 * timed over a round of about `roundMs`, in batches of 100 so the clock is read rarely. The callers
 * interleave what they compare round by round and take medians, so a slow moment of the machine falls on both.
 */

import { parseArgs } from 'node:util';
import { positiveArg } from './args.mjs';

/** `--rounds N` (default 7) and `--ms M` (default 200, a round's length) from the command line; `name` for errors. */
export function microOptions(name) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '200' } }, strict: true });
  return { rounds: positiveArg(values.rounds, '--rounds', name, { integer: true }), roundMs: positiveArg(values.ms, '--ms', name) };
}

/** Microseconds per call of `run(i)` over about `roundMs` milliseconds. */
export function timeRound(run, roundMs) {
  let calls = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < roundMs) {
    for (let i = 0; i < 100; i++) run(calls++);
    elapsed = performance.now() - started;
  }
  return (elapsed * 1000) / calls;
}
