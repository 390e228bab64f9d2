/**
 * listenFds over TCP on 127.0.0.1 (vsock is only opened inside the QEMU guest, where the bridges' guest
 * suite runs the enclave side on it): every accepted connection is handed over as an fd, more than one
 * wakeup's worth included; closeFd closes it for the client; close() stops accepting; bad arguments and a
 * port in use are coded errors. The vsock kind is checked only for arguments refused before any socket.
 */

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

import { afterAll, describe, expect, it } from 'vitest';

import { closeFd, listenFds, type FdListener } from './index.js';

const LOOPBACK = Uint8Array.of(127, 0, 0, 1);
const listeners: FdListener[] = [];

afterAll(async () => {
  for (const listener of listeners) await listener.close();
});

function listen(port = 0): FdListener {
  const listener = listenFds({ kind: 'tcp', address: LOOPBACK, port });
  listeners.push(listener);
  return listener;
}

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code ?? 'no code';
  }
  return undefined;
}

/** Resolves with how the client's connection ended: 'end', or an error code. */
function ending(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.once('end', () => resolve('end'));
    socket.resume();
  });
}

describe('listenFds (TCP)', () => {
  it('hands over every accepted connection as an fd, past one wakeup’s worth, and closeFd ends it for the client', async () => {
    const listener = listen();
    expect(listener.port).toBeGreaterThan(0);
    const fds: number[] = [];
    listener.on('fd', (fd: number) => fds.push(fd));
    // 100 at once: more than the 64 accepted per wakeup.
    const clients = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const socket = connect({ port: listener.port, host: '127.0.0.1' });
        await once(socket, 'connect');
        return socket;
      }),
    );
    const deadline = performance.now() + 5000;
    while (fds.length < 100 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(fds.length).toBe(100);
    expect(new Set(fds).size).toBe(100);
    const endings = clients.map(ending);
    for (const fd of fds) closeFd(fd);
    for (const outcome of await Promise.all(endings)) expect(['end', 'ECONNRESET']).toContain(outcome);
  });

  it('stops accepting on close(), idempotently', async () => {
    const listener = listen();
    const { port } = listener;
    await listener.close();
    await listener.close();
    const socket = connect({ port, host: '127.0.0.1' });
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });

  it('refuses bad arguments and a port in use with coded errors', () => {
    const taken = listen();
    expect(code(() => listenFds({ kind: 'tcp', address: Uint8Array.of(127, 0, 0), port: 0 }))).toBe('VSOCK_BAD_ARGUMENT');
    expect(code(() => listenFds({ kind: 'tcp', address: LOOPBACK, port: 70_000 }))).toBe('VSOCK_BAD_ARGUMENT');
    expect(code(() => listenFds({ kind: 'tcp', address: LOOPBACK, port: 0, backlog: 0 }))).toBe('VSOCK_BAD_ARGUMENT');
    expect(code(() => listenFds({ kind: 'tcp', address: LOOPBACK, port: taken.port }))).toBe('VSOCK_EADDRINUSE');
    // vsock: refused before any socket is made (AF_VSOCK is never opened on this machine).
    expect(code(() => listenFds({ kind: 'vsock', port: -1 }))).toBe('VSOCK_BAD_ARGUMENT');
    expect(code(() => listenFds({ kind: 'vsock', port: 1, cid: 2 ** 32 }))).toBe('VSOCK_BAD_ARGUMENT');
    expect(code(() => closeFd(-1))).toBe('VSOCK_BAD_ARGUMENT');
  });
});
