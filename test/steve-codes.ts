/**
 * `code(run)`: the SteveError code `run` throws, undefined when it returns, or a marker string when it
 * throws anything else, so tests can assert exact codes in one `expect`.
 */

import { SteveError } from '../steve/errors.js';

export function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof SteveError ? error.code : `not a SteveError: ${String(error)}`;
  }
  return undefined;
}
