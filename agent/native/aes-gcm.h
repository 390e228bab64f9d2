/*
 * The entry point of the agent's AES-256-GCM for STEVE (agent/native/aes-gcm.c): nsm/native/nsm.c's module
 * init calls it, so it lives in the one enclave_native.node. It must not be called twice: it owns the
 * addon's instance data.
 */
#ifndef ENCLAVE_NATIVE_AES_GCM_H
#define ENCLAVE_NATIVE_AES_GCM_H

#include <node_api.h>

/* Adds `exports.aesGcm`, the object described in agent/aes-gcm-native.ts. Returns NULL with an exception pending on failure. */
napi_value aes_gcm_register(napi_env env, napi_value exports);

#endif
