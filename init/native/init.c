/*
 * The native half of init/: the few system calls a boot needs that Node does not offer. mount(2) for the
 * kernel filesystems, SIOCSIFFLAGS to bring an interface (lo) up, SIOCSIFADDR and SIOCSIFNETMASK for an
 * interface's IPv4 address, RNDADDENTROPY to credit the kernel's pool with bytes from the NSM,
 * finit_module(2) for kernel modules (nsm.ko, vsock, a NIC driver), PR_SET_CHILD_SUBREAPER, and a reaper
 * for orphans that never touches the children libuv waits for.
 *
 * It must not decide anything: each function is one syscall (or one short, fixed sequence of them), run on
 * the JS thread because boot steps run one after the other and each takes microseconds to milliseconds.
 * The TypeScript side (init/native.ts) validates arguments before calling; the checks here are a second
 * line that throws TypeError/RangeError coded INIT_BAD_ARGUMENT. Kernel failures are errors with `code`
 * INIT_E<ERRNO> and `errno` (the errno name), as in nsm/native/nsm.c.
 *
 * Registration: nsm/native/nsm.c owns the module init and calls init_register() (init.h) after
 * vsock_register(), so every part lives in one enclave_native.node.
 */
#define _GNU_SOURCE
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/random.h>

#include "../../native/common.h"

/* Errors are coded INIT_E<ERRNO> (native/common.h) or, for arguments, INIT_BAD_ARGUMENT. */
#define CODE_PART "INIT"
#define CODE_BAD_ARGUMENT "INIT_BAD_ARGUMENT"

/* include/uapi/linux/random.h: _IOW('R', 0x03, int[2]). */
_Static_assert(RNDADDENTROPY == 0x40085203, "RNDADDENTROPY must be _IOW('R', 0x03, int[2])");

/*
 * Largest entropy buffer accepted: 4 KiB, 16 x the 256 bytes init/ asks the NSM for. The kernel takes any
 * size; the cap only bounds what one call copies.
 */
#define MAX_ENTROPY_BYTES 4096

/* Longest path or string argument copied (PATH_MAX, include/uapi/linux/limits.h). */
#define MAX_STRING_BYTES 4096

/* Room for an error message's prefix; paths in it are cut at 1024 bytes. */
#define PREFIX_BYTES 1400
_Static_assert(PREFIX_BYTES + 256 <= ERRNO_MESSAGE_BYTES, "a prefix and its strerror text must fit one message");

/* Orphans reaped per reapOrphans() call; more wait for the next call (init/reaper.ts calls again). */
#define MAX_REAP_PER_CALL 64

/* Child pids libuv owns that one call may be told about (init supervises two; 1024 is generous). */
#define MAX_OWN_PIDS 1024

/* ------------------------------------------------------------------------------------------------ */
/* Argument checks: one message pattern, `"bits" expected an integer 0..32768, got -1`. */

/* TypeError for a wrong type, RangeError for a wrong value; any typed array is "a typed array". */
static const argument_style ARGUMENTS = {CODE_BAD_ARGUMENT, NAME_TYPED_ARRAYS, true};

/*
 * A string of at most `max_bytes` UTF-8 bytes without NUL, copied into `buf` (max_bytes + 1 long).
 * `allow_empty` false also refuses "". Throws and returns false otherwise.
 */
static bool get_string(napi_env env, napi_value value, const char *name, bool allow_empty, char *buf,
                       size_t max_bytes) {
  napi_valuetype type = napi_undefined;
  size_t length = 0;
  char expected[96];
  snprintf(expected, sizeof(expected), "a %sstring of at most %zu bytes without NUL", allow_empty ? "" : "non-empty ",
           max_bytes);
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    throw_bad_argument(env, &ARGUMENTS, false, name, expected, value);
    return false;
  }
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    throw_napi_failure(env);
    return false;
  }
  if (length > max_bytes || (!allow_empty && length == 0)) {
    throw_bad_argument(env, &ARGUMENTS, true, name, expected, value);
    return false;
  }
  if (napi_get_value_string_utf8(env, value, buf, max_bytes + 1, &length) != napi_ok) {
    throw_napi_failure(env);
    return false;
  }
  if (strlen(buf) != length) {
    throw_bad_argument(env, &ARGUMENTS, true, name, expected, value);
    return false;
  }
  return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* mount(source, target, fstype, flags, data): undefined */

static napi_value init_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  /* Static buffers: the JS thread is the only caller, and 4 x 4 KiB is too much for some stacks. */
  static char source[MAX_STRING_BYTES + 1], target[MAX_STRING_BYTES + 1], fstype[MAX_STRING_BYTES + 1],
      data[MAX_STRING_BYTES + 1];
  char prefix[PREFIX_BYTES];
  double flags = 0;

  if (!get_args(env, info, 5, argv)) return NULL;
  if (!get_string(env, argv[0], "source", false, source, MAX_STRING_BYTES)) return NULL;
  if (!get_string(env, argv[1], "target", false, target, MAX_STRING_BYTES)) return NULL;
  if (!get_string(env, argv[2], "fstype", false, fstype, MAX_STRING_BYTES)) return NULL;
  if (!get_integer(env, &ARGUMENTS, argv[3], "flags", "an integer 0..4294967295", 0, 4294967295.0, &flags)) return NULL;
  if (!get_string(env, argv[4], "data", true, data, MAX_STRING_BYTES)) return NULL;

  if (mount(source, target, fstype, (unsigned long)flags, data[0] == '\0' ? NULL : data) != 0) {
    int err = errno;
    snprintf(prefix, sizeof(prefix), "mount %.200s on %.1024s (%.64s)", source, target, fstype);
    return throw_errno(env, CODE_PART, prefix, err);
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Interfaces: any socket will do for the interface ioctls; an AF_INET datagram socket needs no address. */

static int interface_socket(void) { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

/*
 * Sets IFF_UP on `name` through `fd`. Returns 0 and *was_down, or an errno with *what naming the ioctl
 * that failed.
 */
static int set_interface_up(int fd, const char *name, bool *was_down, const char **what) {
  struct ifreq request;
  memset(&request, 0, sizeof(request));
  memcpy(request.ifr_name, name, strlen(name) + 1);
  *was_down = false;
  if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
    *what = "SIOCGIFFLAGS";
    return errno;
  }
  if (request.ifr_flags & IFF_UP) return 0;
  request.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) {
    *what = "SIOCSIFFLAGS";
    return errno;
  }
  *was_down = true;
  return 0;
}

/* interfaceUp(name): boolean (true: it was down and is now up; false: it was already up) */
static napi_value init_interface_up(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IFNAMSIZ];
  char prefix[IFNAMSIZ + 64];
  const char *what = "";
  bool was_down = false;
  int fd, err;

  if (!get_args(env, info, 1, argv)) return NULL;
  if (!get_string(env, argv[0], "name", false, name, IFNAMSIZ - 1)) return NULL;

  fd = interface_socket();
  if (fd < 0) return throw_errno(env, CODE_PART, "socket(AF_INET, SOCK_DGRAM)", errno);
  err = set_interface_up(fd, name, &was_down, &what);
  close(fd);
  if (err != 0) {
    snprintf(prefix, sizeof(prefix), "%s %s", what, name);
    return throw_errno(env, CODE_PART, prefix, err);
  }
  return boolean_value(env, was_down);
}

/* One AF_INET address ioctl (SIOCSIFADDR, SIOCSIFNETMASK) on `name`; 0 or an errno. */
static int set_interface_inet(int fd, const char *name, unsigned long request_code, in_addr_t address) {
  struct ifreq request;
  struct sockaddr_in inet;
  memset(&request, 0, sizeof(request));
  memcpy(request.ifr_name, name, strlen(name) + 1);
  memset(&inet, 0, sizeof(inet));
  inet.sin_family = AF_INET; /* devinet_ioctl() refuses any other family with EINVAL */
  inet.sin_addr.s_addr = address;
  memcpy(&request.ifr_addr, &inet, sizeof(inet));
  return ioctl(fd, request_code, &request) != 0 ? errno : 0;
}

/*
 * setInterfaceAddress(name, address, prefixLength): boolean — the interface's (first) IPv4 address and
 * netmask, then IFF_UP; true if the interface was down. SIOCSIFADDR sets the address with a classful mask
 * (net/ipv4/devinet.c), so the netmask follows it; both are no-ops when unchanged, so a second call with
 * the same values changes nothing (`lo` keeps 127.0.0.1/8 and its routes).
 */
static napi_value init_set_interface_address(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[IFNAMSIZ];
  /* "255.255.255.255" is 15 characters. */
  char text[INET_ADDRSTRLEN];
  char prefix[IFNAMSIZ + INET_ADDRSTRLEN + 64];
  struct in_addr address;
  double prefix_length = 0;
  const char *what = "";
  bool was_down = false;
  in_addr_t mask;
  int fd, err;

  if (!get_args(env, info, 3, argv)) return NULL;
  if (!get_string(env, argv[0], "name", false, name, IFNAMSIZ - 1)) return NULL;
  if (!get_string(env, argv[1], "address", false, text, INET_ADDRSTRLEN - 1)) return NULL;
  if (inet_pton(AF_INET, text, &address) != 1) {
    return throw_bad_argument(env, &ARGUMENTS, true, "address", "a dotted-quad IPv4 address", argv[1]);
  }
  if (!get_integer(env, &ARGUMENTS, argv[2], "prefixLength", "an integer 0..32", 0, 32, &prefix_length)) return NULL;
  /* A 32-bit shift is undefined in C: /0 is the empty mask. */
  mask = prefix_length == 0 ? 0 : htonl(0xffffffffu << (32 - (unsigned)prefix_length));

  fd = interface_socket();
  if (fd < 0) return throw_errno(env, CODE_PART, "socket(AF_INET, SOCK_DGRAM)", errno);
  err = set_interface_inet(fd, name, SIOCSIFADDR, address.s_addr);
  what = "SIOCSIFADDR";
  if (err == 0) {
    err = set_interface_inet(fd, name, SIOCSIFNETMASK, mask);
    what = "SIOCSIFNETMASK";
  }
  if (err == 0) err = set_interface_up(fd, name, &was_down, &what);
  close(fd);
  if (err != 0) {
    snprintf(prefix, sizeof(prefix), "%s %s %s/%u", what, name, text, (unsigned)prefix_length);
    return throw_errno(env, CODE_PART, prefix, err);
  }
  return boolean_value(env, was_down);
}

/* ------------------------------------------------------------------------------------------------ */
/* addEntropy(bytes: Uint8Array, bits: number): undefined — RNDADDENTROPY on /dev/random */

static napi_value init_add_entropy(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool is_typedarray = false;
  napi_typedarray_type ta_type;
  size_t length = 0;
  void *bytes = NULL;
  double bits = 0;
  struct rand_pool_info *pool;
  int fd, err;

  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_is_typedarray(env, argv[0], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[0], &ta_type, &length, &bytes, NULL, NULL) != napi_ok ||
      ta_type != napi_uint8_array) {
    return throw_bad_argument(env, &ARGUMENTS, false, "bytes", "a Uint8Array", argv[0]);
  }
  if (length == 0 || length > MAX_ENTROPY_BYTES) {
    char expected[64];
    snprintf(expected, sizeof(expected), "1..%d bytes", MAX_ENTROPY_BYTES);
    return throw_bad_argument(env, &ARGUMENTS, true, "bytes", expected, argv[0]);
  }
  /* Never credit more bits than the bytes hold. */
  if (!get_integer(env, &ARGUMENTS, argv[1], "bits", "an integer 0..8 x the byte count", 0, (double)length * 8,
                   &bits)) {
    return NULL;
  }

  pool = calloc(1, sizeof(*pool) + length);
  if (pool == NULL) return throw_errno(env, CODE_PART, "cannot allocate the entropy buffer", ENOMEM);
  pool->entropy_count = (int)bits;
  pool->buf_size = (int)length;
  memcpy(pool->buf, bytes, length);

  fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    explicit_bzero(pool, sizeof(*pool) + length);
    free(pool);
    return throw_errno(env, CODE_PART, "open /dev/random", err);
  }
  err = ioctl(fd, RNDADDENTROPY, pool) != 0 ? errno : 0;
  close(fd);
  /* The bytes seed the kernel's keys: leave no copy behind. */
  explicit_bzero(pool, sizeof(*pool) + length);
  free(pool);
  if (err != 0) return throw_errno(env, CODE_PART, "RNDADDENTROPY on /dev/random", err);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* loadModule(path, params): boolean (true: loaded now; false: it was already loaded, EEXIST) */

static napi_value init_load_module(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  static char path[MAX_STRING_BYTES + 1], params[MAX_STRING_BYTES + 1];
  char prefix[PREFIX_BYTES];
  int fd, err;

  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_string(env, argv[0], "path", false, path, MAX_STRING_BYTES)) return NULL;
  if (!get_string(env, argv[1], "params", true, params, MAX_STRING_BYTES)) return NULL;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    snprintf(prefix, sizeof(prefix), "open %.1024s", path);
    return throw_errno(env, CODE_PART, prefix, err);
  }
  err = syscall(SYS_finit_module, fd, params, 0) != 0 ? errno : 0;
  close(fd);
  if (err == EEXIST) return boolean_value(env, false);
  if (err != 0) {
    snprintf(prefix, sizeof(prefix), "finit_module %.1024s", path);
    return throw_errno(env, CODE_PART, prefix, err);
  }
  return boolean_value(env, true);
}

/* ------------------------------------------------------------------------------------------------ */
/* setChildSubreaper(): undefined — orphans of our descendants are re-parented to us, not to PID 1 */

static napi_value init_set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return throw_errno(env, CODE_PART, "PR_SET_CHILD_SUBREAPER", errno);
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/*
 * reapOrphans(ownPids: number[]): number[] — reaps exited children that are not in `ownPids` and returns
 * their pids.
 *
 * libuv waits for the children Node spawned with waitpid(pid); a waitpid(-1) here would steal their exit
 * status and their 'exit' event would never come. So each round first looks without reaping (waitid with
 * WNOWAIT), reaps that pid only if it is not one of ours, and stops at the first one that is ours (libuv
 * reaps it on its own SIGCHLD; orphans behind it are reaped on the next call).
 */

static napi_value init_reap_orphans(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, element;
  bool is_array = false;
  uint32_t own_count = 0, reaped = 0;
  pid_t own[MAX_OWN_PIDS];
  double d;

  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    return throw_bad_argument(env, &ARGUMENTS, false, "ownPids", "an Array of pids", argv[0]);
  }
  NAPI_CALL(env, napi_get_array_length(env, argv[0], &own_count));
  if (own_count > MAX_OWN_PIDS) {
    return throw_bad_argument(env, &ARGUMENTS, true, "ownPids", "at most 1024 pids", argv[0]);
  }
  for (uint32_t i = 0; i < own_count; i++) {
    NAPI_CALL(env, napi_get_element(env, argv[0], i, &element));
    if (!get_integer(env, &ARGUMENTS, element, "ownPids[i]", "a pid 1..2147483647", 1, 2147483647.0, &d)) return NULL;
    own[i] = (pid_t)d;
  }

  NAPI_CALL(env, napi_create_array(env, &result));
  while (reaped < MAX_REAP_PER_CALL) {
    siginfo_t peek;
    bool ours = false;
    memset(&peek, 0, sizeof(peek));
    if (waitid(P_ALL, 0, &peek, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) break; /* no children at all */
      return throw_errno(env, CODE_PART, "waitid", errno);
    }
    if (peek.si_pid == 0) break; /* children, but none has exited */
    for (uint32_t i = 0; i < own_count && !ours; i++) ours = own[i] == peek.si_pid;
    if (ours) break;
    pid_t pid;
    do pid = waitpid(peek.si_pid, NULL, WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid <= 0) break; /* someone else reaped it in between */
    NAPI_CALL(env, napi_create_int32(env, pid, &element));
    NAPI_CALL(env, napi_set_element(env, result, reaped, element));
    reaped++;
  }
  return result;
}

/* ------------------------------------------------------------------------------------------------ */

napi_value init_register(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"mount", NULL, init_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"interfaceUp", NULL, init_interface_up, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setInterfaceAddress", NULL, init_set_interface_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addEntropy", NULL, init_add_entropy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loadModule", NULL, init_load_module, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setChildSubreaper", NULL, init_set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reapOrphans", NULL, init_reap_orphans, NULL, NULL, NULL, napi_enumerable, NULL},
      {"MS_NOSUID", NULL, NULL, NULL, NULL, uint32_value(env, MS_NOSUID), napi_enumerable, NULL},
      {"MS_NODEV", NULL, NULL, NULL, NULL, uint32_value(env, MS_NODEV), napi_enumerable, NULL},
      {"MS_NOEXEC", NULL, NULL, NULL, NULL, uint32_value(env, MS_NOEXEC), napi_enumerable, NULL},
      {"MS_RELATIME", NULL, NULL, NULL, NULL, uint32_value(env, MS_RELATIME), napi_enumerable, NULL},
      {"MAX_ENTROPY_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MAX_ENTROPY_BYTES), napi_enumerable, NULL},
      {"MAX_STRING_BYTES", NULL, NULL, NULL, NULL, uint32_value(env, MAX_STRING_BYTES), napi_enumerable, NULL},
      {"MAX_OWN_PIDS", NULL, NULL, NULL, NULL, uint32_value(env, MAX_OWN_PIDS), napi_enumerable, NULL},
      {"MAX_REAP_PER_CALL", NULL, NULL, NULL, NULL, uint32_value(env, MAX_REAP_PER_CALL), napi_enumerable, NULL},
  };
  return export_frozen_object(env, exports, "init", properties, sizeof(properties) / sizeof(properties[0]));
}
