/**
 * The server's output encodings, built so a large answer is never copied to be framed: the head of an
 * envelope (specs/steve.md §3) up to and including the `ciphertext` byte-string header, and the head of
 * an application response plaintext (§3) up to and including the `body` byte-string header. The body
 * itself and the ciphertext pieces follow as they are. The bytes are exactly what the protocol's
 * `encodeEnvelope` / `encodeAppResponse` give for the whole message (deterministic CBOR, §2):
 * `wire.test.ts` compares them for every length class of the header. They are written directly rather
 * than through the generic encoder because they run once per proxied request (the generic path was
 * about 9 µs of a 1 KiB answer's framing; this one is about 1 µs).
 */

import { encodeCbor } from '../../cbor/index.js';
import { SESSION_ID_BYTES, SEQUENCE_BYTES, VERSION, concatBytes, writeU64, type AppResponse } from '../protocol/index.js';
import { SteveError } from '../errors.js';

/** The CBOR head of a byte string (major type 2) of `length` bytes, in its shortest form (§2). */
export function byteStringHead(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new SteveError('STEVE_BAD_ARGUMENT', '"length" expected a non-negative integer');
  if (length < 24) return Uint8Array.of(0x40 | length);
  if (length <= 0xff) return Uint8Array.of(0x58, length);
  if (length <= 0xffff) return Uint8Array.of(0x59, length >>> 8, length & 0xff);
  if (length <= 0xffffffff) return Uint8Array.of(0x5a, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  throw new SteveError('STEVE_BAD_ARGUMENT', 'byte string over 4 GiB');
}

// {version: 2, session_id: h'<16>', sequence: h'<8>', ciphertext: ...} in the §3 table order.
const ENVELOPE_TEMPLATE = concatBytes(
  Uint8Array.of(0xa4),
  encodeCbor('version'),
  encodeCbor(VERSION),
  encodeCbor('session_id'),
  byteStringHead(SESSION_ID_BYTES),
  new Uint8Array(SESSION_ID_BYTES),
  encodeCbor('sequence'),
  byteStringHead(SEQUENCE_BYTES),
  new Uint8Array(SEQUENCE_BYTES),
  encodeCbor('ciphertext'),
);
const SEQUENCE_OFFSET = ENVELOPE_TEMPLATE.length - encodeCbor('ciphertext').length - SEQUENCE_BYTES;
const SESSION_ID_OFFSET = SEQUENCE_OFFSET - encodeCbor('sequence').length - 1 - SESSION_ID_BYTES;

/** The envelope up to its ciphertext: the ciphertext (`ciphertextLength` bytes, tag included) follows. */
export function envelopeHead(sessionId: Uint8Array, sequence: number, ciphertextLength: number): Uint8Array {
  if (!(sessionId instanceof Uint8Array) || sessionId.length !== SESSION_ID_BYTES) throw new SteveError('STEVE_BAD_ARGUMENT', `"sessionId" expected ${SESSION_ID_BYTES} bytes`);
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an integer in 0..2^53-1');
  const lengthHead = byteStringHead(ciphertextLength);
  const out = new Uint8Array(ENVELOPE_TEMPLATE.length + lengthHead.length);
  out.set(ENVELOPE_TEMPLATE, 0);
  out.set(sessionId, SESSION_ID_OFFSET);
  writeU64(out, SEQUENCE_OFFSET, sequence);
  out.set(lengthHead, ENVELOPE_TEMPLATE.length);
  return out;
}

// RFC 9110 §5.6.2 token and §5.5 field value: the grammar the protocol's encodeAppResponse enforces.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
const MIN_STATUS = 200;
const MAX_STATUS = 599;

/** Writes the head of a CBOR item of `major` type with argument `value` (shortest form, §2) at `at`. */
function writeHead(out: Buffer, at: number, major: number, value: number): number {
  const type = major << 5;
  if (value < 24) {
    out[at] = type | value;
    return at + 1;
  }
  if (value <= 0xff) {
    out[at] = type | 24;
    out[at + 1] = value;
    return at + 2;
  }
  if (value <= 0xffff) {
    out[at] = type | 25;
    out.writeUInt16BE(value, at + 1);
    return at + 3;
  }
  out[at] = type | 26;
  out.writeUInt32BE(value, at + 1);
  return at + 5;
}

function headBytes(value: number): number {
  return value < 24 ? 1 : value <= 0xff ? 2 : value <= 0xffff ? 3 : 5;
}

/**
 * A CBOR text string of `length` UTF-8 bytes (the values are Latin-1 text, so chars 0x80-0xff take two
 * bytes). A string whose UTF-8 length equals its length is ASCII, and is copied as such (faster).
 */
function writeText(out: Buffer, at: number, value: string, length: number): number {
  const start = writeHead(out, at, 3, length);
  return start + out.write(value, start, length, length === value.length ? 'latin1' : 'utf8');
}

// The fixed keys, encoded once.
const KEY_STATUS = Buffer.from(encodeCbor('status'));
const KEY_HEADERS = Buffer.from(encodeCbor('headers'));
const KEY_BODY = Buffer.from(encodeCbor('body'));

/**
 * The application response plaintext up to its body: {status, headers: [[name, value]...], body} in
 * the order and bytes of `encodeAppResponse` (§3; `body` last, null when empty), ending with the head of
 * the `bodyLength`-byte body string, whose bytes follow. One allocation; the header grammar is checked
 * here as the protocol's encoder checks it (names RFC 9110 tokens, values field values, status
 * 200..599), STEVE_BAD_ARGUMENT otherwise. `wire.test.ts` holds it equal to `encodeAppResponse`.
 */
export function appResponseHead(status: number, headers: AppResponse['headers'], bodyLength: number): Uint8Array {
  if (!Number.isSafeInteger(status) || status < MIN_STATUS || status > MAX_STATUS) throw new SteveError('STEVE_BAD_ARGUMENT', `"status" expected an integer in ${MIN_STATUS}..${MAX_STATUS}`);
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0 || bodyLength > 0xffffffff) throw new SteveError('STEVE_BAD_ARGUMENT', '"bodyLength" expected an integer in 0..2^32-1');
  let size = 1 + KEY_STATUS.length + headBytes(status) + KEY_HEADERS.length + headBytes(headers.length) + KEY_BODY.length + (bodyLength === 0 ? 1 : headBytes(bodyLength));
  // UTF-8 lengths of each name and value, measured once for the size and again used to write.
  const lengths: number[] = [];
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new SteveError('STEVE_BAD_ARGUMENT', 'a header is not a [name, value] pair');
    const [name, value] = pair;
    if (typeof name !== 'string' || !TOKEN_RE.test(name)) throw new SteveError('STEVE_BAD_ARGUMENT', 'a header name is not a token');
    if (typeof value !== 'string' || !FIELD_VALUE_RE.test(value)) throw new SteveError('STEVE_BAD_ARGUMENT', 'a header value has a forbidden character');
    const nameLength = name.length; // a token is ASCII
    const valueLength = Buffer.byteLength(value, 'utf8');
    lengths.push(nameLength, valueLength);
    size += 1 + headBytes(nameLength) + nameLength + headBytes(valueLength) + valueLength;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = 0xa3; // map of 3: status, headers, body
  let at = 1 + KEY_STATUS.copy(out, 1);
  at = writeHead(out, at, 0, status);
  at += KEY_HEADERS.copy(out, at);
  at = writeHead(out, at, 4, headers.length);
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    out[at++] = 0x82; // a [name, value] pair
    at = writeText(out, at, name, lengths[2 * i]!);
    at = writeText(out, at, value, lengths[2 * i + 1]!);
  }
  at += KEY_BODY.copy(out, at);
  at = bodyLength === 0 ? ((out[at] = 0xf6), at + 1) : writeHead(out, at, 2, bodyLength);
  if (at !== size) throw new SteveError('STEVE_BAD_ARGUMENT', 'application response head length mismatch');
  return out;
}
