/**
 * The app of the full-boot test (test/qemu/boot/boot.qemu.test.ts), run inside the guest by init on
 * 127.0.0.1:8083: `GET /` answers a fixed greeting with the app's pid, `POST /echo` the body it got, and
 * `GET /kill` answers and then SIGKILLs the app itself, so the host can kill the app inside the guest
 * through the encrypted channel. Test-only; plain node:http, no dependencies.
 */

import { createServer } from 'node:http';

export const GREETING = 'hello from the app inside the guest';

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app-pid': String(process.pid) });
      res.end(GREETING);
    } else if (req.method === 'POST' && req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.concat(chunks));
    } else if (req.method === 'GET' && req.url === '/kill') {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end('killing myself', () => setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
});
server.listen(8083, '127.0.0.1');
