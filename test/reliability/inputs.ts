/**
 * Hostile inputs for the decoder fuzzing (fuzz.test.ts), as fast-check arbitraries:
 * - random bytes;
 * - mutated valid encodings: bit flips, byte sets, truncation, extension, insertion, deletion, a slice
 *   duplicated, and length-field edits (a real CBOR head of the sample rewritten with another argument
 *   or another width: lengths that lie, non-shortest forms, huge counts);
 * - structure-aware values: well-formed CBOR maps with the right keys, wrong types, extra or missing
 *   keys, and CBOR values of every kind our messages use.
 */

import fc from 'fast-check';
import { encodeCbor, type CborInput } from '../../cbor/index.js';

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'length'; head: number; value: bigint; width: number };

/** Arguments a length edit writes: around the edges of every CBOR width, and the extremes. */
const LENGTH_VALUES = [0n, 1n, 2n, 15n, 16n, 23n, 24n, 31n, 32n, 33n, 255n, 256n, 4095n, 4096n, 65535n, 65536n, 0xffffffffn, 2n ** 53n, 2n ** 64n - 1n];

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('length' as const), head: fc.nat(), value: fc.oneof(fc.constantFrom(...LENGTH_VALUES), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), width: fc.integer({ min: 0, max: 4 }) }),
);

/**
 * Offsets of every data item's head in a well-formed CBOR item sequence (definite or indefinite), not
 * descending into byte strings. Stops quietly at anything it cannot read: the samples are valid, and a
 * shorter list only means fewer places to edit.
 */
export function cborHeads(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let p = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const item = (depth: number): void => {
    if (p >= bytes.length || depth > 32) throw new Error('stop');
    out.push(p);
    const initial = bytes[p++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    let arg: number;
    if (info < 24) arg = info;
    else if (info === 24) arg = bytes[p++]!;
    else if (info === 25) (arg = view.getUint16(p)), (p += 2);
    else if (info === 26) (arg = view.getUint32(p)), (p += 4);
    else if (info === 27) (arg = Number(view.getBigUint64(p))), (p += 8);
    else if (info === 31) {
      if (major < 2 || major > 5) return;
      while (p < bytes.length && bytes[p] !== 0xff) item(depth + 1);
      p++;
      return;
    } else throw new Error('stop');
    if (major === 2 || major === 3) p += arg;
    else if (major === 4) for (let i = 0; i < arg; i++) item(depth + 1);
    else if (major === 5) for (let i = 0; i < 2 * arg; i++) item(depth + 1);
    else if (major === 6) item(depth + 1);
  };
  try {
    while (p < bytes.length) item(0);
  } catch {
    // Partial list: fine.
  }
  return out;
}

/** The head `value` with `width` 0 = shortest, 1..4 = 1, 2, 4, 8 argument bytes (values cut to fit). */
function encodeHead(major: number, value: bigint, width: number): number[] {
  const widths = [0, 1, 2, 4, 8];
  let size = widths[width]!;
  if (size === 0) size = value < 24n ? 0 : value < 0x100n ? 1 : value < 0x10000n ? 2 : value < 0x100000000n ? 4 : 8;
  if (size === 0) return [(major << 5) | Number(value)];
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[size as 1 | 2 | 4 | 8];
  const out = [(major << 5) | info];
  const masked = value & ((1n << BigInt(8 * size)) - 1n);
  for (let i = size - 1; i >= 0; i--) out.push(Number((masked >> BigInt(8 * i)) & 0xffn));
  return out;
}

function headLength(bytes: Uint8Array, at: number): number {
  const info = bytes[at]! & 0x1f;
  return info < 24 || info === 31 ? 1 : info === 24 ? 2 : info === 25 ? 3 : info === 26 ? 5 : info === 27 ? 9 : 1;
}

export function mutate(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  const n = bytes.length;
  const at = n === 0 ? 0 : 'at' in mutation ? mutation.at % n : 0;
  const splice = (start: number, remove: number, insert: ArrayLike<number>) => Uint8Array.from([...bytes.subarray(0, start), ...Array.from(insert), ...bytes.subarray(start + remove)]);
  switch (mutation.kind) {
    case 'flip': {
      const copy = bytes.slice();
      if (n > 0) copy[at]! ^= 1 << mutation.bit;
      return copy;
    }
    case 'set': {
      const copy = bytes.slice();
      if (n > 0) copy[at] = mutation.byte;
      return copy;
    }
    case 'truncate':
      return bytes.slice(0, at);
    case 'extend':
      return splice(n, 0, mutation.bytes);
    case 'insert':
      return splice(at, 0, mutation.bytes);
    case 'delete':
      return splice(at, Math.min(mutation.length, n - at), []);
    case 'duplicate':
      return splice(at, 0, bytes.subarray(at, at + mutation.length));
    case 'length': {
      const heads = cborHeads(bytes);
      if (heads.length === 0) return bytes;
      const head = heads[mutation.head % heads.length]!;
      return splice(head, headLength(bytes, head), encodeHead(bytes[head]! >> 5, mutation.value, mutation.width));
    }
  }
}

/** CBOR values of the kinds and sizes our fields use, the wrong ones, and nesting. */
export const cborValue: fc.Arbitrary<CborInput> = fc.letrec<{ value: CborInput }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constantFrom<CborInput>(null, true, false, 0, 1, 2, 3, 23, 24, 199, 200, 599, 600, -1, -35, Number.MAX_SAFE_INTEGER, 'X25519', 'XWING-DRAFT10', 'GET', '/', '', 'SHA384', 'Error'),
    fc.integer(),
    fc.string({ maxLength: 16 }),
    fc.constantFrom(0, 1, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 96, 97, 1024, 1025, 1120, 1216).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 3 }).map((d) => new Map<string | number, CborInput>(Object.entries(d))),
    fc.array(fc.tuple(fc.integer({ min: -2, max: 40 }), tie('value')), { maxLength: 3 }).map((entries) => new Map<string | number, CborInput>(entries)),
  ),
})).value;

/** A map with some of `keys` (plus strays: a capitalised key, an integer key, an unknown one) and random values. */
export function mapWithKeys(keys: readonly string[], valueFor: (key: string) => fc.Arbitrary<CborInput> = () => cborValue): fc.Arbitrary<Uint8Array> {
  const strays: Array<string | number> = ['extra', 'Version', 1, ''];
  return fc
    .uniqueArray(fc.constantFrom<string | number>(...keys, ...strays), { minLength: 0, maxLength: keys.length + 2 })
    .chain((chosen) => fc.tuple(fc.constant(chosen), fc.tuple(...chosen.map((key) => (typeof key === 'string' && keys.includes(key) ? fc.oneof(valueFor(key), cborValue) : cborValue)))))
    .map(([chosen, values]) => encodeCbor(new Map<string | number, CborInput>(chosen.map((key, i) => [key, values[i]!]))));
}

/** Random bytes, a mutated sample (1-4 mutations), or a structure-aware value: the three kinds in one. */
export function hostile(samples: readonly Uint8Array[], structured?: fc.Arbitrary<Uint8Array>, maxRandomBytes = 512): fc.Arbitrary<Uint8Array> {
  const kinds: Array<fc.Arbitrary<Uint8Array>> = [
    fc.uint8Array({ maxLength: maxRandomBytes }),
    fc.tuple(fc.constantFrom(...samples), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 })).map(([sample, mutations]) => mutations.reduce(mutate, sample)),
    fc.tuple(fc.constantFrom(...samples), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 })).map(([sample, mutations]) => mutations.reduce(mutate, sample)),
  ];
  if (structured !== undefined) kinds.push(structured);
  return fc.oneof(...kinds);
}
