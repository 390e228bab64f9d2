/**
 * The Procfile parser (specs/agent-http.md §5) on examples of the legacy format, every refusal with its
 * coded error, and property tests: random and mutated text gives only a map or INIT_PROCFILE_INVALID,
 * and any map of valid keys and values written out as `key: value` lines parses back to itself.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { InitError } from './errors.js';
import { parseProcfile, procfileCommand, PROCFILE_MAX_CHARS } from './procfile.js';

const LEGACY = `run: node server.js --port 8083
e2e: true
ports: 8080, 8443
http_port: 8083
app_sources: https://example.org/app.git
metadata: {"tls": {"mode": "tls"}}
memory: 2048
cpus: 2
debug: false
`;

function expectInvalid(text: string, message: RegExp): void {
  try {
    parseProcfile(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InitError);
    expect((err as InitError).code).toBe('INIT_PROCFILE_INVALID');
    expect((err as InitError).message).toMatch(message);
    return;
  }
  throw new Error(`parsed: ${JSON.stringify(text)}`);
}

describe('parseProcfile', () => {
  it('reads the legacy fields in order, values trimmed, colons inside values kept', () => {
    const fields = parseProcfile(LEGACY);
    expect([...fields.keys()]).toEqual(['run', 'e2e', 'ports', 'http_port', 'app_sources', 'metadata', 'memory', 'cpus', 'debug']);
    expect(fields.get('run')).toBe('node server.js --port 8083');
    expect(fields.get('app_sources')).toBe('https://example.org/app.git');
    expect(fields.get('metadata')).toBe('{"tls": {"mode": "tls"}}');
    expect(procfileCommand(fields)).toEqual(['/bin/sh', '-c', 'node server.js --port 8083']);
  });

  it('skips blank lines and comments, takes CRLF, allows an empty value', () => {
    const fields = parseProcfile('# the app\r\n\r\n   \n  run:\t./app  \r\ndebug:\n');
    expect(Object.fromEntries(fields)).toEqual({ run: './app', debug: '' });
  });

  it.each([
    ['a line without a colon', 'run node app.js', /line 1: expected "key: value"/],
    ['a key given twice', 'run: a\nrun: b', /line 2: "run" given twice/],
    ['an empty key', ': value', /line 1: bad key/],
    ['a key with spaces', 'my key: v', /line 1: bad key/],
    ['a NUL', 'run: a\0b', /line 1: control character/],
    ['an escape character', 'x: 1\nrun: \u001b[31m', /line 2: control character/],
    ['a lone CR inside a line', 'run: a\rb', /line 1: control character/],
    ['an overlong key', `${'k'.repeat(65)}: v`, /bad key/],
    ['too much text', `run: ${'x'.repeat(PROCFILE_MAX_CHARS)}`, /at most 65536 characters/],
  ])('refuses %s', (_, text, message) => expectInvalid(text, message));

  it('procfileCommand needs a non-empty run', () => {
    for (const text of ['e2e: true', 'run:   ']) {
      expect(() => procfileCommand(parseProcfile(text))).toThrow(expect.objectContaining({ code: 'INIT_PROCFILE_INVALID' }));
    }
  });

  it('random text gives a map or INIT_PROCFILE_INVALID, nothing else', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 300, unit: 'binary' }),
      fc.array(fc.constantFrom('run', ':', ' ', '\n', '\r', '#', 'a', '=', '\0', '\t', 'é', '_x', '-'), { maxLength: 80 }).map((parts) => parts.join('')),
      fc.array(fc.integer({ min: 0, max: LEGACY.length }), { maxLength: 4 }).map((cuts) => cuts.reduce((t, cut) => t.slice(0, cut) + t.slice(cut + 1), LEGACY)),
    );
    fc.assert(
      fc.property(text, (input) => {
        try {
          const fields = parseProcfile(input);
          for (const [key, value] of fields) {
            expect(key).toMatch(/^[A-Za-z_][A-Za-z0-9_.-]*$/);
            expect(value).not.toMatch(/^[ \t]|[ \t]$/);
          }
        } catch (err) {
          expect(err).toBeInstanceOf(InitError);
          expect((err as InitError).code).toBe('INIT_PROCFILE_INVALID');
        }
      }),
      { seed: 7, numRuns: 3000 },
    );
  });

  it('key: value lines round-trip', () => {
    const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,20}$/);
    const value = fc.string({ maxLength: 40 }).filter((v) => !/[\u0000-\u0008\u000a-\u001f\u007f]/.test(v)).map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 10 }), (entries) => {
        const text = entries.map(([k, v]) => `${k}: ${v}`).join('\n');
        expect([...parseProcfile(text)]).toEqual(entries);
      }),
      { seed: 11, numRuns: 1000 },
    );
  });
});
