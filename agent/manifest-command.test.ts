/**
 * `enclave-agent manifest` (agent/manifest-command.ts) in process: the files it hashes (--bootstrap and
 * --bootstrap-dir), the bytes it writes (the input kept, deterministic whatever the flag order), what it
 * prints, and its refusals (unknown paths, a path twice, directories, oversized files, an input that
 * already has the field). The built CLI's exit statuses are in agent/cli.test.ts.
 */

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { parseManifest } from './manifest.js';
import { collectBootstrapFiles, runManifestCommand } from './manifest-command.js';

const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

let dir: string;
const FILES = { 'index.html': '<!doctype html>', 'enclave-sw.js': 'worker', 'register.js': 'register', 'xwing/steve_xwing_wasm_bg.wasm': '\0asm' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'enclave-agent-manifest-command-'));
  await mkdir(join(dir, 'dist', 'xwing'), { recursive: true });
  for (const [name, content] of Object.entries(FILES)) await writeFile(join(dir, 'dist', name), content);
  await writeFile(join(dir, 'manifest.json'), `${DEMO_MANIFEST_JSON}\n`);
  await writeFile(join(dir, 'big.js'), Buffer.alloc(1025));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  let text = '';
  return { out: { write: (chunk: string) => (text += chunk) }, text: () => text };
}

describe('manifest', () => {
  it('writes the input with the hashes added, and prints each hash and the manifest\'s', async () => {
    const printed = capture();
    const out = join(dir, 'out.json');
    const status = await runManifestCommand(
      { in: join(dir, 'manifest.json'), out, bootstrap: [`/=${join(dir, 'dist', 'index.html')}`], 'bootstrap-dir': join(dir, 'dist') },
      printed.out,
    );
    expect(status).toBe(0);
    const bytes = new Uint8Array(await readFile(out));
    const hashes = {
      '/': sha256Hex(FILES['index.html']),
      '/enclave-sw.js': sha256Hex(FILES['enclave-sw.js']),
      '/register.js': sha256Hex(FILES['register.js']),
      '/xwing/steve_xwing_wasm_bg.wasm': sha256Hex(FILES['xwing/steve_xwing_wasm_bg.wasm']),
    };
    expect(new TextDecoder().decode(bytes)).toBe(`${DEMO_MANIFEST_JSON.slice(0, -1)},"bootstrap":${JSON.stringify(hashes)}}\n`);
    expect(parseManifest(bytes, out).value.bootstrap).toEqual(hashes);
    expect(printed.text()).toBe(
      `${hashes['/']}  /  15 bytes\n${hashes['/enclave-sw.js']}  /enclave-sw.js  6 bytes\n${hashes['/register.js']}  /register.js  8 bytes\n` +
        `${hashes['/xwing/steve_xwing_wasm_bg.wasm']}  /xwing/steve_xwing_wasm_bg.wasm  4 bytes\nmanifest sha256 ${sha256Hex(bytes)} written to ${out}\n`,
    );
  });

  it('is deterministic: the same files in another flag order give the same bytes', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const sw = `/enclave-sw.js=${join(dir, 'dist', 'enclave-sw.js')}`;
    const reg = `/register.js=${join(dir, 'dist', 'register.js')}`;
    await runManifestCommand({ in: join(dir, 'manifest.json'), out: a, bootstrap: [sw, reg] }, capture().out);
    await runManifestCommand({ in: join(dir, 'manifest.json'), out: b, bootstrap: [reg, sw] }, capture().out);
    expect(await readFile(b)).toEqual(await readFile(a));
  });

  it('--bootstrap-dir takes the files present and never the page', async () => {
    const files = await collectBootstrapFiles([], join(dir, 'dist'));
    expect([...files.keys()].sort()).toEqual(['/enclave-sw.js', '/register.js', '/xwing/steve_xwing_wasm_bg.wasm']);
  });

  const usageCases: [string, () => Record<string, string | string[]>, RegExp][] = [
    ['no --in', () => ({ out: join(dir, 'x.json'), bootstrap: [`/=${join(dir, 'dist', 'index.html')}`] }), /--in FILE is required/],
    ['no --out', () => ({ in: join(dir, 'manifest.json'), bootstrap: [`/=${join(dir, 'dist', 'index.html')}`] }), /--out FILE is required/],
    ['no files', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json') }), /at least one --bootstrap/],
    ['an unknown path', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: [`/app.js=${join(dir, 'dist', 'register.js')}`] }), /--bootstrap expected PATH=FILE with PATH one of/],
    ['a path with a query', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: [`/register.js?v=1=${join(dir, 'dist', 'register.js')}`] }), /--bootstrap expected PATH=FILE/],
    ['no =FILE', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: ['/register.js'] }), /--bootstrap \/register\.js needs =FILE/],
    ['a path twice', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: [`/=${join(dir, 'dist', 'index.html')}`, `/=${join(dir, 'dist', 'index.html')}`] }), /--bootstrap \/ given twice/],
    ['a path by flag and by dir', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: [`/register.js=${join(dir, 'dist', 'register.js')}`], 'bootstrap-dir': join(dir, 'dist') }), /\/register\.js is given by --bootstrap and found in --bootstrap-dir/],
    ['a directory as the file', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), bootstrap: [`/=${join(dir, 'dist')}`] }), /is not a regular file/],
    ['a dir without bootstrap files', () => ({ in: join(dir, 'manifest.json'), out: join(dir, 'x.json'), 'bootstrap-dir': join(dir, 'dist', 'xwing') }), /no bootstrap file there/],
    ['an input with the field already', () => ({ in: join(dir, 'out.json'), out: join(dir, 'x.json'), bootstrap: [`/=${join(dir, 'dist', 'index.html')}`] }), /already has a "bootstrap" field/],
    ['an input that is not a manifest', () => ({ in: join(dir, 'dist', 'register.js'), out: join(dir, 'x.json'), bootstrap: [`/=${join(dir, 'dist', 'index.html')}`] }), /not UTF-8 JSON/],
  ];
  it.each(usageCases)('refuses %s (AGENT_USAGE), writing nothing', async (_, values, message) => {
    await expect(runManifestCommand(values(), capture().out)).rejects.toMatchObject({ code: 'AGENT_USAGE', message: expect.stringMatching(message) });
    await expect(readFile(join(dir, 'x.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a file larger than a verifier fetches', async () => {
    await expect(collectBootstrapFiles([`/register.js=${join(dir, 'big.js')}`], undefined, 1024)).rejects.toMatchObject({ code: 'AGENT_USAGE', message: expect.stringMatching(/1025 bytes, more than the 1024 a verifier fetches/) });
  });

  it('a missing file is AGENT_IO', async () => {
    await expect(collectBootstrapFiles([`/register.js=${join(dir, 'nope.js')}`], undefined)).rejects.toMatchObject({ code: 'AGENT_IO', message: expect.stringMatching(/nope\.js: ENOENT/) });
  });
});
