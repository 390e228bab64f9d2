/**
 * Flag checks the benchmark scripts share: a bad value is a usage error (exit 2) naming the script and
 * the flag, before any process is started.
 */

/** `text` as a number > 0 (an integer with `integer`), or exit 2 with `script: flag expected ...`. */
export function positiveArg(text, flag, script, { integer = false } = {}) {
  const value = Number(text);
  if (!(integer ? Number.isInteger(value) : Number.isFinite(value)) || value <= 0) {
    process.stderr.write(`${script}: ${flag} expected a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}
