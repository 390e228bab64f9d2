/**
 * The app side of the Caution interop check (caution-interop.e2e.test.ts): Caution's shipped STEVE v2
 * browser client, read at run time from a directory outside the repository (CAUTION_CLIENT_DIR, see
 * test/browser/README.md), served with a test page and a handful of app routes. None of Caution's files
 * is kept in this repository; this module only reads them, and changes one thing in their worker: the
 * trust anchor (below).
 *
 * The trust anchor: Caution's worker embeds the AWS Nitro root as a PEM and offers no setting to replace
 * it (its `configure` accepts enclaveOrigin, passthroughPaths, excludePrefixes, emitEncryptedPayloads,
 * requestTimeoutMs, expectedKeyExchange and pcrPolicy only). Our agent runs on the mock NSM here, whose
 * documents chain to the mock root, so the served worker has that one PEM replaced by the mock root's,
 * located by the exact bytes of the AWS root (nsm/aws-root.ts) and required to occur exactly once.
 * Everything else is served byte for byte; the X-Wing wasm is checked by the worker itself against the
 * SHA-256 it pins.
 *
 * The app records every request it gets with its `x-forwarded-proto`: the agent sends `https` on what it
 * decrypted from STEVE and `http` on the plaintext bootstrap files (agent/agent.ts), so a test can show
 * that every application request came through STEVE.
 */

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AWS_NITRO_ROOT_G1_DER } from '../../nsm/aws-root.js';
import { certificateToPem } from '../../nsm/encoding.js';

/** The environment variable naming the directory with Caution's client files. */
export const CAUTION_CLIENT_ENV = 'CAUTION_CLIENT_DIR';
/** The files the client needs, relative to CAUTION_CLIENT_DIR (as in Caution's client/<commit>/ folder). */
export const CAUTION_CLIENT_FILES = ['register.js', 'enclave-sw.js', 'xwing/steve_xwing_wasm_bg.wasm'] as const;
/** Request bodies the app reads whole; the page's largest is 70,000 bytes. */
const MAX_APP_BODY_BYTES = 1_048_576;
/** The echo repeats a request body as text up to this size (the page's text bodies are far smaller). */
const ECHO_TEXT_BYTES = 4096;
/**
 * The large answers are slices of one buffer of this size: the authors' cap on an upstream body
 * (specs/steve.md §6), the largest the tests ask for.
 */
export const LARGE_BODY_BYTES = 33_554_432;

export interface CautionClient {
  registerJs: Buffer;
  /** enclave-sw.js with the mock root in place of the AWS root. */
  workerJs: Buffer;
  wasm: Buffer;
  /** SHA-256 (hex) of each file as read, before the trust-anchor change, by name. */
  sha256: Record<string, string>;
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Reads Caution's files from `dir` and points the worker at `rootDer` (the mock root) instead of AWS's. */
export async function loadCautionClient(dir: string, rootDer: Uint8Array): Promise<CautionClient> {
  const files: Record<string, Buffer> = {};
  const sha256: Record<string, string> = {};
  for (const name of CAUTION_CLIENT_FILES) {
    try {
      files[name] = await readFile(join(dir, name));
    } catch (cause) {
      throw new Error(`${CAUTION_CLIENT_ENV}=${dir}: ${name} is missing (see test/browser/README.md)`, { cause });
    }
    sha256[name] = sha256Hex(files[name]!);
  }
  const awsPem = certificateToPem(AWS_NITRO_ROOT_G1_DER).trim();
  const source = files['enclave-sw.js']!.toString('utf8');
  const found = source.split(awsPem).length - 1;
  if (found !== 1) {
    throw new Error(`enclave-sw.js: expected the AWS Nitro root PEM exactly once, found it ${found} times; the trust-anchor substitution in test/browser/caution-app.ts needs updating`);
  }
  return {
    registerJs: files['register.js']!,
    workerJs: Buffer.from(source.replace(awsPem, certificateToPem(rootDer).trim()), 'utf8'),
    wasm: files['xwing/steve_xwing_wasm_bg.wasm']!,
    sha256,
  };
}

/** One request as the app saw it. */
export interface AppHit {
  method: string;
  /** Path and query. */
  url: string;
  /** The `x-forwarded-proto` the agent set: `https` after STEVE, `http` on the bootstrap path. */
  forwardedProto: string | null;
}

export interface InteropApp {
  server: Server;
  origin: string;
  port: number;
  hits: AppHit[];
  /** The config the page is rendered with (set before the browser loads it). */
  pageConfig: Record<string, unknown>;
  /** The first `bytes` bytes of the large body. */
  largeBody(bytes: number): Buffer;
  stop(): Promise<void>;
  /** Listens again on the same port (after `stop()`, to bring an app that was down back). */
  restart(): Promise<void>;
}

export interface InteropPageOptions {
  /** Where the client's files are served: `/` (the app behind the agent) or a sub-path (a tester origin). */
  clientPath: string;
  /** The service worker's scope; the page is served there. */
  scope: string;
  /** What the page passes to Caution's `registerEnclaveServiceWorker({config})`. */
  config: Record<string, unknown>;
}

/** Where the page and the client are served; the page's config is set later (it may name the agent). */
export type InteropLayout = Omit<InteropPageOptions, 'config'>;

/**
 * The test page: registers Caution's worker through their register.js the way their verifier page does
 * (`registerEnclaveServiceWorker({swPath, scope, config})`), then exposes `window.interop` for the test:
 * `ready` (the first session, or the error), `client` (Caution's EnclaveClient) and `call()`, which makes
 * one request either through `client.send` (their explicit API) or a plain `fetch` (the worker
 * intercepts it) and reduces the answer to JSON: status, headers, length, SHA-256 and (when short) text.
 */
export function renderInteropPage(options: InteropPageOptions): string {
  // JSON inside a <script>: `<` escaped so no value can close the element.
  const json = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Caution STEVE client interop</title></head>
<body><p>Caution STEVE client against enclave-agent</p>
<script type="module">
import { registerEnclaveServiceWorker } from ${json(`${options.clientPath}register.js`)};
const SHORT_BODY_BYTES = 65536;
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const errorOf = (error) => ({ name: error?.name ?? null, code: error?.code ?? null, stage: error?.stage ?? null, message: String(error?.message ?? error), httpStatus: error?.httpStatus ?? null });
// The binary request body: every byte value, in a pattern the test recomputes (byte i = (i * 31 + 7) mod 256).
const pattern = (length) => Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 255);
async function reduce(response, extra) {
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    ok: true,
    ...extra,
    status: response.status,
    type: response.type,
    redirected: response.redirected,
    url: response.url,
    headers: [...response.headers.entries()],
    bodyBytes: bytes.length,
    bodySha256: hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))),
    text: bytes.length <= SHORT_BODY_BYTES ? new TextDecoder().decode(bytes) : null,
  };
}
const interop = {
  client: null,
  async call(path, request = {}) {
    const init = { method: request.method ?? 'GET' };
    if (request.headers) init.headers = request.headers;
    if (request.text !== undefined) init.body = request.text;
    if (request.binaryBytes !== undefined) init.body = pattern(request.binaryBytes);
    try {
      if (request.via === 'fetch') {
        if (request.redirect) init.redirect = request.redirect;
        return await reduce(await fetch(path, init), { via: 'fetch' });
      }
      const { response, sessionId, exchange } = await interop.client.send(path, init);
      return await reduce(response, { via: 'send', sessionId, outerStatus: exchange?.outerStatus ?? null });
    } catch (error) {
      return { ok: false, via: request.via ?? 'send', error: errorOf(error) };
    }
  },
};
window.interop = interop;
interop.ready = (async () => {
  interop.client = await registerEnclaveServiceWorker({ swPath: ${json(`${options.clientPath}enclave-sw.js`)}, scope: ${json(options.scope)}, config: ${json(options.config)} });
  return await interop.client.initialize();
})().then((status) => ({ ok: true, status }), (error) => ({ ok: false, error: errorOf(error) }));
</script></body></html>
`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_APP_BODY_BYTES) throw new Error('request body over the test app limit');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Uint8Array | string = ''): void {
  res.writeHead(status, { 'cache-control': 'no-store', ...headers, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/**
 * The app: the page and Caution's files under `page.clientPath` (GET/HEAD), and the application routes
 * the test calls through STEVE:
 * - `/api/echo`: JSON {method, url, headers, bodyBytes, bodySha256, bodyText (short bodies only)};
 * - `/api/cookies`: 200 with two `set-cookie` and two `x-repeated` field lines;
 * - `/api/redirect`: 302 to `/api/echo?from=redirect`;
 * - `/api/fail`: 500 with a JSON body; `/api/empty`: 204;
 * - `/api/large?bytes=N`: the first N bytes of one random buffer (octet-stream, with content-length).
 */
export async function startInteropApp(client: CautionClient, page: InteropLayout, large: Buffer | null): Promise<InteropApp> {
  const statics = new Map<string, [string, Buffer]>([
    [`${page.clientPath}register.js`, ['text/javascript; charset=utf-8', client.registerJs]],
    [`${page.clientPath}enclave-sw.js`, ['text/javascript; charset=utf-8', client.workerJs]],
    [`${page.clientPath}xwing/steve_xwing_wasm_bg.wasm`, ['application/wasm', client.wasm]],
  ]);
  const hits: AppHit[] = [];
  const server = createServer((req, res) => {
    const proto = req.headers['x-forwarded-proto'];
    hits.push({ method: req.method ?? '', url: req.url ?? '', forwardedProto: typeof proto === 'string' ? proto : null });
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    readBody(req).then(
      (body) => {
        const file = url.pathname === page.scope ? (['text/html; charset=utf-8', Buffer.from(renderInteropPage({ ...page, config: app.pageConfig }), 'utf8')] as const) : statics.get(url.pathname);
        if (file !== undefined && (req.method === 'GET' || req.method === 'HEAD') && url.search === '') {
          res.writeHead(200, { 'content-type': file[0], 'content-length': String(file[1].length), 'cache-control': 'no-cache' });
          res.end(req.method === 'HEAD' ? undefined : file[1]);
        } else if (url.pathname === '/api/echo') {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          send(res, 200, { 'content-type': 'application/json' }, JSON.stringify({
            method: req.method,
            url: req.url,
            headers,
            bodyBytes: body.length,
            bodySha256: sha256Hex(body),
            // Text only for the short bodies the page sends as text; a binary one is judged by its digest.
            bodyText: body.length <= ECHO_TEXT_BYTES ? body.toString('utf8') : null,
          }));
        } else if (url.pathname === '/api/cookies') {
          send(res, 200, { 'content-type': 'text/plain', 'set-cookie': ['a=1; Path=/', 'b=2; Path=/'], 'x-repeated': ['one', 'two'] }, 'cookies set');
        } else if (url.pathname === '/api/redirect') {
          send(res, 302, { location: '/api/echo?from=redirect', 'content-type': 'text/plain' }, 'moved');
        } else if (url.pathname === '/api/fail') {
          send(res, 500, { 'content-type': 'application/json' }, '{"app_error":"boom"}');
        } else if (url.pathname === '/api/empty') {
          res.writeHead(204, { 'cache-control': 'no-store' });
          res.end();
        } else if (url.pathname === '/api/large' && large !== null) {
          const bytes = Number(url.searchParams.get('bytes'));
          if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > large.length) send(res, 400, { 'content-type': 'text/plain' }, 'bad size');
          else send(res, 200, { 'content-type': 'application/octet-stream' }, large.subarray(0, bytes));
        } else {
          send(res, 404, { 'content-type': 'text/plain' }, 'not found');
        }
      },
      () => res.destroy(),
    );
  });
  const listen = async (port: number) => {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  };
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const app: InteropApp = {
    server,
    origin: `http://127.0.0.1:${port}`,
    port,
    hits,
    pageConfig: {},
    largeBody: (bytes) => {
      if (large === null || bytes > large.length) throw new Error(`no large body of ${bytes} bytes`);
      return large.subarray(0, bytes);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    restart: () => listen(port),
  };
  return app;
}
