/**
 * The agent's request-target parser: its fast path for plain paths must agree with the WHATWG URL parser
 * it stands in for, on every target, and it refuses what would steer a request to another origin.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRequestTarget } from './http-util.js';

/** The reference: the URL parser alone, as the agent did before the fast path. */
function reference(target: string): { pathname: string; search: string } | null {
  if (!target.startsWith('/') || target.startsWith('//')) return null;
  try {
    const url = new URL(target, 'http://agent.invalid');
    return { pathname: url.pathname, search: url.search };
  } catch {
    return null;
  }
}

// Path characters, the ones the parser escapes or rewrites, dots and separators, and a little Unicode.
const ALPHABET = [...'/abcXYZ019-._~!$&()*+,;=:@', ...'.%?#\\ "<>^`{|}\'[]\t\n', 'é', '€', '\u0000'];

describe('parseRequestTarget', () => {
  it('takes plain paths as they are, queries and escapes through the URL parser', () => {
    expect(parseRequestTarget('/e2p/v2/request')).toEqual({ pathname: '/e2p/v2/request', search: '' });
    expect(parseRequestTarget('/attestation?nonce=AA%3D')).toEqual({ pathname: '/attestation', search: '?nonce=AA%3D' });
    expect(parseRequestTarget('/a/../b')).toEqual({ pathname: '/b', search: '' });
    expect(parseRequestTarget('/a/./b/.')).toEqual({ pathname: '/a/b/', search: '' });
    expect(parseRequestTarget('/a b')).toEqual({ pathname: '/a%20b', search: '' });
    expect(parseRequestTarget('/a\\b')).toEqual({ pathname: '/a/b', search: '' });
  });

  it('refuses targets that are not origin-form', () => {
    for (const target of [undefined, '', '*', 'http://other.example/x', '//other.example/x', 'x/y']) expect(parseRequestTarget(target)).toBeNull();
  });

  it('agrees with the URL parser on random targets (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ALPHABET), { maxLength: 24 }), (chars) => {
        const target = `/${chars.join('')}`;
        expect(parseRequestTarget(target)).toEqual(reference(target));
      }),
      { seed: 0x7a59e7, numRuns: 20_000 },
    );
  });
});
