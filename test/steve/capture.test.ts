/**
 * What the host sees: the client talks to the agent through a TCP relay on loopback that records every
 * byte in both directions, as a host (or a TLS terminator on it) would. Secret markers travel in the
 * request path, query, headers, cookie, authorization and body, and in the app's response headers,
 * set-cookie and body. The app and the client must see every marker; the capture must hold none of
 * them, in any of the encodings checked (raw, base64, hex). The agent's log (pino, parsed line by line)
 * must hold neither the markers nor the session keys.
 */

import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { establish, header, random, send, startStack, text, utf8, type Stack } from './harness.js';

const marker = (name: string): string => `MARKER-${name}-${Buffer.from(random(9)).toString('hex')}`;
const MARKERS = {
  path: marker('path'),
  query: marker('query'),
  requestHeader: marker('reqhdr'),
  cookie: marker('cookie'),
  authorization: marker('auth'),
  requestBody: marker('reqbody'),
  responseHeader: marker('resphdr'),
  setCookie: marker('setcookie'),
  responseBody: marker('respbody'),
};

let app: HttpServer;
let appUrl: string;
const appSaw: string[] = [];
let relay: Server;
let relayAddress: string;
const captured: Buffer[] = [];
const relaySockets = new Set<Socket>();
const logLines: string[] = [];
let stack: Stack;

beforeAll(async () => {
  app = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      appSaw.push(`${req.url} ${JSON.stringify(req.headers)} ${Buffer.concat(chunks).toString('utf8')}`);
      res.writeHead(200, [
        ['content-type', 'text/plain'],
        ['x-secret', MARKERS.responseHeader],
        ['set-cookie', `sid=${MARKERS.setCookie}; HttpOnly`],
      ]);
      res.end(`the answer is ${MARKERS.responseBody}`);
    });
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/`;

  const logSink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
      done();
    },
  });
  stack = await startStack({ suite: 'X25519', upstream: appUrl, logger: pino({ level: 'debug' }, logSink) });

  const [host, port] = stack.agent.addresses.public.split(':') as [string, string];
  relay = createServer((client) => {
    const server = connect(Number(port), host);
    relaySockets.add(client).add(server);
    client.on('data', (chunk: Buffer) => {
      captured.push(Buffer.from(chunk));
      server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      captured.push(Buffer.from(chunk));
      client.write(chunk);
    });
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  relayAddress = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of relaySockets) socket.destroy();
  await new Promise<void>((resolve) => relay.close(() => resolve()));
  await stack.stop();
  app.closeAllConnections();
  await new Promise<void>((resolve) => app.close(() => resolve()));
});

describe('a capture between client and proxy', () => {
  it('holds no plaintext of requests or responses, and the log holds no marker and no key', async () => {
    const session = await establish({ ...stack, base: `http://${relayAddress}` });
    const answers = [];
    for (const method of ['GET', 'POST'] as const) {
      answers.push(
        await send(session, {
          method,
          path: `/${MARKERS.path}/item?q=${MARKERS.query}`,
          headers: {
            'x-client-secret': MARKERS.requestHeader,
            cookie: `sid=${MARKERS.cookie}`,
            authorization: `Bearer ${MARKERS.authorization}`,
            'content-type': 'text/plain',
          },
          body: method === 'POST' ? utf8(`payload ${MARKERS.requestBody}`) : null,
        }),
      );
    }
    // The markers really travelled: the app saw the request ones, the client got the response ones.
    const sawAll = appSaw.join('\n');
    for (const name of ['path', 'query', 'requestHeader', 'cookie', 'authorization', 'requestBody'] as const) expect(sawAll, name).toContain(MARKERS[name]);
    for (const answer of answers) {
      expect(header(answer, 'x-secret')).toEqual([MARKERS.responseHeader]);
      expect(header(answer, 'set-cookie')).toEqual([`sid=${MARKERS.setCookie}; HttpOnly`]);
      expect(text(answer.body)).toBe(`the answer is ${MARKERS.responseBody}`);
    }

    const wire = Buffer.concat(captured);
    // Sessions, confirmations and four application records at least went through the relay.
    expect(wire.length).toBeGreaterThan(4000);
    expect(wire.toString('latin1')).toContain('POST /e2p/v2/request');
    for (const [name, value] of Object.entries(MARKERS)) {
      for (const form of [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex'), value.slice(7)]) {
        expect(wire.indexOf(Buffer.from(form, 'latin1')), `${name} as ${form}`).toBe(-1);
      }
    }

    const log = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(() => JSON.parse(line)).not.toThrow();
    for (const [name, value] of Object.entries(MARKERS)) expect(log.includes(value), name).toBe(false);
    for (const key of [session.keys.c2sKey, session.keys.s2cKey]) {
      for (const form of [Buffer.from(key).toString('hex'), Buffer.from(key).toString('base64'), Buffer.from(key).toString('base64url'), JSON.stringify([...key])]) {
        expect(log.includes(form)).toBe(false);
      }
    }
  });
});
