/**
 * Nitro's boot heartbeat (specs/nitro-enclave.md §4): soon after boot the enclave's init connects to the
 * parent (CID 3) on vsock port 9000, sends the one byte 0xB7 and reads 0xB7 back; without it the launcher
 * on the parent reports a failed boot. `exchangeHeartbeat` does that exchange over any stream opener, so
 * its rules are tested on the host with fake streams; the real vsock connect is init/boot-steps.ts's
 * `SystemActions.connectVsock`, exercised only inside the QEMU guest.
 *
 * Where it goes comes from the measured configuration only (`boot.heartbeat`, init/config.ts), never from
 * the kernel command line or the environment: QEMU's `-append` text is not measured (specs/nitro-enclave.md
 * §3), and a rig that needs another CID (QEMU's nitro-enclave machine delivers only CID 2, the host) says so
 * in the file the configuration PCR hashes.
 *
 * It must not wait without a deadline, retry (the launcher listens before the enclave starts: a refusal is
 * the answer), read more than the one byte, or leave the stream open.
 */

import type { Duplex } from 'node:stream';

import { InitError } from './errors.js';

/** The byte both sides send (specs/nitro-enclave.md §4). */
export const HEARTBEAT_BYTE = 0xb7;
/** The parent instance's CID as an enclave sees it, and the launcher's heartbeat port (specs/nitro-enclave.md §4). */
export const NITRO_PARENT_CID = 3;
export const NITRO_HEARTBEAT_PORT = 9000;
/**
 * The whole exchange (connect, send, answer) within this, by default: the launcher listens before the
 * enclave boots, so its answer is one round trip; 10 s leaves room for a loaded parent and an emulated rig.
 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;

export interface HeartbeatTarget {
  readonly cid: number;
  readonly port: number;
  readonly timeoutMs: number;
}

/** Opens one stream to `cid:port` (vsock in production). */
export type OpenHeartbeatStream = (cid: number, port: number) => Promise<Duplex>;

/**
 * Connects, sends 0xB7 and waits for 0xB7, all within `timeoutMs`; resolves when the answer came.
 * Rejects with `INIT_HEARTBEAT_TIMEOUT`, `INIT_HEARTBEAT_BAD_REPLY` (another byte first) or
 * `INIT_HEARTBEAT_FAILED` (the connect failed, or the parent closed without answering; the cause kept).
 * The stream is destroyed in every case, a late connect included.
 */
export function exchangeHeartbeat(open: OpenHeartbeatStream, target: HeartbeatTarget): Promise<void> {
  const where = `vsock ${target.cid}:${target.port}`;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let stream: Duplex | undefined;
    const finish = (error?: InitError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (stream !== undefined) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('close', onEnd);
        // A full close either way: nothing more is read or sent, and a late error is not unhandled.
        stream.on('error', () => {});
        stream.destroy();
      }
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (chunk: Uint8Array): void => {
      if (chunk.length === 0) return;
      if (chunk[0] === HEARTBEAT_BYTE) finish();
      else finish(new InitError('INIT_HEARTBEAT_BAD_REPLY', `${where} answered 0x${chunk[0]!.toString(16).padStart(2, '0')}, not 0xb7`));
    };
    const onEnd = (): void => finish(new InitError('INIT_HEARTBEAT_FAILED', `${where} closed without answering`));
    const onError = (cause: unknown): void => finish(new InitError('INIT_HEARTBEAT_FAILED', `${where} failed: ${codeOf(cause)}`, { cause }));
    const timer = setTimeout(() => finish(new InitError('INIT_HEARTBEAT_TIMEOUT', `no heartbeat answer from ${where} within ${target.timeoutMs} ms`)), target.timeoutMs);

    open(target.cid, target.port).then(
      (opened) => {
        stream = opened;
        if (settled) {
          // The deadline passed while connecting: close what arrived late.
          opened.on('error', () => {});
          opened.destroy();
          return;
        }
        opened.on('data', onData);
        opened.once('end', onEnd);
        opened.once('close', onEnd);
        opened.on('error', onError);
        opened.write(Uint8Array.of(HEARTBEAT_BYTE));
      },
      (cause: unknown) => onError(cause),
    );
  });
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}
