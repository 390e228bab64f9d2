/**
 * Generates and guards test/vectors/steve/stream-1.json: known answers for the stream extension
 * (steve/protocol/stream.md) on the X25519 session of kat.json: the two stream keys, the six-field
 * binding `user_data`, a streamed request (HEAD, DATA, END) and a streamed response (HEAD, two DATA, END),
 * and an aborted response (HEAD, DATA, ABORT), each record with its nonce, AAD, plaintext and frame.
 *
 *   STEVE_KAT_WRITE=1 npx vitest run test/vectors/steve/stream.test.ts   rewrites stream-1.json
 *   npx vitest run test/vectors/steve/stream.test.ts                     asserts the code reproduces it
 *
 * Every value is also recomputed here from stream.md's text with node:crypto alone (hkdfSync, AES-256-GCM
 * and AADs laid out by hand), independently of steve/protocol, so the file does not merely echo the code.
 */

import { createCipheriv, hkdfSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DIRECTION,
  FRAME_KIND,
  checkBindingUserData,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  deriveSessionKeys,
  encodeAppRequest,
  encodeAppResponse,
  encodeBindingUserData,
  encodeStreamPreamble,
  nobleAesGcm,
  streamAad,
  streamNonce,
  type Direction,
  type FrameKind,
} from '../../../steve/index.js';
import { hex, readVector, unhex } from './vectors.js';

const STREAM_URL = new URL('stream-1.json', import.meta.url);
const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

interface KatVector {
  suite: string;
  sharedSecret: string;
  transcriptHash: string;
  inputs: { sessionId: string };
  keys: { binder: string };
}

interface RecordVector {
  kind: number;
  index: number;
  nonce: string;
  aad: string;
  plaintext: string;
  frame: string;
}

const kat = readVector<{ vectors: KatVector[] }>('kat.json').vectors.find((v) => v.suite === 'X25519')!;
const sessionId = unhex(kat.inputs.sessionId);
const SEQUENCE = 7;

/** stream.md §2, with node:crypto's HKDF. */
function independentKey(label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', unhex(kat.sharedSecret), unhex(kat.transcriptHash), ascii(label), 32));
}

/** stream.md §4, laid out by hand. */
function independentRecord(key: Buffer, direction: Direction, kind: FrameKind, index: number, plaintext: Uint8Array): { nonce: Buffer; aad: Buffer; frame: Buffer } {
  const u64 = Buffer.alloc(8);
  u64.writeBigUInt64BE(BigInt(SEQUENCE));
  const u32 = Buffer.alloc(4);
  u32.writeUInt32BE(index);
  const nonce = Buffer.concat([u64, u32]);
  const aad = Buffer.concat([ascii('STEVE-STREAM-V1\0'), Buffer.of(direction, kind), sessionId, u64, u32]);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(sealed.length);
  return { nonce, aad, frame: Buffer.concat([Buffer.of(kind), length, sealed]) };
}

function build(): Record<string, unknown> {
  const keys = deriveSessionKeys(unhex(kat.sharedSecret), unhex(kat.transcriptHash));
  const target = (direction: Direction) => ({ direction, sessionId, sequence: SEQUENCE });
  const exchange = (direction: Direction, steps: Array<[FrameKind, Uint8Array | string]>): RecordVector[] => {
    const key = direction === DIRECTION.C2S ? keys.streamC2sKey : keys.streamS2cKey;
    const writer = createStreamWriter(nobleAesGcm, key, target(direction));
    return steps.map(([kind, input]) => {
      const index = writer.index;
      const frame = kind === FRAME_KIND.HEAD ? writer.head(input as Uint8Array) : kind === FRAME_KIND.DATA ? writer.data(input as Uint8Array)[0]! : kind === FRAME_KIND.END ? writer.end() : writer.abort(input as string);
      const plaintext = kind === FRAME_KIND.ABORT ? Uint8Array.from([0xa1, 0x65, ...ascii('error'), 0x60 + (input as string).length, ...ascii(input as string)]) : (input as Uint8Array);
      return { kind, index, nonce: hex(streamNonce(SEQUENCE, index)), aad: hex(streamAad({ ...target(direction), kind, index })), plaintext: hex(plaintext), frame: hex(frame) };
    });
  };
  const requestHead = encodeAppRequest({ method: 'POST', path: '/v1/chat', headers: { 'content-type': 'text/plain' }, body: null });
  const responseHead = encodeAppResponse({ status: 200, headers: [['content-type', 'text/event-stream']], body: null });
  return {
    description: 'Known answers for the STEVE stream extension stream-1 (steve/protocol/stream.md) on the X25519 session of kat.json. Ours; see README.md.',
    session: { sharedSecret: kat.sharedSecret, transcriptHash: kat.transcriptHash, sessionId: kat.inputs.sessionId, sequence: SEQUENCE },
    keys: { streamC2sKey: hex(keys.streamC2sKey), streamS2cKey: hex(keys.streamS2cKey) },
    bindingUserData: new TextDecoder().decode(
      encodeBindingUserData({ suite: 'X25519', sessionId, transcriptHash: unhex(kat.transcriptHash), binder: unhex(kat.keys.binder), extensions: ['stream-1'] }),
    ),
    preamble: hex(encodeStreamPreamble(sessionId, SEQUENCE)),
    request: exchange(DIRECTION.C2S, [
      [FRAME_KIND.HEAD, requestHead],
      [FRAME_KIND.DATA, ascii('Tell me a story')],
      [FRAME_KIND.END, new Uint8Array(0)],
    ]),
    response: exchange(DIRECTION.S2C, [
      [FRAME_KIND.HEAD, responseHead],
      [FRAME_KIND.DATA, ascii('data: Once\n\n')],
      [FRAME_KIND.DATA, ascii('data: upon\n\n')],
      [FRAME_KIND.END, new Uint8Array(0)],
    ]),
    abortedResponse: exchange(DIRECTION.S2C, [
      [FRAME_KIND.HEAD, responseHead],
      [FRAME_KIND.DATA, ascii('data: Once\n\n')],
      [FRAME_KIND.ABORT, 'upstream_aborted'],
    ]),
  };
}

describe('stream-1 known answers (test/vectors/steve/stream-1.json)', () => {
  const built = build();
  if (process.env.STEVE_KAT_WRITE === '1') writeFileSync(STREAM_URL, `${JSON.stringify(built, null, 2)}\n`);
  const file = JSON.parse(readFileSync(STREAM_URL, 'utf8')) as Record<'request' | 'response' | 'abortedResponse', RecordVector[]> & {
    keys: { streamC2sKey: string; streamS2cKey: string };
    preamble: string;
    bindingUserData: string;
  };

  it('the code reproduces the file byte for byte', () => {
    expect(built).toEqual(file);
  });

  it('node:crypto alone, from the spec text, gives the same keys, preamble and records', () => {
    const c2s = independentKey('steve-e2p-v2/stream-c2s-key');
    const s2c = independentKey('steve-e2p-v2/stream-s2c-key');
    expect(file.keys).toEqual({ streamC2sKey: c2s.toString('hex'), streamS2cKey: s2c.toString('hex') });
    const u64 = Buffer.alloc(8);
    u64.writeBigUInt64BE(BigInt(SEQUENCE));
    expect(file.preamble).toBe(Buffer.concat([ascii('STEVE-STREAM-V1\0'), sessionId, u64]).toString('hex'));
    for (const [name, key, direction] of [
      ['request', c2s, DIRECTION.C2S],
      ['response', s2c, DIRECTION.S2C],
      ['abortedResponse', s2c, DIRECTION.S2C],
    ] as const) {
      for (const record of file[name]) {
        const again = independentRecord(key, direction, record.kind as FrameKind, record.index, unhex(record.plaintext));
        expect({ nonce: record.nonce, aad: record.aad, frame: record.frame }, `${name} #${record.index}`).toEqual({
          nonce: again.nonce.toString('hex'),
          aad: again.aad.toString('hex'),
          frame: again.frame.toString('hex'),
        });
      }
    }
  });

  it('a reader opens the file: the binding lists stream-1, the frames parse and open in order', () => {
    const extensions = checkBindingUserData(new TextEncoder().encode(file.bindingUserData), {
      suite: 'X25519',
      sessionId,
      transcriptHash: unhex(kat.transcriptHash),
      binder: unhex(kat.keys.binder),
    });
    expect(extensions).toEqual(['stream-1']);
    for (const [name, direction, key] of [
      ['response', DIRECTION.S2C, file.keys.streamS2cKey],
      ['abortedResponse', DIRECTION.S2C, file.keys.streamS2cKey],
      ['request', DIRECTION.C2S, file.keys.streamC2sKey],
    ] as const) {
      const wire = Buffer.concat(file[name].map((r) => unhex(r.frame)));
      const frames = createFrameParser().push(wire);
      const reader = createStreamReader(nobleAesGcm, unhex(key), { direction, sessionId, sequence: SEQUENCE });
      const opened = frames.map((frame) => reader.open(frame));
      expect(opened.map((o) => o.kind)).toEqual(file[name].map((r) => r.kind));
      expect(reader.finished).toBe(true);
      if (name === 'abortedResponse') expect(opened.at(-1)).toEqual({ kind: FRAME_KIND.ABORT, error: 'upstream_aborted' });
    }
  });
});
