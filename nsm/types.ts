/**
 * The NSM interface every implementation (the device behind /dev/nsm, the mock) provides, and the
 * transport both speak underneath: CBOR request bytes in, CBOR response bytes out (specs/nsm.md §2).
 * Pure types only.
 */

/** Number of PCRs and their size (specs/nsm.md §2: 32 PCRs of SHA-384). */
export const PCR_COUNT = 32;
export const PCR_BYTES = 48;

export interface AttestOptions {
  /** Up to 1024 bytes each on real hardware (specs/nsm.md §2); absent means CBOR null. */
  nonce?: Uint8Array;
  userData?: Uint8Array;
  publicKey?: Uint8Array;
}

export interface PcrDescription {
  locked: boolean;
  value: Uint8Array;
}

export interface NsmDescription {
  versionMajor: number;
  versionMinor: number;
  versionPatch: number;
  moduleId: string;
  maxPcrs: number;
  lockedPcrs: number[];
  digest: string;
}

export interface Nsm {
  /** Which implementation this is; the mock never pretends to be the device. */
  readonly kind: 'device' | 'mock';
  /** Returns the raw COSE_Sign1 attestation document exactly as the module produced it. */
  attest(options?: AttestOptions): Promise<Uint8Array>;
  describePcr(index: number): Promise<PcrDescription>;
  /** Extends PCR `index` with `data` and returns the new value: SHA-384(old || data). */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  /** Locks PCRs [0, range). */
  lockPcrs(range: number): Promise<void>;
  describeNsm(): Promise<NsmDescription>;
  /** Random bytes from the module (up to 256 per call). */
  getRandom(): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** The byte-level channel under an `Nsm`: one CBOR request in, one CBOR response out. */
export interface NsmTransport {
  readonly kind: 'device' | 'mock';
  request(requestBytes: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}
