/**
 * vsock addresses: the well-known CIDs (include/uapi/linux/vm_sockets.h) and the checks every cid, port and
 * backlog passes before any native code runs. Pure: no I/O, no `node:` imports.
 */

import { VsockError } from './errors.js';

/** Bind to any local CID (listening only). vm_sockets.h: `#define VMADDR_CID_ANY -1U`. */
export const VMADDR_CID_ANY = 0xffff_ffff;
/** The local loopback CID (vsock_loopback transport). */
export const VMADDR_CID_LOCAL = 1;
/** The host, as seen from a guest or an enclave (the parent instance of a Nitro Enclave). */
export const VMADDR_CID_HOST = 2;
/** Any free port (listening only); vm_sockets.h: `#define VMADDR_PORT_ANY -1U`. */
export const VMADDR_PORT_ANY = 0xffff_ffff;

/** cid and port are `unsigned int` in struct sockaddr_vm. */
const MAX_UINT32 = 0xffff_ffff;
/** listen(2) takes an `int`; Linux silently caps it at net.core.somaxconn (4096 since 5.4). */
const MAX_BACKLOG = 0x7fff_ffff;

export interface VsockAddress {
  readonly cid: number;
  readonly port: number;
}

/** `-1`, `NaN`, `1.5`, `string`, `undefined`: what the message says we got. */
function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'Array';
  return typeof value;
}

function assertInteger(name: string, value: unknown, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new VsockError('VSOCK_BAD_ARGUMENT', `"${name}" expected an integer 0..${max}, got ${describe(value)}`);
  }
}

export function assertCid(value: unknown, name = 'cid'): asserts value is number {
  assertInteger(name, value, MAX_UINT32);
}

export function assertPort(value: unknown, name = 'port'): asserts value is number {
  assertInteger(name, value, MAX_UINT32);
}

export function assertBacklog(value: unknown, name = 'backlog'): asserts value is number {
  assertInteger(name, value, MAX_BACKLOG);
}

export function assertOptions(value: unknown, name = 'options'): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VsockError('VSOCK_BAD_ARGUMENT', `"${name}" expected an object, got ${describe(value)}`);
  }
}

export function assertOptionalBoolean(value: unknown, name: string): asserts value is boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new VsockError('VSOCK_BAD_ARGUMENT', `"${name}" expected a boolean, got ${describe(value)}`);
  }
}
