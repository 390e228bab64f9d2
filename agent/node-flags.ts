/**
 * The Node flags every process of the agent runs with: image/init.sh starts init with them (init's
 * children, the agent among them, inherit its execArgv: agent/commands.ts), the CLI's shebang
 * (agent/cli.ts) passes them to `enclave-agent` started from a shell, and the benchmarks start the agent
 * with them (bench/lib/processes.mjs). test/node-flags.test.ts holds all three to this list.
 *
 * `--initial-old-space-size=64` (MiB): V8 does not set the old generation's collection limit below 64
 * MiB. Without it, an agent that had served many clients at once kept a live heap of about 15 MiB and V8
 * set the limit only 8-9 MiB above that. Every request allocates ArrayBuffers whose bytes live outside
 * V8's heap (socket reads, cipher output, bodies); those of requests in flight during two scavenges move
 * to the old generation and count against that limit, which 64 KiB bodies reached every 70-150 ms. Each
 * time V8 marked and compacted the whole heap to free almost nothing (15.7 -> 15.5 MB in `node
 * --trace-gc`), with pauses and marking steps of 5-18 ms. That was the 64 KiB one-client tail (p99 three
 * times the plain proxy's) and about half of the agent's CPU per 64 KiB request. With the floor, such a
 * run does one or two full collections instead of a hundred; the memory it lets build up between them is
 * garbage V8 frees at the next one, and it leaves the idle footprint alone (the heap grows only with
 * allocation). Measured by bench/compare.mjs against Node's defaults in one run
 * (`BENCH_AGENT_NODE_FLAGS= ` gives the agent none): README "Speed".
 */
export const AGENT_NODE_FLAGS: readonly string[] = Object.freeze(['--initial-old-space-size=64']);
