/*
 * The helpers the C files of enclave_native share: N-API failure handling, errors coded
 * <PART>_E<ERRNO> with an `errno` property, and argument checks with one message pattern (common.h says
 * what each does).
 *
 * It must not hold device-specific logic: no syscalls, nothing about /dev/nsm, vsock or boot, and no code
 * prefix of its own; each part passes its prefix and its argument_style.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ */
/* N-API failures */

void throw_napi_failure(napi_env env) {
  bool pending = false;
  const napi_extended_error_info *info = NULL;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, NULL,
                   info != NULL && info->error_message != NULL ? info->error_message : "N-API call failed");
}

napi_value throw_error(napi_env env, napi_value error) {
  if (error == NULL || napi_throw(env, error) != napi_ok) throw_napi_failure(env);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Coded errors */

const char *errno_name(int err, char *buf, size_t buf_len) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#else
  /* The errnos specs/nsm.md §1 names. */
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case ENODEV: return "ENODEV";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ENODATA: return "ENODATA";
    case EMSGSIZE: return "EMSGSIZE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECANCELED: return "ECANCELED";
  }
#endif
  snprintf(buf, buf_len, "%d", err);
  return buf;
}

napi_value make_error(napi_env env, const char *code, const char *message, const char *errno_str) {
  napi_value code_value, message_value, error, errno_value;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value) != napi_ok) return NULL;
  if (napi_create_error(env, code_value, message_value, &error) != napi_ok) return NULL;
  if (errno_str != NULL) {
    if (napi_create_string_utf8(env, errno_str, NAPI_AUTO_LENGTH, &errno_value) != napi_ok) return NULL;
    if (napi_set_named_property(env, error, "errno", errno_value) != napi_ok) return NULL;
  }
  return error;
}

napi_value make_errno_error_with_message(napi_env env, const char *part, const char *code, const char *message,
                                         int err) {
  char name_buf[16];
  char code_buf[64];
  const char *name = errno_name(err, name_buf, sizeof(name_buf));
  if (code == NULL) {
    snprintf(code_buf, sizeof(code_buf), "%s_E%s", part, name[0] == 'E' ? name + 1 : name);
    code = code_buf;
  }
  return make_error(env, code, message, name);
}

napi_value make_errno_error(napi_env env, const char *part, const char *prefix, int err) {
  char message[ERRNO_MESSAGE_BYTES];
  snprintf(message, sizeof(message), "%s: %s", prefix, strerror(err));
  return make_errno_error_with_message(env, part, NULL, message, err);
}

napi_value throw_errno(napi_env env, const char *part, const char *prefix, int err) {
  return throw_error(env, make_errno_error(env, part, prefix, err));
}

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks */

/* What "got ..." says: the number itself, "Array", a name for other objects (value_naming), or the type. */
static void describe_value(napi_env env, napi_value value, value_naming naming, char *buf, size_t buf_len) {
  static const char *const type_names[] = {"undefined", "null",     "boolean",  "number",   "string",
                                           "symbol",    "object",   "function", "external", "bigint"};
  /* In napi_typedarray_type order (js_native_api_types.h). */
  static const char *const typed_array_names[] = {"Int8Array",     "Uint8Array",    "Uint8ClampedArray",
                                                  "Int16Array",    "Uint16Array",   "Int32Array",
                                                  "Uint32Array",   "Float32Array",  "Float64Array",
                                                  "BigInt64Array", "BigUint64Array"};
  napi_valuetype type = napi_undefined;
  napi_typedarray_type typed_array_type;
  bool flag = false;
  double d = 0;

  if (napi_typeof(env, value, &type) != napi_ok) {
    snprintf(buf, buf_len, "unknown");
  } else if (type == napi_number && napi_get_value_double(env, value, &d) == napi_ok) {
    if (isnan(d)) snprintf(buf, buf_len, "NaN");
    else if (isinf(d)) snprintf(buf, buf_len, d > 0 ? "Infinity" : "-Infinity");
    else snprintf(buf, buf_len, "%.17g", d);
  } else if (type != napi_object) {
    snprintf(buf, buf_len, "%s",
             (size_t)type < sizeof(type_names) / sizeof(type_names[0]) ? type_names[type] : "unknown");
  } else if (napi_is_array(env, value, &flag) == napi_ok && flag) {
    snprintf(buf, buf_len, "Array");
  } else if (naming == NAME_TYPED_ARRAYS && napi_is_typedarray(env, value, &flag) == napi_ok && flag) {
    snprintf(buf, buf_len, "a typed array");
  } else if (naming == NAME_BINARY_CLASSES && napi_is_typedarray(env, value, &flag) == napi_ok && flag &&
             napi_get_typedarray_info(env, value, &typed_array_type, NULL, NULL, NULL, NULL) == napi_ok &&
             (size_t)typed_array_type < sizeof(typed_array_names) / sizeof(typed_array_names[0])) {
    snprintf(buf, buf_len, "%s", typed_array_names[typed_array_type]);
  } else if (naming == NAME_BINARY_CLASSES && napi_is_dataview(env, value, &flag) == napi_ok && flag) {
    snprintf(buf, buf_len, "DataView");
  } else if (naming == NAME_BINARY_CLASSES && napi_is_arraybuffer(env, value, &flag) == napi_ok && flag) {
    snprintf(buf, buf_len, "ArrayBuffer");
  } else {
    snprintf(buf, buf_len, "object");
  }
}

napi_value throw_bad_argument(napi_env env, const argument_style *style, bool range, const char *name,
                              const char *expected, napi_value value) {
  char got[64];
  char message[192];
  describe_value(env, value, style->naming, got, sizeof(got));
  snprintf(message, sizeof(message), "\"%s\" expected %s, got %s", name, expected, got);
  if (range && style->range_errors) napi_throw_range_error(env, style->code, message);
  else napi_throw_type_error(env, style->code, message);
  return NULL;
}

bool get_integer(napi_env env, const argument_style *style, napi_value value, const char *name,
                 const char *expected, double min, double max, double *out) {
  napi_valuetype type = napi_undefined;
  double d = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, value, &d) != napi_ok) {
    throw_bad_argument(env, style, false, name, expected, value);
    return false;
  }
  if (!(d >= min) || d > max || floor(d) != d) {
    throw_bad_argument(env, style, true, name, expected, value);
    return false;
  }
  *out = d;
  return true;
}

bool get_uint8_array(napi_env env, const argument_style *style, napi_value value, const char *name, size_t exact,
                     size_t max, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  size_t n = 0;
  void *bytes = NULL;
  bool typed = false;
  if (napi_is_typedarray(env, value, &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, value, &type, &n, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_bad_argument(env, style, false, name, "Uint8Array", value);
    return false;
  }
  if (exact != 0 ? n != exact : n > max) {
    char expected[48];
    if (exact != 0) snprintf(expected, sizeof expected, "%zu bytes", exact);
    else snprintf(expected, sizeof expected, "at most %zu bytes", max);
    throw_bad_argument(env, style, true, name, expected, value);
    return false;
  }
  *data = n == 0 ? NULL : bytes;
  *len = n;
  return true;
}

bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi_failure(env);
    return false;
  }
  for (size_t i = argc; i < count; i++) napi_get_undefined(env, &argv[i]);
  return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Values */

napi_value boolean_value(napi_env env, bool b) {
  napi_value value = NULL;
  if (napi_get_boolean(env, b, &value) != napi_ok) throw_napi_failure(env);
  return value;
}

napi_value uint32_value(napi_env env, uint32_t n) {
  napi_value value = NULL;
  napi_create_uint32(env, n, &value);
  return value;
}

napi_value number_array(napi_env env, const double *values, uint32_t count) {
  napi_value result, element;
  if (napi_create_array_with_length(env, count, &result) != napi_ok) goto failed;
  for (uint32_t i = 0; i < count; i++) {
    if (napi_create_double(env, values[i], &element) != napi_ok || napi_set_element(env, result, i, element) != napi_ok) goto failed;
  }
  return result;
failed:
  throw_napi_failure(env);
  return NULL;
}

napi_value export_frozen_object(napi_env env, napi_value exports, const char *name,
                                const napi_property_descriptor *properties, size_t count) {
  napi_value object;
  NAPI_CALL(env, napi_create_object(env, &object));
  NAPI_CALL(env, napi_define_properties(env, object, count, properties));
  NAPI_CALL(env, napi_object_freeze(env, object));
  NAPI_CALL(env, napi_set_named_property(env, exports, name, object));
  return exports;
}
