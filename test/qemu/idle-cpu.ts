/**
 * For the guest suites' "no busy loop" checks: this process's CPU time over one idle second, measured
 * after a short settle (timers and closes that were already due). It must not run anything itself.
 */

const SETTLE_MS = 200;
const WINDOW_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU milliseconds (user + system) this process used in one second of doing nothing; logged. */
export async function idleCpuMs(): Promise<number> {
  await sleep(SETTLE_MS);
  const before = process.cpuUsage();
  await sleep(WINDOW_MS);
  const used = process.cpuUsage(before);
  const usedMs = (used.user + used.system) / 1000;
  console.log(`idle after close: ${usedMs.toFixed(1)} ms CPU in ${WINDOW_MS / 1000} s`);
  return usedMs;
}
