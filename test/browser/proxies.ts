/**
 * Test-only proxies between the browser and the agent, on 127.0.0.1:0:
 * - `startTcpProxy`: passes bytes both ways unchanged and keeps a copy of all of them, so a test can show
 *   that no plaintext marker crossed the host; its target can be switched (an agent restarted with other
 *   PCRs behind the same origin), and it can stall (swallow everything) to provoke a timeout.
 * - `startSwapProxy`: an HTTP proxy that answers each STEVE session request with the real session response
 *   carrying the attestation document of ANOTHER session (the same request sent a second time, so even the
 *   nonce matches): only the user_data binding can tell.
 * - `startTamperStreamProxy`: an HTTP proxy that passes everything on as it arrives, except that in the
 *   answers of `POST /e2p/v2/stream` (steve/protocol/stream.md) it flips one bit in the sealed bytes of
 *   the Nth DATA frame: the host changing a token in flight.
 */

import { once } from 'node:events';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { createServer as createNetServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { FRAME_HEADER_BYTES, FRAME_KIND, STREAM_PATH, createFrameParser, decodeSessionResponse, encodeSessionResponse } from '../../steve/index.js';

export interface TcpProxy {
  origin: string;
  /** Every byte seen so far, both directions, in arrival order. */
  seen(): Buffer;
  setTarget(port: number): void;
  /** While true, bytes in either direction are dropped (connections stay open). */
  stall: boolean;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let target = targetPort;
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const proxy: TcpProxy = {
    origin: '',
    seen: () => Buffer.concat(chunks),
    setTarget(port) {
      target = port;
      for (const socket of sockets) socket.destroy(); // No connection to the old agent survives.
    },
    stall: false,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createNetServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    const pipe = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (proxy.stall) return;
        chunks.push(Buffer.from(chunk));
        to.write(chunk);
      });
      from.on('end', () => to.end());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  proxy.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

export interface SwapProxy {
  origin: string;
  /** How many session responses had their document swapped. */
  readonly swaps: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'host']);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startSwapProxy(agentOrigin: string): Promise<SwapProxy> {
  let swaps = 0;
  const server = createHttpServer((req, res) => {
    (async () => {
      const body = await readBody(req);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && !HOP_BY_HOP.has(name)) headers[name] = value;
      const forward = () =>
        fetch(`${agentOrigin}${req.url}`, { method: req.method!, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : new Uint8Array(body), redirect: 'manual' });
      const answer = await forward();
      let bytes: Uint8Array = new Uint8Array(await answer.arrayBuffer());
      if (req.method === 'POST' && req.url === '/e2p/v2/session' && answer.status === 200) {
        const other = await forward();
        const otherResponse = decodeSessionResponse(new Uint8Array(await other.arrayBuffer()));
        bytes = encodeSessionResponse({ ...decodeSessionResponse(bytes), attestationDocument: otherResponse.attestationDocument });
        swaps++;
      }
      const out: Record<string, string> = {};
      answer.headers.forEach((value, name) => {
        if (!HOP_BY_HOP.has(name)) out[name] = value;
      });
      res.writeHead(answer.status, { ...out, 'content-length': String(bytes.length) });
      res.end(bytes);
    })().catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get swaps() {
      return swaps;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TamperStreamProxy {
  origin: string;
  /** How many DATA frames were flipped so far. */
  readonly flipped: number;
  close(): Promise<void>;
}

/** Frames a stream answer back into bytes, as the agent sent them. */
function frameBytes(kind: number, sealed: Uint8Array): Buffer {
  const out = Buffer.alloc(FRAME_HEADER_BYTES + sealed.length);
  out[0] = kind;
  out.writeUInt32BE(sealed.length, 1);
  out.set(sealed, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Passes every request to `agentOrigin` and every answer back, streaming both ways; in each stream answer
 * it flips the lowest bit of the first sealed byte of DATA frame number `dataFrame` (0 = the first). The
 * frames are re-cut at frame boundaries (each sent on as soon as it is complete), so timing is kept.
 */
export async function startTamperStreamProxy(agentOrigin: string, dataFrame: number): Promise<TamperStreamProxy> {
  const target = new URL(agentOrigin);
  let flipped = 0;
  const server = createHttpServer((req, res) => {
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && name !== 'connection' && name !== 'keep-alive') headers[name] = value;
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      const out: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      res.writeHead(answer.statusCode ?? 502, out);
      res.flushHeaders();
      if (req.method !== 'POST' || req.url !== STREAM_PATH || answer.statusCode !== 200) {
        answer.pipe(res);
        return;
      }
      const parser = createFrameParser();
      let data = 0;
      answer.on('data', (chunk: Buffer) => {
        let frames;
        try {
          frames = parser.push(new Uint8Array(chunk));
        } catch {
          res.destroy();
          return;
        }
        for (const frame of frames) {
          const sealed = frame.sealed.slice();
          if (frame.kind === FRAME_KIND.DATA && data++ === dataFrame) {
            sealed[0]! ^= 0x01;
            flipped++;
          }
          res.write(frameBytes(frame.kind, sealed));
        }
      });
      answer.on('end', () => res.end());
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get flipped() {
      return flipped;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
