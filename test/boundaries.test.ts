/**
 * Holds the architecture of STYLE.md "Layout" by reading import statements, not by running code:
 * - the browser-safe closure (everything reachable from nsm/verifier.ts, cbor/index.ts, eif/index.ts and
 *   steve/client/index.ts) imports no Node builtin and names neither `process` nor `Buffer`;
 * - cbor/ imports nothing from nsm/, agent/ or steve/; nsm/ nothing from agent/ or steve/; steve/ nothing
 *   from agent/ or nsm/ (it takes an `attest` function), except that steve/client/ may import the
 *   browser-safe verifier surface nsm/verifier.ts (and nothing else from nsm/); bridge/ nothing from
 *   agent/, cbor/, init/, native/, nsm/ or steve/ (only vsock/); init/ nothing from agent/ or steve/;
 *   vsock/ nothing but native/; native/ (the addon's loader that nsm/, vsock/ and init/ share) nothing of
 *   ours at all; eif/ nothing from agent/, bridge/, init/, native/, nsm/, steve/ or vsock/ (only cbor/);
 * - outside test files, a file outside a folder imports that folder only through its index.ts (top-level
 *   folders always; subfolders once they have an index.ts; nsm/verifier.ts is the one documented extra).
 * The scan is textual (comments and string contents are blanked first) and covers the project's own
 * top-level folders only, never node_modules, dist or build. It must not import the code it scans.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
/**
 * The project's top-level source folders (STYLE.md "Layout"; vsock/ is the native binding's part, bridge/
 * the enclave's doors, native/ the addon's loader and shared C helpers, eif/ the enclave image format and
 * its PCRs).
 */
const PROJECT_FOLDERS = ['agent', 'bridge', 'cbor', 'eif', 'init', 'native', 'nsm', 'steve', 'vsock'].filter((f) => existsSync(join(REPO, f)));
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'build']);
/** Roots of the browser-safe closure; the optional ones are checked once they exist. */
const PURE_ENTRIES = ['nsm/verifier.ts', 'cbor/index.ts', 'eif/index.ts', 'steve/client/index.ts'];
const OPTIONAL_PURE_ENTRIES: string[] = [];
/** Folder -> top-level folders it must never import (STYLE.md "Layout"). */
const FORBIDDEN_LAYERS: Record<string, readonly string[]> = {
  cbor: ['nsm', 'agent', 'steve', 'native'],
  nsm: ['agent', 'steve'],
  steve: ['agent', 'nsm', 'native'],
  // The bridges move bytes over vsock and TCP; they never see documents, keys or the agent's wiring.
  bridge: ['agent', 'cbor', 'init', 'native', 'nsm', 'steve'],
  // vsock/ is a transport under the bridges; it loads its half of the addon through native/, never through nsm/.
  vsock: ['agent', 'bridge', 'cbor', 'eif', 'init', 'nsm', 'steve'],
  // The bottom layer: the addon's loader, shared by nsm/, vsock/ and init/, so none of them imports another for it.
  native: ['agent', 'bridge', 'cbor', 'eif', 'init', 'nsm', 'steve', 'vsock'],
  // init/ runs the agent as a child process and is wired in by agent/commands.ts, never the reverse.
  init: ['agent', 'steve'],
  // The image format is pure code a browser or the verifier runs; the CLI (agent/) wires it to files.
  eif: ['agent', 'bridge', 'init', 'native', 'nsm', 'steve', 'vsock'],
};
/**
 * The one exception to FORBIDDEN_LAYERS: the web client verifies attestation documents itself, so files
 * under steve/client/ may import the browser-safe verifier surface, and only that file of nsm/.
 */
const LAYER_EXCEPTIONS: ReadonlyArray<{ from: string; to: string }> = [{ from: 'steve/client/', to: 'nsm/verifier.ts' }];
const isLayerException = (file: string, target: string): boolean => LAYER_EXCEPTIONS.some((e) => file.startsWith(e.from) && target === e.to);
/**
 * Files besides index.ts that a folder offers to outsiders. nsm/verifier.ts is the documented browser-safe
 * half of the NSM surface (see nsm/index.ts): client code imports it to avoid pulling in `node:` modules.
 * steve/server/index.ts is the mirror case: the Node-only half of steve/ (node:crypto, undici), which the
 * agent imports so that steve/index.ts stays browser-safe (steve/protocol/purity.test.ts).
 * steve/protocol/routing.ts (which requests bypass STEVE) is imported alone by the page script
 * register.ts, which must stay small (steve/browser/build.test.ts): the protocol's index would bundle
 * the key exchanges with it. nsm/runtime.ts (opening the NSM, the client, errors, encodings) and
 * init/app-state.ts (the IPC messages init sends the agent) are what `enclave-agent run` needs of nsm/ and
 * init/: the agent imports them alone so its code-split bundle does not load the verifier, the mock PKI or
 * init's boot steps at start (issue 16, image/build-bundle.mjs); steve/protocol/routing.ts serves it too.
 */
const EXTRA_PUBLIC_ENTRIES = new Set(['nsm/verifier.ts', 'nsm/runtime.ts', 'steve/server/index.ts', 'steve/protocol/routing.ts', 'init/app-state.ts']);
const NODE_BUILTINS = new Set(builtinModules);

// ---------------------------------------------------------------------------------------------------
// Scanning

interface Source {
  /** Comments blanked; strings kept, so import specifiers can be read. */
  code: string;
  /** Comments and the contents of strings, template text and regex literals blanked: identifiers only. */
  bare: string;
}

/** Characters after which a `/` starts a regex literal rather than a division. */
const REGEX_PRECEDERS = new Set(['', '(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-', '*', '%', '<', '>', '~', '^']);
const REGEX_KEYWORDS = /\b(?:return|typeof|case|do|else|in|of|throw|void|yield|await|delete|instanceof|new)$/;

/**
 * Blanks comments (and, in `bare`, literal contents) while keeping every offset and newline, so the rest
 * can be searched with regexes. Rough by design: enough for this codebase's TypeScript, not a parser.
 */
function scanSource(text: string): Source {
  const code = text.split('');
  const bare = text.split('');
  const blank = (from: number, to: number, both: boolean): void => {
    for (let i = from; i < to; i++) {
      if (text[i] === '\n') continue;
      bare[i] = ' ';
      if (both) code[i] = ' ';
    }
  };
  /** Brace depth at which each open template literal's `${` began. */
  const templates: number[] = [];
  let depth = 0;
  let last = ''; // last significant character outside literals
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      const end = text.indexOf('\n', i) === -1 ? text.length : text.indexOf('\n', i);
      blank(i, end, true);
      i = end;
    } else if (c === '/' && next === '*') {
      const close = text.indexOf('*/', i + 2);
      const end = close === -1 ? text.length : close + 2;
      blank(i, end, true);
      i = end;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c && text[j] !== '\n') j += text[j] === '\\' ? 2 : 1;
      blank(i + 1, j, false);
      i = j + 1;
      last = c;
    } else if (c === '`' || (c === '}' && templates.length > 0 && templates[templates.length - 1] === depth)) {
      if (c === '}') templates.pop();
      let j = i + 1;
      while (j < text.length && text[j] !== '`' && !(text[j] === '$' && text[j + 1] === '{')) j += text[j] === '\\' ? 2 : 1;
      blank(i + 1, j, false);
      if (text[j] === '$') {
        templates.push(depth);
        i = j + 2;
        last = '{';
      } else {
        i = j + 1;
        last = '`';
      }
    } else if (c === '/' && (REGEX_PRECEDERS.has(last) || REGEX_KEYWORDS.test(text.slice(Math.max(0, i - 12), i).trimEnd()))) {
      let j = i + 1;
      let inClass = false;
      while (j < text.length && text[j] !== '\n' && (inClass || text[j] !== '/')) {
        if (text[j] === '[') inClass = true;
        else if (text[j] === ']') inClass = false;
        j += text[j] === '\\' ? 2 : 1;
      }
      blank(i + 1, j, false);
      i = j + 1;
      last = '/';
    } else {
      if (c === '{') depth++;
      else if (c === '}') depth--;
      if (!/\s/.test(c)) last = /[\w$]/.test(c) ? 'a' : c;
      i++;
    }
  }
  return { code: code.join(''), bare: bare.join('') };
}

const STATIC_IMPORT = /\b(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?(['"])([^'"\n]+)\1/dg;
const DYNAMIC_IMPORT = /\b(?:import|require)\s*\(\s*(['"])([^'"\n]+)\1\s*\)/dg;

/**
 * Every module specifier a file names: static imports and re-exports (type-only included), import(),
 * require(). Statements are found in `bare` (so text inside strings cannot pose as one) and the specifier
 * is read from `code` at the same offsets.
 */
function importSpecifiers({ code, bare }: Source): string[] {
  return [...bare.matchAll(STATIC_IMPORT), ...bare.matchAll(DYNAMIC_IMPORT)].map((m) => {
    const [start, end] = m.indices![2]!;
    return code.slice(start, end);
  });
}

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || NODE_BUILTINS.has(specifier) || NODE_BUILTINS.has(specifier.split('/')[0]!);
}

/** Node globals that pure code must not name (STYLE.md: no I/O, no process.env; `Buffer` only at Node edges). */
function nodeGlobals(bare: string): string[] {
  const found = new Set<string>();
  if (/(?<![.\w$])process\s*(?:\.|\[)/.test(bare)) found.add('process');
  if (/(?<![.\w$])Buffer\b/.test(bare)) found.add('Buffer');
  if (/(?<![.\w$])(?:__dirname|__filename)\b/.test(bare)) found.add('__dirname/__filename');
  return [...found];
}

/** Resolves a relative specifier to a repo-relative .ts path (`.js` -> `.ts`), or undefined when it is not relative. */
function resolveRelative(fromFile: string, specifier: string): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  const absolute = resolve(REPO, dirname(fromFile), specifier).replace(/\.js$/, '.ts');
  return relative(REPO, absolute).split(sep).join('/');
}

function listSources(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name) && !entry.name.startsWith('.')) walk(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        out.push(path);
      }
    }
  };
  walk(folder);
  return out.sort();
}

const sourceCache = new Map<string, Source>();
function source(file: string): Source {
  let cached = sourceCache.get(file);
  if (cached === undefined) {
    cached = scanSource(readFileSync(join(REPO, file), 'utf8'));
    sourceCache.set(file, cached);
  }
  return cached;
}

const topFolder = (file: string): string => file.split('/')[0]!;

/**
 * The folder an import from `fromFile` to `toFile` enters: the outermost directory of `toFile` that does
 * not contain `fromFile`, or undefined when `toFile` lies in `fromFile`'s own directory or above it.
 */
function enteredFolder(fromFile: string, toFile: string): string | undefined {
  const fromDirs = fromFile.split('/').slice(0, -1);
  const toDirs = toFile.split('/').slice(0, -1);
  let common = 0;
  while (common < fromDirs.length && common < toDirs.length && fromDirs[common] === toDirs[common]) common++;
  return common < toDirs.length ? toDirs.slice(0, common + 1).join('/') : undefined;
}

const allFiles = PROJECT_FOLDERS.flatMap(listSources);
const isTest = (file: string): boolean => file.endsWith('.test.ts');

// ---------------------------------------------------------------------------------------------------
// The rules

describe('scanner self-check', () => {
  it('finds imports, re-exports, type imports and dynamic imports, but not ones in comments or strings', () => {
    const scanned = scanSource(
      [
        "import { a } from './a.js';",
        "import type { B } from 'node:fs';",
        "import {\n  c,\n  d,\n} from '../c/index.js';",
        "export * from './e.js';",
        "export { f, type G } from './f.js';",
        "import './side-effect.js';",
        "const h = await import('node:crypto');",
        "// import { x } from 'node:os';",
        "/* export * from 'path'; */",
        "const s = \"import { y } from 'node:net'\";",
        'const r = /\\/\\/g/; const after = 1;',
        "export const text = 'from here';",
      ].join('\n'),
    );
    expect(importSpecifiers(scanned).sort()).toEqual(['../c/index.js', './a.js', './e.js', './f.js', './side-effect.js', 'node:crypto', 'node:fs'].sort());
  });

  it('finds process and Buffer in code but not in comments, strings, templates, regexes or property names', () => {
    expect(nodeGlobals(scanSource('const x = process.env.HOME;').bare)).toEqual(['process']);
    expect(nodeGlobals(scanSource('const b: Buffer = f();').bare)).toEqual(['Buffer']);
    expect(nodeGlobals(scanSource('const t = `${Buffer.from(x)}`;').bare)).toEqual(['Buffer']);
    const clean = [
      '// process.env and Buffer belong to the agent',
      '/** Returns a Uint8Array, never a Buffer. */',
      "const m = 'process.env is not read here; Buffer neither';",
      'const t = `no Buffer in ${name}, no process.exit`;',
      'const r = /process\\.env|Buffer/;',
      'const o = { process: 1 }; o.process; parser.Buffer;',
    ].join('\n');
    expect(nodeGlobals(scanSource(clean).bare)).toEqual([]);
  });

  it('recognises Node builtins with and without the node: prefix', () => {
    for (const name of ['node:fs', 'fs', 'fs/promises', 'crypto', 'path', 'node:test', 'child_process', 'worker_threads']) {
      expect(isNodeBuiltin(name), name).toBe(true);
    }
    for (const name of ['@noble/hashes/sha2.js', 'pino', './fs.js', 'vitest']) expect(isNodeBuiltin(name), name).toBe(false);
  });

  it('lets steve/client/ import nsm/verifier.ts and nothing else across the steve/nsm line', () => {
    expect(isLayerException('steve/client/establish.ts', 'nsm/verifier.ts')).toBe(true);
    expect(isLayerException('steve/client/establish.ts', 'nsm/index.ts')).toBe(false);
    expect(isLayerException('steve/client/establish.ts', 'nsm/verify.ts')).toBe(false);
    expect(isLayerException('steve/server/session.ts', 'nsm/verifier.ts')).toBe(false);
    expect(isLayerException('steve/protocol/binding.ts', 'nsm/verifier.ts')).toBe(false);
    expect(isLayerException('steve/clientele.ts', 'nsm/verifier.ts')).toBe(false);
  });

  it('tells which folder an import enters', () => {
    expect(enteredFolder('agent/commands.ts', 'nsm/verify.ts')).toBe('nsm');
    expect(enteredFolder('agent/commands.ts', 'agent/demo/app.ts')).toBe('agent/demo');
    expect(enteredFolder('steve/server/session.ts', 'steve/protocol/frame.ts')).toBe('steve/protocol');
    expect(enteredFolder('steve/server/session.ts', 'steve/errors.ts')).toBeUndefined();
    expect(enteredFolder('nsm/codec.ts', 'nsm/types.ts')).toBeUndefined();
    expect(resolveRelative('agent/commands.ts', '../nsm/index.js')).toBe('nsm/index.ts');
    expect(resolveRelative('agent/commands.ts', 'node:fs')).toBeUndefined();
  });
});

describe('architecture boundaries', () => {
  it('scans the project folders', () => {
    expect(PROJECT_FOLDERS).toEqual(expect.arrayContaining(['agent', 'cbor', 'eif', 'native', 'nsm', 'vsock', 'init']));
    for (const entry of PURE_ENTRIES) expect(existsSync(join(REPO, entry)), entry).toBe(true);
  });

  it('the browser-safe closure of nsm/verifier.ts, cbor/index.ts, eif/index.ts and steve/client/index.ts imports no Node builtin and names no process or Buffer', () => {
    const entries = [...PURE_ENTRIES, ...OPTIONAL_PURE_ENTRIES.filter((f) => existsSync(join(REPO, f)))];
    const violations: string[] = [];
    const seen = new Set<string>();
    const queue = entries.map((file) => ({ file, via: file }));
    while (queue.length > 0) {
      const { file, via } = queue.shift()!;
      if (seen.has(file)) continue;
      seen.add(file);
      if (!existsSync(join(REPO, file))) {
        violations.push(`${via}: imports ${file}, which does not exist`);
        continue;
      }
      const scanned = source(file);
      for (const specifier of importSpecifiers(scanned)) {
        if (isNodeBuiltin(specifier)) violations.push(`${file}: imports '${specifier}'`);
        const target = resolveRelative(file, specifier);
        if (target !== undefined) queue.push({ file: target, via: file });
      }
      for (const name of nodeGlobals(scanned.bare)) violations.push(`${file}: names the Node global ${name}`);
    }
    // The closure really was walked: the verifier reaches the CBOR decoder.
    expect(seen).toContain('nsm/verify.ts');
    expect(seen).toContain('cbor/decode.ts');
    expect(seen).toContain('steve/client/client.ts');
    expect(seen).toContain('steve/protocol/record.ts');
    expect(seen).toContain('eif/reader.ts');
    expect(seen).toContain('eif/signature.ts');
    expect(violations, `browser-safe closure (${[...seen].join(', ')}):\n${violations.join('\n')}`).toEqual([]);
  });

  it('lower layers never import higher ones (cbor < nsm < agent; steve apart from nsm and agent)', () => {
    const violations: string[] = [];
    for (const file of allFiles) {
      const forbidden = FORBIDDEN_LAYERS[topFolder(file)];
      if (forbidden === undefined) continue;
      for (const specifier of importSpecifiers(source(file))) {
        const target = resolveRelative(file, specifier);
        if (target !== undefined && forbidden.includes(topFolder(target)) && !isLayerException(file, target)) violations.push(`${file}: imports '${specifier}'`);
      }
    }
    expect(violations, violations.join('\n')).toEqual([]);
  });

  it('files outside a folder import it only through its index.ts', () => {
    const violations: string[] = [];
    for (const file of allFiles.filter((f) => !isTest(f))) {
      for (const specifier of importSpecifiers(source(file))) {
        const target = resolveRelative(file, specifier);
        if (target === undefined) continue;
        const folder = enteredFolder(file, target);
        if (folder === undefined) continue;
        // Top-level parts always have a public surface; a subfolder has one once it has an index.ts.
        const isTopLevel = !folder.includes('/');
        if (!isTopLevel && !existsSync(join(REPO, folder, 'index.ts'))) continue;
        if (target !== `${folder}/index.ts` && !EXTRA_PUBLIC_ENTRIES.has(target)) {
          violations.push(`${file}: imports '${specifier}' (use '${folder}/index.ts')`);
        }
      }
    }
    expect(violations, violations.join('\n')).toEqual([]);
  });
});
