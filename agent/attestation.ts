/**
 * The `/attestation` endpoint (specs/agent-http.md §2): parses the caller's nonce, asks the NSM for a
 * document bound to it and to the manifest, and answers in the shape existing verifiers read. Nothing
 * is cached: every document carries the caller's nonce. Request bodies are bounded before they are read.
 */

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { base64ToBytes, base64UrlToBytes, bytesToBase64, hexToBytes, NsmError, type Nsm } from '../nsm/index.js';

/** specs/agent-http.md §2: clients send 32 bytes; we accept 1..512. */
export const NONCE_MIN_BYTES = 1;
export const NONCE_MAX_BYTES = 512;
/** specs/agent-http.md §2: a body over 4 KiB is answered 413. */
export const ATTESTATION_BODY_MAX_BYTES = 4096;

export interface AttestationHandlerOptions {
  nsm: Nsm;
  /** The manifest exactly as the image holds it; served and hashed byte for byte. */
  manifestBytes: Uint8Array;
}

class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
  res.end(bytes);
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new RequestError(413, 'body too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new RequestError(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseNonce(text: unknown, encodings: 'base64' | 'query'): Uint8Array {
  if (typeof text !== 'string') throw new RequestError(400, 'nonce missing');
  let nonce: Uint8Array;
  try {
    nonce = encodings === 'base64' ? base64ToBytes(text, 'nonce') : /^[0-9a-fA-F]+$/.test(text) ? hexToBytes(text, 'nonce') : base64UrlToBytes(text, 'nonce');
  } catch {
    throw new RequestError(400, 'nonce is not valid base64');
  }
  if (nonce.length < NONCE_MIN_BYTES || nonce.length > NONCE_MAX_BYTES) {
    throw new RequestError(400, `nonce must be ${NONCE_MIN_BYTES}..${NONCE_MAX_BYTES} bytes`);
  }
  return nonce;
}

export function createAttestationHandler(options: AttestationHandlerOptions) {
  const manifestSha256 = createHash('sha256').update(options.manifestBytes).digest('hex');
  const manifest: unknown = JSON.parse(Buffer.from(options.manifestBytes).toString('utf8'));
  const userData = new TextEncoder().encode(JSON.stringify({ manifest_sha256: manifestSha256 }));

  return async function handleAttestation(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      let nonce: Uint8Array;
      if (req.method === 'POST') {
        const body = await readBody(req, ATTESTATION_BODY_MAX_BYTES);
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          throw new RequestError(400, 'body is not JSON');
        }
        nonce = parseNonce((parsed as { nonce?: unknown } | null)?.nonce, 'base64');
      } else if (req.method === 'GET') {
        nonce = parseNonce(url.searchParams.get('nonce') ?? undefined, 'query');
      } else {
        throw new RequestError(405, 'use POST or GET');
      }
      let document: Uint8Array;
      try {
        document = await options.nsm.attest({ nonce, userData });
      } catch (err) {
        throw new RequestError(503, err instanceof NsmError ? err.code : 'NSM failed');
      }
      if ((req.headers.accept ?? '').includes('application/cbor')) {
        res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': document.length, 'cache-control': 'no-store' });
        res.end(document);
        return;
      }
      const encoded = bytesToBase64(document);
      sendJson(res, 200, { document: encoded, attestation_document: encoded, manifest });
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      sendJson(res, err.status, { errors: [err.message] });
    }
  };
}
