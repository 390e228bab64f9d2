# One native target for every device the agent touches from inside the enclave (/dev/nsm, AF_VSOCK, and
# init/'s boot syscalls). Plain C against node_api.h, pinned to N-API 8 (Node >= 12.22 / 14.17 / 15.12 / 16),
# Linux only.
{
  "targets": [
    {
      "target_name": "enclave_native",
      "sources": ["nsm/native/nsm.c", "vsock/native/vsock.c", "init/native/init.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "configurations": {
        # node's common.gypi asks for -O3; blocking ioctls gain nothing from it.
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    }
  ]
}
