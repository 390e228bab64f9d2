/**
 * chart.png of a comparison run with gnuplot (Debian's gnuplot-nox, bench/setup.sh): requests/s and the
 * proxy's CPU per request for each path at the highest concurrency, both sizes, and 32 MiB throughput.
 * gnuplot rather than a PNG writer of our own: it draws axes, labels and legends with real fonts, and
 * it is one Debian package with no npm dependency.
 *
 * It must not fail a run: without gnuplot it says so and returns null.
 */

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const GNUPLOT_TIMEOUT_MS = 30_000;

/** A gnuplot data row: the quoted label, then the values ("-" for none). */
function row(label, values) {
  return `"${label.replace(/"/g, "'")}"\t${values.map((v) => (Number.isFinite(v) ? String(v) : '-')).join('\t')}`;
}

/**
 * `panels`: [{ title, ylabel, columns: [name...], rows: [{ label, values: [number...] }] }], drawn one
 * above the other as clustered bars. Writes chart.dat-N and chart.gp next to `pngPath`.
 */
export function drawChart({ gnuplot, outDir, pngPath, title, panels }) {
  if (gnuplot === null) return { ok: false, reason: 'gnuplot not found (bash bench/setup.sh installs gnuplot-nox)' };
  const script = [
    `set terminal pngcairo size 1100,${360 * panels.length + 60} font "sans,10"`,
    `set output "${pngPath}"`,
    "set datafile missing '-'",
    'set datafile separator "\\t"',
    'set style data histograms',
    'set style histogram clustered gap 1',
    'set style fill solid 0.85 border -1',
    'set boxwidth 0.9',
    'set grid ytics',
    'set key top right',
    'set yrange [0:*]',
    'set xtics nomirror',
    `set multiplot layout ${panels.length},1 title "${title}"`,
  ];
  panels.forEach((panel, index) => {
    const data = join(outDir, `chart-${index + 1}.dat`);
    writeFileSync(data, panel.rows.map((r) => row(r.label, r.values)).join('\n') + '\n');
    script.push(`set title "${panel.title}"`, `set ylabel "${panel.ylabel}"`);
    const plots = panel.columns.map((name, i) => `${i === 0 ? `"${data}"` : "''"} using ${i + 2}${i === 0 ? ':xtic(1)' : ''} title "${name}"`);
    script.push(`plot ${plots.join(', ')}`);
  });
  script.push('unset multiplot');
  const scriptPath = join(outDir, 'chart.gp');
  writeFileSync(scriptPath, script.join('\n') + '\n');
  const result = spawnSync(gnuplot, [scriptPath], { encoding: 'utf8', timeout: GNUPLOT_TIMEOUT_MS });
  if (result.status !== 0) return { ok: false, reason: `gnuplot failed: ${(result.stderr || String(result.error ?? result.signal)).trim().slice(0, 500)}` };
  return { ok: true };
}
