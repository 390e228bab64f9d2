/**
 * Byte-level mutations for property tests of decoders: set a byte, truncate, append, insert. Shared by
 * every test that feeds damaged input to a decoder of untrusted bytes.
 */

import fc from 'fast-check';

export type Mutation = { kind: 'set'; at: number; byte: number } | { kind: 'truncate'; at: number } | { kind: 'append'; bytes: Uint8Array } | { kind: 'insert'; at: number; byte: number };

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
);

export function mutate(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  const at = bytes.length === 0 ? 0 : 'at' in mutation ? mutation.at % bytes.length : 0;
  switch (mutation.kind) {
    case 'set': {
      const copy = bytes.slice();
      if (copy.length > 0) copy[at] = mutation.byte;
      return copy;
    }
    case 'truncate':
      return bytes.slice(0, at);
    case 'append':
      return Uint8Array.from([...bytes, ...mutation.bytes]);
    case 'insert':
      return Uint8Array.from([...bytes.subarray(0, at), mutation.byte, ...bytes.subarray(at)]);
  }
}
