/**
 * Reading the init's configuration file: where it is (`--config`, else ENCLAVE_INIT_CONFIG), its bytes
 * (at most CONFIG_MAX_BYTES, UTF-8, JSON) and the Procfile it names, then init/config.ts validates the
 * whole. Every failure here is `INIT_CONFIG_INVALID` naming the file, so the CLI reports it like any other
 * configuration problem (exit 2).
 */

import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';

import { parseInitConfig, type InitConfig, type ParseInitConfigOptions } from './config.js';
import { CONFIG_MAX_BYTES, isObject, type Json } from './config-checker.js';
import { InitError } from './errors.js';
import { PROCFILE_MAX_CHARS } from './procfile.js';

async function readLimited(path: string, maxBytes: number, what: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new InitError('INIT_CONFIG_INVALID', `cannot read ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  if (bytes.length > maxBytes) throw new InitError('INIT_CONFIG_INVALID', `${what} ${path}: expected at most ${maxBytes} bytes, got ${bytes.length}`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new InitError('INIT_CONFIG_INVALID', `${what} ${path}: not UTF-8`, { cause });
  }
}

/** Where the config file is: the flag, else ENCLAVE_INIT_CONFIG. */
export function configPath(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const path = flag ?? env.ENCLAVE_INIT_CONFIG;
  if (path === undefined || path === '') throw new InitError('INIT_CONFIG_INVALID', '--config FILE (or ENCLAVE_INIT_CONFIG) is required');
  return path;
}

/** Reads and validates the config file and the Procfile it names. Throws `INIT_CONFIG_INVALID`. */
export async function loadInitConfig(path: string): Promise<InitConfig> {
  const text = await readLimited(path, CONFIG_MAX_BYTES, 'config file');
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InitError('INIT_CONFIG_INVALID', `config file ${path}: not JSON (${(cause as Error).message})`, { cause });
  }
  const procfile = isObject(json) && isObject(json.app) && typeof json.app.procfile === 'string' && isAbsolute(json.app.procfile) ? json.app.procfile : undefined;
  const options: ParseInitConfigOptions = {};
  if (procfile !== undefined) {
    try {
      options.procfileText = await readLimited(procfile, PROCFILE_MAX_CHARS, 'Procfile');
    } catch (err) {
      options.procfileError = (err as Error).message;
    }
  }
  return parseInitConfig(json, options);
}
