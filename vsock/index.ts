/**
 * The vsock binding's public surface: AF_VSOCK stream sockets as node:stream Duplexes (`connectVsock`) and
 * servers (`listenVsock`), for the enclave's only way out (specs/qemu-rig.md "Node and vsock").
 *
 * Nothing here opens a socket at import time. Other folders import only this file.
 */

export {
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_LOCAL,
  VMADDR_PORT_ANY,
  type VsockAddress,
} from './address.js';
export { VsockError, type VsockErrorCode } from './errors.js';
export { READ_CHUNK_BYTES, VsockSocket, connectVsock, type ConnectVsockOptions, type VsockSocketOptions } from './socket.js';
export { ACCEPT_RETRY_MS, DEFAULT_BACKLOG, VsockServer, listenVsock, type ListenVsockOptions } from './server.js';
export { type FdListener, type FdListenOptions, closeFd, listenFds } from './fd-listener.js';
export { fdRelayAvailable, ipv4Bytes, openDialRelay, openFdRelay, type DialRelayOptions, type DialTarget, type FdRelay, type FdRelayEnd, type FdRelayOptions, type FdRelayStats } from './relay.js';
