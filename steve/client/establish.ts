/**
 * Establishing one STEVE session, the client's half of specs/steve.md §5 steps 1-5, all before any
 * application data and within one deadline (10 s by default):
 *
 *   1. a fresh 32-byte client_nonce and an ephemeral key pair for the pinned suite; POST /e2p/v2/session
 *      (answer capped at 65,536 bytes, §6); the answer must name the pinned suite (§1: no negotiation);
 *   3. the document: verifyAttestationDocument (protected header exactly ES384, chain to the pinned root,
 *      validity, signature, nonce == client_nonce, all-zero PCR0-2 refused unless allowDebug); then the
 *      key exchange and key schedule; then the user_data binding (all five fields, constant time, and the
 *      optional `extensions` list of stream.md §1, kept on the Session); then
 *      the PCR policy (pinned profiles now; TOFU compared now, recorded only at the very end);
 *   4. POST /e2p/v2/confirm with the sequence-0 CONFIRMATION record sealing transcript_hash;
 *   5. the server's confirmation (capped at 4,096 bytes) must carry this session id and sequence 0, open
 *      under s2c, and seal exactly transcript_hash.
 *
 * Each check has its own code (errors.ts). The shared secret is wiped by the key schedule; the client's
 * secret key and, on failure, the session keys are wiped here. No clock or randomness of its own: both
 * come in through the options.
 */

import { verifyAttestationDocument, type P384Verifier, type VerifiedDocument } from '../../nsm/verifier.js';
import {
  CONFIRMATION_SEQUENCE,
  DIRECTION,
  MAX_CONFIRMATION_RESPONSE_BYTES,
  MAX_SESSION_RESPONSE_BYTES,
  MESSAGE_TYPE,
  NONCE_BYTES,
  checkBindingUserData,
  constantTimeEqual,
  decodeEnvelope,
  decodeSessionResponse,
  deriveSessionKeys,
  encodeEnvelope,
  encodeSessionRequest,
  keyExchangeFor,
  openRecord,
  sealRecord,
  transcriptHash,
  wipeSessionKeys,
  type Aead,
  type RandomBytes,
  type SessionKeys,
  type SessionResponse,
  type Suite,
} from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { SteveClientError, type SteveClientStage } from './errors.js';
import { createDeadline, httpError, postCbor, readCapped, type Deadline, type FetchFunction } from './http.js';
import { matchProfiles, tofuRecord, type PcrPolicy, type PcrTrust } from './pcr-policy.js';

export const SESSION_PATH = '/e2p/v2/session';
export const CONFIRM_PATH = '/e2p/v2/confirm';
export const REQUEST_PATH = '/e2p/v2/request';

export interface EstablishOptions {
  /** The enclave's origin, `https://host[:port]`, without a trailing slash. */
  origin: string;
  suite: Suite;
  policy: PcrPolicy;
  contextHash: Uint8Array;
  fetch: FetchFunction;
  now: () => number;
  random: RandomBytes;
  aead: Aead;
  timeoutMs: number;
  root?: Uint8Array;
  allowDebug: boolean;
  verifier?: P384Verifier;
}

/** A confirmed session, ready for application records. */
export interface Session {
  sessionId: Uint8Array;
  sessionIdHex: string;
  suite: Suite;
  keys: SessionKeys;
  /** `now()` just before the session request was sent: never later than the server's creation time. */
  createdAtMs: number;
  pcrTrust: PcrTrust;
  /** The server's pending-session lifetime (§7: 30 s), as it announced it. */
  expiresInSeconds: number;
  /**
   * Our extensions the server listed in the binding's `extensions` field (stream.md §1), as the signed
   * document carries them; empty for the five-field binding of §5. Streaming is used only when it holds
   * STREAM_EXTENSION.
   */
  extensions: readonly string[];
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** A SteveError from the protocol core, as the client's code for `stage`. */
function protocolError(error: unknown, stage: SteveClientStage, what: string): SteveClientError {
  if (error instanceof SteveClientError) return error;
  if (error instanceof SteveError && error.code === 'STEVE_SUITE') {
    return new SteveClientError('STEVE_CLIENT_SUITE', stage, `${what}: ${error.message}`, { cause: error });
  }
  const detail = error instanceof SteveError ? `${error.code}: ${error.message}` : 'malformed';
  return new SteveClientError('STEVE_CLIENT_PROTOCOL', stage, `${what}: ${detail}`, { cause: error });
}

/** Draws `length` bytes from the caller's `random`, checked and copied (the caller may reuse its buffer). */
function draw(random: RandomBytes, length: number): Uint8Array {
  const bytes = random(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new SteveClientError('STEVE_CLIENT_CONFIG', 'session', `"random" expected to return ${length} bytes`);
  }
  return bytes.slice();
}

async function loadTofu(policy: Extract<PcrPolicy, { kind: 'tofu' }>, deadline: Deadline): Promise<Map<number, Uint8Array> | null> {
  let stored: unknown;
  try {
    stored = await policy.store.load();
  } catch (error) {
    throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', 'the TOFU store could not be read', { cause: error });
  }
  deadline.check('pcr');
  if (stored === null) return null;
  const valid =
    stored instanceof Map &&
    stored.size > 0 &&
    [...(stored as Map<unknown, unknown>)].every(([index, value]) => Number.isInteger(index) && value instanceof Uint8Array && value.length > 0);
  if (!valid) throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', 'the TOFU store returned something other than null or a non-empty Map of PCR index -> bytes');
  return stored as Map<number, Uint8Array>;
}

/** Steps 1-2: the session request and the parsed, suite-checked answer. */
async function requestSession(
  options: EstablishOptions,
  deadline: Deadline,
  request: Uint8Array,
): Promise<SessionResponse> {
  const what = `POST ${SESSION_PATH}`;
  const response = await postCbor(options.fetch, `${options.origin}${SESSION_PATH}`, request, deadline, 'session', what);
  if (response.status !== 200) throw await httpError(response, deadline, 'session', what);
  const bytes = await readCapped(response, MAX_SESSION_RESPONSE_BYTES, deadline, 'session', what);
  deadline.check('session');
  let parsed: SessionResponse;
  try {
    parsed = decodeSessionResponse(bytes, { maxBytes: MAX_SESSION_RESPONSE_BYTES });
  } catch (error) {
    throw protocolError(error, 'session', 'session response');
  }
  if (parsed.suite !== options.suite) {
    throw new SteveClientError('STEVE_CLIENT_SUITE', 'session', `the server answered with ${parsed.suite}, but this client pins ${options.suite}`);
  }
  return parsed;
}

function verifyDocument(options: EstablishOptions, document: Uint8Array, clientNonce: Uint8Array): VerifiedDocument {
  try {
    return verifyAttestationDocument(document, {
      atMs: options.now(),
      expectedNonce: clientNonce,
      allowDebug: options.allowDebug,
      ...(options.root !== undefined ? { root: options.root } : {}),
      ...(options.verifier !== undefined ? { verifier: options.verifier } : {}),
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new SteveClientError('STEVE_CLIENT_ATTESTATION', 'attestation', `attestation document: ${typeof code === 'string' ? code : 'invalid'}`, { cause: error });
  }
}

/** Steps 4-5: our confirmation out, the server's checked. */
async function confirm(options: EstablishOptions, deadline: Deadline, sessionId: Uint8Array, keys: SessionKeys, hash: Uint8Array): Promise<void> {
  const what = `POST ${CONFIRM_PATH}`;
  const header = { type: MESSAGE_TYPE.CONFIRMATION, sessionId, sequence: CONFIRMATION_SEQUENCE } as const;
  const ciphertext = sealRecord(options.aead, keys, { ...header, direction: DIRECTION.C2S }, hash);
  const body = encodeEnvelope({ sessionId, sequence: CONFIRMATION_SEQUENCE, ciphertext });
  const response = await postCbor(options.fetch, `${options.origin}${CONFIRM_PATH}`, body, deadline, 'confirm', what);
  if (response.status !== 200) throw await httpError(response, deadline, 'confirm', what);
  const bytes = await readCapped(response, MAX_CONFIRMATION_RESPONSE_BYTES, deadline, 'confirm', what);
  deadline.check('confirm');
  let envelope;
  try {
    envelope = decodeEnvelope(bytes, { maxBytes: MAX_CONFIRMATION_RESPONSE_BYTES });
  } catch (error) {
    throw protocolError(error, 'confirm', 'confirmation response');
  }
  if (!constantTimeEqual(envelope.sessionId, sessionId) || envelope.sequence !== CONFIRMATION_SEQUENCE) {
    throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'confirm', 'confirmation response: not this session at sequence 0');
  }
  let plaintext: Uint8Array;
  try {
    plaintext = openRecord(options.aead, keys, { ...header, direction: DIRECTION.S2C }, envelope.ciphertext);
  } catch (error) {
    throw new SteveClientError('STEVE_CLIENT_CONFIRMATION', 'confirm', 'the server\'s confirmation did not open', { cause: error });
  }
  if (!constantTimeEqual(plaintext, hash)) {
    throw new SteveClientError('STEVE_CLIENT_CONFIRMATION', 'confirm', 'the server\'s confirmation does not seal this transcript hash');
  }
}

/** Runs §5 steps 1-5; resolves with a confirmed session or rejects with a coded error. */
export async function establishSession(options: EstablishOptions): Promise<Session> {
  const deadline = createDeadline(options.timeoutMs, 'session establishment');
  let keys: SessionKeys | undefined;
  let clientSecret: Uint8Array | undefined;
  try {
    const stored = options.policy.kind === 'tofu' ? await loadTofu(options.policy, deadline) : null;
    const exchange = keyExchangeFor(options.suite);
    const clientNonce = draw(options.random, NONCE_BYTES);
    const pair = exchange.generateClientKeyPair((length) => draw(options.random, length));
    clientSecret = pair.secret;
    const createdAtMs = options.now();
    const request = encodeSessionRequest({ suite: options.suite, clientNonce, clientKeyMaterial: pair.material, contextHash: options.contextHash });
    const answer = await requestSession(options, deadline, request);

    // Step 3, in the spec's order: document, binding, PCR policy.
    const document = verifyDocument(options, answer.attestationDocument, clientNonce);
    deadline.check('attestation');
    let shared: Uint8Array;
    try {
      shared = exchange.clientFinish(clientSecret, answer.serverKeyMaterial);
    } catch (error) {
      throw protocolError(error, 'session', 'server key material');
    }
    const hash = transcriptHash({
      suite: options.suite,
      clientNonce,
      clientKeyMaterial: pair.material,
      serverKeyMaterial: answer.serverKeyMaterial,
      sessionId: answer.sessionId,
      contextHash: options.contextHash,
    });
    keys = deriveSessionKeys(shared, hash);
    let extensions: readonly string[];
    try {
      extensions = checkBindingUserData(document.userData ?? new Uint8Array(0), { suite: options.suite, sessionId: answer.sessionId, transcriptHash: hash, binder: keys.binder });
    } catch (error) {
      throw new SteveClientError('STEVE_CLIENT_BINDING', 'binding', 'the document\'s user_data does not bind this session', { cause: error });
    }

    let pcrTrust: PcrTrust;
    let record: Map<number, Uint8Array> | undefined;
    if (options.policy.kind === 'pinned') {
      const profile = matchProfiles(document.pcrs, options.policy.profiles);
      if (profile === undefined) {
        throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', `no pinned PCR profile matches (${options.policy.profiles.map((p) => JSON.stringify(p.name)).join(', ')})`);
      }
      pcrTrust = { policy: 'pinned', profile };
    } else if (stored !== null) {
      if (matchProfiles(document.pcrs, [{ name: 'tofu', pcrs: stored }]) === undefined) {
        throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', 'the PCRs differ from the ones recorded on first use');
      }
      pcrTrust = { policy: 'tofu', result: 'tofu-matched' };
    } else {
      if (document.debug) throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', 'refusing to record the all-zero PCRs of a debug-mode document on first use');
      record = tofuRecord(document.pcrs);
      pcrTrust = { policy: 'tofu', result: 'tofu-recorded' };
    }
    deadline.check('pcr');

    await confirm(options, deadline, answer.sessionId, keys, hash);
    deadline.check('confirm');

    if (record !== undefined && options.policy.kind === 'tofu') {
      // Everything verified: only now does this image become the pin.
      try {
        await options.policy.store.save(record);
      } catch (error) {
        throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', 'the PCRs could not be recorded in the TOFU store', { cause: error });
      }
    }
    return {
      sessionId: answer.sessionId,
      sessionIdHex: toHex(answer.sessionId),
      suite: options.suite,
      keys,
      createdAtMs,
      pcrTrust,
      expiresInSeconds: answer.expiresInSeconds,
      extensions,
    };
  } catch (error) {
    if (keys !== undefined) wipeSessionKeys(keys);
    if (error instanceof SteveClientError) throw error;
    // A bug or an unexpected throw from a dependency: still coded, never a bare TypeError.
    throw protocolError(error, 'session', 'session establishment');
  } finally {
    clientSecret?.fill(0);
    deadline.dispose();
  }
}

