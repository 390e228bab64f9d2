#!/usr/bin/env bash
# Runs a command inside a QEMU guest that has a real kernel NSM driver (/dev/nsm over virtio-nsm-pci) and
# vsock loopback (CID 1), by default the guest vitest suites (test/qemu/*.guest.test.ts), and exits with
# the guest command's status (specs/qemu-rig.md step 7). Or boots an enclave image file as Nitro does.
#
#   run.sh [--timeout SECONDS] [--initrd FILE] [--hostfwd HOST_PORT:GUEST_PORT]... [-- GUEST COMMAND...]
#   run.sh --eif FILE [--uds PATH] [--id NAME] [--parent-id ID] [--parent-role ARN] [--timeout SECONDS]
#
# --initrd boots a ready initramfs (for example `make initramfs`'s, whose /init is the agent's init) instead
# of building the test one; the guest command is then ignored. --hostfwd adds a virtio NIC on QEMU's
# user-mode network with `restrict=on` (the guest reaches nothing outside) and forwards
# 127.0.0.1:HOST_PORT on this machine to GUEST_PORT on the guest's 10.0.2.15.
#
# --eif boots an enclave image file under QEMU's nitro-enclave machine (specs/nitro-enclave.md §3): QEMU
# checks its CRC, extends PCR0-2 from it (PCR3/4 from --parent-role/--parent-id), makes --id the NSM's
# module_id, and boots the image's own kernel, command line and ramdisks: no -append (not measured) and no
# -initrd (measured, but not the image's). Its vsock is vhost-device-vsock (setup.sh), started first with
# --uds-path only: the host reaches the guest's port P through the Unix socket PATH (`host-bridge --uds
# PATH`), and the guest's connections to the host (CID 2, the only CID it delivers) arrive on PATH_<port>.
# test/qemu/heartbeat-responder.mjs answers the boot heartbeat on PATH_9000 (so the image's init
# configuration says `"heartbeat": { "cid": 2 }` here). PATH defaults to .cache/nitro/vsock.sock; both
# helpers are stopped when QEMU exits.
#
# It runs setup.sh (cached) and build-initramfs.sh, boots the guest under `timeout`, streams the serial
# console to stdout and to .cache/qemu-logs/, and exits non-zero if the guest's `QEMU-GUEST-EXIT` marker is
# missing or QEMU ran out of time. It does not run `npm ci`: node_modules and the built addon must exist.
#
# It must not: give QEMU a vhost device other than --eif's vhost-device-vsock, and that only with
# --uds-path (never --forward-cid or --forward-listen, which open AF_VSOCK on this machine), or a network
# beyond the restricted user-mode NIC of --hostfwd (this machine's /dev/vsock leads out of the machine;
# vsock is used only inside the guest), or open vsock sockets on this machine.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
# ENCLAVE_AGENT_CACHE moves the cache out of the work tree (CI keeps it across fresh clones).
CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
ADDON=$REPO_ROOT/build/Release/enclave_native.node
# A cold boot plus the suites takes well under a minute under TCG; ten minutes means something hangs.
DEFAULT_TIMEOUT_SECONDS=600
# After the timeout, QEMU gets this long to exit on SIGTERM before SIGKILL.
KILL_AFTER_SECONDS=10
# --eif: the guest's CID behind vhost-device-vsock (not 0-2, which are reserved; Nitro's enclaves get 4+).
EIF_GUEST_CID=16
# How long vhost-device-vsock and the heartbeat responder may take to listen.
HELPER_START_SECONDS=10

log() { printf '[qemu-run] %s\n' "$*"; }
die() { printf '[qemu-run] error: %s\n' "$*" >&2; exit 2; }

timeout_seconds=$DEFAULT_TIMEOUT_SECONDS
guest_command=()
initrd=
nic=(-nic none)
forwards=
eif=
uds=
enclave_id=
parent_props=
while [ $# -gt 0 ]; do
  case $1 in
    --eif)
      [ $# -ge 2 ] || die "--eif needs a file"
      eif=$2
      shift 2
      ;;
    --uds)
      [ $# -ge 2 ] || die "--uds needs a path"
      uds=$2
      shift 2
      ;;
    --id)
      [ $# -ge 2 ] || die "--id needs a name"
      [[ $2 =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "--id expects 1..64 of [A-Za-z0-9._-], got $2"
      enclave_id=$2
      shift 2
      ;;
    --parent-id | --parent-role)
      [ $# -ge 2 ] || die "$1 needs a value"
      # QEMU's -M syntax: a comma would start another machine property.
      [[ $2 =~ ^[A-Za-z0-9:/._+=@-]{1,256}$ ]] || die "$1 expects 1..256 of [A-Za-z0-9:/._+=@-], got $2"
      parent_props+=",${1#--}=$2"
      shift 2
      ;;
    --initrd)
      [ $# -ge 2 ] || die "--initrd needs a file"
      initrd=$2
      shift 2
      ;;
    --hostfwd)
      [ $# -ge 2 ] || die "--hostfwd needs HOST_PORT:GUEST_PORT"
      [[ $2 =~ ^[1-9][0-9]{0,4}:[1-9][0-9]{0,4}$ ]] || die "--hostfwd expects HOST_PORT:GUEST_PORT, got $2"
      forwards+=",hostfwd=tcp:127.0.0.1:${2%%:*}-:${2##*:}"
      shift 2
      ;;
    --timeout)
      [ $# -ge 2 ] || die "--timeout needs a number of seconds"
      timeout_seconds=$2
      shift 2
      ;;
    --timeout=*) timeout_seconds=${1#--timeout=}; shift ;;
    --) shift; guest_command=("$@"); break ;;
    -h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (usage: run.sh [--timeout SECONDS] [--initrd FILE] [--hostfwd H:G]... [-- GUEST COMMAND...] | --eif FILE [...])" ;;
  esac
done
[[ $timeout_seconds =~ ^[1-9][0-9]*$ ]] || die "--timeout expects a positive whole number of seconds, got $timeout_seconds"
[ -z "$initrd" ] || [ -s "$initrd" ] || die "--initrd $initrd is missing or empty"
if [ -n "$eif" ]; then
  [ -s "$eif" ] || die "--eif $eif is missing or empty"
  [ -z "$initrd" ] && [ -z "$forwards" ] && [ ${#guest_command[@]} -eq 0 ] ||
    die "--eif boots the image as it is: no --initrd, --hostfwd (an enclave has no NIC) or guest command"
elif [ -n "$uds$enclave_id$parent_props" ]; then
  die "--uds, --id, --parent-id and --parent-role go with --eif"
fi
# romfile= : no PXE option ROM (the guest boots with -kernel; the +ds QEMU build ships no efi-virtio.rom).
if [ -n "$forwards" ]; then nic=(-netdev "user,id=net0,restrict=on$forwards" -device virtio-net-pci,netdev=net0,romfile=); fi

[ -f "$ADDON" ] || die "$ADDON is missing: run \`npm ci\` in $REPO_ROOT first (it builds the addon)"

phase_start=$SECONDS
bash "$HERE/setup.sh"
log "setup: $((SECONDS - phase_start)) s"
# shellcheck source=/dev/null
. "$CACHE/qemu-rig.env"

mkdir -p "$CACHE/qemu-logs" "$CACHE/initramfs"
# One run at a time: runs share the staging tree and the initramfs file.
exec 9> "$CACHE/qemu-run.lock"
if ! flock -n 9; then
  log "waiting for another run of the rig to finish"
  flock 9
fi

if [ -n "$eif" ]; then
  : # the image carries its own kernel and ramdisks
elif [ -n "$initrd" ]; then
  INITRD=$initrd
else
  INITRD=$CACHE/initramfs/guest.cpio
  bash "$HERE/build-initramfs.sh" "$INITRD" "${guest_command[@]}"
fi

LOG=$CACHE/qemu-logs/run-$(date -u +%Y%m%dT%H%M%SZ).log
ln -sfn "$(basename "$LOG")" "$CACHE/qemu-logs/latest.log"
log "booting (timeout ${timeout_seconds} s), console log $LOG"

# --eif: the vsock backend and the heartbeat's answer, both listening before QEMU starts; stopped (by
# their pids: they are this script's children) when it exits.
helper_pids=()
stop_helpers() {
  local pid
  for pid in "${helper_pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${helper_pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  # vhost-device-vsock leaves its sockets behind when stopped.
  if [ -n "${vhost_socket:-}" ]; then rm -f "$vhost_socket" "$uds"; fi
}
trap stop_helpers EXIT

# wait_for WHAT TEST: polls TEST for HELPER_START_SECONDS.
wait_for() {
  local what=$1 test=$2 deadline=$((SECONDS + HELPER_START_SECONDS))
  until eval "$test"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not start within $HELPER_START_SECONDS s"
    sleep 0.1
  done
}

if [ -n "$eif" ]; then
  [ -n "${VHOST_DEVICE_VSOCK:-}" ] && [ -x "$VHOST_DEVICE_VSOCK" ] || die "no vhost-device-vsock in $CACHE/qemu-rig.env: run setup.sh"
  command -v node > /dev/null || die "node is missing (the heartbeat responder runs on it)"
  nitro_dir=$CACHE/nitro
  mkdir -p "$nitro_dir"
  uds=${uds:-$nitro_dir/vsock.sock}
  vhost_socket=$nitro_dir/vhost-user.sock
  rm -f "$vhost_socket" "$uds"
  log "vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION: guest CID $EIF_GUEST_CID, hybrid vsock at $uds (host-bridge --uds $uds)"
  # --uds-path only: the host side is Unix sockets. Never --forward-cid/--forward-listen (AF_VSOCK here).
  "$VHOST_DEVICE_VSOCK" --guest-cid "$EIF_GUEST_CID" --socket "$vhost_socket" --uds-path "$uds" \
    > "$nitro_dir/vhost-device-vsock.log" 2>&1 < /dev/null &
  helper_pids+=($!)
  wait_for vhost-device-vsock '[ -S "$vhost_socket" ]'
  heartbeat_log=$nitro_dir/heartbeat-responder.log
  node "$HERE/heartbeat-responder.mjs" "${uds}_9000" > "$heartbeat_log" 2>&1 < /dev/null &
  helper_pids+=($!)
  wait_for "the heartbeat responder" 'grep -q "listening" "$heartbeat_log"'
  qemu_args=(
    -M "nitro-enclave,vsock=c,id=${enclave_id:-enclave-agent-rig},acpi=on$parent_props"
    -accel tcg,thread=multi -cpu max -m 2048 -smp 2 -nographic -no-reboot
    -kernel "$eif" -chardev "socket,id=c,path=$vhost_socket"
  )
else
  qemu_args=(
    -accel tcg,thread=multi -cpu max -m 2048 -smp 2
    -nographic -vga none -no-reboot
    -kernel "$GUEST_KERNEL" -initrd "$INITRD" -append "console=ttyS0 panic=-1 quiet"
    "${nic[@]}" -device virtio-nsm-pci
  )
fi

start=$SECONDS
set +e
# stdin from /dev/null: -nographic would otherwise take the caller's terminal for the serial console.
# --foreground keeps QEMU in this script's process group, so whoever stops the group (the full-boot test
# does) stops QEMU too; without it timeout(1) moves QEMU to a group of its own, out of reach.
timeout --foreground --kill-after="$KILL_AFTER_SECONDS" "$timeout_seconds" \
  "$QEMU_BIN" -L /usr/share/seabios -L /usr/share/qemu "${qemu_args[@]}" < /dev/null 2>&1 | tee "$LOG"
qemu_status=${PIPESTATUS[0]}
set -e
if [ -n "$eif" ]; then
  log "heartbeat responder: $(grep -c 'answered' "$heartbeat_log" || true) answered ($heartbeat_log)"
fi
elapsed=$((SECONDS - start))

if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
  log "QEMU timed out after ${timeout_seconds} s (log $LOG)"
  exit 124
fi
marker=$(tr -d '\r' < "$LOG" | grep -a -E '^QEMU-GUEST-EXIT [0-9]+$' | tail -n 1 || true)
if [ -z "$marker" ]; then
  log "no QEMU-GUEST-EXIT marker in the console (QEMU exited $qemu_status after ${elapsed} s; log $LOG)"
  exit 1
fi
guest_status=${marker#QEMU-GUEST-EXIT }
log "guest exited $guest_status after ${elapsed} s (boot + command)"
exit "$guest_status"
