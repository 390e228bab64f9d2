/*
 * The one entry point of the vsock half of the addon: nsm/native/nsm.c's module init calls it, so both
 * halves live in one enclave_native.node (one target in binding.gyp). It must not be called twice.
 */
#ifndef ENCLAVE_NATIVE_VSOCK_H
#define ENCLAVE_NATIVE_VSOCK_H

#include <node_api.h>

/* Adds `exports.vsock`, the object described in vsock/native.ts. Returns NULL with an exception pending on failure. */
napi_value vsock_register(napi_env env, napi_value exports);

#endif
