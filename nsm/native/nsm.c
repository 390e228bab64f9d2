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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <node_api.h>

#include "../../init/native/init.h"
#include "../../native/common.h"
#include "../../agent/native/aes-gcm.h"
#include "../../agent/native/handshake.h"
#include "../../vsock/native/relay.h"
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

/* Errors are coded NSM_E<ERRNO> (native/common.h) or, for arguments, NSM_BAD_ARGUMENT. */
#define CODE_PART "NSM"
#define CODE_BAD_ARGUMENT "NSM_BAD_ARGUMENT"

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks: one message pattern, `"fd" expected a non-negative integer, got -1`. */

/* Every bad argument is a TypeError (nsm/device.test.ts); typed arrays are named by class ("Uint16Array"). */
static const argument_style ARGUMENTS = {CODE_BAD_ARGUMENT, NAME_BINARY_CLASSES, false};

static bool get_fd(napi_env env, napi_value value, int *out) {
  double d;
  if (!get_integer(env, &ARGUMENTS, value, "fd", "a non-negative integer", 0, INT_MAX, &d)) return false;
  *out = (int)d;
  return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* open(path: string): number */

/* "cannot open <path>: <strerror>" is cut at 511 bytes, so a long path cannot make the message huge. */
#define OPEN_MESSAGE_BYTES 512

static bool is_unavailable_errno(int err) {
  return err == ENOENT || err == ENODEV || err == ENXIO || err == EACCES || err == EPERM;
}

static napi_value nsm_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  size_t path_len = 0;
  char *path = NULL;
  char message[OPEN_MESSAGE_BYTES];
  napi_value result;
  int fd, err;

  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string) {
    return throw_bad_argument(env, &ARGUMENTS, false, "path", "a string", argv[0]);
  }
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len));
  path = malloc(path_len + 1);
  if (path == NULL) return throw_errno(env, CODE_PART, "cannot open the NSM device", ENOMEM);
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
    snprintf(message, sizeof(message), "cannot open %s: %s", path, strerror(err));
    free(path);
    return throw_error(env, make_errno_error_with_message(env, CODE_PART,
                                                         is_unavailable_errno(err) ? "NSM_DEVICE_UNAVAILABLE" : NULL,
                                                         message, err));
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
    value = make_errno_error(env, CODE_PART, "NSM ioctl cancelled", ECANCELED);
  } else if (status != napi_ok) {
    value = make_error(env, "NSM_BAD_RESPONSE", "NSM async work failed", NULL);
  } else if (job->error != 0) {
    value = make_errno_error(env, CODE_PART, "NSM ioctl failed", job->error);
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
  napi_value argv[3];
  napi_valuetype type = napi_undefined;
  bool is_typedarray = false;
  napi_typedarray_type ta_type;
  size_t length = 0;
  void *bytes = NULL;
  int fd, ioctl_size = (int)sizeof(struct nsm_raw);
  double size = 0;
  size_t arg_bytes;
  request_job *job;
  napi_value resource_name, promise;
  char message[128];

  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd)) return NULL;

  if (napi_is_typedarray(env, argv[1], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[1], &ta_type, &length, &bytes, NULL, NULL) != napi_ok ||
      ta_type != napi_uint8_array) {
    return throw_bad_argument(env, &ARGUMENTS, false, "request", "a Uint8Array", argv[1]);
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
  if (type != napi_undefined) {
    if (!get_integer(env, &ARGUMENTS, argv[2], "ioctlSize", "an integer in [0, 16383]", 0, MAX_IOCTL_SIZE, &size)) {
      return NULL;
    }
    ioctl_size = (int)size;
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
  return throw_errno(env, CODE_PART, "cannot allocate the NSM request", ENOMEM);
}

/* ------------------------------------------------------------------------------------------------ */
/* close(fd: number): undefined */

static napi_value nsm_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;

  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR; retrying could close someone else's fd. */
  if (close(fd) != 0 && errno != EINTR) {
    throw_errno(env, CODE_PART, "NSM close failed", errno);
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */

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
  /* exports.vsock (vsock/native/vsock.c), exports.vsockRelay (vsock/native/relay.c), exports.aesGcm and
   * exports.handshake (agent/native/) and exports.init (init/native/init.c): one addon, one init. */
  if (vsock_register(env, exports) == NULL) return NULL;
  if (relay_register(env, exports) == NULL) return NULL;
  if (aes_gcm_register(env, exports) == NULL) return NULL;
  if (handshake_register(env, exports) == NULL) return NULL;
  return init_register(env, exports);
}
