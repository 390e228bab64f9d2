/*
 * The entry point of the STEVE server's native handshake cryptography (agent/native/handshake.c):
 * nsm/native/nsm.c's module init calls it, so it lives in the one enclave_native.node. It keeps no state.
 */
#ifndef ENCLAVE_NATIVE_HANDSHAKE_H
#define ENCLAVE_NATIVE_HANDSHAKE_H

#include <node_api.h>

/* Adds `exports.handshake`, the object described in agent/handshake-native.ts. Returns NULL with an exception pending on failure. */
napi_value handshake_register(napi_env env, napi_value exports);

#endif
