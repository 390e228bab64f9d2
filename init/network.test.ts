/**
 * init/network.ts: interface names as the ioctls take them, strict dotted quads (cross-checked against
 * node:net's isIPv4 on random strings of digits and dots), and "address/prefix" parsing.
 */

import { isIPv4 } from 'node:net';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { isInterfaceName, isIpv4Address, parseInterfaceAddress } from './network.js';

describe('isInterfaceName', () => {
  it('takes 1..15 characters of [A-Za-z0-9_.-], not "." or ".."', () => {
    for (const name of ['lo', 'eth0', 'enp0s3', 'veth_1.2-a', 'x'.repeat(15), '...']) expect(isInterfaceName(name), name).toBe(true);
    for (const name of ['', '.', '..', 'x'.repeat(16), 'eth0:1', 'a/b', 'a b', 'ét0', 'lo\0', 7, null]) expect(isInterfaceName(name), String(name)).toBe(false);
  });
});

describe('isIpv4Address', () => {
  it('takes dotted quads without leading zeros', () => {
    for (const text of ['0.0.0.0', '10.0.2.15', '127.0.0.1', '255.255.255.255', '192.168.100.200']) expect(isIpv4Address(text), text).toBe(true);
    for (const text of ['', '10.0.2', '10.0.2.15.1', '010.0.2.15', '10.0.2.256', '10.0.2.-1', ' 10.0.2.15', '10.0.2.15/24', '0x0a.0.2.15', '::1', '1e1.0.0.1']) {
      expect(isIpv4Address(text), text).toBe(false);
    }
  });

  it("agrees with node:net's isIPv4 on random strings of digits and dots", () => {
    const text = fc.stringMatching(/^[0-9.]{0,20}$/);
    const quad = fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((octets) => octets.join('.'));
    fc.assert(fc.property(fc.oneof(text, quad), (candidate) => isIpv4Address(candidate) === isIPv4(candidate)), { numRuns: 2000 });
  });
});

describe('parseInterfaceAddress', () => {
  it('splits "a.b.c.d/p" with p 0..32', () => {
    expect(parseInterfaceAddress('10.0.2.15/24')).toEqual({ address: '10.0.2.15', prefixLength: 24 });
    expect(parseInterfaceAddress('0.0.0.0/0')).toEqual({ address: '0.0.0.0', prefixLength: 0 });
    expect(parseInterfaceAddress('127.0.0.1/32')).toEqual({ address: '127.0.0.1', prefixLength: 32 });
    for (const text of ['10.0.2.15', '10.0.2.15/', '10.0.2.15/33', '10.0.2.15/024', '10.0.2.15/+8', '10.0.2.15/8/8', '10.0.2.15 /8', '/8', 24, null]) {
      expect(parseInterfaceAddress(text), String(text)).toBeNull();
    }
  });
});
