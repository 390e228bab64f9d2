/**
 * Backpressure tests of byte pipes (bridge/pipe.test.ts, bridge/hybrid-vsock.test.ts, the guest's vsock
 * test): a writer that sends `total` bytes and waits for 'drain' whenever write() says the far side is
 * full, and a reader that counts and hashes what arrives, so a test compares exact bytes, not only sizes.
 */

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';

/** Writes `block` repeatedly until `total` bytes are sent, honouring backpressure; ends `stream` after with `end`. */
export function writeHashed(stream: Writable, total: number, block: Uint8Array, options: { end?: boolean } = {}) {
  const hash = createHash('sha256');
  let sent = 0;
  let falses = 0;
  const done = (async () => {
    while (sent < total) {
      hash.update(block);
      sent += block.length;
      if (!stream.write(block)) {
        falses += 1;
        await once(stream, 'drain');
      }
    }
    if (options.end === true) stream.end();
  })();
  return {
    /** Settles once the last block was handed to the stream (and it was ended, with `end`). */
    done,
    /** Bytes handed to the stream so far. */
    get sent() {
      return sent;
    },
    /** How many times write() returned false. */
    get falses() {
      return falses;
    },
    digest: () => hash.digest('hex'),
  };
}

/** Counts and hashes every chunk `stream` emits from now on; `onChunk` runs after each. */
export function readHashed(stream: Readable, onChunk?: () => void) {
  const hash = createHash('sha256');
  let received = 0;
  stream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    received += chunk.length;
    onChunk?.();
  });
  return {
    get received() {
      return received;
    },
    digest: () => hash.digest('hex'),
  };
}
