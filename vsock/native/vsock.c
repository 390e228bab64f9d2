/*
 * The native half of the vsock binding: thin wrappers over the AF_VSOCK socket syscalls, all non-blocking,
 * plus readiness notification through libuv's uv_poll_t so JavaScript runs only when an fd is ready.
 * Node's own net module cannot take these fds (libuv streams know AF_INET and AF_UNIX only,
 * specs/qemu-rig.md "Node and vsock").
 *
 * It must not block, buffer, retry on EAGAIN, or decide anything about streams: every call is one syscall
 * (EINTR aside) and the stream logic lives in vsock/socket.ts and vsock/server.ts. Expected failures are
 * JS errors with `code` VSOCK_E<ERRNO> and `errno` (the errno name); bad arguments are TypeError/RangeError
 * with code VSOCK_BAD_ARGUMENT. Every uv handle is closed with uv_close and freed in its close callback,
 * also when the environment shuts down under an open handle (an async cleanup hook).
 */
#define _GNU_SOURCE
#include "vsock.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/vm_sockets.h>
#include <uv.h>

#include "../../native/common.h"

/* Errors are coded VSOCK_E<ERRNO> (native/common.h) or, for arguments, VSOCK_BAD_ARGUMENT. */
#define CODE_PART "VSOCK"
#define CODE_BAD_ARGUMENT "VSOCK_BAD_ARGUMENT"

/* What read/write/accept return instead of throwing when the kernel says EAGAIN. */
#define WOULD_BLOCK (-1)

/*
 * Most buffers one writev hands to the kernel; the rest go in the next call (JS handles partial writes).
 * 256 iovecs are 4 KiB of stack, well under IOV_MAX (1024).
 */
#define MAX_WRITEV_BUFFERS 256

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks: one message pattern, `"port" expected an integer 0..4294967295, got -1`. */

/* TypeError for a wrong type, RangeError for a wrong value; any non-Array object is "object". */
static const argument_style ARGUMENTS = {CODE_BAD_ARGUMENT, NAME_OBJECTS_PLAIN, true};

static bool get_fd(napi_env env, napi_value value, int *out) {
  double d;
  if (!get_integer(env, &ARGUMENTS, value, "fd", "an integer 0..2147483647", 0, INT_MAX, &d)) return false;
  *out = (int)d;
  return true;
}

static bool get_uint32(napi_env env, napi_value value, const char *name, uint32_t *out) {
  double d;
  if (!get_integer(env, &ARGUMENTS, value, name, "an integer 0..4294967295", 0, UINT32_MAX, &d)) return false;
  *out = (uint32_t)d;
  return true;
}

/* Any Uint8Array (Buffer included), possibly a view into a larger ArrayBuffer. */
static bool get_bytes(napi_env env, napi_value value, const char *name, void **data, size_t *length) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    throw_bad_argument(env, &ARGUMENTS, false, name, "a Uint8Array", value);
    return false;
  }
  return true;
}

static napi_value make_int(napi_env env, int64_t n) {
  napi_value value = NULL;
  if (napi_create_int64(env, n, &value) != napi_ok) throw_napi_failure(env);
  return value;
}

/* The arguments (fd, cid, port) of bind and connect; throws and returns false if one is bad. */
static bool get_endpoint(napi_env env, napi_callback_info info, int *fd, struct sockaddr_vm *address) {
  napi_value argv[3];
  uint32_t cid, port;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], fd) || !get_uint32(env, argv[1], "cid", &cid) ||
      !get_uint32(env, argv[2], "port", &port)) {
    return false;
  }
  memset(address, 0, sizeof(*address));
  address->svm_family = AF_VSOCK;
  address->svm_cid = cid;
  address->svm_port = port;
  return true;
}

/* { cid, port } */
static napi_value address_object(napi_env env, const struct sockaddr_vm *address) {
  napi_value object, cid, port;
  NAPI_CALL(env, napi_create_object(env, &object));
  NAPI_CALL(env, napi_create_uint32(env, address->svm_cid, &cid));
  NAPI_CALL(env, napi_create_uint32(env, address->svm_port, &port));
  NAPI_CALL(env, napi_set_named_property(env, object, "cid", cid));
  NAPI_CALL(env, napi_set_named_property(env, object, "port", port));
  return object;
}

/* ------------------------------------------------------------------------------------------------ */
/* Socket syscalls */

/* socket(): number. A non-blocking, close-on-exec AF_VSOCK stream socket. */
static napi_value vsock_socket(napi_env env, napi_callback_info info) {
  napi_value result;
  int fd;
  (void)info;
  fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, CODE_PART, "vsock socket() failed", errno);
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    throw_napi_failure(env);
    return NULL;
  }
  return result;
}

/* bind(fd, cid, port): undefined */
static napi_value vsock_bind(napi_env env, napi_callback_info info) {
  struct sockaddr_vm address;
  int fd;
  if (!get_endpoint(env, info, &fd, &address)) return NULL;
  if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
    return throw_errno(env, CODE_PART, "vsock bind() failed", errno);
  }
  return NULL;
}

/* listen(fd, backlog): undefined */
static napi_value vsock_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double backlog;
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_integer(env, &ARGUMENTS, argv[1], "backlog", "an integer 0..2147483647", 0, INT_MAX, &backlog)) {
    return NULL;
  }
  if (listen(fd, (int)backlog) != 0) return throw_errno(env, CODE_PART, "vsock listen() failed", errno);
  return NULL;
}

/* accept(fd): [fd, cid, port] | -1 (would block). The new fd is non-blocking and close-on-exec. */
static napi_value vsock_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  struct sockaddr_vm address;
  socklen_t length;
  int fd, peer;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  do {
    length = sizeof(address);
    peer = accept4(fd, (struct sockaddr *)&address, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    /* ECONNABORTED: that peer gave up while queued; the next one may be fine. */
  } while (peer < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (peer < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, WOULD_BLOCK);
    return throw_errno(env, CODE_PART, "vsock accept4() failed", errno);
  }
  result = number_array(env, (double[]){peer, address.svm_cid, address.svm_port}, 3);
  if (result == NULL) close(peer);
  return result;
}

/* connect(fd, cid, port): true if connected now, false if in progress (wait for WRITABLE, then connectResult). */
static napi_value vsock_connect(napi_env env, napi_callback_info info) {
  struct sockaddr_vm address;
  int fd;
  if (!get_endpoint(env, info, &fd, &address)) return NULL;
  if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0) return boolean_value(env, true);
  /* EINTR on a non-blocking connect: the connection still proceeds asynchronously (POSIX connect()). */
  if (errno == EINPROGRESS || errno == EINTR) return boolean_value(env, false);
  return throw_errno(env, CODE_PART, "vsock connect() failed", errno);
}

/* connectResult(fd): undefined, or throws the error a non-blocking connect ended with (SO_ERROR). */
static napi_value vsock_connect_result(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, err = 0;
  socklen_t length = sizeof(err);
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
  if (err != 0) return throw_errno(env, CODE_PART, "vsock connect() failed", err);
  return NULL;
}

/* read(fd, buffer): bytes read (> 0), 0 at end of stream, -1 if it would block. */
static napi_value vsock_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data;
  size_t length;
  ssize_t n;
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_bytes(env, argv[1], "buffer", &data, &length)) {
    return NULL;
  }
  do {
    n = read(fd, data, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, WOULD_BLOCK);
    return throw_errno(env, CODE_PART, "vsock read failed", errno);
  }
  return make_int(env, n);
}

/* Sends with MSG_NOSIGNAL: a peer that went away is an EPIPE error, never a SIGPIPE. */
static napi_value finish_send(napi_env env, ssize_t n) {
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, WOULD_BLOCK);
    return throw_errno(env, CODE_PART, "vsock write failed", errno);
  }
  return make_int(env, n);
}

/* write(fd, buffer): bytes written (maybe fewer than asked), -1 if it would block. */
static napi_value vsock_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data;
  size_t length;
  ssize_t n;
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) ||
      !get_bytes(env, argv[1], "buffer", &data, &length)) {
    return NULL;
  }
  do {
    n = send(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return finish_send(env, n);
}

/* writev(fd, buffers: Uint8Array[]): bytes written from the front of the list, -1 if it would block. */
static napi_value vsock_writev(napi_env env, napi_callback_info info) {
  napi_value argv[2], element;
  struct iovec iov[MAX_WRITEV_BUFFERS];
  struct msghdr message;
  bool is_array = false;
  uint32_t count = 0;
  ssize_t n;
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok) {
    return throw_bad_argument(env, &ARGUMENTS, false, "buffers", "an Array of Uint8Array", argv[1]);
  }
  if (count > MAX_WRITEV_BUFFERS) count = MAX_WRITEV_BUFFERS;
  for (uint32_t i = 0; i < count; i++) {
    NAPI_CALL(env, napi_get_element(env, argv[1], i, &element));
    if (!get_bytes(env, element, "buffers[i]", &iov[i].iov_base, &iov[i].iov_len)) return NULL;
  }
  memset(&message, 0, sizeof(message));
  message.msg_iov = iov;
  message.msg_iovlen = count;
  do {
    n = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return finish_send(env, n);
}

/* shutdown(fd): undefined. SHUT_WR: the peer reads end of stream once our queued bytes are read. */
static napi_value vsock_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (shutdown(fd, SHUT_WR) != 0) return throw_errno(env, CODE_PART, "vsock shutdown() failed", errno);
  return NULL;
}

/* close(fd): undefined. Only for fds that never got a poll handle; pollClose closes the others. */
static napi_value vsock_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR; retrying could close someone else's fd. */
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, CODE_PART, "vsock close() failed", errno);
  return NULL;
}

/* localAddress(fd) / remoteAddress(fd): { cid, port } */
static napi_value get_address(napi_env env, napi_callback_info info, bool remote) {
  napi_value argv[1];
  struct sockaddr_vm address;
  socklen_t length = sizeof(address);
  int fd, rc;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  memset(&address, 0, sizeof(address));
  rc = remote ? getpeername(fd, (struct sockaddr *)&address, &length)
              : getsockname(fd, (struct sockaddr *)&address, &length);
  if (rc != 0) {
    return throw_errno(env, CODE_PART, remote ? "vsock getpeername() failed" : "vsock getsockname() failed", errno);
  }
  return address_object(env, &address);
}

static napi_value vsock_local_address(napi_env env, napi_callback_info info) {
  return get_address(env, info, false);
}

static napi_value vsock_remote_address(napi_env env, napi_callback_info info) {
  return get_address(env, info, true);
}

/* ------------------------------------------------------------------------------------------------ */
/*
 * Readiness: pollOpen(fd, callback) -> handle, pollSet(handle, events), pollClose(handle).
 *
 * The handle owns the fd from pollOpen on: pollClose stops polling and closes the fd, once. uv_poll is
 * level-triggered, so JS must drop READABLE while it does not want data (or it is called back forever).
 * The callback is callback(error | null, events); on an error libuv has already stopped the handle.
 */

typedef struct {
  uv_poll_t poll; /* first, so a uv_handle_t* is a vsock_poll* */
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  napi_async_cleanup_hook_handle cleanup;
  int fd;
  int events;    /* what uv_poll_start was last given; 0 when stopped */
  bool closing;  /* uv_close called, fd closed */
  bool closed;   /* uv close callback ran */
  bool orphaned; /* the JS wrapper was finalized */
} vsock_poll;

/* Random; marks the JS objects this file made, so a foreign object can never be unwrapped as a vsock_poll. */
static const napi_type_tag POLL_TAG = {0x5f2a9c3e8d714b06ULL, 0xa3c1e07b94d2568fULL};

/* Close callback for a handle that failed before it had a JS wrapper or a cleanup hook. */
static void free_unstarted_poll(uv_handle_t *handle) {
  free(handle);
}

static void on_poll_closed(uv_handle_t *handle) {
  vsock_poll *poll = (vsock_poll *)handle;
  napi_remove_async_cleanup_hook(poll->cleanup);
  poll->closed = true;
  if (poll->orphaned) free(poll);
}

/*
 * Stop, release the JS callback, close the fd, and start uv_close. Safe to call twice. The fd may be
 * closed right after uv_close: uv__poll_stop has already removed it from epoll (libuv src/unix/poll.c).
 */
static void close_poll(vsock_poll *poll) {
  if (poll->closing) return;
  poll->closing = true;
  poll->events = 0;
  napi_delete_reference(poll->env, poll->callback);
  napi_async_destroy(poll->env, poll->context);
  uv_close((uv_handle_t *)&poll->poll, on_poll_closed);
  close(poll->fd);
  poll->fd = -1;
}

/* The environment is going away (worker exit, process exit) with this handle still open. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_poll(data);
}

static void on_wrapper_finalized(napi_env env, void *data, void *hint) {
  vsock_poll *poll = data;
  (void)env;
  (void)hint;
  if (poll->closed) free(poll);
  else poll->orphaned = true;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  vsock_poll *poll = (vsock_poll *)handle;
  napi_env env = poll->env;
  napi_handle_scope scope;
  napi_value argv[2], callback, receiver, exception;
  int err = 0;
  socklen_t length = sizeof(err);
  napi_status call_status;

  if (poll->closing) return;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    /* libuv reports POLLERR as UV_EBADF and stops the handle; the socket's own error says what happened. */
    poll->events = 0;
    if (getsockopt(poll->fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
    argv[0] = make_errno_error(env, CODE_PART, "vsock socket error", err != 0 ? err : -status);
  } else {
    napi_get_null(env, &argv[0]);
  }
  if (argv[0] != NULL && napi_create_int32(env, events, &argv[1]) == napi_ok &&
      napi_get_reference_value(env, poll->callback, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &receiver) == napi_ok) {
    /* napi_make_callback needs an object receiver (undefined throws); the callbacks ignore `this`. */
    /* napi_make_callback, not napi_call_function: it runs nextTicks and microtasks afterwards. */
    call_status = napi_make_callback(env, poll->context, receiver, callback, 2, argv, NULL);
    if (call_status == napi_pending_exception && napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
      napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

static bool get_poll(napi_env env, napi_value value, vsock_poll **out) {
  napi_valuetype type = napi_undefined;
  bool tagged = false;
  void *data = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_object ||
      napi_check_object_type_tag(env, value, &POLL_TAG, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, value, &data) != napi_ok || data == NULL) {
    throw_bad_argument(env, &ARGUMENTS, false, "handle", "a handle from pollOpen", value);
    return false;
  }
  *out = data;
  return true;
}

/* pollOpen(fd, callback): handle. Takes ownership of fd only on success. */
static napi_value vsock_poll_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], wrapper, resource_name;
  napi_valuetype type = napi_undefined;
  uv_loop_t *loop = NULL;
  vsock_poll *poll;
  int fd, rc;

  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
    return throw_bad_argument(env, &ARGUMENTS, false, "callback", "a function", argv[1]);
  }
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  NAPI_CALL(env, napi_create_object(env, &wrapper));
  NAPI_CALL(env, napi_create_string_utf8(env, "enclave_native:vsock_poll", NAPI_AUTO_LENGTH, &resource_name));

  poll = calloc(1, sizeof(*poll));
  if (poll == NULL) return throw_errno(env, CODE_PART, "cannot allocate a vsock poll handle", ENOMEM);
  poll->env = env;
  poll->fd = fd;
  rc = uv_poll_init_socket(loop, &poll->poll, fd);
  if (rc != 0) {
    free(poll);
    return throw_errno(env, CODE_PART, "vsock uv_poll_init failed", -rc);
  }
  /* From here on the handle is live: every failure goes through close_poll (which also closes fd). */
  if (napi_create_reference(env, argv[1], 1, &poll->callback) != napi_ok) {
    poll->orphaned = true;
    poll->closing = true;
    uv_close((uv_handle_t *)&poll->poll, free_unstarted_poll);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_async_init(env, wrapper, resource_name, &poll->context) != napi_ok) {
    napi_delete_reference(env, poll->callback);
    poll->orphaned = true;
    poll->closing = true;
    uv_close((uv_handle_t *)&poll->poll, free_unstarted_poll);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, on_env_cleanup, poll, &poll->cleanup) != napi_ok) {
    napi_delete_reference(env, poll->callback);
    napi_async_destroy(env, poll->context);
    poll->orphaned = true;
    poll->closing = true;
    uv_close((uv_handle_t *)&poll->poll, free_unstarted_poll);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_wrap(env, wrapper, poll, on_wrapper_finalized, NULL, NULL) != napi_ok) {
    poll->orphaned = true; /* no wrapper will ever finalize it: the close callback frees it */
    poll->fd = -1;         /* the caller keeps the fd, as on every other failure */
    close_poll(poll);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_type_tag_object(env, wrapper, &POLL_TAG) != napi_ok) {
    poll->fd = -1;
    close_poll(poll); /* the wrapper's finalizer frees it once the close callback ran */
    throw_napi_failure(env);
    return NULL;
  }
  return wrapper;
}

/* pollSet(handle, events): undefined. events: READABLE | WRITABLE, 0 to stop. */
static napi_value vsock_poll_set(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  vsock_poll *poll;
  double events;
  int rc;
  if (!get_args(env, info, 2, argv) || !get_poll(env, argv[0], &poll) ||
      !get_integer(env, &ARGUMENTS, argv[1], "events", "an integer 0..3 (READABLE | WRITABLE)", 0,
                   UV_READABLE | UV_WRITABLE, &events)) {
    return NULL;
  }
  if (poll->closing) return throw_errno(env, CODE_PART, "vsock poll handle is closed", EBADF);
  /* uv_poll_start re-registers the fd with epoll every time: skip calls that change nothing. */
  if ((int)events == poll->events) return NULL;
  rc = events == 0 ? uv_poll_stop(&poll->poll) : uv_poll_start(&poll->poll, (int)events, on_poll);
  if (rc != 0) return throw_errno(env, CODE_PART, "vsock uv_poll_start failed", -rc);
  poll->events = (int)events;
  return NULL;
}

/* pollClose(handle): undefined. Stops polling and closes the fd; later calls do nothing. */
static napi_value vsock_poll_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  vsock_poll *poll;
  if (!get_args(env, info, 1, argv) || !get_poll(env, argv[0], &poll)) return NULL;
  close_poll(poll);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */

static napi_value int32_value(napi_env env, int32_t n) {
  napi_value value = NULL;
  napi_create_int32(env, n, &value);
  return value;
}

napi_value vsock_register(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"socket", NULL, vsock_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bind", NULL, vsock_bind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listen", NULL, vsock_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"accept", NULL, vsock_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, vsock_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectResult", NULL, vsock_connect_result, NULL, NULL, NULL, napi_enumerable, NULL},
      {"read", NULL, vsock_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, vsock_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writev", NULL, vsock_writev, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shutdown", NULL, vsock_shutdown, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, vsock_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localAddress", NULL, vsock_local_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"remoteAddress", NULL, vsock_remote_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollOpen", NULL, vsock_poll_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollSet", NULL, vsock_poll_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollClose", NULL, vsock_poll_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"READABLE", NULL, NULL, NULL, NULL, int32_value(env, UV_READABLE), napi_enumerable, NULL},
      {"WRITABLE", NULL, NULL, NULL, NULL, int32_value(env, UV_WRITABLE), napi_enumerable, NULL},
      {"WOULD_BLOCK", NULL, NULL, NULL, NULL, int32_value(env, WOULD_BLOCK), napi_enumerable, NULL},
      {"MAX_WRITEV_BUFFERS", NULL, NULL, NULL, NULL, int32_value(env, MAX_WRITEV_BUFFERS), napi_enumerable, NULL},
  };
  return export_frozen_object(env, exports, "vsock", properties, sizeof(properties) / sizeof(properties[0]));
}
