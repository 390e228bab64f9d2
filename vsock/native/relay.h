/*
 * The entry point of the bridges' native relay (vsock/native/relay.c): nsm/native/nsm.c's module init
 * calls it after vsock_register, so it lives in the one enclave_native.node. It must not be called twice.
 */
#ifndef ENCLAVE_NATIVE_RELAY_H
#define ENCLAVE_NATIVE_RELAY_H

#include <node_api.h>

/* Adds `exports.vsockRelay`, the object described in vsock/relay.ts. Returns NULL with an exception pending on failure. */
napi_value relay_register(napi_env env, napi_value exports);

#endif
