/**
 * Holds STYLE.md's rule for steve/protocol/ (and steve/errors.ts, steve/index.ts) by reading the source:
 * pure and browser-safe, so no Node builtin imports, no `process`, no `Buffer`, no clock, no ambient
 * randomness, no timers, no I/O, no `await`, and no import of agent/ or nsm/. Textual on purpose (like
 * test/boundaries.test.ts): comments are dropped first, so a comment may name what the code must not do.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const FILES = [
  ...readdirSync(HERE)
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))
    .map((name) => join(HERE, name)),
  join(REPO, 'steve', 'errors.ts'),
  join(REPO, 'steve', 'index.ts'),
];

/** Drops block comments and `//` comments that start a line or follow whitespace (not `\//` in a regex). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|\s)\/\/.*$/gm, '$1');
}

const FORBIDDEN: Array<[RegExp, string]> = [
  [/(?<![.\w$])process\s*[.[]/, 'process'],
  [/(?<![.\w$])Buffer\b/, 'Buffer'],
  [/(?<![.\w$])Date\b/, 'the clock (Date)'],
  [/\bperformance\s*\./, 'the clock (performance)'],
  [/Math\.random/, 'ambient randomness (Math.random)'],
  [/getRandomValues|randomBytes|randomUUID/, 'ambient randomness'],
  [/\b(?:setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'timers'],
  [/\bfetch\s*\(|XMLHttpRequest|WebSocket/, 'network I/O'],
  [/\bconsole\s*\./, 'logging'],
  [/\bawait\b|\basync\b/, 'await (pure code is synchronous)'],
  [/\brequire\s*\(/, 'require'],
];

const IMPORT = /\b(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?['"]([^'"]+)['"]/g;
const BUILTINS = new Set(builtinModules);

describe('steve/protocol is pure and browser-safe (STYLE.md)', () => {
  it('scans the files', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(12);
  });

  it.each(FILES.map((file) => [relative(REPO, file), file]))('%s', (_name, file) => {
    const code = withoutComments(readFileSync(file, 'utf8'));
    const problems: string[] = [];
    for (const [pattern, what] of FORBIDDEN) if (pattern.test(code)) problems.push(`names ${what}`);
    for (const [, specifier] of code.matchAll(IMPORT)) {
      if (specifier!.startsWith('node:') || BUILTINS.has(specifier!.split('/')[0]!)) problems.push(`imports ${specifier}`);
      if (specifier!.startsWith('.')) {
        const target = relative(REPO, resolve(dirname(file), specifier!));
        if (/^(?:agent|nsm)\//.test(target)) problems.push(`imports ${target}`);
      }
    }
    const opening = readFileSync(file, 'utf8').trimStart();
    if (!opening.startsWith('/**')) problems.push('does not open with a comment on what it is for');
    expect(problems).toEqual([]);
  });

  it('the checks catch what they are meant to', () => {
    const sample = withoutComments("// Buffer in a comment\nimport { x } from 'node:crypto';\nconst t = Date.now();");
    expect(FORBIDDEN.filter(([pattern]) => pattern.test(sample)).map(([, what]) => what)).toEqual(['the clock (Date)']);
    expect([...sample.matchAll(IMPORT)].map((m) => m[1])).toEqual(['node:crypto']);
  });
});
