# One native target for every device the agent touches from inside the enclave (/dev/nsm, AF_VSOCK, and
# init/'s boot syscalls), and STEVE's AES-256-GCM and handshake cryptography (agent/native/aes-gcm.c and
# handshake.c: node's own OpenSSL, through the headers node ships and the symbols the node binary exports,
# so nothing more is linked). Plain C against
# node_api.h, pinned to N-API 8 (Node >= 12.22 / 14.17 / 15.12 / 16), Linux only.
{
  "targets": [
    {
      "target_name": "enclave_native",
      # native/common.c: the helpers the three share (coded errors, argument checks).
      "sources": ["nsm/native/nsm.c", "vsock/native/vsock.c", "vsock/native/relay.c", "init/native/init.c", "agent/native/aes-gcm.c", "agent/native/handshake.c", "native/common.c"],
      "defines": ["NAPI_VERSION=8"],
      # Hidden by default: only N-API's entry points (NAPI_MODULE_EXPORT) leave the .node, so the shared
      # helpers' plain names cannot bind to a same-named symbol in the node binary.
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11"],
      "configurations": {
        # node's common.gypi asks for -O3; blocking ioctls gain nothing from it.
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    }
  ]
}
