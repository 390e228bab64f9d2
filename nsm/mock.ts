/**
 * The mock NSM: a stand-in for /dev/nsm where there is none (tests, a laptop), chosen only by name and
 * never as a fallback. It speaks the device's CBOR protocol byte for byte (so the same `createNsm`
 * client and codec drive it) and behaves like the real module (specs/nsm.md §1-§2): 32 SHA-384 PCRs
 * with 0-15 locked at start, the lock rules and NSM error replies of QEMU's model, 1024-byte fields,
 * the 4096-byte request limit (EMSGSIZE, like the driver). Its documents are real ES384 COSE_Sign1
 * signed by a leaf of a mock P-384 PKI shaped like AWS's, so they pass the verifier given the mock root
 * and fail with the AWS root. Creating one logs a loud warning.
 */

import { createHash, randomBytes, sign } from 'node:crypto';
import { createNsm } from './client.js';
import {
  decodeNsmRequest,
  encodeNsmResponse,
  NSM_FIELD_MAX_BYTES,
  NSM_RANDOM_MAX_BYTES,
  NSM_REQUEST_MAX_BYTES,
  type NsmRequest,
  type NsmResponse,
} from './codec.js';
import { encodeAttestationDocument, encodeDocumentPayload, encodeSigStructure, ES384_PROTECTED_HEADER, type DocumentFields } from './document.js';
import { NsmError } from './errors.js';
import { MOCK_LEAF_LIFETIME_MS, renewMockLeaf, type MockPki } from './mock-pki.js';
import { PCR_BYTES, PCR_COUNT, type Nsm, type NsmTransport } from './types.js';

/** PCRs 0-15 are locked at boot on real hardware (specs/nsm.md §2). */
const BOOT_LOCKED_PCRS = 16;
/** Renew the leaf when less than this is left, so a document never carries an almost-expired leaf. */
const LEAF_RENEW_MARGIN_MS = 10 * 60 * 1000;

export interface MockNsmLogger {
  warn(details: object, message: string): void;
}

export interface MockNsmOptions {
  pki: MockPki;
  /** Clock in ms; default Date.now. */
  now?: () => number;
  /** Initial values of PCRs (index -> 48 bytes); default: PCR0-2 set to fixed mock measurements, the rest zero. */
  pcrs?: ReadonlyMap<number, Uint8Array>;
  /** Where the "this is a mock" warning goes; default a JSON line on stderr. */
  logger?: MockNsmLogger;
}

/** Fixed, obviously fake measurements for PCR0-2, so mock documents are not debug-mode documents. */
export function defaultMockPcrs(): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  for (const index of [0, 1, 2]) {
    pcrs.set(index, extendValue(new Uint8Array(PCR_BYTES), new TextEncoder().encode(`enclave-agent mock PCR${index}`)));
  }
  return pcrs;
}

function extendValue(old: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(old).update(data).digest());
}

export const stderrLogger: MockNsmLogger = {
  warn(details, message) {
    process.stderr.write(`${JSON.stringify({ level: 40, time: Date.now(), ...details, msg: message })}\n`);
  },
};

/** What a document says besides its signature and chain. */
export type MockDocumentFields = Omit<DocumentFields, 'certificate' | 'cabundle'>;

export interface MockSigner {
  /** An ES384 COSE_Sign1 document over `fields`, with the current mock leaf and its chain. */
  sign(fields: MockDocumentFields): Uint8Array;
}

/** Signs documents with a mock PKI's leaf, renewing the leaf (in memory) before it runs out. */
export function createMockSigner(initial: MockPki): MockSigner {
  let pki = initial;
  return {
    sign(fields) {
      if (fields.timestamp > pki.leaf.notAfter.getTime() - LEAF_RENEW_MARGIN_MS) {
        pki = renewMockLeaf(pki, { now: new Date(fields.timestamp), leafLifetimeMs: MOCK_LEAF_LIFETIME_MS });
      }
      const payload = encodeDocumentPayload({ ...fields, certificate: pki.leaf.der, cabundle: [pki.root.der, ...pki.intermediates.map((c) => c.der)] });
      const toSign = encodeSigStructure(ES384_PROTECTED_HEADER, payload);
      const signature = sign('sha384', toSign, { key: pki.leaf.privateKey, dsaEncoding: 'ieee-p1363' });
      return encodeAttestationDocument(ES384_PROTECTED_HEADER, payload, new Uint8Array(signature));
    },
  };
}

/** The mock at the byte level: what `openDeviceTransport` is for the device. */
export function createMockTransport(options: MockNsmOptions): NsmTransport {
  const now = options.now ?? Date.now;
  const pki = options.pki;
  const values: Uint8Array[] = [];
  const locked: boolean[] = [];
  for (let i = 0; i < PCR_COUNT; i++) {
    const initial = options.pcrs?.get(i) ?? defaultMockPcrs().get(i) ?? new Uint8Array(PCR_BYTES);
    if (initial.length !== PCR_BYTES) throw new NsmError('NSM_BAD_ARGUMENT', `"pcrs[${i}]" expected ${PCR_BYTES} bytes, got ${initial.length}`);
    values.push(Uint8Array.from(initial));
    locked.push(i < BOOT_LOCKED_PCRS);
  }
  let closed = false;

  (options.logger ?? stderrLogger).warn(
    { nsm: 'mock', moduleId: pki.moduleId },
    'MOCK NSM IN USE: attestation documents are signed by a mock PKI and prove nothing about this machine',
  );

  const signer = createMockSigner(options.pki);

  function attest(request: Extract<NsmRequest, { type: 'Attestation' }>): NsmResponse {
    const pcrs = new Map<number, Uint8Array>();
    for (let i = 0; i < PCR_COUNT; i++) if (locked[i]) pcrs.set(i, values[i]!);
    const document = signer.sign({ moduleId: pki.moduleId, timestamp: now(), pcrs, publicKey: request.publicKey, userData: request.userData, nonce: request.nonce });
    return { type: 'Attestation', document };
  }

  function handle(request: NsmRequest): NsmResponse {
    const error = (name: string): NsmResponse => ({ type: 'Error', error: name });
    switch (request.type) {
      case 'DescribeNSM':
        return {
          type: 'DescribeNSM',
          description: {
            versionMajor: 1,
            versionMinor: 0,
            versionPatch: 0,
            moduleId: pki.moduleId,
            maxPcrs: PCR_COUNT,
            lockedPcrs: locked.flatMap((isLocked, i) => (isLocked ? [i] : [])),
            digest: 'SHA384',
          },
        };
      case 'GetRandom':
        return { type: 'GetRandom', random: new Uint8Array(randomBytes(NSM_RANDOM_MAX_BYTES)) };
      case 'DescribePCR':
        if (request.index >= PCR_COUNT) return error('InvalidIndex');
        return { type: 'DescribePCR', pcr: { locked: locked[request.index]!, value: Uint8Array.from(values[request.index]!) } };
      case 'ExtendPCR':
        if (request.index >= PCR_COUNT) return error('InvalidIndex');
        if (locked[request.index]) return error('ReadOnlyIndex');
        if (request.data.length > NSM_FIELD_MAX_BYTES) return error('InputTooLarge');
        values[request.index] = extendValue(values[request.index]!, request.data);
        return { type: 'ExtendPCR', value: Uint8Array.from(values[request.index]!) };
      case 'LockPCR':
        if (request.index >= PCR_COUNT) return error('InvalidIndex');
        if (locked[request.index]) return error('ReadOnlyIndex');
        locked[request.index] = true;
        return { type: 'LockPCR' };
      case 'LockPCRs':
        if (request.range > PCR_COUNT) return error('InvalidIndex');
        for (let i = 0; i < request.range; i++) locked[i] = true;
        return { type: 'LockPCRs' };
      case 'Attestation':
        for (const field of [request.userData, request.nonce, request.publicKey]) {
          if (field !== null && field.length > NSM_FIELD_MAX_BYTES) return error('InputTooLarge');
        }
        return attest(request);
    }
  }

  return {
    kind: 'mock',
    async request(requestBytes: Uint8Array): Promise<Uint8Array> {
      if (closed) throw new NsmError('NSM_DEVICE_CLOSED', 'mock NSM is closed');
      if (requestBytes.length > NSM_REQUEST_MAX_BYTES) {
        throw new NsmError('NSM_EMSGSIZE', `request of ${requestBytes.length} bytes exceeds ${NSM_REQUEST_MAX_BYTES}`, { errno: 'EMSGSIZE' });
      }
      let request: NsmRequest;
      try {
        request = decodeNsmRequest(requestBytes);
      } catch {
        return encodeNsmResponse({ type: 'Error', error: 'InvalidOperation' });
      }
      return encodeNsmResponse(handle(request));
    },
    async close(): Promise<void> {
      closed = true;
    },
  };
}

/** The mock as an `Nsm`. */
export function openMockNsm(options: MockNsmOptions): Nsm {
  return createNsm(createMockTransport(options));
}
