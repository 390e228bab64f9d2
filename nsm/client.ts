/**
 * `createNsm(transport)`: the one `Nsm` implementation over any transport (the device's ioctl or the
 * mock), so both are driven through the same codec and the same argument checks. Arguments are checked
 * before a request is built; limits the module itself enforces (field sizes, the 4096-byte request,
 * locked PCRs) are left to the module so the device's own answers stay observable.
 */

import { decodeNsmResponse, encodeNsmRequest, type NsmRequest, type NsmResponse } from './codec.js';
import { NsmError } from './errors.js';
import type { AttestOptions, Nsm, NsmDescription, NsmTransport, PcrDescription } from './types.js';

/** QEMU and serde_cbor encode `index`/`range` as u16 on the wire; QEMU accepts at most 255 (specs/nsm.md §4). */
const MAX_INDEX_ARGUMENT = 0xffff;

export function createNsm(transport: NsmTransport): Nsm {
  async function call<T extends NsmResponse['type']>(request: NsmRequest & { type: T }): Promise<Extract<NsmResponse, { type: T }>> {
    const reply = await transport.request(encodeNsmRequest(request));
    return decodeNsmResponse(reply, request.type) as Extract<NsmResponse, { type: T }>;
  }

  return {
    kind: transport.kind,
    async attest(options: AttestOptions = {}): Promise<Uint8Array> {
      const userData = optionalBytes(options.userData, 'userData');
      const nonce = optionalBytes(options.nonce, 'nonce');
      const publicKey = optionalBytes(options.publicKey, 'publicKey');
      return (await call({ type: 'Attestation', userData, nonce, publicKey })).document;
    },
    async describePcr(index: number): Promise<PcrDescription> {
      return (await call({ type: 'DescribePCR', index: assertIndex(index, 'index') })).pcr;
    },
    async extendPcr(index: number, data: Uint8Array): Promise<Uint8Array> {
      const bytes = optionalBytes(data, 'data');
      if (bytes === null) throw new NsmError('NSM_BAD_ARGUMENT', '"data" expected Uint8Array');
      return (await call({ type: 'ExtendPCR', index: assertIndex(index, 'index'), data: bytes })).value;
    },
    async lockPcr(index: number): Promise<void> {
      await call({ type: 'LockPCR', index: assertIndex(index, 'index') });
    },
    async lockPcrs(range: number): Promise<void> {
      await call({ type: 'LockPCRs', range: assertIndex(range, 'range') });
    },
    async describeNsm(): Promise<NsmDescription> {
      return (await call({ type: 'DescribeNSM' })).description;
    },
    async getRandom(): Promise<Uint8Array> {
      return (await call({ type: 'GetRandom' })).random;
    },
    close: () => transport.close(),
  };
}

function assertIndex(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_INDEX_ARGUMENT) {
    throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" expected an integer 0..${MAX_INDEX_ARGUMENT}, got ${String(value)}`);
  }
  return value;
}

function optionalBytes(value: Uint8Array | undefined, name: string): Uint8Array | null {
  if (value === undefined) return null;
  if (!(value instanceof Uint8Array)) throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" expected Uint8Array`);
  return value;
}
