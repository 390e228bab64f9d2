/**
 * The fixed values of the STEVE v2 wire format: identifiers, suites and their key-material sizes, HKDF
 * labels, record types and directions, field lengths and size limits. Every number here is either read
 * from specs/steve.md (the section is cited) or marked "ours" with the arithmetic behind it. Nothing
 * here computes or allocates beyond the constants themselves.
 */

// specs/steve.md §1
export const PROTOCOL_ID = 'STEVE-E2P-V2';
export const VERSION = 2;
/** ASCII `STEVE-E2P-V2` followed by one 0x00 byte: 13 bytes (§1). Frozen copies via `magic()`. */
const MAGIC_BYTES = Uint8Array.from([...PROTOCOL_ID].map((c) => c.charCodeAt(0)).concat(0));
export const MAGIC_LENGTH = 13;
/** A fresh copy of MAGIC (a Uint8Array cannot be frozen, so callers never get the shared one). */
export function magic(): Uint8Array {
  return MAGIC_BYTES.slice();
}

/** The two suites (§1). A deployment pins exactly one; there is no negotiation. */
export const SUITES = ['X25519', 'XWING-DRAFT10'] as const;
export type Suite = (typeof SUITES)[number];

export function isSuite(value: unknown): value is Suite {
  return value === 'X25519' || value === 'XWING-DRAFT10';
}

/**
 * Key material per suite (§1). X-Wing draft-10: the client sends its 1216-byte encapsulation key
 * (ML-KEM-768's 1184 + X25519's 32), the server the 1120-byte ciphertext (ML-KEM-768's 1088 + 32).
 */
export const CLIENT_KEY_MATERIAL_BYTES: Readonly<Record<Suite, number>> = Object.freeze({ X25519: 32, 'XWING-DRAFT10': 1216 });
export const SERVER_KEY_MATERIAL_BYTES: Readonly<Record<Suite, number>> = Object.freeze({ X25519: 32, 'XWING-DRAFT10': 1120 });

// Field lengths, §3 and §4.
export const NONCE_BYTES = 32;
export const CONTEXT_HASH_BYTES = 32;
export const SESSION_ID_BYTES = 16;
/** The envelope's `sequence` is an 8-byte big-endian byte string, not a CBOR integer (§3). */
export const SEQUENCE_BYTES = 8;
export const SHARED_SECRET_BYTES = 32;
export const TRANSCRIPT_HASH_BYTES = 32;
export const KEY_BYTES = 32;
export const IV_PREFIX_BYTES = 4;
export const BINDER_BYTES = 32;
/** iv_prefix(4) || u64be(sequence) (§4). */
export const RECORD_NONCE_BYTES = IV_PREFIX_BYTES + SEQUENCE_BYTES;
/** AES-256-GCM tag (§1). */
export const TAG_BYTES = 16;
/** MAGIC(13) || message_type(1) || direction(1) || session_id(16) || u64be(sequence)(8) = 39 (§4). */
export const AAD_BYTES = MAGIC_LENGTH + 1 + 1 + SESSION_ID_BYTES + SEQUENCE_BYTES;
/**
 * The largest sequence we encode or accept: Number.MAX_SAFE_INTEGER (2^53 - 1). Ours: the wire allows
 * 2^64 - 1, but at one record per microsecond 2^53 lasts 285 years, and a JS number stays exact below it.
 */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

// HKDF-SHA256 labels (§4), as ASCII info strings.
export const LABEL_C2S_KEY = 'steve-e2p-v2/c2s-key';
export const LABEL_S2C_KEY = 'steve-e2p-v2/s2c-key';
export const LABEL_C2S_IV = 'steve-e2p-v2/c2s-iv';
export const LABEL_S2C_IV = 'steve-e2p-v2/s2c-iv';
export const LABEL_BINDER = 'steve-e2p-v2/attestation-binder';
/** The stream extension's two keys (ours: steve/protocol/stream.md §2), from the same schedule. */
export const LABEL_STREAM_C2S_KEY = 'steve-e2p-v2/stream-c2s-key';
export const LABEL_STREAM_S2C_KEY = 'steve-e2p-v2/stream-s2c-key';

/** Record message types in the AAD (§4). */
export const MESSAGE_TYPE = Object.freeze({ CONFIRMATION: 0, APPLICATION: 1 } as const);
export type MessageType = (typeof MESSAGE_TYPE)[keyof typeof MESSAGE_TYPE];

/** Record directions in the AAD (§4). */
export const DIRECTION = Object.freeze({ C2S: 0, S2C: 1 } as const);
export type Direction = (typeof DIRECTION)[keyof typeof DIRECTION];

/** The confirmation records use sequence 0 (§5 steps 4-5); application sequences start at 1 (§5 step 6). */
export const CONFIRMATION_SEQUENCE = 0;
export const FIRST_APPLICATION_SEQUENCE = 1;

/** Per-session sliding replay window over application sequences (§7); clients keep at most 64 outstanding (§5). */
export const REPLAY_WINDOW_SIZE = 64;

// Size limits (§6 unless marked ours).
/** Client cap on a session response body (§6). */
export const MAX_SESSION_RESPONSE_BYTES = 65_536;
/** Client cap on a confirmation response body (§6). */
export const MAX_CONFIRMATION_RESPONSE_BYTES = 4_096;
/** Client cap on an application response body: 32 MiB + 64 KiB = 33,554,432 + 65,536 (§6). */
export const MAX_APPLICATION_RESPONSE_BYTES = 33_619_968;
/** A request envelope is at most 32 MiB = 33,554,432 bytes (§6). */
export const MAX_REQUEST_ENVELOPE_BYTES = 33_554_432;
/** STEVE's authors cap the upstream response body at 32 MiB = 33,554,432 bytes (§6). */
export const MAX_UPSTREAM_BODY_BYTES = 33_554_432;
/**
 * The largest application response envelope a server sends: 32 MiB = 33,554,432 bytes. §6 gives clients
 * a cap of 32 MiB + 64 KiB, but the shipped browser client of STEVE's authors refuses any envelope over
 * 32 MiB and drops its session; an answer that would not fit is sent as an encrypted 502
 * `upstream_response_too_large` instead, which every client handles as a failed request.
 */
export const MAX_SERVER_RESPONSE_ENVELOPE_BYTES = 33_554_432;
/**
 * Ours: a session request body. The largest valid one (X-Wing) is 1,370 bytes of CBOR (five keys,
 * 32 + 1216 + 32 bytes of fields); 4 KiB leaves room without letting a peer make us parse more.
 */
export const MAX_SESSION_REQUEST_BYTES = 4_096;
/**
 * Ours: a confirmation request envelope. A valid one is about 110 bytes (32-byte plaintext + 16-byte
 * tag + ids); we take the same 4 KiB the clients allow for the answer (§6).
 */
export const MAX_CONFIRMATION_REQUEST_BYTES = 4_096;

// Message shapes (§3). Each message is one CBOR map with a fixed set of keys, so its first byte already
// says whether it can be one: a definite map of at most this many entries (fields.ts expectMapPrefix).
/** version, key_exchange, client_nonce, client_key_material, context_hash (§3). */
export const SESSION_REQUEST_ENTRIES = 5;
/** version, key_exchange, session_id, server_key_material, attestation_document, expires_in_seconds (§3). */
export const SESSION_RESPONSE_ENTRIES = 6;
/** version, session_id, sequence, ciphertext (§3). */
export const ENVELOPE_ENTRIES = 4;
/** method, path, headers, body (§3). */
export const APP_REQUEST_ENTRIES = 4;
/** status, headers, body, and the optional error (§3). */
export const APP_RESPONSE_ENTRIES = 4;
/**
 * Ours: header fields in one application request (map entries) or response ([name, value] pairs).
 * The clients allow 64 KiB on top of the 32 MiB body for everything else in a response (§6: 33,619,968 =
 * 33,554,432 + 65,536), and the smallest pair is 4 bytes of CBOR (array head, a one-letter name with its
 * head, an empty value's head): 65,536 / 4 = 16,384. Our server cannot send more: undici refuses an
 * upstream header section over 16 KiB of names and values, at least 1 byte each. A request's fields
 * cross an HTTP/1.1 hop to the app, whose parser takes tens of KiB of header section at most (Node's
 * 16 KiB, at least 4 bytes a field line: 4,096 fields), so the same 16,384 refuses no working request.
 */
export const MAX_HEADER_FIELDS = 16_384;
/**
 * Ours: CBOR data items in an application response's `error` (§3: a JSON-able value). Our server sends
 * one text string (steve/server/upstream.ts); 1,024 leaves a JSON object of a few hundred fields.
 */
export const MAX_ERROR_ITEMS = 1_024;
