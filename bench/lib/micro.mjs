/**
 * In-process microbenchmarks (bench/aead.mjs, bench/handshake-crypto.mjs): a call timed over a round of
 * about `roundMs`, in batches of 100 so the clock is read rarely. The callers interleave what they compare
 * round by round and take medians, so a slow moment of the machine falls on both.
 */

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
