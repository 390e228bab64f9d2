/**
 * The demo app the agent is shown in front of: a tiny HTTP service on enclave loopback that echoes
 * what it received. It stands for any app; the agent knows nothing of it beyond its URL.
 */

import { createServer, type Server } from 'node:http';

export function createDemoApp(): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 65_536) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = JSON.stringify({ app: 'demo', method: req.method, path: req.url, bytes: size });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
}
