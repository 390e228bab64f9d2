/**
 * A protocol-level STEVE v2 client for the benchmarks, written from the protocol core with node:crypto
 * (AES-256-GCM, X25519; X-Wing through the protocol's own exchange): sessions (§5), application
 * requests framed like the server frames (head and body sealed in pieces, no 32 MiB copies), and every
 * check the protocol asks of a client on each answer. It keeps each session's sequences within the
 * 64-wide replay window (§7).
 *
 * It must not be used for anything but loopback load: it skips verifying documents unless asked.
 */

import { randomBytes } from 'node:crypto';

/** Request body bytes sealed and sent at a time by `stream()`: eight records. */
const UPLOAD_BATCH_BYTES = 8 * 65_536;

/** POST and read the whole answer; anything but 200 throws. */
export async function post(pool, path, body, contentType) {
  const { statusCode, body: answer } = await pool.request({ path, method: 'POST', headers: { 'content-type': contentType }, body });
  const bytes = new Uint8Array(await answer.arrayBuffer());
  if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  return bytes;
}

/**
 * The client for one suite. `rootDer` (base64) is the agent's mock root, for `establish(pool, true)`,
 * which verifies the document and its binding.
 */
export async function createSteveClient({ suite, rootDer }) {
  const steve = await import('../../dist/steve/index.js');
  const { byteStringHead, envelopeHead, nodeAesGcm, nodeX25519Exchange, sealParts } = await import('../../dist/steve/server/index.js');
  const { nodeP384Verifier, verifyAttestationDocument } = await import('../../dist/nsm/index.js');
  const exchange = suite === 'X25519' ? nodeX25519Exchange : steve.keyExchangeFor(suite);
  const random = (n) => new Uint8Array(randomBytes(n));

  /** Session and confirmation (§5); with `verify`, the document and the binding checked too. */
  async function establish(pool, verify = false) {
    const pair = exchange.generateClientKeyPair(random);
    const clientNonce = random(32);
    const contextHash = random(32);
    const reply = steve.decodeSessionResponse(await post(pool, '/e2p/v2/session', steve.encodeSessionRequest({ suite, clientNonce, clientKeyMaterial: pair.material, contextHash }), 'application/cbor'));
    const transcriptHash = steve.transcriptHash({ suite, clientNonce, clientKeyMaterial: pair.material, serverKeyMaterial: reply.serverKeyMaterial, sessionId: reply.sessionId, contextHash });
    const keys = steve.deriveSessionKeys(exchange.clientFinish(pair.secret, reply.serverKeyMaterial), transcriptHash);
    if (verify) {
      const verified = verifyAttestationDocument(reply.attestationDocument, { atMs: Date.now(), root: new Uint8Array(Buffer.from(rootDer, 'base64')), expectedNonce: clientNonce, verifier: nodeP384Verifier });
      steve.checkBindingUserData(verified.userData, { suite, sessionId: reply.sessionId, transcriptHash, binder: keys.binder });
    }
    const header = (sequence, direction, type) => ({ type, direction, sessionId: reply.sessionId, sequence });
    const sealed = steve.sealRecord(nodeAesGcm, keys, header(0, steve.DIRECTION.C2S, steve.MESSAGE_TYPE.CONFIRMATION), transcriptHash);
    const confirmation = steve.decodeEnvelope(await post(pool, '/e2p/v2/confirm', steve.encodeEnvelope({ sessionId: reply.sessionId, sequence: 0, ciphertext: sealed }), 'application/cbor'));
    steve.openRecord(nodeAesGcm, keys, header(0, steve.DIRECTION.S2C, steve.MESSAGE_TYPE.CONFIRMATION), confirmation.ciphertext);
    return { id: reply.sessionId, keys, next: 1, header, outstanding: new Set(), waiters: [] };
  }

  /**
   * The next sequence, kept within the server's 64-wide replay window (§7): a request may not be sent
   * while one 64 sequences older is still unanswered, or it (or that one) would arrive as too old.
   * "At most 64 outstanding" (§5) alone is not enough when one request stalls while the others go on.
   */
  async function takeSequence(session) {
    while (session.outstanding.size > 0 && session.next - Math.min(...session.outstanding) >= steve.REPLAY_WINDOW_SIZE) {
      await new Promise((resolve) => session.waiters.push(resolve));
    }
    const sequence = session.next++;
    session.outstanding.add(sequence);
    return sequence;
  }

  function settleSequence(session, sequence) {
    session.outstanding.delete(sequence);
    for (const wake of session.waiters.splice(0)) wake();
  }

  /** The request plaintext without its body, ending in the body's byte-string head (sealed in pieces). */
  function requestHead(request) {
    const body = request.body ?? new Uint8Array(0);
    const withNull = steve.encodeAppRequest({ ...request, body: null });
    return body.length === 0 ? withNull : Buffer.concat([withNull.subarray(0, withNull.length - 1), byteStringHead(body.length)]);
  }

  /** One application request; checks the envelope, the record, status 200 and (given) the body length. */
  async function call(pool, session, request, expectBytes, head = requestHead(request)) {
    const sequence = await takeSequence(session);
    try {
      return await sealedCall(pool, session, request, expectBytes, head, sequence);
    } finally {
      settleSequence(session, sequence);
    }
  }

  async function sealedCall(pool, session, request, expectBytes, head, sequence) {
    const body = request.body ?? new Uint8Array(0);
    const c2s = session.header(sequence, steve.DIRECTION.C2S, steve.MESSAGE_TYPE.APPLICATION);
    const { parts, tag } = sealParts(session.keys.c2sKey, steve.recordNonce(session.keys.c2sIv, sequence), steve.recordAad(c2s.type, c2s.direction, c2s.sessionId, sequence), body.length === 0 ? [head] : [head, body]);
    const envelopeBytes = Buffer.concat([envelopeHead(session.id, sequence, head.length + body.length + steve.TAG_BYTES), ...parts, tag]);
    const envelope = steve.decodeEnvelope(await post(pool, '/e2p/v2/request', envelopeBytes, 'application/cbor'));
    if (envelope.sequence !== sequence || Buffer.compare(envelope.sessionId, session.id) !== 0) throw new Error('session id or sequence mismatch');
    const response = steve.decodeAppResponse(steve.openRecord(nodeAesGcm, session.keys, session.header(sequence, steve.DIRECTION.S2C, steve.MESSAGE_TYPE.APPLICATION), envelope.ciphertext));
    if (response.status !== 200) throw new Error(`inner status ${response.status}`);
    if (expectBytes !== undefined && (response.body?.length ?? 0) !== expectBytes) throw new Error(`inner body ${response.body?.length}`);
    return response;
  }

  /**
   * One exchange over our stream extension (steve/protocol/stream.md): the request as preamble, HEAD,
   * DATA records and END in one body; the answer read record by record, each
   * opened before its bytes count. Resolves { status, bodyBytes, firstDataMs } (firstDataMs: from the call
   * to the first opened DATA record, performance.now() clock); anything but a clean END throws.
   */
  async function stream(pool, session, request, body = null) {
    const sequence = await takeSequence(session);
    try {
      const started = performance.now();
      const target = (direction) => ({ direction, sessionId: session.id, sequence });
      const writer = steve.createStreamWriter(nodeAesGcm, session.keys.streamC2sKey, target(steve.DIRECTION.C2S));
      // A body of up to a batch is framed into one buffer (one write: the agent reads head and end
      // together); a larger one is sealed a batch at a time as undici sends it, so sealing overlaps sending.
      const head = [steve.encodeStreamPreamble(session.id, sequence), writer.head(steve.encodeAppRequest({ ...request, body: null }))];
      async function* batches() {
        let frames = head;
        for (let at = 0; body !== null && at < body.length; at += UPLOAD_BATCH_BYTES) {
          frames.push(...writer.data(body.subarray(at, at + UPLOAD_BATCH_BYTES)));
          yield Buffer.concat(frames);
          frames = [];
        }
        frames.push(writer.end());
        yield Buffer.concat(frames);
      }
      const small = body === null || body.length <= UPLOAD_BATCH_BYTES;
      const requestBody = small ? Buffer.concat([...head, ...(body === null ? [] : writer.data(body)), writer.end()]) : batches();
      const answer = await pool.request({ path: steve.STREAM_PATH, method: 'POST', headers: { 'content-type': steve.STREAM_MEDIA_TYPE }, body: requestBody });
      if (answer.statusCode !== 200) {
        await answer.body.arrayBuffer();
        throw new Error(`status ${answer.statusCode}`);
      }
      const parser = steve.createFrameParser();
      const reader = steve.createStreamReader(nodeAesGcm, session.keys.streamS2cKey, target(steve.DIRECTION.S2C));
      let status = 0;
      let bodyBytes = 0;
      let firstDataMs = null;
      for await (const chunk of answer.body) {
        for (const frame of parser.push(chunk)) {
          const record = reader.open(frame);
          if (record.kind === steve.FRAME_KIND.HEAD) status = steve.decodeAppResponse(record.plaintext).status;
          else if (record.kind === steve.FRAME_KIND.DATA) {
            firstDataMs ??= performance.now() - started;
            bodyBytes += record.plaintext.length;
          } else if (record.kind === steve.FRAME_KIND.ABORT) throw new Error(`stream aborted: ${record.error}`);
        }
      }
      parser.push(new Uint8Array(0));
      if (!reader.finished) throw new Error('stream truncated');
      return { status, bodyBytes, firstDataMs };
    } finally {
      settleSequence(session, sequence);
    }
  }

  return { establish, call, requestHead, stream };
}
