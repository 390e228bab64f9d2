/**
 * The demo app the agent is shown in front of: a tiny HTTP service on enclave loopback. It stands for any
 * app; the agent knows nothing of it beyond its URL. It serves:
 * - `GET /`: the demo page (page.ts), and `GET`/`HEAD` of `/register.js`, `/enclave-sw.js`,
 *   `/attestation-widget.js`: the browser bundles from `bundleDir` (built by steve/browser/build.mjs).
 *   The agent forwards these bootstrap files in plaintext (specs/steve.md §6). Given a snapshot from
 *   `loadDemoBootstrap`, it serves exactly those bytes, so a manifest can attest their hashes (the
 *   `demo` command does); other bootstrap paths (the X-Wing module) are 404;
 * - `/api/echo`: JSON describing what arrived (method, path, headers, body as text), the protected call
 *   the page makes through the enclave worker;
 * - `GET /api/generate?prompt=...`: a fake LLM's answer streamed as server-sent events, one word at a
 *   time (generate.ts), which the page reads as it arrives;
 * - anything else: the short echo `{app, method, path, bytes}`.
 */

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveGenerate } from './generate.js';
import { renderDemoPage, type DemoPageConfig, type DemoPcrPolicy } from './page.js';
import { BOOTSTRAP_PATHS, type Suite } from '../../steve/index.js';

/** Bodies are read whole up to this size; larger ones are counted, not kept. */
const MAX_BODY_BYTES = 65_536;
/** The bundles the app serves, by path (the names build.mjs writes). */
const BUNDLES = new Map([
  ['/register.js', 'register.js'],
  ['/enclave-sw.js', 'enclave-sw.js'],
  ['/attestation-widget.js', 'attestation-widget.js'],
]);
/** dist/agent/demo/app.js -> dist/browser/, where `npm run build` puts the bundles. */
const DEFAULT_BUNDLE_DIR = fileURLToPath(new URL('../../browser/', import.meta.url));

export interface DemoAppOptions {
  /** Where enclave-sw.js, register.js and attestation-widget.js are. Default: dist/browser next to the built app. */
  bundleDir?: string;
  /** PEM of the root the page pins (the mock root in the demo). Default: the AWS root. */
  root?: string;
  /** The suite the page pins; must be the agent's. Default X25519. */
  keyExchange?: Suite;
  /** Default trust on first use. */
  pcrPolicy?: DemoPcrPolicy;
  /** The worker's per-request timeout. */
  requestTimeoutMs?: number;
  /**
   * The bootstrap files to serve, by path, from `loadDemoBootstrap` with the same options. Without it the
   * page is rendered from these options and the bundles are read from `bundleDir` on every request.
   */
  bootstrap?: ReadonlyMap<string, Uint8Array>;
}

function sendText(res: ServerResponse, status: number, type: string, body: string | Uint8Array, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache' });
  res.end(head ? undefined : body);
}

function notBuilt(file: string, bundleDir: string): string {
  return `${file} is not built: run node steve/browser/build.mjs ${bundleDir}\n`;
}

async function serveBundle(res: ServerResponse, bundleDir: string, file: string, head: boolean): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(bundleDir, file));
  } catch {
    sendText(res, 404, 'text/plain; charset=utf-8', notBuilt(file, bundleDir), head);
    return;
  }
  sendText(res, 200, 'text/javascript; charset=utf-8', bytes, head);
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

function renderPage(options: DemoAppOptions): string {
  return renderDemoPage({
    keyExchange: options.keyExchange ?? 'X25519',
    pcrPolicy: options.pcrPolicy ?? { kind: 'tofu' },
    root: options.root ?? null,
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
  } satisfies DemoPageConfig);
}

/**
 * The bytes the app serves for each bootstrap path it has, read once: the page rendered from `options`
 * and every bundle present in `bundleDir` (one not built is left out, and answered 404 as "not built").
 * Hand the result to `createDemoApp` as `bootstrap` and to `hashBootstrapFiles` for the manifest.
 */
export async function loadDemoBootstrap(options: Omit<DemoAppOptions, 'bootstrap'> = {}): Promise<Map<string, Uint8Array>> {
  const bundleDir = options.bundleDir ?? DEFAULT_BUNDLE_DIR;
  const files = new Map<string, Uint8Array>([['/', new TextEncoder().encode(renderPage(options))]]);
  for (const [path, file] of BUNDLES) {
    try {
      files.set(path, new Uint8Array(await readFile(join(bundleDir, file))));
    } catch {
      // Not built: served as 404 with the build hint, and attested by no hash.
    }
  }
  return files;
}

export function createDemoApp(options: DemoAppOptions = {}): Server {
  const bundleDir = options.bundleDir ?? DEFAULT_BUNDLE_DIR;
  const snapshot = options.bootstrap;
  const page = snapshot?.get('/') ?? renderPage(options);

  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://demo.invalid').pathname;
      const head = req.method === 'HEAD';
      const bundle = BUNDLES.get(path);
      const get = req.method === 'GET' || head;
      if (get && path === '/') {
        sendText(res, 200, 'text/html; charset=utf-8', page, head);
      } else if (get && bundle !== undefined && snapshot === undefined) {
        serveBundle(res, bundleDir, bundle, head).catch(() => res.destroy());
      } else if (get && bundle !== undefined) {
        // From the snapshot only: a bundle built after it was taken is not what the manifest attests.
        const bytes = snapshot!.get(path);
        if (bytes === undefined) sendText(res, 404, 'text/plain; charset=utf-8', notBuilt(bundle, bundleDir), head);
        else sendText(res, 200, 'text/javascript; charset=utf-8', bytes, head);
      } else if (get && BOOTSTRAP_PATHS.has(path)) {
        // A bootstrap path the demo has no file for (the X-Wing module): nothing there, rather than the
        // echo below, so `verify --bootstrap require` sees every path the demo serves attested.
        sendText(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
      } else if (path === '/api/generate' && req.method === 'GET') {
        serveGenerate(req, res);
      } else if (path === '/api/echo') {
        const body = Buffer.concat(chunks);
        sendText(
          res,
          200,
          'application/json',
          JSON.stringify({ app: 'demo', method: req.method, path: req.url, headers: headersOf(req), body: size <= MAX_BODY_BYTES ? body.toString('utf8') : null, bytes: size }),
          head,
        );
      } else {
        sendText(res, 200, 'application/json', JSON.stringify({ app: 'demo', method: req.method, path: req.url, bytes: size }), head);
      }
    });
  });
}
