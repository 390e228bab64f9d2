/*
 * The helpers the C files of enclave_native share (nsm/native/nsm.c, vsock/native/vsock.c,
 * vsock/native/relay.c, init/native/init.c, agent/native/aes-gcm.c, agent/native/handshake.c): making sure a failed N-API call leaves an exception, errors coded <PART>_E<ERRNO>
 * with an `errno` property, and argument checks with one message pattern,
 * `"fd" expected an integer 0..2147483647, got -1`.
 *
 * It must not hold device-specific logic: no syscalls, no /dev/nsm, vsock or boot knowledge. Where the
 * parts differ (their code prefix, how a bad argument is named and thrown) each passes its own values, so
 * every code and message stays what its tests pin.
 */
#ifndef ENCLAVE_NATIVE_COMMON_H
#define ENCLAVE_NATIVE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

/*
 * Room for "<prefix>: <strerror>": init.c's prefixes are under 1400 bytes (its PREFIX_BYTES), and glibc's
 * longest strerror text is under 64.
 */
#define ERRNO_MESSAGE_BYTES 2048

/* ------------------------------------------------------------------------------------------------ */
/* N-API failures */

/* After a failed N-API call: make sure something is thrown. */
void throw_napi_failure(napi_env env);

#define NAPI_CALL(env, call)                                                                             \
  do {                                                                                                   \
    if ((call) != napi_ok) {                                                                             \
      throw_napi_failure(env);                                                                           \
      return NULL;                                                                                       \
    }                                                                                                    \
  } while (0)

/* Throws `error`, or (if building it failed, error == NULL) whatever N-API reports. Returns NULL. */
napi_value throw_error(napi_env env, napi_value error);

/* ------------------------------------------------------------------------------------------------ */
/* Coded errors */

/* The errno name ("EINVAL"); glibc >= 2.32 has them all, elsewhere (musl) a short list, then digits. */
const char *errno_name(int err, char *buf, size_t buf_len);

/* An Error with `code` and, if errno_str is not NULL, `errno`. NULL if N-API itself failed. */
napi_value make_error(napi_env env, const char *code, const char *message, const char *errno_str);

/*
 * An Error coded `code`, or <part>_E<NAME> when `code` is NULL, with `errno` <NAME> and `message`
 * (already formatted by the caller). NULL if N-API failed.
 */
napi_value make_errno_error_with_message(napi_env env, const char *part, const char *code, const char *message,
                                         int err);

/* Code <part>_E<NAME> ("VSOCK" -> VSOCK_ECONNRESET), errno <NAME>, message "<prefix>: <strerror>". */
napi_value make_errno_error(napi_env env, const char *part, const char *prefix, int err);

/* Throws make_errno_error(...); returns NULL so callers can `return throw_errno(...)`. */
napi_value throw_errno(napi_env env, const char *part, const char *prefix, int err);

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks */

/* How "got ..." names an object that is not an Array. */
typedef enum {
  NAME_OBJECTS_PLAIN,  /* "object" (vsock/: vsock/vsock.test.ts expects `got object` for a Uint16Array) */
  NAME_TYPED_ARRAYS,   /* "a typed array" for any typed array, else "object" (init/) */
  NAME_BINARY_CLASSES, /* the typed array's class ("Uint16Array"), "DataView", "ArrayBuffer" (nsm/) */
} value_naming;

/* How one part reports a bad argument. Each C file declares one, so the differences stay in sight. */
typedef struct {
  const char *code; /* "VSOCK_BAD_ARGUMENT" */
  value_naming naming;
  /* true: a value of the right type but out of range is a RangeError; false: every one is a TypeError. */
  bool range_errors;
} argument_style;

/*
 * Throws `"<name>" expected <expected>, got <value described>` coded style->code: a RangeError if `range`
 * and the style has range errors, else a TypeError. Returns NULL.
 */
napi_value throw_bad_argument(napi_env env, const argument_style *style, bool range, const char *name,
                              const char *expected, napi_value value);

/* An integer number in [min, max]; throws and returns false otherwise. */
bool get_integer(napi_env env, const argument_style *style, napi_value value, const char *name,
                 const char *expected, double min, double max, double *out);

/*
 * A Uint8Array's bytes: exactly `exact` of them, or (exact 0) at most `max`. Another type throws a
 * TypeError, another length `"<name>" expected <n> bytes` (a RangeError if the style has them); both return
 * false. `*data` is NULL for an empty array.
 */
bool get_uint8_array(napi_env env, const argument_style *style, napi_value value, const char *name, size_t exact,
                     size_t max, uint8_t **data, size_t *len);

/* Fills argv[0..count) with the call's arguments, undefined where missing; throws and returns false if N-API fails. */
bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv);

/* ------------------------------------------------------------------------------------------------ */
/* Values */

/* A JS boolean; NULL with an exception pending if N-API failed. */
napi_value boolean_value(napi_env env, bool b);

/* A JS number for a constant in a property list; NULL (an undefined property) if N-API failed. */
napi_value uint32_value(napi_env env, uint32_t n);

/* A JS array of `count` numbers (fds, ports, byte counts); NULL with an exception pending if N-API failed. */
napi_value number_array(napi_env env, const double *values, uint32_t count);

/* Sets exports[name] to a new frozen object with `properties`. Returns exports, or NULL with an exception pending. */
napi_value export_frozen_object(napi_env env, napi_value exports, const char *name,
                                const napi_property_descriptor *properties, size_t count);

#endif
