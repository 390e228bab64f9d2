/*
 * The one entry point of init/'s half of the addon: it adds `exports.init`, the object described in
 * init/native.ts. nsm/native/nsm.c's module init calls it, so every part lives in one
 * enclave_native.node (one target in binding.gyp). It must not be called twice.
 */
#ifndef ENCLAVE_NATIVE_INIT_H
#define ENCLAVE_NATIVE_INIT_H

#include <node_api.h>

/* Adds `exports.init`. Returns NULL with an exception pending on failure. */
napi_value init_register(napi_env env, napi_value exports);

#endif
