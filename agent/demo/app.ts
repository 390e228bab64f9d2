/**
 * The demo app the agent is shown in front of: a tiny HTTP service on enclave loopback. It stands for any
 * app; the agent knows nothing of it beyond its URL. It serves:
 * - `GET /`: the demo page (page.ts), and `GET`/`HEAD` of `/register.js`, `/enclave-sw.js`,
 *   `/attestation-widget.js`: the browser bundles from `bundleDir` (built by steve/browser/build.mjs).
 *   The agent forwards these bootstrap files in plaintext (specs/steve.md §6);
 * - `/api/echo`: JSON describing what arrived (method, path, headers, body as text), the protected call
 *   the page makes through the enclave worker;
 * - anything else: the short echo `{app, method, path, bytes}`.
 */

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderDemoPage, type DemoPageConfig, type DemoPcrPolicy } from './page.js';
import type { Suite } from '../../steve/index.js';

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
}

function sendText(res: ServerResponse, status: number, type: string, body: string | Uint8Array, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache' });
  res.end(head ? undefined : body);
}

async function serveBundle(res: ServerResponse, bundleDir: string, file: string, head: boolean): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(bundleDir, file));
  } catch {
    sendText(res, 404, 'text/plain; charset=utf-8', `${file} is not built: run node steve/browser/build.mjs ${bundleDir}\n`, head);
    return;
  }
  sendText(res, 200, 'text/javascript; charset=utf-8', bytes, head);
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

export function createDemoApp(options: DemoAppOptions = {}): Server {
  const bundleDir = options.bundleDir ?? DEFAULT_BUNDLE_DIR;
  const page = renderDemoPage({
    keyExchange: options.keyExchange ?? 'X25519',
    pcrPolicy: options.pcrPolicy ?? { kind: 'tofu' },
    root: options.root ?? null,
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
  } satisfies DemoPageConfig);

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
      if ((req.method === 'GET' || head) && path === '/') {
        sendText(res, 200, 'text/html; charset=utf-8', page, head);
      } else if ((req.method === 'GET' || head) && bundle !== undefined) {
        serveBundle(res, bundleDir, bundle, head).catch(() => res.destroy());
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
