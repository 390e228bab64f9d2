/**
 * The Procfile of existing images (specs/agent-http.md §5): `key: value` lines. init/ reads one field,
 * `run` (the app command, run with `/bin/sh -c`); every other key is kept so callers can see it.
 *
 * The text comes from the image, but it is parsed as untrusted-ish input: any deviation is an
 * `INIT_PROCFILE_INVALID` error naming the line, never a guess. Pure: no I/O.
 *
 * Rules: lines end with LF (a CR before it is dropped); blank lines and lines starting with `#` (after
 * spaces) are skipped; otherwise `key: value` with the key `[A-Za-z_][A-Za-z0-9_.-]*` (at most 64
 * characters) directly before the first `:`, and the value the rest of the line without surrounding
 * spaces and tabs (it may contain `:`). A key given twice, a line without `:`, and control characters
 * other than tab are errors.
 */

import { InitError } from './errors.js';

/** Largest Procfile accepted: 64 KiB, far above the handful of short lines the format holds. */
export const PROCFILE_MAX_CHARS = 64 * 1024;
/** Longest key; real keys are `run`, `http_port`, `app_sources` and the like. */
const KEY_MAX_CHARS = 64;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const CONTROL_RE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function invalid(message: string): InitError {
  return new InitError('INIT_PROCFILE_INVALID', message);
}

/** Parses Procfile text into its fields, in file order. Throws `INIT_PROCFILE_INVALID`. */
export function parseProcfile(text: string): ReadonlyMap<string, string> {
  if (typeof text !== 'string') throw invalid(`"text" expected a string, got ${typeof text}`);
  if (text.length > PROCFILE_MAX_CHARS) throw invalid(`Procfile expected at most ${PROCFILE_MAX_CHARS} characters, got ${text.length}`);
  const fields = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1;
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (CONTROL_RE.test(line)) throw invalid(`Procfile line ${number}: control character`);
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon === -1) throw invalid(`Procfile line ${number}: expected "key: value"`);
    const key = line.slice(0, colon).trim();
    if (key.length > KEY_MAX_CHARS || !KEY_RE.test(key)) throw invalid(`Procfile line ${number}: bad key`);
    if (fields.has(key)) throw invalid(`Procfile line ${number}: "${key}" given twice`);
    fields.set(key, line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return fields;
}

/** The app command a Procfile names: `/bin/sh -c <run>`. Throws `INIT_PROCFILE_INVALID` without a `run`. */
export function procfileCommand(fields: ReadonlyMap<string, string>): string[] {
  const run = fields.get('run');
  if (run === undefined || run === '') throw invalid('Procfile has no "run" field (the app command)');
  return ['/bin/sh', '-c', run];
}
