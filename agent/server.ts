/**
 * The agent's public HTTP listener (specs/agent-http.md §1): `/attestation`, the health endpoints, and
 * for everything else, until the STEVE proxy is wired in, a 503 that says so. It never forwards
 * anything to the app in plaintext.
 */

import { createServer, type Server } from 'node:http';
import type { Nsm } from '../nsm/index.js';
import { createAttestationHandler } from './attestation.js';

export interface AgentServerOptions {
  nsm: Nsm;
  manifestBytes: Uint8Array;
}

export function createAgentServer(options: AgentServerOptions): Server {
  const attestation = createAttestationHandler(options);
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent.invalid');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/attestation') {
      attestation(req, res, url).catch(() => json(500, { errors: ['internal error'] }));
    } else if (url.pathname === '/.well-known/caution/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end('OK');
    } else if (url.pathname === '/healthz') {
      json(200, { status: 'ok', nsm: options.nsm.kind });
    } else {
      json(503, { error: 'steve_unavailable' });
    }
  });
}
