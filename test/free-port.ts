/**
 * A TCP port on 127.0.0.1 with nothing listening: bound to port 0, then closed. For a server a test starts
 * by port number (nginx, a QEMU forward), or as a target that refuses connections.
 */

import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
