/**
 * replay.ts: the 64-wide window of specs/steve.md §7 against a simple reference model (the set of
 * accepted sequences and the highest one) on random sequences, plus the edges: sequence 0, the exact
 * window boundary, duplicates, large jumps, and check() never mutating.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createReplayWindow } from './replay.js';
import { code } from '../../test/steve-codes.js';


/** The reference: a sequence is fresh if it is >= 1, never accepted, and within 64 of the highest. */
class Model {
  readonly accepted = new Set<number>();
  highest = 0;
  fresh(sequence: number): boolean {
    return sequence >= 1 && !this.accepted.has(sequence) && sequence > this.highest - 64;
  }
  accept(sequence: number): void {
    this.accepted.add(sequence);
    this.highest = Math.max(this.highest, sequence);
  }
}

describe('replay window (§7)', () => {
  it('agrees with the reference model on random sequences', () => {
    const near = (base: number) => fc.integer({ min: Math.max(0, base - 80), max: base + 80 });
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 200 }), near(1000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })), { maxLength: 300 }),
        fc.array(fc.boolean(), { maxLength: 300 }),
        (sequences, checkOnly) => {
          const window = createReplayWindow();
          const model = new Model();
          sequences.forEach((sequence, i) => {
            const fresh = model.fresh(sequence);
            expect(code(() => window.check(sequence)), `check ${sequence}`).toBe(fresh ? undefined : 'STEVE_REPLAY');
            if (checkOnly[i] === true) return;
            expect(code(() => window.accept(sequence)), `accept ${sequence}`).toBe(fresh ? undefined : 'STEVE_REPLAY');
            if (fresh) model.accept(sequence);
            expect(window.highest).toBe(model.highest);
          });
        },
      ),
      { seed: 64, numRuns: 1000 },
    );
  });

  it('agrees with the model on a client\'s pattern: in order, with up to 64 outstanding arriving shuffled', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 63 }), { minLength: 64, maxLength: 64 }), fc.integer({ min: 1, max: 5 }), (keys, rounds) => {
        const window = createReplayWindow();
        for (let round = 0; round < rounds; round++) {
          const batch = Array.from({ length: 64 }, (_, i) => round * 64 + i + 1).sort((a, b) => keys[a % 64]! - keys[b % 64]! || a - b);
          for (const sequence of batch) window.accept(sequence);
          for (const sequence of batch) expect(code(() => window.check(sequence))).toBe('STEVE_REPLAY');
        }
      }),
      { seed: 65, numRuns: 200 },
    );
  });

  it('edges: 0 is never an application sequence; the boundary is highest - 64; jumps clear the window', () => {
    const window = createReplayWindow();
    expect(code(() => window.check(0))).toBe('STEVE_REPLAY');
    window.accept(100);
    expect(code(() => window.check(36))).toBe('STEVE_REPLAY');
    expect(code(() => window.check(37))).toBeUndefined();
    window.accept(37);
    expect(code(() => window.accept(37))).toBe('STEVE_REPLAY');
    expect(code(() => window.check(100))).toBe('STEVE_REPLAY');
    window.accept(1000);
    expect(window.highest).toBe(1000);
    expect(code(() => window.check(999))).toBeUndefined();
    expect(code(() => window.check(100))).toBe('STEVE_REPLAY');
    window.accept(Number.MAX_SAFE_INTEGER);
    expect(code(() => window.check(Number.MAX_SAFE_INTEGER))).toBe('STEVE_REPLAY');
    expect(code(() => window.check(Number.MAX_SAFE_INTEGER - 1))).toBeUndefined();
  });

  it('check never mutates', () => {
    const window = createReplayWindow();
    for (let i = 0; i < 3; i++) expect(code(() => window.check(5))).toBeUndefined();
    expect(window.highest).toBe(0);
    window.accept(5);
    expect(code(() => window.check(5))).toBe('STEVE_REPLAY');
  });

  it('refuses non-sequences as a caller error', () => {
    const window = createReplayWindow();
    for (const bad of [-1, 1.5, 2 ** 53, Number.NaN, '1' as never]) expect(code(() => window.check(bad))).toBe('STEVE_BAD_ARGUMENT');
  });
});
