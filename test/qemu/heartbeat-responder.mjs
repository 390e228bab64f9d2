/**
 * The rig's stand-in for the Nitro launcher's side of the boot heartbeat (specs/nitro-enclave.md §4):
 * under QEMU's nitro-enclave machine, vhost-device-vsock (`--uds-path UDS`) delivers the guest's
 * connection to the host's vsock port 9000 as a connection on the Unix socket `UDS_9000`
 * (specs/nitro-enclave.md §3). This listens there, reads one byte and answers 0xB7 to 0xB7; any other
 * byte, or none within the deadline, closes the connection unanswered (init then fails its boot, as
 * Nitro's launcher would report one).
 *
 *   node test/qemu/heartbeat-responder.mjs UDS_9000
 *
 * It prints `heartbeat-responder: listening PATH` once listening, one line per exchange, removes the
 * socket and exits 0 on SIGTERM/SIGINT. Test-only: on Nitro, nitro-cli answers; the parent's bridges
 * (host-bridge) never take part in it, so it is not a subcommand. Plain node: builtins, no build step.
 * It must not answer anything but 0xB7, hold more than MAX_CONNECTIONS, or wait without a deadline.
 */

import { lstatSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';

const HEARTBEAT_BYTE = 0xb7;
/** How long a connection may take to send its byte: the guest sends it right after connecting. */
const READ_TIMEOUT_MS = 10_000;
/** A boot sends one heartbeat; a few at once is already a misbehaving guest. */
const MAX_CONNECTIONS = 4;

const path = process.argv[2];
if (path === undefined || process.argv.length !== 3) {
  process.stderr.write('usage: node test/qemu/heartbeat-responder.mjs UDS_PATH\n');
  process.exit(2);
}

const log = (line) => process.stdout.write(`heartbeat-responder: ${line}\n`);

// A socket file left by an earlier run of the rig (killed before it could remove it); never anything else.
try {
  if (lstatSync(path).isSocket()) unlinkSync(path);
} catch (error) {
  if (error.code !== 'ENOENT') throw error;
}

const server = createServer((socket) => {
  socket.on('error', () => {});
  socket.setTimeout(READ_TIMEOUT_MS, () => {
    log('no byte within the deadline: closed');
    socket.destroy();
  });
  socket.once('data', (chunk) => {
    socket.setTimeout(0);
    socket.pause();
    if (chunk[0] === HEARTBEAT_BYTE) {
      log('0xb7 received, 0xb7 answered');
      socket.end(Uint8Array.of(HEARTBEAT_BYTE));
    } else {
      log(`0x${chunk[0].toString(16).padStart(2, '0')} received: closed unanswered`);
      socket.destroy();
    }
  });
});
server.maxConnections = MAX_CONNECTIONS;
server.on('error', (error) => {
  process.stderr.write(`heartbeat-responder: ${error.code ?? error.message}\n`);
  process.exit(1);
});
server.listen(path, () => log(`listening ${path}`));

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    // Closing the listener removes its socket file; open exchanges end with the process.
    server.close();
    process.exit(0);
  });
}
