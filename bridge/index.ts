/**
 * The vsock bridges' public surface: the enclave's doors. Ingress joins vsock connections from the parent
 * to the enclave's TCP listeners (and the parent's TCP listener to the enclave's vsock port); egress gives
 * the app an HTTP CONNECT proxy whose allowed targets the parent connects to. Other folders import only
 * this file. Nothing here opens a socket at import time.
 */

export { BridgeError, type BridgeErrorCode } from './errors.js';
export { joinStreams, type Join, type JoinEnd, type JoinOptions, type JoinResult } from './pipe.js';
export { RELAY_BUFFER_BYTES, RELAY_SPLICE, joinStreamsNative, resolveRelay, type NativeJoinOptions, type RelayKind } from './native-pipe.js';
export { LINGER_MS, WARN_INTERVAL_MS, startForwarder, type Forwarder, type ForwarderOptions, type ForwarderStats, type OpenTarget } from './forwarder.js';
export {
  dialWithin,
  listenTcp,
  listenTcpFds,
  listenVsockFds,
  listenVsockStreams,
  tcpDialer,
  vsockDialer,
  type Dial,
  type StreamListener,
  type TcpListener,
} from './transports.js';
export {
  HYBRID_REPLY_MAX_BYTES,
  HYBRID_REPLY_TIMEOUT_MS,
  UNIX_PATH_MAX_BYTES,
  encodeHybridConnect,
  hybridVsockDialer,
  hybridVsockListenPath,
  listenUnixStreams,
  parseHybridConnectReply,
  readHybridConnectReply,
  type HybridVsockTarget,
  type UnixListener,
} from './hybrid-vsock.js';
export {
  CONNECT_STATUS,
  MAX_HEAD_BYTES,
  connectResponse,
  createAllowlist,
  encodeConnectRequest,
  parseAuthority,
  parseConnectRequest,
  parseConnectResponse,
  type Allowlist,
  type ConnectTarget,
} from './connect-head.js';
export { CONNECT_TIMEOUT_MS, HEAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, createEgressProxyOpen, createEgressUpstreamOpen } from './egress.js';
export {
  DEFAULT_EGRESS_LISTEN,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_INGRESS_PORTS,
  DEFAULT_MAX_CONNECTIONS,
  OPEN_TIMEOUT_MS,
  PARENT_CID,
  closeAll,
  dialOpen,
  startEnclaveEgress,
  startEnclaveIngress,
  startHostEgress,
  startHostIngress,
} from './bridges.js';
export { parseEnclaveBridgeFlags, parseHostBridgeFlags, type EnclaveBridgeConfig, type HostBridgeConfig } from './config.js';
export {
  ENCLAVE_BRIDGE_OPTIONS,
  ENCLAVE_BRIDGE_USAGE,
  HOST_BRIDGE_OPTIONS,
  HOST_BRIDGE_USAGE,
  SHUTDOWN_GRACE_MS,
  runEnclaveBridgeCommand,
  runHostBridgeCommand,
  startEnclaveBridges,
  type BridgeCommandIo,
  type RunningEnclaveBridges,
} from './command.js';
