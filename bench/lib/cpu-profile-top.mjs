/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time, and the
 * share of time outside JavaScript ((program), (garbage collector), (idle)), so a benchmark's profile can
 * be read without DevTools.
 *
 *   node bench/lib/cpu-profile-top.mjs FILE.cpuprofile [--top 40]
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' } } });
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map();
  // timeDeltas[i] is the time before samples[i]; attribute each delta to the sample it precedes.
  let total = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    const node = byId.get(profile.samples[i]);
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
    selfUs.set(key, (selfUs.get(key) ?? 0) + delta);
  }
  const idle = [...selfUs].filter(([key]) => key.startsWith('(idle)')).reduce((sum, [, us]) => sum + us, 0);
  process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms sampled, ${((total - idle) / 1000).toFixed(0)} ms busy\n`);
  const rows = [...selfUs].filter(([key]) => !key.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, Number(values.top));
  for (const [key, us] of rows) process.stdout.write(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / (total - idle)).toFixed(1).padStart(5)}%  ${key}\n`);
}
