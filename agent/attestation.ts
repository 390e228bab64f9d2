/**
 * The `/attestation` endpoint (specs/agent-http.md §2). Parses the caller's nonce, asks the NSM (through
 * the bounded queue) for a document bound to that nonce and to `user_data`, and answers in the shape
 * existing verifiers read: `{"document", "attestation_document", "manifest"}`, plus `manifest_base64`
 * (the exact manifest bytes whose SHA-256 is signed). Nothing is cached: every document carries the
 * caller's nonce.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { base64ToBytes, base64UrlToBytes, bytesToBase64, hexToBytes, type Nsm } from '../nsm/runtime.js';
import type { BoundedQueue } from './bounded-queue.js';
import { AgentError } from './errors.js';
import { HttpError, readBody, sendBytes, sendJson } from './http-util.js';
import type { Manifest } from './manifest.js';
import type { Metrics } from './metrics.js';
import { nsmCall } from './nsm-call.js';
import type { UserDataSource } from './user-data.js';

/** specs/agent-http.md §2: clients send 32 bytes; we accept 1..512. */
export const NONCE_MIN_BYTES = 1;
export const NONCE_MAX_BYTES = 512;
/** specs/agent-http.md §2: a body over 4 KiB is answered 413. */
export const ATTESTATION_BODY_MAX_BYTES = 4096;
/** A 4 KiB body that takes longer than this is a slow-body attack, not a client. */
export const ATTESTATION_BODY_TIMEOUT_MS = 5000;

export interface AttestationOptions {
  nsm: Nsm;
  queue: BoundedQueue;
  manifest: Manifest;
  userData: UserDataSource;
  metrics: Metrics;
  /** Exact origins allowed to call from a browser. */
  corsOrigins: readonly string[];
  onNsmError?: (err: unknown) => void;
  /** How long one NSM call may take before the caller gets 503 (the driver itself gives up after 120 s). */
  nsmTimeoutMs: number;
}

function parseNonce(text: unknown, form: 'base64' | 'query'): Uint8Array {
  if (text === undefined || text === null || text === '') throw new HttpError(400, 'nonce missing');
  if (typeof text !== 'string') throw new HttpError(400, 'nonce must be a string');
  let nonce: Uint8Array;
  try {
    if (form === 'base64') nonce = base64ToBytes(text, 'nonce');
    else nonce = /^(?:[0-9a-fA-F]{2})+$/.test(text) ? hexToBytes(text, 'nonce') : base64UrlToBytes(text, 'nonce');
  } catch {
    throw new HttpError(400, form === 'base64' ? 'nonce is not standard base64' : 'nonce is neither hex nor base64url');
  }
  if (nonce.length < NONCE_MIN_BYTES || nonce.length > NONCE_MAX_BYTES) {
    throw new HttpError(400, `nonce must be ${NONCE_MIN_BYTES}..${NONCE_MAX_BYTES} bytes`);
  }
  return nonce;
}

/** CORS headers for an allowed Origin; none otherwise (the browser then refuses the answer). */
export function corsHeaders(req: IncomingMessage, allowed: readonly string[]): Record<string, string> {
  const origin = req.headers.origin;
  if (origin === undefined || !allowed.includes(origin)) return allowed.length > 0 ? { vary: 'Origin' } : {};
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

export function createAttestationHandler(options: AttestationOptions) {
  const manifestText = new TextDecoder().decode(options.manifest.bytes);
  const manifestBase64 = bytesToBase64(options.manifest.bytes);

  async function attest(nonce: Uint8Array, res: ServerResponse): Promise<Uint8Array> {
    const userData = await options.userData.current();
    try {
      return await nsmCall(() => options.nsm.attest({ nonce, userData }), {
        queue: options.queue,
        timeoutMs: options.nsmTimeoutMs,
        observe: (seconds, outcome) => options.metrics.observeNsm(seconds, outcome),
        // A caller who left while waiting in the queue gets no document: skip the NSM call.
        abandoned: () => (res.destroyed ? new HttpError(499, 'client went away') : null),
      });
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (err instanceof AgentError && err.code === 'AGENT_BUSY') throw new HttpError(429, 'too many attestation requests');
      options.onNsmError?.(err);
      throw new HttpError(503, `NSM unavailable (${(err as { code?: string }).code ?? 'error'})`);
    }
  }

  return async function handleAttestation(req: IncomingMessage, res: ServerResponse, search: string): Promise<number> {
    const cors = corsHeaders(req, options.corsOrigins);
    try {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...cors, ...(cors['access-control-allow-origin'] ? { 'access-control-allow-methods': 'GET, POST', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' } : {}), 'cache-control': 'no-store' });
        res.end();
        return 204;
      }
      let nonce: Uint8Array;
      if (req.method === 'POST') {
        const body = await readBody(req, ATTESTATION_BODY_MAX_BYTES, ATTESTATION_BODY_TIMEOUT_MS);
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpError(400, 'body is not JSON');
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'body is not a JSON object');
        nonce = parseNonce((parsed as { nonce?: unknown }).nonce, 'base64');
      } else if (req.method === 'GET') {
        nonce = parseNonce(new URLSearchParams(search).get('nonce') ?? undefined, 'query');
      } else {
        throw new HttpError(405, 'use POST or GET');
      }
      const document = await attest(nonce, res);
      if ((req.headers.accept ?? '').includes('application/cbor')) {
        sendBytes(res, 200, document, 'application/cbor', cors);
      } else {
        const encoded = bytesToBase64(document);
        // The manifest goes out exactly as the file holds it, not re-serialised.
        const body = `{"document":"${encoded}","attestation_document":"${encoded}","manifest":${manifestText},"manifest_base64":"${manifestBase64}"}`;
        sendBytes(res, 200, Buffer.from(body), 'application/json', cors);
      }
      return 200;
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      const extra: Record<string, string> = { ...cors };
      if (err.status === 405) extra.allow = 'GET, POST, OPTIONS';
      // The body was not read to its end: close the connection rather than drain it.
      if (err.status === 408 || err.status === 413) extra.connection = 'close';
      sendJson(res, err.status, { errors: [err.message] }, extra);
      return err.status;
    }
  };
}
