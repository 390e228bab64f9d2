/**
 * PolledFd's lazy poll handle (native.ts), against a fake of the binding (no socket is opened here: this
 * machine must not create AF_VSOCK sockets): no handle until an event is asked for, the fd closed exactly
 * once whichever way it ends, and a handle that cannot be made reported through onPoll, fd closed.
 */

import { describe, expect, it } from 'vitest';

import { PolledFd, type PollHandle, type VsockNative } from './native.js';
import { VsockError } from './errors.js';

const FD = 77;
const READABLE = 1;
const WRITABLE = 2;

/** The calls PolledFd makes, in order; `failOpen` makes pollOpen throw as the addon does. */
function fakeNative(failOpen = false): { native: VsockNative; calls: string[] } {
  const calls: string[] = [];
  const handle = {} as PollHandle;
  const native = {
    READABLE,
    WRITABLE,
    WOULD_BLOCK: -1,
    pollOpen(fd: number) {
      calls.push(`pollOpen ${fd}`);
      if (failOpen) throw new VsockError('VSOCK_ENOMEM', 'vsock uv_poll_init failed', { errno: 'ENOMEM' });
      return handle;
    },
    pollSet(h: PollHandle, events: number) {
      expect(h).toBe(handle);
      calls.push(`pollSet ${events}`);
    },
    pollClose(h: PollHandle) {
      expect(h).toBe(handle);
      calls.push('pollClose');
    },
    close(fd: number) {
      calls.push(`close ${fd}`);
    },
  } as unknown as VsockNative;
  return { native, calls };
}

describe('PolledFd', () => {
  it('eager: opens the handle at once and closes through it', () => {
    const { native, calls } = fakeNative();
    const pfd = new PolledFd(native, FD);
    pfd.setEvents(READABLE);
    pfd.close();
    pfd.close();
    expect(calls).toEqual([`pollOpen ${FD}`, `pollSet ${READABLE}`, 'pollClose']);
  });

  it('lazy and never polled: no handle, and close(2) once', () => {
    const { native, calls } = fakeNative();
    const pfd = new PolledFd(native, FD, { lazy: true });
    pfd.want(WRITABLE, false); // nothing asked for: still no handle
    pfd.close();
    pfd.close();
    pfd.setEvents(READABLE); // after close: nothing
    expect(calls).toEqual([`close ${FD}`]);
    expect(pfd.closed).toBe(true);
  });

  it('lazy: the first event asked for opens the handle; close goes through it', () => {
    const { native, calls } = fakeNative();
    const pfd = new PolledFd(native, FD, { lazy: true });
    pfd.want(READABLE, true);
    pfd.want(WRITABLE, true);
    pfd.close();
    expect(calls).toEqual([`pollOpen ${FD}`, `pollSet ${READABLE}`, `pollSet ${READABLE | WRITABLE}`, 'pollClose']);
  });

  it('lazy: a handle that cannot be made closes the fd and reports the coded error through onPoll', async () => {
    const { native, calls } = fakeNative(true);
    const pfd = new PolledFd(native, FD, { lazy: true });
    const reported: Array<[string | undefined, number]> = [];
    pfd.onPoll = (error, events) => reported.push([error?.code, events]);
    expect(() => pfd.setEvents(READABLE)).not.toThrow();
    expect(pfd.closed).toBe(true);
    await Promise.resolve();
    expect(reported).toEqual([['VSOCK_ENOMEM', 0]]);
    pfd.close();
    expect(calls).toEqual([`pollOpen ${FD}`, `close ${FD}`]);
  });
});
