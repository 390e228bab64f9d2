/*
 * The bridges' native relay (`exports.vsockRelay`, typed in vsock/relay.ts): moves bytes both ways between
 * two connected stream sockets (AF_VSOCK, TCP, Unix; any pair) without JavaScript per chunk. It is the data
 * path of bridge/native-pipe.ts; JavaScript keeps the setup, limits, stats, idle timeout and the decision
 * to destroy.
 *
 * How: the caller's fds are duplicated (F_DUPFD_CLOEXEC) and the relay owns the duplicates, so the JS
 * streams that held the originals can be destroyed right after (their handles leave epoll and close their
 * own fds; the socket lives on through ours: one owner per fd, each closed exactly once). Both duplicates
 * are non-blocking and watched with libuv's uv_poll_t from the main loop; when one is ready the copy runs
 * here until the kernel says EAGAIN. Per direction the bytes in flight are bounded by one buffer:
 * - `copy` mode: a ring of `bufferBytes` filled with readv and drained with writev;
 * - `splice` mode: a pipe of `bufferBytes` (F_SETPIPE_SZ, best effort) filled and drained with splice(2),
 *   which saves a copy through user space where a socket splices pages (TCP), and falls back to the
 *   kernel's own copy where it does not (AF_VSOCK has no splice_read; Linux >= 6.5 copies, older kernels
 *   go through read_iter). A full pipe and an empty socket both answer EAGAIN, so in this mode a direction
 *   waits for READABLE only while its pipe is empty (no busy loop on the ambiguity). A direction holds a
 *   pipe only while bytes are in it, and empty pipes go to a small pool for the next ones.
 * A direction stops reading while its buffer is full (backpressure: the kernel windows hold the rest) and
 * waits for WRITABLE only while it has bytes; end of stream from one side becomes shutdown(SHUT_WR) on the
 * other once the buffer is flushed (half-close); a read, write or socket error ends the whole relay.
 *
 * `dial` starts from one fd only: the relay makes the second socket itself (TCP to an IPv4 address with
 * TCP_NODELAY, or AF_VSOCK), connects it without blocking under a deadline (a uv_timer_t), reads nothing
 * from the first until the connect succeeded, then relays as above; a connect that fails or times out ends
 * the relay with its errno (ETIMEDOUT for the deadline). A bridge's plain dial then costs no JavaScript.
 *
 * It must not block, spin or call into JavaScript per chunk: JavaScript hears once, when the relay ends
 * (`callback(error | null, bytesAToB, bytesBToA, connected)`), or never, when it closed the relay itself. Errors are
 * VSOCK_E<ERRNO> (native/common.h), bad arguments VSOCK_BAD_ARGUMENT. Every uv handle is closed with
 * uv_close and the memory freed once both close callbacks ran and the JS wrapper is gone, also when the
 * environment shuts down under an open relay (an async cleanup hook).
 */
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <uv.h>

#include "../../native/common.h"

#define CODE_PART "VSOCK"
#define CODE_BAD_ARGUMENT "VSOCK_BAD_ARGUMENT"

/* Bounds on bufferBytes: one page at least; 16 MiB at most (1024 connections x 2 directions stay sane). */
#define MIN_BUFFER_BYTES 4096
#define MAX_BUFFER_BYTES (16 * 1024 * 1024)
/* Bytes a stream had already read before the relay took its fd (a head reader's rest): at most 1 MiB. */
#define MAX_PREFIX_BYTES (1024 * 1024)
/* dial(): the connect deadline, 1 ms .. 2^31 - 1 ms (as setTimeout takes). */
#define MAX_CONNECT_TIMEOUT_MS 2147483647.0

static const argument_style ARGUMENTS = {CODE_BAD_ARGUMENT, NAME_OBJECTS_PLAIN, true};

/* Random; marks the JS objects this file made. */
static const napi_type_tag RELAY_TAG = {0x2b7d4e19a0c35f86ULL, 0x91e6c3a8057bd2f4ULL};

typedef struct relay relay;

typedef struct {
  uv_poll_t poll; /* first, so a uv_handle_t* is an endpoint* */
  relay *owner;
  int index; /* 0: a, 1: b */
  int fd;
  int events; /* what uv_poll_start was last given; 0 when stopped */
} endpoint;

typedef struct {
  int from, to; /* endpoint indexes */
  /* Bytes read before the relay started, written to `to` first (malloc'd, may be NULL). */
  uint8_t *prefix;
  size_t prefix_len, prefix_off;
  /* copy mode: the ring; splice mode: ring == NULL and pipe[0..1] hold the bytes (-1 while empty). */
  uint8_t *ring;
  size_t head; /* copy mode: where the oldest byte is */
  size_t len;  /* bytes buffered (ring or pipe) */
  size_t cap;
  int pipe[2];
  size_t pipe_bytes; /* splice mode: the pipe size asked for */
  bool eof;  /* `from` said end of stream */
  bool shut; /* shutdown(to, SHUT_WR) done */
  double bytes;
} direction;

struct relay {
  endpoint ep[2];
  direction dir[2]; /* 0: a -> b, 1: b -> a */
  napi_env env;
  uv_loop_t *loop;
  napi_ref callback;
  napi_async_context context;
  napi_async_cleanup_hook_handle cleanup;
  bool use_splice;
  bool started;  /* both poll handles initialised */
  bool closing;  /* uv_close called on both handles, fds closed */
  bool orphaned; /* the JS wrapper was finalized */
  int handles_open;
  uint64_t last_activity_ms; /* uv_now at the last byte moved */
  /* dial() only: b is the relay's own socket, connecting until this turns false; nothing moves before. */
  bool connecting;
  bool has_timer; /* connect_timer initialised (and not yet uv_close'd) */
  uv_timer_t connect_timer;
};

/* ------------------------------------------------------------------------------------------------ */
/* Teardown */

/*
 * Empty pipes kept for the next relays (splice mode): making and closing two pipes per connection was a
 * visible part of a short connection's cost. At most PIPE_POOL_MAX pairs (2 fds each) stay open, shared by
 * every Node environment in the process (hence the mutex), for the process's lifetime. A pipe goes back
 * only when the kernel says it is empty (FIONREAD), so no byte of one connection can reach another.
 */
#define PIPE_POOL_MAX 32

typedef struct {
  int fds[2];
  size_t cap;
} pooled_pipe;

static pooled_pipe pipe_pool[PIPE_POOL_MAX];
static int pipe_pool_count;
static uv_mutex_t pipe_pool_mutex;
static uv_once_t pipe_pool_once = UV_ONCE_INIT;
static bool pipe_pool_ready;

static void pipe_pool_init(void) {
  pipe_pool_ready = uv_mutex_init(&pipe_pool_mutex) == 0;
}

/*
 * An empty pooled pipe, if one is there. Its size is what its first relay got (the bridges use one
 * bufferBytes for all), and `cap` says it: the bound per direction stays whatever the pipe holds.
 */
static bool pool_take(int fds[2], size_t *cap) {
  bool found = false;
  uv_once(&pipe_pool_once, pipe_pool_init);
  if (!pipe_pool_ready) return false;
  uv_mutex_lock(&pipe_pool_mutex);
  if (pipe_pool_count > 0) {
    pipe_pool_count -= 1;
    fds[0] = pipe_pool[pipe_pool_count].fds[0];
    fds[1] = pipe_pool[pipe_pool_count].fds[1];
    *cap = pipe_pool[pipe_pool_count].cap;
    found = true;
  }
  uv_mutex_unlock(&pipe_pool_mutex);
  return found;
}

/*
 * Keeps an empty pipe for later; false if the pool is full or the pipe is not empty (the caller closes it).
 * `known_empty`: the caller's count says so (splice returns exact counts); else the kernel is asked.
 */
static bool pool_give(const int fds[2], size_t cap, bool known_empty) {
  int queued = -1;
  bool kept = false;
  if (!known_empty && (ioctl(fds[0], FIONREAD, &queued) != 0 || queued != 0)) return false;
  uv_once(&pipe_pool_once, pipe_pool_init);
  if (!pipe_pool_ready) return false;
  uv_mutex_lock(&pipe_pool_mutex);
  if (pipe_pool_count < PIPE_POOL_MAX) {
    pipe_pool[pipe_pool_count].fds[0] = fds[0];
    pipe_pool[pipe_pool_count].fds[1] = fds[1];
    pipe_pool[pipe_pool_count].cap = cap;
    pipe_pool_count += 1;
    kept = true;
  }
  uv_mutex_unlock(&pipe_pool_mutex);
  return kept;
}

/* The buffers and pipes: released as soon as the relay stops, not when the JS wrapper is collected. */
static void release_buffers(relay *r) {
  for (int i = 0; i < 2; i++) {
    direction *d = &r->dir[i];
    free(d->prefix);
    free(d->ring);
    d->prefix = NULL;
    d->ring = NULL;
    d->prefix_len = d->prefix_off = d->len = 0;
    if (d->pipe[0] >= 0 && d->pipe[1] >= 0 && pool_give(d->pipe, d->cap, false)) {
      d->pipe[0] = d->pipe[1] = -1;
    }
    for (int j = 0; j < 2; j++) {
      if (d->pipe[j] >= 0) close(d->pipe[j]);
      d->pipe[j] = -1;
    }
  }
}

static void free_relay(relay *r) {
  release_buffers(r);
  free(r);
}

static void handle_closed(relay *r);

static void on_endpoint_closed(uv_handle_t *handle) {
  handle_closed(((endpoint *)handle)->owner);
}

static void on_timer_closed(uv_handle_t *handle) {
  handle_closed(handle->data);
}

static void handle_closed(relay *r) {
  r->handles_open -= 1;
  if (r->handles_open > 0) return;
  if (r->started) napi_remove_async_cleanup_hook(r->cleanup);
  r->started = false;
  if (r->orphaned) free_relay(r);
}

/*
 * Stops both polls, releases the JS callback, closes both fds and starts uv_close. Safe to call twice.
 * The fds may be closed right after uv_close: uv__poll_stop has already removed them from epoll.
 */
static void close_relay(relay *r) {
  if (r->closing) return;
  r->closing = true;
  if (r->callback != NULL) napi_delete_reference(r->env, r->callback);
  r->callback = NULL;
  if (r->context != NULL) napi_async_destroy(r->env, r->context);
  r->context = NULL;
  for (int i = 0; i < 2; i++) {
    r->ep[i].events = 0;
    uv_close((uv_handle_t *)&r->ep[i].poll, on_endpoint_closed);
    close(r->ep[i].fd);
    r->ep[i].fd = -1;
  }
  if (r->has_timer) {
    r->has_timer = false;
    uv_close((uv_handle_t *)&r->connect_timer, on_timer_closed);
  }
  release_buffers(r);
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_relay(data);
}

static void on_wrapper_finalized(napi_env env, void *data, void *hint) {
  relay *r = data;
  (void)env;
  (void)hint;
  if (r->closing && r->handles_open == 0) free_relay(r);
  else r->orphaned = true;
}

/*
 * Ends the relay and tells JavaScript: error is NULL for a clean end of both directions; the fourth
 * argument says whether b was ever connected (dial(): false when the connect failed or timed out).
 */
static void finish(relay *r, napi_value error) {
  napi_env env = r->env;
  napi_value argv[4], callback, receiver, exception;
  napi_async_context context = r->context;
  napi_ref ref = r->callback;
  napi_status status;
  if (r->closing) return;
  /* Close first, so a JS callback that calls close() again finds nothing to do. The reference and the
   * context are released by close_relay; keep them alive for the call. */
  r->callback = NULL;
  r->context = NULL;
  close_relay(r);
  if (error == NULL) napi_get_null(env, &argv[0]);
  else argv[0] = error;
  if (napi_create_double(env, r->dir[0].bytes, &argv[1]) == napi_ok &&
      napi_create_double(env, r->dir[1].bytes, &argv[2]) == napi_ok &&
      napi_get_boolean(env, !r->connecting, &argv[3]) == napi_ok &&
      napi_get_reference_value(env, ref, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &receiver) == napi_ok) {
    /* napi_make_callback, not napi_call_function: it runs nextTicks and microtasks afterwards. */
    status = napi_make_callback(env, context, receiver, callback, 4, argv, NULL);
    if (status == napi_pending_exception && napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
      napi_fatal_exception(env, exception);
    }
  }
  napi_delete_reference(env, ref);
  napi_async_destroy(env, context);
}

/* ------------------------------------------------------------------------------------------------ */
/* The copy */

typedef enum { STEP_MOVED, STEP_BLOCKED, STEP_END, STEP_ERROR } step;

/*
 * Splice mode: a direction holds a pipe only while bytes are in it, so an idle connection costs its two
 * sockets and no more (an enclave's init leaves the kernel's 4096-fd hard limit; two pipes per direction
 * held for a connection's life would cut the 1024-connection cap to under 700). Returns false with errno.
 */
static bool acquire_pipe(direction *d) {
  int size;
  if (d->pipe[0] >= 0) return true;
  if (pool_take(d->pipe, &d->cap)) return true;
  if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    d->pipe[0] = d->pipe[1] = -1;
    return false;
  }
  /* Above the unprivileged limits (/proc/sys/fs/pipe-max-size, pipe-user-pages-soft) the kernel keeps a
   * smaller pipe; whatever it has is the bound. */
  (void)fcntl(d->pipe[1], F_SETPIPE_SZ, (int)d->pipe_bytes);
  size = fcntl(d->pipe[1], F_GETPIPE_SZ);
  if (size <= 0) {
    int err = size == 0 ? EINVAL : errno;
    close(d->pipe[0]);
    close(d->pipe[1]);
    d->pipe[0] = d->pipe[1] = -1;
    errno = err;
    return false;
  }
  d->cap = (size_t)size;
  return true;
}

/* Splice mode, after the pipe ran empty: back to the pool (or closed). len == 0 is exact: splice counts. */
static void release_pipe(direction *d) {
  if (d->pipe[0] < 0) return;
  if (!pool_give(d->pipe, d->cap, true)) {
    close(d->pipe[0]);
    close(d->pipe[1]);
  }
  d->pipe[0] = d->pipe[1] = -1;
}

/* Reads from `from` into the buffer. STEP_END at end of stream; errno set on STEP_ERROR. */
static step fill(relay *r, direction *d, size_t *moved) {
  int fd = r->ep[d->from].fd;
  ssize_t n;
  size_t room;
  if (d->ring == NULL && !acquire_pipe(d)) return STEP_ERROR;
  room = d->cap - d->len;
  if (d->ring == NULL) {
    do {
      n = splice(fd, NULL, d->pipe[1], NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
  } else {
    struct iovec iov[2];
    size_t tail = (d->head + d->len) % d->cap;
    int count = 1;
    iov[0].iov_base = d->ring + tail;
    iov[0].iov_len = tail >= d->head && d->len < d->cap ? d->cap - tail : room;
    if (iov[0].iov_len < room) {
      iov[1].iov_base = d->ring;
      iov[1].iov_len = room - iov[0].iov_len;
      count = 2;
    }
    do {
      n = readv(fd, iov, count);
    } while (n < 0 && errno == EINTR);
  }
  if (n <= 0 && d->ring == NULL && d->len == 0) {
    int err = errno;
    release_pipe(d); /* nothing came: hold no pipe while waiting */
    errno = err;
  }
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? STEP_BLOCKED : STEP_ERROR;
  if (n == 0) return STEP_END;
  d->len += (size_t)n;
  d->bytes += (double)n;
  *moved = (size_t)n;
  return STEP_MOVED;
}

/* Writes the prefix, then buffered bytes, to `to`. */
static step drain(relay *r, direction *d, size_t *moved) {
  int fd = r->ep[d->to].fd;
  ssize_t n;
  if (d->prefix_off < d->prefix_len) {
    do {
      n = send(fd, d->prefix + d->prefix_off, d->prefix_len - d->prefix_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? STEP_BLOCKED : STEP_ERROR;
    d->prefix_off += (size_t)n;
    *moved = (size_t)n;
    if (d->prefix_off == d->prefix_len) {
      free(d->prefix);
      d->prefix = NULL;
      d->prefix_len = d->prefix_off = 0;
    }
    return STEP_MOVED;
  }
  if (d->ring == NULL) {
    do {
      n = splice(d->pipe[0], NULL, fd, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
  } else {
    struct iovec iov[2];
    struct msghdr message;
    size_t first = d->cap - d->head < d->len ? d->cap - d->head : d->len;
    iov[0].iov_base = d->ring + d->head;
    iov[0].iov_len = first;
    iov[1].iov_base = d->ring;
    iov[1].iov_len = d->len - first;
    memset(&message, 0, sizeof(message));
    message.msg_iov = iov;
    message.msg_iovlen = iov[1].iov_len > 0 ? 2 : 1;
    do {
      n = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
  }
  /* EPIPE from splice to a socket whose peer went away: MSG_NOSIGNAL does not reach splice, but Node
   * ignores SIGPIPE, so it is an error here as with send. */
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? STEP_BLOCKED : STEP_ERROR;
  if (d->ring != NULL) {
    d->head = (d->head + (size_t)n) % d->cap;
    if (d->len == (size_t)n) d->head = 0; /* empty: start over, so the next read is one piece */
  }
  d->len -= (size_t)n;
  *moved = (size_t)n;
  if (d->ring == NULL && d->len == 0) release_pipe(d);
  return STEP_MOVED;
}

static bool has_output(const direction *d) {
  return d->len > 0 || d->prefix_off < d->prefix_len;
}

/*
 * Moves what it can in one direction until both ends would block (or a short read or write says the kernel
 * has no more). Returns false after finishing the relay with an error.
 */
static bool pump(relay *r, direction *d) {
  bool read_blocked = d->eof, write_blocked = false;
  size_t moved;
  while (!(read_blocked || d->len == d->cap) || (!write_blocked && has_output(d))) {
    bool progress = false;
    if (!write_blocked && has_output(d)) {
      size_t want = d->prefix_off < d->prefix_len ? d->prefix_len - d->prefix_off : d->len;
      switch (drain(r, d, &moved)) {
        case STEP_MOVED:
          progress = true;
          if (moved < want) write_blocked = true; /* the send queue is full: wait for WRITABLE */
          break;
        case STEP_BLOCKED: write_blocked = true; break;
        default:
          finish(r, make_errno_error(r->env, CODE_PART, "relay write failed", errno));
          return false;
      }
    }
    if (!read_blocked && d->len < d->cap && d->prefix_off >= d->prefix_len) {
      size_t room = d->cap - d->len;
      switch (fill(r, d, &moved)) {
        case STEP_MOVED:
          progress = true;
          if (moved < room) read_blocked = true; /* the receive queue is empty: wait for READABLE */
          break;
        case STEP_BLOCKED: read_blocked = true; break;
        case STEP_END:
          d->eof = true;
          read_blocked = true;
          progress = true;
          break;
        default:
          finish(r, make_errno_error(r->env, CODE_PART, "relay read failed", errno));
          return false;
      }
    } else if (d->prefix_off < d->prefix_len) {
      read_blocked = true;
    }
    if (progress) r->last_activity_ms = uv_now(r->loop);
    if (!progress) break;
  }
  if (d->eof && !has_output(d) && !d->shut) {
    d->shut = true;
    /* ENOTCONN: the other side is already fully gone; its own error (or end) ends the relay. */
    if (shutdown(r->ep[d->to].fd, SHUT_WR) != 0 && errno != ENOTCONN) {
      finish(r, make_errno_error(r->env, CODE_PART, "relay shutdown() failed", errno));
      return false;
    }
  }
  return true;
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Polls each fd for exactly what its two directions need now; finishes cleanly when both are done. */
static void update_polls(relay *r) {
  if (r->dir[0].shut && r->dir[1].shut) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
      close_relay(r);
      return;
    }
    finish(r, NULL);
    napi_close_handle_scope(r->env, scope);
    return;
  }
  for (int i = 0; i < 2; i++) {
    const direction *out = &r->dir[i];    /* i is its `from` */
    const direction *in = &r->dir[1 - i]; /* i is its `to` */
    int events = 0;
    /* splice: an empty socket and a full pipe both say EAGAIN, so read only into an empty pipe. */
    bool room = out->ring != NULL ? out->len < out->cap : out->len == 0;
    if (!out->eof && room && out->prefix_off >= out->prefix_len) events |= UV_READABLE;
    if (has_output(in)) events |= UV_WRITABLE;
    if (events == r->ep[i].events) continue;
    int rc = events == 0 ? uv_poll_stop(&r->ep[i].poll) : uv_poll_start(&r->ep[i].poll, events, on_poll);
    if (rc != 0) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
        close_relay(r);
        return;
      }
      finish(r, make_errno_error(r->env, CODE_PART, "relay uv_poll_start failed", -rc));
      napi_close_handle_scope(r->env, scope);
      return;
    }
    r->ep[i].events = events;
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  endpoint *ep = (endpoint *)handle;
  relay *r = ep->owner;
  napi_handle_scope scope;
  bool alive = true;
  if (r->closing) return;
  if (status < 0) {
    /* libuv reports POLLERR as UV_EBADF and stops the handle; the socket's own error says what happened. */
    int err = 0;
    socklen_t length = sizeof(err);
    ep->events = 0;
    if (getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
    if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
      close_relay(r);
      return;
    }
    finish(r, make_errno_error(r->env, CODE_PART, "relay socket error", err != 0 ? err : -status));
    napi_close_handle_scope(r->env, scope);
    return;
  }
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
    close_relay(r);
    return;
  }
  /* READABLE on i feeds the direction from i; WRITABLE on i drains the direction to i. */
  if ((events & (UV_READABLE | UV_DISCONNECT)) != 0) alive = pump(r, &r->dir[ep->index]);
  if (alive && (events & UV_WRITABLE) != 0) alive = pump(r, &r->dir[1 - ep->index]);
  napi_close_handle_scope(r->env, scope);
  if (alive) update_polls(r);
}

/*
 * dial(): b's connect has finished (WRITABLE, or an error): SO_ERROR says how. Connected, the relay starts
 * as open() would have; refused, unreachable or reset, it ends with that error and `connected` false.
 */
static void on_connect_poll(uv_poll_t *handle, int status, int events) {
  endpoint *ep = (endpoint *)handle;
  relay *r = ep->owner;
  napi_handle_scope scope;
  int err = 0;
  socklen_t length = sizeof(err);
  (void)events;
  if (r->closing || !r->connecting) return;
  if (getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
  if (err == 0 && status < 0) err = -status;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
    close_relay(r);
    return;
  }
  if (err != 0) {
    finish(r, make_errno_error(r->env, CODE_PART, "relay connect failed", err));
    napi_close_handle_scope(r->env, scope);
    return;
  }
  r->connecting = false;
  uv_timer_stop(&r->connect_timer);
  /* update_polls restarts b with on_poll for whatever the two directions need. */
  uv_poll_stop(&ep->poll);
  ep->events = 0;
  r->last_activity_ms = uv_now(r->loop);
  /* The client's first bytes are usually waiting already: move them now rather than a loop turn later
   * (a non-blocking read that finds nothing costs one EAGAIN). */
  bool alive = pump(r, &r->dir[0]) && pump(r, &r->dir[1]);
  napi_close_handle_scope(r->env, scope);
  if (alive) update_polls(r);
}

/* dial(): no connection within connectTimeoutMs: VSOCK_ETIMEDOUT, `connected` false. */
static void on_connect_timeout(uv_timer_t *timer) {
  relay *r = timer->data;
  napi_handle_scope scope;
  if (r->closing || !r->connecting) return;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) {
    close_relay(r);
    return;
  }
  finish(r, make_errno_error(r->env, CODE_PART, "relay connect timed out", ETIMEDOUT));
  napi_close_handle_scope(r->env, scope);
}

/* ------------------------------------------------------------------------------------------------ */
/* JS surface */

static bool get_fd(napi_env env, napi_value value, const char *name, int *out) {
  double d;
  if (!get_integer(env, &ARGUMENTS, value, name, "an integer 0..2147483647", 0, INT_MAX, &d)) return false;
  *out = (int)d;
  return true;
}

/* A Uint8Array (maybe empty) copied into a new malloc'd block; NULL data for an empty one. */
static bool copy_prefix(napi_env env, napi_value value, const char *name, uint8_t **data, size_t *length) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  void *bytes = NULL;
  size_t n = 0;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, value, &type, &n, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_bad_argument(env, &ARGUMENTS, false, name, "a Uint8Array", value);
    return false;
  }
  if (n > MAX_PREFIX_BYTES) {
    throw_bad_argument(env, &ARGUMENTS, true, name, "a Uint8Array of at most 1048576 bytes", value);
    return false;
  }
  *data = NULL;
  *length = 0;
  if (n == 0) return true;
  *data = malloc(n);
  if (*data == NULL) {
    throw_errno(env, CODE_PART, "cannot allocate a relay prefix", ENOMEM);
    return false;
  }
  memcpy(*data, bytes, n);
  *length = n;
  return true;
}

/*
 * A close-on-exec duplicate of fd, or -1 with errno set. It is made non-blocking by uv_poll_init_socket
 * below (FIONBIO on the file description the duplicate shares with the original, which libuv and vsock.c
 * have made non-blocking already): checking O_NONBLOCK here too was two fcntl(2) calls per connection.
 */
static int dup_fd(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* A direction's buffer: the ring, or a pipe sized (best effort) to `bytes`. Returns 0 or an errno. */
static int init_buffer(direction *d, bool use_splice, size_t bytes) {
  if (!use_splice) {
    d->ring = malloc(bytes);
    if (d->ring == NULL) return ENOMEM;
    d->cap = bytes;
    return 0;
  }
  /* The pipe itself is taken when there is something to read (acquire_pipe). */
  d->pipe_bytes = bytes;
  d->cap = bytes;
  return 0;
}

/*
 * A relay with its buffers and prefixes, no fds yet (both -1); NULL with an exception pending. `prefixes`
 * are the JS values of prefixAToB and prefixBToA (NULL: none that way).
 */
static relay *new_relay(napi_env env, uv_loop_t *loop, double buffer_bytes, bool use_splice, napi_value prefixes[2]) {
  static const char *const NAMES[2] = {"prefixAToB", "prefixBToA"};
  relay *r = calloc(1, sizeof(*r));
  int err;
  if (r == NULL) {
    throw_errno(env, CODE_PART, "cannot allocate a relay", ENOMEM);
    return NULL;
  }
  r->env = env;
  r->loop = loop;
  r->use_splice = use_splice;
  for (int i = 0; i < 2; i++) {
    r->dir[i].from = i;
    r->dir[i].to = 1 - i;
    r->dir[i].pipe[0] = r->dir[i].pipe[1] = -1;
    r->ep[i].fd = -1;
  }
  for (int i = 0; i < 2; i++) {
    if (prefixes[i] != NULL && !copy_prefix(env, prefixes[i], NAMES[i], &r->dir[i].prefix, &r->dir[i].prefix_len)) {
      free_relay(r);
      return NULL;
    }
    /* What the streams had read counts as read from their side, as it would have in the JS relay. */
    r->dir[i].bytes = (double)r->dir[i].prefix_len;
  }
  for (int i = 0; i < 2; i++) {
    err = init_buffer(&r->dir[i], use_splice, (size_t)buffer_bytes);
    if (err != 0) {
      free_relay(r);
      throw_errno(env, CODE_PART, use_splice ? "relay pipe failed" : "cannot allocate a relay buffer", err);
      return NULL;
    }
  }
  return r;
}

/*
 * The rest of open() and dial(): r->ep[0].fd and r->ep[1].fd are the relay's own (it closes them whatever
 * happens). Polls both, ties the relay to a JS wrapper and starts: relaying at once, or (r->connecting)
 * waiting for b's connect for at most `connect_timeout_ms`. The wrapper, or NULL with an exception pending.
 */
static napi_value start_relay(napi_env env, relay *r, napi_value callback, uint64_t connect_timeout_ms) {
  napi_value wrapper, resource_name;
  int rc;
  if (napi_create_object(env, &wrapper) != napi_ok ||
      napi_create_string_utf8(env, "enclave_native:vsock_relay", NAPI_AUTO_LENGTH, &resource_name) != napi_ok) {
    close(r->ep[0].fd);
    close(r->ep[1].fd);
    free_relay(r);
    throw_napi_failure(env);
    return NULL;
  }
  for (int i = 0; i < 2; i++) {
    r->ep[i].owner = r;
    r->ep[i].index = i;
    rc = uv_poll_init_socket(r->loop, &r->ep[i].poll, r->ep[i].fd);
    if (rc != 0) {
      /* The first handle (if it was made) must be closed through libuv before the memory goes. */
      close(r->ep[0].fd);
      close(r->ep[1].fd);
      if (i == 1) {
        r->handles_open = 1;
        r->orphaned = true;
        r->closing = true;
        uv_close((uv_handle_t *)&r->ep[0].poll, on_endpoint_closed);
      } else {
        free_relay(r);
      }
      return throw_errno(env, CODE_PART, "relay uv_poll_init failed", -rc);
    }
  }
  r->handles_open = 2;
  /* From here on every failure goes through close_relay (which closes both fds). */
  if (napi_create_reference(env, callback, 1, &r->callback) != napi_ok ||
      napi_async_init(env, wrapper, resource_name, &r->context) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, r, &r->cleanup) != napi_ok) {
    r->orphaned = true;
    r->started = false;
    close_relay(r);
    throw_napi_failure(env);
    return NULL;
  }
  r->started = true;
  if (napi_wrap(env, wrapper, r, on_wrapper_finalized, NULL, NULL) != napi_ok) {
    r->orphaned = true;
    close_relay(r);
    throw_napi_failure(env);
    return NULL;
  }
  if (napi_type_tag_object(env, wrapper, &RELAY_TAG) != napi_ok) {
    close_relay(r);
    throw_napi_failure(env);
    return NULL;
  }
  r->last_activity_ms = uv_now(r->loop);
  if (!r->connecting) {
    /* Start by polling what each side needs (prefixes to write, room to read). */
    update_polls(r);
    return wrapper;
  }
  /* a is not polled until b is connected: its bytes wait in the kernel, as they did in its paused stream. */
  rc = uv_timer_init(r->loop, &r->connect_timer);
  if (rc == 0) {
    r->connect_timer.data = r;
    r->has_timer = true;
    r->handles_open += 1;
    rc = uv_timer_start(&r->connect_timer, on_connect_timeout, connect_timeout_ms, 0);
  }
  if (rc == 0) rc = uv_poll_start(&r->ep[1].poll, UV_WRITABLE, on_connect_poll);
  if (rc != 0) {
    close_relay(r);
    return throw_errno(env, CODE_PART, "relay connect wait failed", -rc);
  }
  r->ep[1].events = UV_WRITABLE;
  return wrapper;
}

static bool get_splice(napi_env env, napi_value value, bool *out) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_boolean || napi_get_value_bool(env, value, out) != napi_ok) {
    throw_bad_argument(env, &ARGUMENTS, false, "splice", "a boolean", value);
    return false;
  }
  return true;
}

static bool get_callback(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_function) {
    throw_bad_argument(env, &ARGUMENTS, false, "callback", "a function", value);
    return false;
  }
  return true;
}

/*
 * open(fdA, fdB, bufferBytes, splice, prefixAToB, prefixBToA, callback): handle.
 * Duplicates fdA and fdB (the caller keeps and closes its own), and starts relaying at once.
 */
static napi_value relay_open(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  uv_loop_t *loop = NULL;
  double buffer_bytes;
  bool use_splice = false;
  int fds[2], err;
  relay *r;

  if (!get_args(env, info, 7, argv) || !get_fd(env, argv[0], "fdA", &fds[0]) ||
      !get_fd(env, argv[1], "fdB", &fds[1]) ||
      !get_integer(env, &ARGUMENTS, argv[2], "bufferBytes", "an integer 4096..16777216", MIN_BUFFER_BYTES,
                   MAX_BUFFER_BYTES, &buffer_bytes) ||
      !get_splice(env, argv[3], &use_splice) || !get_callback(env, argv[6])) {
    return NULL;
  }
  if (fds[0] == fds[1]) return throw_bad_argument(env, &ARGUMENTS, true, "fdB", "an fd other than fdA", argv[1]);
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  r = new_relay(env, loop, buffer_bytes, use_splice, &argv[4]);
  if (r == NULL) return NULL;
  for (int i = 0; i < 2; i++) {
    r->ep[i].fd = dup_fd(fds[i]);
    if (r->ep[i].fd < 0) {
      err = errno;
      if (i == 1) close(r->ep[0].fd);
      free_relay(r);
      return throw_errno(env, CODE_PART, "relay cannot duplicate an fd", err);
    }
  }
  return start_relay(env, r, argv[6], 0);
}

/*
 * The address dial() connects to: family "inet" with a 4-byte Uint8Array and a port 1..65535, or "vsock"
 * with a CID and a port (each 0..4294967295). Returns the sockaddr's length, 0 after throwing.
 */
static socklen_t get_target(napi_env env, napi_value family, napi_value address, napi_value port, struct sockaddr_storage *out) {
  char name[8];
  size_t length = 0;
  double number;
  memset(out, 0, sizeof(*out));
  if (napi_get_value_string_utf8(env, family, name, sizeof(name), &length) != napi_ok) {
    throw_bad_argument(env, &ARGUMENTS, false, "family", "\"inet\" or \"vsock\"", family);
    return 0;
  }
  if (strcmp(name, "inet") == 0) {
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    bool is_typedarray = false;
    napi_typedarray_type type;
    void *bytes = NULL;
    size_t n = 0;
    if (napi_is_typedarray(env, address, &is_typedarray) != napi_ok || !is_typedarray ||
        napi_get_typedarray_info(env, address, &type, &n, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array || n != 4) {
      throw_bad_argument(env, &ARGUMENTS, false, "address", "a Uint8Array of 4 bytes (IPv4)", address);
      return 0;
    }
    if (!get_integer(env, &ARGUMENTS, port, "port", "an integer 1..65535", 1, 65535, &number)) return 0;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, bytes, 4);
    in->sin_port = htons((uint16_t)number);
    return sizeof(*in);
  }
  if (strcmp(name, "vsock") == 0) {
    struct sockaddr_vm *vm = (struct sockaddr_vm *)out;
    double cid;
    if (!get_integer(env, &ARGUMENTS, address, "cid", "an integer 0..4294967295", 0, 4294967295.0, &cid) ||
        !get_integer(env, &ARGUMENTS, port, "port", "an integer 0..4294967295", 0, 4294967295.0, &number)) {
      return 0;
    }
    vm->svm_family = AF_VSOCK;
    vm->svm_cid = (unsigned int)cid;
    vm->svm_port = (unsigned int)number;
    return sizeof(*vm);
  }
  throw_bad_argument(env, &ARGUMENTS, true, "family", "\"inet\" or \"vsock\"", family);
  return 0;
}

/*
 * dial(fdA, family, address, port, connectTimeoutMs, bufferBytes, splice, prefixAToB, callback): handle.
 * Duplicates fdA, makes b itself (a non-blocking TCP socket with TCP_NODELAY, or an AF_VSOCK one) and
 * connects it to the target: what a bridge's plain dial did in JavaScript, one connection at a time. Once
 * connected the relay runs as open()'s; a connect that fails or passes connectTimeoutMs ends it with that
 * error and the callback's fourth argument false. A connect refused at once throws VSOCK_E<ERRNO> and
 * leaves nothing behind.
 */
static napi_value relay_dial(napi_env env, napi_callback_info info) {
  napi_value argv[9], prefixes[2];
  uv_loop_t *loop = NULL;
  struct sockaddr_storage target;
  socklen_t target_length;
  double buffer_bytes, timeout_ms;
  bool use_splice = false;
  int fd_a, err;
  relay *r;

  if (!get_args(env, info, 9, argv) || !get_fd(env, argv[0], "fdA", &fd_a)) return NULL;
  target_length = get_target(env, argv[1], argv[2], argv[3], &target);
  if (target_length == 0 ||
      !get_integer(env, &ARGUMENTS, argv[4], "connectTimeoutMs", "an integer 1..2147483647", 1, MAX_CONNECT_TIMEOUT_MS, &timeout_ms) ||
      !get_integer(env, &ARGUMENTS, argv[5], "bufferBytes", "an integer 4096..16777216", MIN_BUFFER_BYTES,
                   MAX_BUFFER_BYTES, &buffer_bytes) ||
      !get_splice(env, argv[6], &use_splice) || !get_callback(env, argv[8])) {
    return NULL;
  }
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  prefixes[0] = argv[7];
  prefixes[1] = NULL;
  r = new_relay(env, loop, buffer_bytes, use_splice, prefixes);
  if (r == NULL) return NULL;
  r->ep[0].fd = dup_fd(fd_a);
  if (r->ep[0].fd < 0) {
    err = errno;
    free_relay(r);
    return throw_errno(env, CODE_PART, "relay cannot duplicate an fd", err);
  }
  r->ep[1].fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->ep[1].fd >= 0 && target.ss_family == AF_INET) {
    int on = 1;
    /* As the bridges' Node sockets (noDelay): a small write goes out now, not after the peer's ACK. */
    (void)setsockopt(r->ep[1].fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  if (r->ep[1].fd < 0 || (connect(r->ep[1].fd, (struct sockaddr *)&target, target_length) != 0 && errno != EINPROGRESS && errno != EINTR)) {
    err = errno;
    close(r->ep[0].fd);
    if (r->ep[1].fd >= 0) close(r->ep[1].fd);
    free_relay(r);
    return throw_errno(env, CODE_PART, "relay connect failed", err);
  }
  /* Connected at once or not, b is watched for WRITABLE first: SO_ERROR then says how it went. */
  r->connecting = true;
  return start_relay(env, r, argv[8], (uint64_t)timeout_ms);
}

static bool get_relay(napi_env env, napi_value value, relay **out) {
  napi_valuetype type = napi_undefined;
  bool tagged = false;
  void *data = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_object ||
      napi_check_object_type_tag(env, value, &RELAY_TAG, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, value, &data) != napi_ok || data == NULL) {
    throw_bad_argument(env, &ARGUMENTS, false, "handle", "a handle from relay open", value);
    return false;
  }
  *out = data;
  return true;
}

/* stats(handle): [bytesAToB, bytesBToA, idleMs]. Valid after close too (the counts stay); idleMs 0 while a dial connects. */
static napi_value relay_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay *r;
  uv_loop_t *loop = NULL;
  double idle = 0;
  if (!get_args(env, info, 1, argv) || !get_relay(env, argv[0], &r)) return NULL;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  /* A dial's setup has its own deadline: no idle time while connecting. */
  if (!r->closing && !r->connecting) idle = (double)(uv_now(loop) - r->last_activity_ms);
  return number_array(env, (double[]){r->dir[0].bytes, r->dir[1].bytes, idle}, 3);
}

/* close(handle): undefined. Stops relaying and closes both fds; the callback is not called. Idempotent. */
static napi_value relay_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay *r;
  if (!get_args(env, info, 1, argv) || !get_relay(env, argv[0], &r)) return NULL;
  close_relay(r);
  return NULL;
}

/*
 * listenTcp(address, port, backlog): [fd, port]. A listening TCP socket on a 4-byte IPv4 address
 * (non-blocking, close-on-exec, SO_REUSEADDR as Node's listeners have), for a bridge whose accepted
 * connections go straight to dial(): no net.Socket is made for them (bridge/transports.ts listenTcpFds).
 * `port` 0 lets the kernel choose; the bound port comes back. VSOCK_E<ERRNO> on failure, nothing left open.
 */
static napi_value relay_listen_tcp(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  struct sockaddr_in address;
  socklen_t length = sizeof(address);
  bool is_typedarray = false;
  napi_typedarray_type type;
  void *bytes = NULL;
  size_t n = 0;
  double port, backlog;
  int fd, one = 1;

  if (!get_args(env, info, 3, argv)) return NULL;
  if (napi_is_typedarray(env, argv[0], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[0], &type, &n, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array || n != 4) {
    return throw_bad_argument(env, &ARGUMENTS, false, "address", "a Uint8Array of 4 bytes (IPv4)", argv[0]);
  }
  if (!get_integer(env, &ARGUMENTS, argv[1], "port", "an integer 0..65535", 0, 65535, &port) ||
      !get_integer(env, &ARGUMENTS, argv[2], "backlog", "an integer 1..65535", 1, 65535, &backlog)) {
    return NULL;
  }
  memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  memcpy(&address.sin_addr, bytes, 4);
  address.sin_port = htons((uint16_t)port);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, CODE_PART, "TCP socket() failed", errno);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, (int)backlog) != 0 ||
      getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, CODE_PART, "TCP listen failed", err);
  }
  result = number_array(env, (double[]){fd, ntohs(address.sin_port)}, 2);
  if (result == NULL) close(fd);
  return result;
}

/*
 * acceptTcp(fd): the accepted connection's fd (non-blocking, close-on-exec, TCP_NODELAY), or -1 when none
 * is waiting. A peer that gave up while queued (ECONNABORTED) is skipped; other errors (EMFILE, ENFILE,
 * ENOBUFS) throw VSOCK_E<ERRNO> and the caller backs off (vsock/fd-listener.ts).
 */
static napi_value relay_accept_tcp(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int fd, peer, one = 1;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], "fd", &fd)) return NULL;
  do {
    peer = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (peer < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (peer < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) peer = -1;
    else return throw_errno(env, CODE_PART, "TCP accept4() failed", errno);
  } else {
    /* As Node's bridge listener had (noDelay): a relay's small writes go out at once. */
    (void)setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  if (napi_create_int32(env, peer, &result) != napi_ok) {
    if (peer >= 0) close(peer);
    throw_napi_failure(env);
    return NULL;
  }
  return result;
}

napi_value relay_register(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, relay_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dial", NULL, relay_dial, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, relay_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, relay_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenTcp", NULL, relay_listen_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptTcp", NULL, relay_accept_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"MIN_BUFFER_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MIN_BUFFER_BYTES), napi_enumerable, NULL},
      {"MAX_BUFFER_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MAX_BUFFER_BYTES), napi_enumerable, NULL},
      {"MAX_PREFIX_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MAX_PREFIX_BYTES), napi_enumerable, NULL},
  };
  return export_frozen_object(env, exports, "vsockRelay", properties, sizeof(properties) / sizeof(properties[0]));
}
