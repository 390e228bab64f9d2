/*
 * AES-256-GCM for the STEVE server's records, in one call per record (agent/aes-gcm-native.ts): node:crypto
 * takes five (createCipheriv, setAAD, update, final, getAuthTag), each making or touching a JS object,
 * and a record of a few bytes cost about 5 us that way against about 1.2 here (bench figures in
 * agent/aes-gcm-native.ts). It is the OpenSSL that Node itself carries: the headers are node's, and the
 * symbols resolve against the node binary when the addon loads, so it runs the same AES-NI code as
 * node:crypto.
 *
 * exports.aesGcm:
 *   seal(key, nonce, aad, plaintext, out, offset): writes AES-256-GCM(plaintext) || tag into
 *     out[offset..]; `plaintext` is one Uint8Array or an array of them, sealed as their concatenation
 *     (nothing is joined first).
 *   open(key, nonce, aad, sealed, out) -> boolean: writes the plaintext (sealed.length - 16 bytes) into
 *     `out`; false, with `out` zeroed, when the tag does not verify: no unauthenticated byte survives.
 * Every byte argument is a Uint8Array: the key 32 bytes, the nonce 12. `out` is the caller's (one JS
 * allocation per record, none here). The context is reset after every call, which makes OpenSSL cleanse
 * the key schedule: no key material stays here between calls. Each env (main thread, worker) has its own
 * context, in the addon's instance data, which this file owns.
 */
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <openssl/evp.h>

#include "../../native/common.h"
#include "aes-gcm.h"

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
/* OpenSSL takes int lengths. */
#define MAX_BYTES 2147483647u
/* A plaintext given as pieces: more than this many is refused (the server passes a head and the app's chunks). */
#define MAX_PIECES 65536u

static const argument_style STYLE = {"STEVE_BAD_ARGUMENT", NAME_BINARY_CLASSES, true};

typedef struct {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *ctx;
} aes_gcm_state;

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aes_gcm_state *state = data;
  EVP_CIPHER_CTX_free(state->ctx);
  EVP_CIPHER_free(state->cipher);
  free(state);
}

/* A Uint8Array's bytes; `exact` 0 means any length up to MAX_BYTES. Throws and returns false otherwise. */
static bool get_bytes(napi_env env, napi_value value, const char *name, size_t exact, uint8_t **data, size_t *len) {
  return get_uint8_array(env, &STYLE, value, name, exact, MAX_BYTES, data, len);
}

/* Any OpenSSL failure is an exception, and the context is reset: fail closed, never partial output. */
static napi_value openssl_failure(napi_env env, EVP_CIPHER_CTX *ctx, const char *what) {
  if (ctx != NULL) EVP_CIPHER_CTX_reset(ctx);
  napi_value error = make_error(env, "STEVE_AEAD_FAILED", what, NULL);
  return throw_error(env, error);
}

static aes_gcm_state *get_state(napi_env env) {
  aes_gcm_state *state = NULL;
  if (napi_get_instance_data(env, (void **)&state) != napi_ok) return NULL;
  return state;
}

/* Encrypts one piece into *dest, advancing it. */
static bool encrypt_piece(EVP_CIPHER_CTX *ctx, const uint8_t *piece, size_t len, uint8_t **dest) {
  int n = 0;
  if (len == 0) return true;
  if (EVP_EncryptUpdate(ctx, *dest, &n, piece, (int)len) != 1 || (size_t)n != len) return false;
  *dest += len;
  return true;
}

static napi_value aes_gcm_seal(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  uint8_t *key, *nonce, *aad, *out, *piece;
  size_t key_len, nonce_len, aad_len, out_len, piece_len;
  double offset;
  bool is_array = false;
  if (!get_args(env, info, 6, argv) || !get_bytes(env, argv[0], "key", KEY_BYTES, &key, &key_len) ||
      !get_bytes(env, argv[1], "nonce", NONCE_BYTES, &nonce, &nonce_len) ||
      !get_bytes(env, argv[2], "aad", 0, &aad, &aad_len) || !get_bytes(env, argv[4], "out", 0, &out, &out_len) ||
      !get_integer(env, &STYLE, argv[5], "offset", "an integer 0..2147483647", 0, MAX_BYTES, &offset))
    return NULL;
  NAPI_CALL(env, napi_is_array(env, argv[3], &is_array));
  uint32_t count = 1;
  if (is_array) {
    NAPI_CALL(env, napi_get_array_length(env, argv[3], &count));
    if (count > MAX_PIECES) return throw_bad_argument(env, &STYLE, true, "plaintext", "at most 65536 pieces", argv[3]);
  }
  /* Every piece is checked, and the room counted, before anything is written. */
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item = argv[3];
    if (is_array) NAPI_CALL(env, napi_get_element(env, argv[3], i, &item));
    if (!get_bytes(env, item, "plaintext", 0, &piece, &piece_len)) return NULL;
    total += piece_len;
    if (total > MAX_BYTES) return throw_bad_argument(env, &STYLE, true, "plaintext", "at most 2147483647 bytes in all", argv[3]);
  }
  if ((size_t)offset > out_len || out_len - (size_t)offset < total + TAG_BYTES)
    return throw_bad_argument(env, &STYLE, true, "out", "room for the ciphertext and tag after offset", argv[4]);

  aes_gcm_state *state = get_state(env);
  if (state == NULL) return openssl_failure(env, NULL, "AES-256-GCM is not set up");
  EVP_CIPHER_CTX *ctx = state->ctx;
  uint8_t *dest = out + (size_t)offset;
  int n = 0;
  if (EVP_EncryptInit_ex2(ctx, state->cipher, key, nonce, NULL) != 1) return openssl_failure(env, ctx, "AES-256-GCM init failed");
  if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) return openssl_failure(env, ctx, "AES-256-GCM AAD failed");
  for (uint32_t i = 0; i < count; i++) {
    napi_value item = argv[3];
    if (is_array && napi_get_element(env, argv[3], i, &item) != napi_ok) return openssl_failure(env, ctx, "plaintext piece unreadable");
    /* Read again: checked above, and JS cannot run in between. */
    if (!get_bytes(env, item, "plaintext", 0, &piece, &piece_len)) return openssl_failure(env, ctx, "plaintext piece changed");
    if (!encrypt_piece(ctx, piece, piece_len, &dest)) return openssl_failure(env, ctx, "AES-256-GCM update failed");
  }
  /* GCM writes nothing in final; it computes the tag. */
  if (EVP_EncryptFinal_ex(ctx, dest, &n) != 1 || n != 0 || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, dest) != 1)
    return openssl_failure(env, ctx, "AES-256-GCM final failed");
  EVP_CIPHER_CTX_reset(ctx);
  return NULL;
}

static napi_value aes_gcm_open(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *key, *nonce, *aad, *sealed, *out;
  size_t key_len, nonce_len, aad_len, sealed_len, out_len;
  if (!get_args(env, info, 5, argv) || !get_bytes(env, argv[0], "key", KEY_BYTES, &key, &key_len) ||
      !get_bytes(env, argv[1], "nonce", NONCE_BYTES, &nonce, &nonce_len) ||
      !get_bytes(env, argv[2], "aad", 0, &aad, &aad_len) || !get_bytes(env, argv[3], "sealed", 0, &sealed, &sealed_len) ||
      !get_bytes(env, argv[4], "out", 0, &out, &out_len))
    return NULL;
  if (sealed_len < TAG_BYTES) return throw_bad_argument(env, &STYLE, true, "sealed", "at least 16 bytes", argv[3]);
  size_t text_len = sealed_len - TAG_BYTES;
  if (out_len != text_len) return throw_bad_argument(env, &STYLE, true, "out", "sealed.length - 16 bytes", argv[4]);

  aes_gcm_state *state = get_state(env);
  if (state == NULL) return openssl_failure(env, NULL, "AES-256-GCM is not set up");
  EVP_CIPHER_CTX *ctx = state->ctx;
  int n = 0;
  uint8_t tag[TAG_BYTES];
  memcpy(tag, sealed + text_len, TAG_BYTES);
  if (EVP_DecryptInit_ex2(ctx, state->cipher, key, nonce, NULL) != 1) return openssl_failure(env, ctx, "AES-256-GCM init failed");
  if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) return openssl_failure(env, ctx, "AES-256-GCM AAD failed");
  if (text_len > 0 && (EVP_DecryptUpdate(ctx, out, &n, sealed, (int)text_len) != 1 || (size_t)n != text_len)) {
    memset(out, 0, text_len);
    return openssl_failure(env, ctx, "AES-256-GCM update failed");
  }
  bool ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) == 1 && EVP_DecryptFinal_ex(ctx, out + text_len, &n) == 1;
  EVP_CIPHER_CTX_reset(ctx);
  if (!ok && text_len > 0) memset(out, 0, text_len);
  return boolean_value(env, ok);
}

napi_value aes_gcm_register(napi_env env, napi_value exports) {
  aes_gcm_state *state = calloc(1, sizeof *state);
  if (state == NULL) return throw_error(env, make_error(env, "STEVE_AEAD_FAILED", "out of memory", NULL));
  state->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  state->ctx = EVP_CIPHER_CTX_new();
  if (state->cipher == NULL || state->ctx == NULL) {
    free_state(env, state, NULL);
    return throw_error(env, make_error(env, "STEVE_AEAD_FAILED", "OpenSSL has no AES-256-GCM", NULL));
  }
  if (napi_set_instance_data(env, state, free_state, NULL) != napi_ok) {
    free_state(env, state, NULL);
    throw_napi_failure(env);
    return NULL;
  }
  napi_property_descriptor properties[] = {
      {"seal", NULL, aes_gcm_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, aes_gcm_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"TAG_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, TAG_BYTES), napi_enumerable, NULL},
  };
  return export_frozen_object(env, exports, "aesGcm", properties, sizeof(properties) / sizeof(properties[0]));
}
