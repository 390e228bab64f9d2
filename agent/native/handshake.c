/*
 * The STEVE server's handshake cryptography in one native call each (agent/handshake-native.ts): the X25519
 * answer to a client's key (a fresh key pair generated inside OpenSSL, its public half, the shared
 * secret), HKDF-SHA256 with one extract and several expands (the session key schedule, specs/steve.md §4)
 * and SHA-256 (the transcript hash), where node:crypto makes a KeyObject per key, a JWK round trip per
 * public key and an Hmac object and a Buffer per HMAC (bench/handshake-crypto.mjs compares the two). Same
 * OpenSSL as node:crypto and aes-gcm.c: node's headers, node's symbols.
 *
 * exports.handshake:
 *   x25519Respond(clientPublic, serverPublicOut, sharedOut): a fresh X25519 key pair from OpenSSL's
 *     generator; writes its public u-coordinate into serverPublicOut and X25519(private, clientPublic)
 *     into sharedOut (all three 32 bytes). The client's most significant bit is masked first (RFC 7748
 *     §5). Throws STEVE_KEY when the result would be all zero (a low-order client key), with sharedOut
 *     zeroed. The private key never leaves OpenSSL and is freed (cleansed) before the call returns.
 *   hkdfSha256(ikm, salt, infos, outs): RFC 5869 HKDF-SHA256: PRK = Extract(salt, ikm) once, then
 *     outs[i] = Expand(PRK, infos[i], outs[i].length) for each i (1 to 16 outputs of 1 to 8160 bytes),
 *     written out over OpenSSL's HMAC with one context for the whole call. (OpenSSL's own HKDF takes a
 *     context per step, and the digest's lookup with it: twice the time here. With one HKDF context
 *     reused for the expands, an empty info after a longer one crashed inside HKDF_Expand, OpenSSL
 *     3.0.19; found by handshake-native.test.ts's property test.) The PRK and each block live only in
 *     this call and are cleansed.
 *   sha256(data, out): out (32 bytes) = SHA-256(data).
 * Every byte argument is a Uint8Array; outputs are the caller's, written in place; a failure throws
 * STEVE_BAD_ARGUMENT (arguments, checked before any work), STEVE_KEY or STEVE_HANDSHAKE_FAILED, and leaves
 * every output zeroed.
 */
#include <string.h>

#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "../../native/common.h"
#include "handshake.h"

#define X25519_BYTES 32
#define SHA256_BYTES 32
/* RFC 5869 §2.3: L <= 255 * HashLen. */
#define MAX_EXPAND_BYTES (255 * SHA256_BYTES)
/* Ours: the schedule has seven outputs; more than this is refused before any work. */
#define MAX_OUTPUTS 16u
/* Ours: inputs are keys, hashes and labels; OpenSSL takes int lengths. */
#define MAX_INPUT_BYTES 1048576u

static const argument_style STYLE = {"STEVE_BAD_ARGUMENT", NAME_BINARY_CLASSES, true};

/* A Uint8Array's bytes, of exactly `exact` bytes (0: 0..max). Throws and returns false otherwise. */
static bool get_bytes(napi_env env, napi_value value, const char *name, size_t exact, size_t max, uint8_t **data,
                      size_t *len) {
  return get_uint8_array(env, &STYLE, value, name, exact, max, data, len);
}

static napi_value fail(napi_env env, const char *code, const char *what) {
  return throw_error(env, make_error(env, code, what, NULL));
}

static napi_value x25519_respond(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *client, *server_public, *shared;
  size_t n;
  if (!get_args(env, info, 3, argv) || !get_bytes(env, argv[0], "clientPublic", X25519_BYTES, 0, &client, &n) ||
      !get_bytes(env, argv[1], "serverPublicOut", X25519_BYTES, 0, &server_public, &n) ||
      !get_bytes(env, argv[2], "sharedOut", X25519_BYTES, 0, &shared, &n))
    return NULL;
  uint8_t peer_bytes[X25519_BYTES];
  memcpy(peer_bytes, client, X25519_BYTES);
  peer_bytes[X25519_BYTES - 1] &= 0x7f;

  EVP_PKEY_CTX *keygen = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL);
  EVP_PKEY *own = NULL;
  EVP_PKEY *peer = NULL;
  EVP_PKEY_CTX *derive = NULL;
  const char *code = "STEVE_HANDSHAKE_FAILED";
  const char *what = "X25519 key generation failed";
  size_t len = X25519_BYTES;
  bool ok = keygen != NULL && EVP_PKEY_keygen_init(keygen) == 1 && EVP_PKEY_keygen(keygen, &own) == 1 &&
            EVP_PKEY_get_raw_public_key(own, server_public, &len) == 1 && len == X25519_BYTES;
  if (ok) {
    what = "X25519 failed";
    code = "STEVE_KEY";
    peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer_bytes, X25519_BYTES);
    derive = peer == NULL ? NULL : EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL);
    len = X25519_BYTES;
    /* OpenSSL refuses an all-zero result itself (a low-order peer key); checked again below. */
    ok = derive != NULL && EVP_PKEY_derive_init(derive) == 1 && EVP_PKEY_derive_set_peer(derive, peer) == 1 &&
         EVP_PKEY_derive(derive, shared, &len) == 1 && len == X25519_BYTES;
  }
  EVP_PKEY_CTX_free(derive);
  EVP_PKEY_free(peer);
  /* Frees the private key: OpenSSL cleanses its bytes. */
  EVP_PKEY_free(own);
  EVP_PKEY_CTX_free(keygen);
  if (ok) {
    uint8_t acc = 0;
    for (size_t i = 0; i < X25519_BYTES; i++) acc |= shared[i];
    if (acc == 0) {
      ok = false;
      what = "X25519 shared secret is all zero";
    }
  }
  if (!ok) {
    OPENSSL_cleanse(shared, X25519_BYTES);
    OPENSSL_cleanse(server_public, X25519_BYTES);
    return fail(env, code, what);
  }
  return NULL;
}

/*
 * HMAC-SHA256(key, a || b || c) into out (32 bytes), on `ctx` (an HMAC context with SHA-256 set), which is
 * keyed anew for each call.
 */
static bool hmac_sha256(EVP_MAC_CTX *ctx, const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                        const uint8_t *b, size_t b_len, const uint8_t *c, size_t c_len, uint8_t *out) {
  size_t written = 0;
  return EVP_MAC_init(ctx, key, key_len, NULL) == 1 && (a_len == 0 || EVP_MAC_update(ctx, a, a_len) == 1) &&
         (b_len == 0 || EVP_MAC_update(ctx, b, b_len) == 1) && (c_len == 0 || EVP_MAC_update(ctx, c, c_len) == 1) &&
         EVP_MAC_final(ctx, out, &written, SHA256_BYTES) == 1 && written == SHA256_BYTES;
}

/*
 * RFC 5869 §2.3 HKDF-Expand(prk, info, out_len) into out: T(i) = HMAC(prk, T(i-1) || info || i), from
 * T(1), the first out_len bytes of T(1) || T(2) || ...
 */
static bool hkdf_expand(EVP_MAC_CTX *ctx, const uint8_t *prk, const uint8_t *info, size_t info_len, uint8_t *out,
                        size_t out_len) {
  uint8_t block[SHA256_BYTES];
  bool ok = true;
  size_t previous = 0;
  for (size_t at = 0, i = 1; ok && at < out_len; at += SHA256_BYTES, i++) {
    const uint8_t counter = (uint8_t)i;
    ok = hmac_sha256(ctx, prk, SHA256_BYTES, block, previous, info, info_len, &counter, 1, block);
    previous = SHA256_BYTES;
    if (ok) memcpy(out + at, block, out_len - at < SHA256_BYTES ? out_len - at : SHA256_BYTES);
  }
  OPENSSL_cleanse(block, sizeof block);
  return ok;
}

static napi_value hkdf_sha256(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *ikm, *salt, *piece;
  size_t ikm_len, salt_len, piece_len;
  bool infos_array = false, outs_array = false;
  uint32_t count = 0, outs_count = 0;
  if (!get_args(env, info, 4, argv) || !get_bytes(env, argv[0], "ikm", 0, MAX_INPUT_BYTES, &ikm, &ikm_len) ||
      !get_bytes(env, argv[1], "salt", 0, MAX_INPUT_BYTES, &salt, &salt_len))
    return NULL;
  NAPI_CALL(env, napi_is_array(env, argv[2], &infos_array));
  NAPI_CALL(env, napi_is_array(env, argv[3], &outs_array));
  if (!infos_array) return throw_bad_argument(env, &STYLE, false, "infos", "an Array of Uint8Array", argv[2]);
  if (!outs_array) return throw_bad_argument(env, &STYLE, false, "outs", "an Array of Uint8Array", argv[3]);
  NAPI_CALL(env, napi_get_array_length(env, argv[2], &count));
  NAPI_CALL(env, napi_get_array_length(env, argv[3], &outs_count));
  if (count < 1 || count > MAX_OUTPUTS) return throw_bad_argument(env, &STYLE, true, "infos", "1 to 16 entries", argv[2]);
  if (outs_count != count) return throw_bad_argument(env, &STYLE, true, "outs", "as many entries as infos", argv[3]);
  /* Every info and output is checked before anything is derived. */
  uint8_t *infos[MAX_OUTPUTS], *outs[MAX_OUTPUTS];
  size_t info_lens[MAX_OUTPUTS], out_lens[MAX_OUTPUTS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    NAPI_CALL(env, napi_get_element(env, argv[2], i, &item));
    if (!get_bytes(env, item, "infos[i]", 0, MAX_INPUT_BYTES, &piece, &piece_len)) return NULL;
    infos[i] = piece;
    info_lens[i] = piece_len;
    NAPI_CALL(env, napi_get_element(env, argv[3], i, &item));
    if (!get_bytes(env, item, "outs[i]", 0, MAX_EXPAND_BYTES, &piece, &piece_len)) return NULL;
    if (piece_len == 0) return throw_bad_argument(env, &STYLE, true, "outs[i]", "1 to 8160 bytes", item);
    outs[i] = piece;
    out_lens[i] = piece_len;
  }

  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac == NULL ? NULL : EVP_MAC_CTX_new(mac);
  OSSL_PARAM digest[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end()};
  /* RFC 5869 §2.2: no salt is HashLen zero bytes (the same HMAC key, spelled out for OpenSSL). */
  static const uint8_t zeros[SHA256_BYTES] = {0};
  uint8_t prk[SHA256_BYTES];
  bool ok = ctx != NULL && EVP_MAC_CTX_set_params(ctx, digest) == 1 &&
            hmac_sha256(ctx, salt_len == 0 ? zeros : salt, salt_len == 0 ? sizeof zeros : salt_len, ikm, ikm_len, NULL, 0,
                        NULL, 0, prk);
  for (uint32_t i = 0; ok && i < count; i++) ok = hkdf_expand(ctx, prk, infos[i], info_lens[i], outs[i], out_lens[i]);
  OPENSSL_cleanse(prk, sizeof prk);
  /* Frees the context's copy of the key: OpenSSL cleanses it. */
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  if (!ok) {
    for (uint32_t i = 0; i < count; i++) OPENSSL_cleanse(outs[i], out_lens[i]);
    return fail(env, "STEVE_HANDSHAKE_FAILED", "HKDF-SHA256 failed");
  }
  return NULL;
}

static napi_value sha256(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *data, *out;
  size_t data_len, out_len;
  if (!get_args(env, info, 2, argv) || !get_bytes(env, argv[0], "data", 0, MAX_INPUT_BYTES, &data, &data_len) ||
      !get_bytes(env, argv[1], "out", SHA256_BYTES, 0, &out, &out_len))
    return NULL;
  static const uint8_t empty[1] = {0};
  unsigned int written = 0;
  if (EVP_Digest(data_len == 0 ? empty : data, data_len, out, &written, EVP_sha256(), NULL) != 1 ||
      written != SHA256_BYTES) {
    OPENSSL_cleanse(out, SHA256_BYTES);
    return fail(env, "STEVE_HANDSHAKE_FAILED", "SHA-256 failed");
  }
  return NULL;
}

napi_value handshake_register(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"x25519Respond", NULL, x25519_respond, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hkdfSha256", NULL, hkdf_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256", NULL, sha256, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return export_frozen_object(env, exports, "handshake", properties, sizeof(properties) / sizeof(properties[0]));
}
