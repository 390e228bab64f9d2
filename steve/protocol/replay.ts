/**
 * The per-session replay window over application sequences (specs/steve.md §7): 64 wide, because a
 * client keeps at most 64 requests outstanding (§5 step 6), so they may arrive in any order. Sequence 0
 * is the confirmation's and never an application sequence (§7).
 *
 * `check(seq)` says whether a sequence may be processed, without changing anything, so a server checks
 * before spending an AEAD open; `accept(seq)` records it, and must be called only after the record
 * opened, so a forged record cannot burn a sequence. A sequence is refused (STEVE_REPLAY) when it is 0,
 * was accepted before, or is `highest - 64` or older. Pure state machine: no clock, no I/O.
 */

import { SteveError } from '../errors.js';
import { REPLAY_WINDOW_SIZE } from './constants.js';
import { isSequence } from './sequence.js';

export interface ReplayWindow {
  /** Throws STEVE_REPLAY if `sequence` must not be processed; never mutates. */
  check(sequence: number): void;
  /** Checks, then records `sequence` as seen. */
  accept(sequence: number): void;
  /** The highest accepted sequence, 0 before any. */
  readonly highest: number;
}

const WIDTH = BigInt(REPLAY_WINDOW_SIZE);
const FULL = (1n << WIDTH) - 1n;

export function createReplayWindow(): ReplayWindow {
  let highest = 0;
  // Bit i set: sequence `highest - i` was accepted (bit 0 is `highest` itself once anything was).
  let seen = 0n;

  const check = (sequence: number): void => {
    if (!isSequence(sequence)) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an integer in 0..2^53-1');
    if (sequence === 0) throw new SteveError('STEVE_REPLAY', 'sequence 0 is only for confirmation');
    if (sequence > highest) return;
    const age = highest - sequence;
    if (age >= REPLAY_WINDOW_SIZE) throw new SteveError('STEVE_REPLAY', 'sequence older than the window');
    if ((seen >> BigInt(age)) & 1n) throw new SteveError('STEVE_REPLAY', 'sequence already seen');
  };

  return {
    check,
    accept(sequence: number): void {
      check(sequence);
      if (sequence > highest) {
        const shift = sequence - highest;
        seen = shift >= REPLAY_WINDOW_SIZE ? 1n : ((seen << BigInt(shift)) | 1n) & FULL;
        highest = sequence;
      } else {
        seen |= 1n << BigInt(highest - sequence);
      }
    },
    get highest(): number {
      return highest;
    },
  };
}
