/**
 * The problem collector behind init/config.ts: each getter checks one field of the parsed JSON, records
 * a problem as `field: expected ..., got ...` when it is wrong, and returns a usable placeholder, so one
 * pass over a bad file reports every problem at once. It knows the shapes of values (strings, paths,
 * argv arrays, maps), not what any field means. Pure: no I/O.
 */

import { isAbsolute } from 'node:path';

/** Largest config file read: 1 MiB; a real one is a few hundred bytes. Also the bound of one map value. */
export const CONFIG_MAX_BYTES = 1024 * 1024;
/** Longest argv, env map and files map accepted; generous for a real image, bounded for a hostile file. */
export const MAX_ARGV = 256;
export const MAX_MAP_ENTRIES = 256;
/** Longest string in an argv or a path: PATH_MAX (include/uapi/linux/limits.h). */
const MAX_STRING_CHARS = 4096;

export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type Json = unknown;

export const isObject = (value: Json): value is Record<string, Json> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A short description of a bad value for a problem message (long strings cut at 40 characters). */
export const describe = (value: Json): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'an array'
      : typeof value === 'string'
        ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)
        : typeof value === 'object'
          ? 'an object'
          : String(value);

export class Checker {
  readonly problems: string[] = [];

  fail(field: string, expected: string, value: Json): void {
    this.problems.push(`${field}: expected ${expected}, got ${describe(value)}`);
  }

  keys(field: string, value: Record<string, Json>, allowed: readonly string[]): void {
    for (const key of Object.keys(value)) if (!allowed.includes(key)) this.problems.push(`${field}: unknown key ${JSON.stringify(key)}`);
  }

  boolean(field: string, value: Json, fallback?: boolean): boolean {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'boolean') return value;
    this.fail(field, 'true or false', value);
    return false;
  }

  integer(field: string, value: Json, min: number, max: number, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.fail(field, `an integer ${min}..${max}`, value);
    return fallback;
  }

  string(field: string, value: Json, maxChars = MAX_STRING_CHARS): string {
    if (typeof value === 'string' && value.length > 0 && value.length <= maxChars && !value.includes('\0')) return value;
    this.fail(field, `a non-empty string without NUL (at most ${maxChars} characters)`, value);
    return '';
  }

  path(field: string, value: Json): string {
    const text = this.string(field, value);
    if (text !== '' && !isAbsolute(text)) {
      this.fail(field, 'an absolute path', value);
      return '';
    }
    return text;
  }

  optionalPath(field: string, value: Json): string | null {
    return value === undefined || value === null ? null : this.path(field, value);
  }

  /** An array of at most `max` items (`[]` when absent), each checked by `item`. */
  list<T>(field: string, value: Json, max: number, item: (field: string, value: Json) => T): T[] {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > max) {
      this.fail(field, `an array of at most ${max} items`, value);
      return [];
    }
    return value.map((entry, i) => item(`${field}[${i}]`, entry));
  }

  argv(field: string, value: Json): string[] {
    if (!Array.isArray(value) || value.length === 0 || value.length > MAX_ARGV) {
      this.fail(field, `an array of 1..${MAX_ARGV} strings`, value);
      return [];
    }
    return value.map((item, i) => this.string(`${field}[${i}]`, item));
  }

  /** Arguments (may be empty strings); `minItems` 1 for a list that must name at least a subcommand. */
  args(field: string, value: Json, minItems = 0): string[] {
    if (value === undefined && minItems === 0) return [];
    if (!Array.isArray(value) || value.length < minItems || value.length > MAX_ARGV) {
      this.fail(field, `an array of ${minItems === 0 ? 'at most ' : `${minItems}..`}${MAX_ARGV} strings`, value);
      return [];
    }
    return value.map((item, i) => {
      if (typeof item === 'string' && !item.includes('\0') && item.length <= MAX_STRING_CHARS) return item;
      this.fail(`${field}[${i}]`, 'a string without NUL', item);
      return '';
    });
  }

  stringMap(field: string, value: Json, keyCheck: (key: string) => boolean, keyExpected: string): Record<string, string> {
    if (value === undefined) return {};
    if (!isObject(value) || Object.keys(value).length > MAX_MAP_ENTRIES) {
      this.fail(field, `an object of at most ${MAX_MAP_ENTRIES} string values`, value);
      return {};
    }
    const out: Record<string, string> = {};
    for (const [key, item] of Object.entries(value)) {
      if (!keyCheck(key)) this.problems.push(`${field}: key ${JSON.stringify(key)} is not ${keyExpected}`);
      if (typeof item !== 'string' || item.includes('\0') || item.length > CONFIG_MAX_BYTES) this.fail(`${field}.${key}`, 'a string without NUL', item);
      else out[key] = item;
    }
    return out;
  }

  /** Environment variables for a child: names as POSIX shells accept them, string values. */
  env(field: string, value: Json): Record<string, string> {
    return this.stringMap(field, value, (key) => ENV_NAME_RE.test(key), 'an environment variable name');
  }
}
