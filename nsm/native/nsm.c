/*
 * The native half of the NSM device transport: open /dev/nsm, run NSM_IOCTL_RAW with one request and one
 * response buffer on the libuv threadpool, close the fd (specs/nsm.md §1).
 *
 * It must not know the NSM protocol: no CBOR, no policy, no retries, and no request-size check the kernel
 * already makes (tests rely on seeing the kernel's EMSGSIZE). The protocol lives in the TypeScript under nsm/. Every
 * expected failure is a JS error with a stable `code` (and `errno`, the errno name, when the kernel said no).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <node_api.h>

#include "../../init/native/init.h"
#include "../../vsock/native/vsock.h"

/*
 * include/uapi/linux/nsm.h (Linux 6.8+), restated so the build needs no recent kernel headers.
 * struct nsm_raw is two {addr, len} pairs of __u64: 32 bytes, hence 0xC0200A00.
 */
struct nsm_iovec {
  uint64_t addr;
  uint64_t len;
};

struct nsm_raw {
  struct nsm_iovec request;
  struct nsm_iovec response;
};

#define NSM_MAGIC 0x0A
#define NSM_IOCTL_RAW _IOWR(NSM_MAGIC, 0, struct nsm_raw)

_Static_assert(sizeof(struct nsm_raw) == 32, "struct nsm_raw must be 32 bytes (specs/nsm.md §1)");
_Static_assert(NSM_IOCTL_RAW == 0xC0200A00u, "NSM_IOCTL_RAW must be 0xC0200A00 (specs/nsm.md §1)");

/* specs/nsm.md §1: always pass a 0x3000-byte response buffer (QEMU insists on exactly this size). */
#define NSM_RESPONSE_BYTES 0x3000

/*
 * Not the NSM limit (the kernel's 0x1000, answered with EMSGSIZE): 16 x that, so oversized requests still
 * reach the kernel and fail there, while a runaway caller cannot make us copy megabytes.
 */
#define MAX_REQUEST_COPY_BYTES 0x10000

/* An ioctl number's size field is _IOC_SIZEBITS (14) wide. */
#define MAX_IOCTL_SIZE ((1 << _IOC_SIZEBITS) - 1)

#define CODE_BAD_ARGUMENT "NSM_BAD_ARGUMENT"

/* ------------------------------------------------------------------------------------------------ */
/* Errors */

/* The errno name ("EINVAL"); glibc >= 2.32 has them all, elsewhere (musl) the errnos §1 names, then digits. */
static const char *errno_name(int err, char *buf, size_t buf_len) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#else
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

/* An Error with `code` and, if errno_str is not NULL, `errno`. Returns NULL if N-API itself failed. */
static napi_value make_error(napi_env env, const char *code, const char *message, const char *errno_str) {
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

/* code NSM_E<NAME>, errno <NAME>, message "<prefix>: <strerror>". */
static napi_value make_errno_error(napi_env env, const char *code_or_null, const char *prefix, int err) {
  char name_buf[16];
  char code[64];
  char message[512];
  const char *name = errno_name(err, name_buf, sizeof(name_buf));
  if (code_or_null == NULL) {
    snprintf(code, sizeof(code), "NSM_E%s", name[0] == 'E' ? name + 1 : name);
    code_or_null = code;
  }
  snprintf(message, sizeof(message), "%s: %s", prefix, strerror(err));
  return make_error(env, code_or_null, message, name);
}

/* After a failed N-API call: make sure something is thrown. */
static void throw_napi_failure(napi_env env);

/* Throws `error`, or (if building it failed) whatever N-API reports. */
static void throw_error(napi_env env, napi_value error) {
  if (error == NULL || napi_throw(env, error) != napi_ok) throw_napi_failure(env);
}

static void throw_napi_failure(napi_env env) {
  bool pending = false;
  const napi_extended_error_info *info = NULL;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, NULL,
                   info != NULL && info->error_message != NULL ? info->error_message : "N-API call failed");
}

#define NAPI_CALL(env, call)                                                                             \
  do {                                                                                                   \
    if ((call) != napi_ok) {                                                                             \
      throw_napi_failure(env);                                                                           \
      return NULL;                                                                                       \
    }                                                                                                    \
  } while (0)

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks: one message pattern, `"fd" expected a non-negative integer, got -1`. */

static void describe_value(napi_env env, napi_value value, char *buf, size_t buf_len) {
  napi_valuetype type = napi_undefined;
  bool flag = false;
  if (napi_typeof(env, value, &type) != napi_ok) {
    snprintf(buf, buf_len, "unknown");
    return;
  }
  switch (type) {
    case napi_undefined: snprintf(buf, buf_len, "undefined"); return;
    case napi_null: snprintf(buf, buf_len, "null"); return;
    case napi_boolean: snprintf(buf, buf_len, "boolean"); return;
    case napi_string: snprintf(buf, buf_len, "string"); return;
    case napi_symbol: snprintf(buf, buf_len, "symbol"); return;
    case napi_function: snprintf(buf, buf_len, "function"); return;
    case napi_bigint: snprintf(buf, buf_len, "bigint"); return;
    case napi_external: snprintf(buf, buf_len, "external"); return;
    case napi_number: {
      double d = 0;
      napi_get_value_double(env, value, &d);
      if (isnan(d)) snprintf(buf, buf_len, "NaN");
      else if (isinf(d)) snprintf(buf, buf_len, d > 0 ? "Infinity" : "-Infinity");
      else snprintf(buf, buf_len, "%.17g", d);
      return;
    }
    case napi_object: break;
  }
  if (napi_is_typedarray(env, value, &flag) == napi_ok && flag) {
    static const char *const names[] = {"Int8Array",    "Uint8Array",    "Uint8ClampedArray",
                                        "Int16Array",   "Uint16Array",   "Int32Array",
                                        "Uint32Array",  "Float32Array",  "Float64Array",
                                        "BigInt64Array", "BigUint64Array"};
    napi_typedarray_type ta_type;
    if (napi_get_typedarray_info(env, value, &ta_type, NULL, NULL, NULL, NULL) == napi_ok &&
        (size_t)ta_type < sizeof(names) / sizeof(names[0])) {
      snprintf(buf, buf_len, "%s", names[ta_type]);
      return;
    }
  }
  if (napi_is_dataview(env, value, &flag) == napi_ok && flag) snprintf(buf, buf_len, "DataView");
  else if (napi_is_arraybuffer(env, value, &flag) == napi_ok && flag) snprintf(buf, buf_len, "ArrayBuffer");
  else if (napi_is_array(env, value, &flag) == napi_ok && flag) snprintf(buf, buf_len, "Array");
  else snprintf(buf, buf_len, "object");
}

static void throw_bad_argument(napi_env env, const char *name, const char *expected, napi_value value) {
  char got[64];
  char message[192];
  describe_value(env, value, got, sizeof(got));
  snprintf(message, sizeof(message), "\"%s\" expected %s, got %s", name, expected, got);
  napi_throw_type_error(env, CODE_BAD_ARGUMENT, message);
}

/* An integer in [0, max]; throws and returns false otherwise. */
static bool get_integer(napi_env env, napi_value value, const char *name, const char *expected, int max,
                        int *out) {
  napi_valuetype type = napi_undefined;
  double d = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, value, &d) != napi_ok || !(d >= 0) || d > (double)max ||
      (double)(int)d != d) {
    throw_bad_argument(env, name, expected, value);
    return false;
  }
  *out = (int)d;
  return true;
}

static bool get_fd(napi_env env, napi_value value, int *out) {
  return get_integer(env, value, "fd", "a non-negative integer", INT_MAX, out);
}

/* ------------------------------------------------------------------------------------------------ */
/* open(path: string): number */

static bool is_unavailable_errno(int err) {
  return err == ENOENT || err == ENODEV || err == ENXIO || err == EACCES || err == EPERM;
}

static napi_value nsm_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  size_t path_len = 0;
  char *path = NULL;
  char *prefix = NULL;
  napi_value result;
  int fd, err;

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) napi_get_undefined(env, &argv[0]);
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string) {
    throw_bad_argument(env, "path", "a string", argv[0]);
    return NULL;
  }
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len));
  path = malloc(path_len + 1);
  if (path == NULL) {
    throw_error(env, make_errno_error(env, NULL, "cannot open the NSM device", ENOMEM));
    return NULL;
  }
  if (napi_get_value_string_utf8(env, argv[0], path, path_len + 1, &path_len) != napi_ok) {
    free(path);
    throw_napi_failure(env);
    return NULL;
  }
  if (strlen(path) != path_len) {
    free(path);
    napi_throw_type_error(env, CODE_BAD_ARGUMENT, "\"path\" expected a string without NUL characters");
    return NULL;
  }

  fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    prefix = malloc(path_len + 32);
    if (prefix != NULL) snprintf(prefix, path_len + 32, "cannot open %s", path);
    throw_error(env, make_errno_error(env, is_unavailable_errno(err) ? "NSM_DEVICE_UNAVAILABLE" : NULL,
                                     prefix != NULL ? prefix : "cannot open the NSM device", err));
    free(prefix);
    free(path);
    return NULL;
  }
  free(path);

  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    throw_napi_failure(env);
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------------------------------ */
/* request(fd: number, request: Uint8Array, ioctlSize?: number): Promise<Buffer> */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  unsigned long cmd;
  /* The ioctl argument: a struct nsm_raw, padded with zeros to the size field of `cmd` (test hook below). */
  void *arg;
  uint8_t *request;
  size_t request_len;
  uint8_t *response;
  uint64_t response_len;
  int error; /* errno of a failed ioctl, 0 on success */
} request_job;

static void free_job(request_job *job) {
  free(job->arg);
  free(job->request);
  free(job->response);
  free(job);
}

/* Threadpool: no N-API calls here. */
static void request_execute(napi_env env, void *data) {
  request_job *job = data;
  struct nsm_raw *raw = job->arg;
  (void)env;

  raw->request.addr = (uint64_t)(uintptr_t)job->request;
  raw->request.len = job->request_len;
  raw->response.addr = (uint64_t)(uintptr_t)job->response;
  raw->response.len = NSM_RESPONSE_BYTES;
  /* No retry on EINTR: ExtendPCR is not idempotent, so the caller decides. */
  if (ioctl(job->fd, job->cmd, raw) < 0) {
    job->error = errno;
    return;
  }
  job->response_len = raw->response.len;
}

/* JS thread: settle the promise, free everything. */
static void request_complete(napi_env env, napi_status status, void *data) {
  request_job *job = data;
  napi_value value = NULL;
  bool resolve = false;
  char message[128];

  if (status == napi_cancelled) {
    value = make_errno_error(env, NULL, "NSM ioctl cancelled", ECANCELED);
  } else if (status != napi_ok) {
    value = make_error(env, "NSM_BAD_RESPONSE", "NSM async work failed", NULL);
  } else if (job->error != 0) {
    value = make_errno_error(env, NULL, "NSM ioctl failed", job->error);
  } else if (job->response_len > NSM_RESPONSE_BYTES) {
    snprintf(message, sizeof(message), "NSM ioctl reported %llu response bytes, more than the %d-byte buffer",
             (unsigned long long)job->response_len, NSM_RESPONSE_BYTES);
    value = make_error(env, "NSM_BAD_RESPONSE", message, NULL);
  } else {
    resolve = napi_create_buffer_copy(env, (size_t)job->response_len, job->response, NULL, &value) == napi_ok;
    if (!resolve) value = NULL;
  }

  if (value == NULL) {
    /* N-API itself failed (out of memory): reject with whatever it threw, so the promise still settles. */
    resolve = false;
    if (napi_get_and_clear_last_exception(env, &value) != napi_ok) value = NULL;
    if (value == NULL) napi_get_undefined(env, &value);
  }
  if (resolve) napi_resolve_deferred(env, job->deferred, value);
  else napi_reject_deferred(env, job->deferred, value);

  napi_delete_async_work(env, job->work);
  free_job(job);
}

static napi_value nsm_request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_valuetype type = napi_undefined;
  bool is_typedarray = false;
  napi_typedarray_type ta_type;
  size_t length = 0;
  void *bytes = NULL;
  int fd, ioctl_size = (int)sizeof(struct nsm_raw);
  size_t arg_bytes;
  request_job *job;
  napi_value resource_name, promise;
  char message[128];

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  for (size_t i = argc; i < 3; i++) napi_get_undefined(env, &argv[i]);

  if (!get_fd(env, argv[0], &fd)) return NULL;

  if (napi_is_typedarray(env, argv[1], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[1], &ta_type, &length, &bytes, NULL, NULL) != napi_ok ||
      ta_type != napi_uint8_array) {
    throw_bad_argument(env, "request", "a Uint8Array", argv[1]);
    return NULL;
  }
  if (length > MAX_REQUEST_COPY_BYTES) {
    snprintf(message, sizeof(message), "\"request\" expected at most %d bytes, got %zu", MAX_REQUEST_COPY_BYTES,
             length);
    napi_throw_range_error(env, CODE_BAD_ARGUMENT, message);
    return NULL;
  }

  /*
   * Test hook only: `ioctlSize` replaces the size field of the ioctl number,
   * _IOC(_IOC_READ | _IOC_WRITE, 0x0A, 0, ioctlSize), so a test can watch the kernel refuse a wrong
   * command with EINVAL (specs/nsm.md §1). Production callers never pass it.
   */
  NAPI_CALL(env, napi_typeof(env, argv[2], &type));
  if (type != napi_undefined &&
      !get_integer(env, argv[2], "ioctlSize", "an integer in [0, 16383]", MAX_IOCTL_SIZE, &ioctl_size)) {
    return NULL;
  }

  job = calloc(1, sizeof(*job));
  if (job == NULL) goto out_of_memory;
  job->fd = fd;
  job->cmd = type == napi_undefined ? (unsigned long)NSM_IOCTL_RAW
                                    : (unsigned long)_IOC(_IOC_READ | _IOC_WRITE, NSM_MAGIC, 0, ioctl_size);
  /* Sized to the command's size field, so even a driver that trusts that field stays inside our memory. */
  arg_bytes = (size_t)ioctl_size > sizeof(struct nsm_raw) ? (size_t)ioctl_size : sizeof(struct nsm_raw);
  job->arg = calloc(1, arg_bytes);
  job->request = malloc(length > 0 ? length : 1);
  job->response = calloc(1, NSM_RESPONSE_BYTES);
  if (job->arg == NULL || job->request == NULL || job->response == NULL) {
    free_job(job);
    goto out_of_memory;
  }
  /* Copied now, on the JS thread: the caller may reuse its array while the ioctl runs. */
  if (length > 0) memcpy(job->request, bytes, length);
  job->request_len = length;

  if (napi_create_string_utf8(env, "enclave_native:nsm_request", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, request_execute, request_complete, job, &job->work) !=
          napi_ok) {
    free_job(job);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    napi_delete_async_work(env, job->work);
    free_job(job);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    /* The promise exists: settle it so the deferred is released, and hand it back rejected. */
    napi_value error = make_error(env, "NSM_BAD_RESPONSE", "cannot queue the NSM ioctl", NULL);
    if (error == NULL) napi_get_undefined(env, &error);
    napi_reject_deferred(env, job->deferred, error);
    napi_delete_async_work(env, job->work);
    free_job(job);
  }
  return promise;

out_of_memory:
  throw_error(env, make_errno_error(env, NULL, "cannot allocate the NSM request", ENOMEM));
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* close(fd: number): undefined */

static napi_value nsm_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) napi_get_undefined(env, &argv[0]);
  if (!get_fd(env, argv[0], &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR; retrying could close someone else's fd. */
  if (close(fd) != 0 && errno != EINTR) {
    throw_error(env, make_errno_error(env, NULL, "NSM close failed", errno));
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */

static napi_value uint32_value(napi_env env, uint32_t n) {
  napi_value value = NULL;
  napi_create_uint32(env, n, &value);
  return value;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor properties[] = {
      {"open", NULL, nsm_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"request", NULL, nsm_request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, nsm_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"NSM_IOCTL_RAW", NULL, NULL, NULL, NULL, uint32_value(env, NSM_IOCTL_RAW), napi_enumerable, NULL},
      {"NSM_RESPONSE_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, NSM_RESPONSE_BYTES), napi_enumerable,
       NULL},
      {"MAX_REQUEST_COPY_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MAX_REQUEST_COPY_BYTES),
       napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  /* exports.vsock (vsock/native/vsock.c) and exports.init (init/native/init.c): one addon, one init. */
  if (vsock_register(env, exports) == NULL) return NULL;
  return init_register(env, exports);
}
