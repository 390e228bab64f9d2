/**
 * Legacy STEVE v1 (specs/steve.md §8): the X25519 + Ed25519 design some deployed clients still speak.
 * Off unless the deployment turns it on (`--legacy-v1=true`): v1 has no sequence numbers, so its replay
 * protection is a cache, and its answers are not bound to the request they answer (a host that holds two
 * answers under one key can swap them). v2 has neither weakness.
 *
 * - `POST /e2p/v1/create_shared_key` `{"public_key_bytes":[32 ints],"nonce":[16 ints]}` answers
 *   `{"public_key":[32],"signature":[64],"enclave_encrypted_shared_key":[...]}`: a fresh X25519 key, an
 *   Ed25519 signature by the enclave's identity key (the `verifying_key` of /attestation's user_data)
 *   over nonce(16) || server_public(32), and a token. key = HKDF-SHA256(ikm = X25519 secret, salt empty,
 *   info "key", 32).
 * - A protected request is a POST to the original URL with `Content-Type: application/octet-stream`,
 *   `X-E2P-Key: base64(token)`, `X-E2P-Original-Method`, body IV(12) || GCM(CBOR {method, path, headers,
 *   body}); the answer is IV(12) || GCM(CBOR {status, headers, body}).
 *
 * Decisions (ours, §8 leaves them open):
 * - Token = 0x01 || iv(12) || AES-256-GCM(token key, iv, aad "steve-e2p-v1/token", u64be(expiry ms) ||
 *   key(32)) || tag(16), 69 bytes. The token key is 32 random bytes drawn at start and kept only in the
 *   enclave's memory, so only this process can recover the session key; a restart invalidates tokens.
 *   Tokens expire 30 minutes after issue (the v2 session lifetime, §7). No server state per token.
 * - The inner messages have v2's shapes and rules (§3): request headers a map of lower-case names, the
 *   response headers [name, value] pairs; GCM without AAD (§8 names none); a random IV per answer.
 * - The authenticated inner method and path are what is forwarded; `X-E2P-Original-Method` must equal
 *   the inner method (a mismatch is 400), the outer URL is not trusted (the host may rewrite it).
 * - v1 has no sequence numbers; a cache of the GCM tags of requests sent to the app answers a replay
 *   409. An entry lives as long as its token (after that the token, and any request under it, is
 *   refused anyway) and is never evicted before: when the cache is full, new v1 requests are refused 429
 *   busy instead of forgetting a tag a host could then replay. A tag is recorded only for a record that
 *   opened and decoded as a valid request (and is then sent to the app), so records that are not requests
 *   cannot fill it; each token may record at most MAX_REQUESTS_PER_TOKEN, so one client cannot take the
 *   whole cache with one key.
 * - v1 answers are sealed under the session key with a random IV and carry nothing of the request: a
 *   client cannot tell which of its requests an answer belongs to. Documented, not fixable in v1.
 * - Statuses as v2 (§7): bad token or record 401 session_invalid, malformed 400, over 32 MiB 413.
 */

import { createHmac, sign, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_REQUEST_ENVELOPE_BYTES, MAX_SERVER_RESPONSE_ENVELOPE_BYTES, decodeAppRequest, encodeAppResponse } from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { nodeAesGcm, sealParts } from './aead-node.js';
import { readBody, type MemoryBudget } from './body.js';
import { nodeHkdfSha256 } from './kdf-node.js';
import { drawSecret } from './secret-bytes.js';
import { holdUntilClosed, sendPieces } from './send.js';
import { madeAnswer, type Upstream, type UpstreamAnswer } from './upstream.js';
import { appResponseHead } from './wire.js';
import { ephemeralKeyPair, x25519SharedSecret } from './x25519-node.js';

export const V1_CREATE_PATH = '/e2p/v1/create_shared_key';
/** Ours: a create_shared_key body is about 250 bytes of JSON; 4 KiB as for the v2 session request. */
const CREATE_BODY_MAX_BYTES = 4096;
const CREATE_BODY_TIMEOUT_MS = 10_000;
const REQUEST_BODY_TIMEOUT_MS = 30_000;
/** Tokens live as long as a v2 session (§7). */
export const V1_TOKEN_LIFETIME_MS = 30 * 60 * 1000;
const TOKEN_VERSION = 0x01;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** version(1) + iv(12) + expiry(8) + key(32) + tag(16). */
export const V1_TOKEN_BYTES = 1 + IV_BYTES + 8 + KEY_BYTES + TAG_BYTES;
const TOKEN_AAD = new TextEncoder().encode('steve-e2p-v1/token');
const NO_AAD = new Uint8Array(0);
/** §8: the session key is HKDF-SHA256 with an empty salt and info "key". */
const EMPTY_SALT = new Uint8Array(0);
const KEY_INFO = new TextEncoder().encode('key');
/** Ours: request tags the replay cache holds at once (a 44-character key and an expiry each: a few MiB). */
export const V1_REPLAY_CACHE_ENTRIES = 65_536;
/** Ours: requests one token may send in its 30-minute life (its share of the replay cache); more are 429. */
export const V1_MAX_REQUESTS_PER_TOKEN = 4096;
/** Ours: a full cache is swept for expired entries at most this often (each sweep is O(entries)). */
const SWEEP_INTERVAL_MS = 1000;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export interface LegacyV1Options {
  /** The enclave's Ed25519 identity key (private). */
  identityKey: KeyObject;
  random: (length: number) => Uint8Array;
  now: () => number;
  upstream: Upstream;
  budget: MemoryBudget;
  /** A socket that takes no answer bytes for this long is closed (send.ts). */
  sendTimeoutMs: number;
  /** Tests only: the replay cache's size and the per-token quota. */
  replayCacheEntries?: number;
  maxRequestsPerToken?: number;
}

export interface LegacyV1 {
  createSharedKey(req: IncomingMessage, res: ServerResponse, state: { bodyRead: boolean }): Promise<number>;
  protectedRequest(req: IncomingMessage, res: ServerResponse, state: { bodyRead: boolean }): Promise<number>;
}

function protocol(message: string): SteveError {
  return new SteveError('STEVE_PROTOCOL', `v1: ${message}`);
}

function byteArray(value: unknown, length: number, name: string): Uint8Array {
  if (!Array.isArray(value) || value.length !== length) throw protocol(`"${name}" expected an array of ${length} integers`);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 255) throw protocol(`"${name}" holds a non-byte`);
    out[i] = item;
  }
  return out;
}

function parseCreateRequest(body: Buffer): { publicKey: Uint8Array; nonce: Uint8Array } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw protocol('create_shared_key body is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw protocol('create_shared_key body is not an object');
  const keys = Object.keys(parsed);
  if (keys.length !== 2 || !keys.includes('public_key_bytes') || !keys.includes('nonce')) throw protocol('create_shared_key expects exactly public_key_bytes and nonce');
  const record = parsed as Record<string, unknown>;
  return { publicKey: byteArray(record.public_key_bytes, 32, 'public_key_bytes'), nonce: byteArray(record.nonce, 16, 'nonce') };
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

export function createLegacyV1(options: LegacyV1Options): LegacyV1 {
  const { identityKey, random, now, upstream, budget, sendTimeoutMs } = options;
  const cacheEntries = options.replayCacheEntries ?? V1_REPLAY_CACHE_ENTRIES;
  const perToken = options.maxRequestsPerToken ?? V1_MAX_REQUESTS_PER_TOKEN;
  const tokenKey = drawSecret(random, KEY_BYTES);
  // Tag id -> the expiry of its token.
  const seenTags = new Map<string, number>();
  // Token id -> requests recorded under it, and the token's expiry.
  const tokenUse = new Map<string, { count: number; expiresAtMs: number }>();
  let lastSweepAt = Number.NEGATIVE_INFINITY;
  // Tags and tokens are public (they travel on the wire), but keyed so the cache's strings are not chosen by a peer.
  const tagKey = drawSecret(random, KEY_BYTES);

  function sealToken(key: Uint8Array, expiresAtMs: number): Uint8Array {
    const iv = random(IV_BYTES);
    const plaintext = new Uint8Array(8 + KEY_BYTES);
    new DataView(plaintext.buffer).setBigUint64(0, BigInt(expiresAtMs));
    plaintext.set(key, 8);
    const sealed = nodeAesGcm.seal(tokenKey, iv, TOKEN_AAD, plaintext);
    plaintext.fill(0);
    const token = new Uint8Array(V1_TOKEN_BYTES);
    token[0] = TOKEN_VERSION;
    token.set(iv, 1);
    token.set(sealed, 1 + IV_BYTES);
    return token;
  }

  /** The session key a token carries; STEVE_SESSION_INVALID when it is not ours or has expired. */
  function openToken(header: string | string[] | undefined): { key: Uint8Array; expiresAtMs: number; tokenId: string } {
    if (typeof header !== 'string' || !BASE64_RE.test(header)) throw new SteveError('STEVE_SESSION_INVALID', 'v1: X-E2P-Key missing or not base64');
    const token = Buffer.from(header, 'base64');
    if (token.length !== V1_TOKEN_BYTES || token.toString('base64') !== header || token[0] !== TOKEN_VERSION) {
      throw new SteveError('STEVE_SESSION_INVALID', 'v1: token of the wrong form');
    }
    const plaintext = nodeAesGcm.open(tokenKey, token.subarray(1, 1 + IV_BYTES), TOKEN_AAD, token.subarray(1 + IV_BYTES));
    if (plaintext === null) throw new SteveError('STEVE_SESSION_INVALID', 'v1: token did not open');
    const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    const expiresAtMs = Number(view.getBigUint64(0));
    // In an ArrayBuffer of its own: a small Uint8Array's bytes would be left behind in V8's heap when
    // node:crypto first reads it (kdf-node.ts).
    const key = new Uint8Array(new ArrayBuffer(KEY_BYTES));
    key.set(plaintext.subarray(8));
    plaintext.fill(0);
    if (now() >= expiresAtMs) {
      key.fill(0);
      throw new SteveError('STEVE_SESSION_INVALID', 'v1: token expired');
    }
    return { key, expiresAtMs, tokenId: cacheId(token) };
  }

  function cacheId(bytes: Uint8Array): string {
    return createHmac('sha256', tagKey).update(bytes).digest('base64');
  }

  /** Drops expired tags and token counts (when the cache is full, at most once a second). */
  function sweep(): void {
    const at = now();
    lastSweepAt = at;
    for (const [id, expiry] of seenTags) if (expiry <= at) seenTags.delete(id);
    for (const [id, use] of tokenUse) if (use.expiresAtMs <= at) tokenUse.delete(id);
  }

  /** STEVE_REPLAY when this record's tag was recorded before (an entry outlives nothing it protects). */
  function assertFresh(tagId: string): void {
    if (seenTags.has(tagId)) throw new SteveError('STEVE_REPLAY', 'v1: request replayed');
  }

  /** Records a tag that is about to reach the app; STEVE_BUSY when the cache or the token's quota is full. */
  function record(tagId: string, tokenId: string, expiresAtMs: number): void {
    if (seenTags.size >= cacheEntries && now() - lastSweepAt >= SWEEP_INTERVAL_MS) sweep();
    if (seenTags.size >= cacheEntries) throw new SteveError('STEVE_BUSY', 'v1: replay cache full');
    const use = tokenUse.get(tokenId) ?? { count: 0, expiresAtMs };
    if (use.count >= perToken) throw new SteveError('STEVE_BUSY', 'v1: this token sent its share of requests');
    use.count += 1;
    tokenUse.set(tokenId, use);
    seenTags.set(tagId, expiresAtMs);
  }

  /**
   * `answer` sealed under the session key with a fresh IV, as the pieces of IV(12) || GCM; null when it
   * would be over MAX_SERVER_RESPONSE_ENVELOPE_BYTES (the v2 cap: the same clients' limits).
   */
  function seal(key: Uint8Array, answer: UpstreamAnswer): { pieces: Uint8Array[]; total: number } | null {
    const head =
      answer.error !== undefined
        ? encodeAppResponse({ status: answer.status, headers: answer.headers, body: null, error: answer.error })
        : appResponseHead(answer.status, answer.headers, answer.bodyBytes);
    const total = IV_BYTES + head.length + answer.bodyBytes + TAG_BYTES;
    if (total > MAX_SERVER_RESPONSE_ENVELOPE_BYTES) return null;
    const iv = random(IV_BYTES);
    const { parts, tag } = sealParts(key, iv, NO_AAD, [head, ...answer.body]);
    return { pieces: [iv, ...parts, tag], total };
  }

  return {
    async createSharedKey(req, res, state) {
      const { body, release } = await readBody(req, { maxBytes: CREATE_BODY_MAX_BYTES, timeoutMs: CREATE_BODY_TIMEOUT_MS, budget });
      state.bodyRead = true;
      try {
        const { publicKey, nonce } = parseCreateRequest(body);
        const { privateKey, publicBytes: serverPublic } = ephemeralKeyPair(random);
        const shared = x25519SharedSecret(privateKey, publicKey);
        // Not hkdfSync: it keeps a copy of the secret in a KeyObject until GC (kdf-node.ts).
        const key = nodeHkdfSha256(shared, EMPTY_SALT, KEY_INFO, KEY_BYTES);
        shared.fill(0);
        const signed = new Uint8Array(nonce.length + serverPublic.length);
        signed.set(nonce, 0);
        signed.set(serverPublic, nonce.length);
        const signature = sign(null, signed, identityKey);
        const token = sealToken(key, now() + V1_TOKEN_LIFETIME_MS);
        key.fill(0);
        const answer = Buffer.from(JSON.stringify({ public_key: [...serverPublic], signature: [...signature], enclave_encrypted_shared_key: [...token] }));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(answer.length), 'cache-control': 'no-store' });
        res.end(answer);
        return 200;
      } finally {
        release();
      }
    },

    async protectedRequest(req, res, state) {
      if (req.method !== 'POST') throw protocol('a protected request is a POST');
      if (mediaType(req) !== 'application/octet-stream') throw protocol('a protected request is application/octet-stream');
      const originalMethod = req.headers['x-e2p-original-method'];
      if (typeof originalMethod !== 'string') throw protocol('X-E2P-Original-Method missing');
      const { key, expiresAtMs, tokenId } = openToken(req.headers['x-e2p-key']);
      let sealed: { pieces: Uint8Array[]; total: number };
      try {
        const { body, release } = await readBody(req, { maxBytes: MAX_REQUEST_ENVELOPE_BYTES, timeoutMs: REQUEST_BODY_TIMEOUT_MS, budget });
        state.bodyRead = true;
        try {
          if (body.length < IV_BYTES + TAG_BYTES) throw protocol('body shorter than IV and tag');
          const ciphertext = body.subarray(IV_BYTES);
          const plaintext = nodeAesGcm.open(key, body.subarray(0, IV_BYTES), NO_AAD, ciphertext);
          if (plaintext === null) throw new SteveError('STEVE_DECRYPT', 'v1: request did not open');
          const tagId = cacheId(ciphertext.subarray(ciphertext.length - TAG_BYTES));
          assertFresh(tagId);
          const request = decodeAppRequest(plaintext);
          if (request.method !== originalMethod) throw protocol('X-E2P-Original-Method differs from the encrypted method');
          // Only a valid request that goes to the app is recorded; no await between the check and here.
          record(tagId, tokenId, expiresAtMs);
          let answer = await upstream.forward(request, { client: res, budget });
          release();
          if (answer.overBudget === true) throw new SteveError('STEVE_BUSY', 'v1: answers in memory would pass the budget');
          let sealedAnswer = seal(key, answer);
          if (sealedAnswer === null) {
            budget.give(answer.held);
            answer = madeAnswer(502, 'upstream_response_too_large');
            sealedAnswer = seal(key, answer)!;
          }
          sealed = sealedAnswer;
          const held = answer.held;
          if (held > 0) holdUntilClosed(res, () => budget.give(held));
        } finally {
          release();
        }
      } finally {
        key.fill(0);
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(sealed.total), 'cache-control': 'no-store' });
      await sendPieces(res, sealed.pieces, sendTimeoutMs);
      return 200;
    },
  };
}
