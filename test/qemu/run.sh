#!/usr/bin/env bash
# Runs a command inside a QEMU guest that has a real kernel NSM driver (/dev/nsm over virtio-nsm-pci) and
# vsock loopback (CID 1), by default the guest vitest suites (test/qemu/*.guest.test.ts), and exits with
# the guest command's status (specs/qemu-rig.md step 7).
#
#   run.sh [--timeout SECONDS] [--initrd FILE] [--hostfwd HOST_PORT:GUEST_PORT]... [-- GUEST COMMAND...]
#
# --initrd boots a ready initramfs (for example `make initramfs`'s, whose /init is the agent's init) instead
# of building the test one; the guest command is then ignored. --hostfwd adds a virtio NIC on QEMU's
# user-mode network with `restrict=on` (the guest reaches nothing outside) and forwards
# 127.0.0.1:HOST_PORT on this machine to GUEST_PORT on the guest's 10.0.2.15.
#
# It runs setup.sh (cached) and build-initramfs.sh, boots the guest under `timeout`, streams the serial
# console to stdout and to .cache/qemu-logs/, and exits non-zero if the guest's `QEMU-GUEST-EXIT` marker is
# missing or QEMU ran out of time. It does not run `npm ci`: node_modules and the built addon must exist.
#
# It must not: give QEMU any vhost-vsock or vhost-user device, or a network beyond the restricted user-mode
# NIC of --hostfwd (this machine's /dev/vsock leads out of the machine; vsock is used only inside the
# guest), or open vsock sockets on this machine.
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

log() { printf '[qemu-run] %s\n' "$*"; }
die() { printf '[qemu-run] error: %s\n' "$*" >&2; exit 2; }

timeout_seconds=$DEFAULT_TIMEOUT_SECONDS
guest_command=()
initrd=
nic=(-nic none)
forwards=
while [ $# -gt 0 ]; do
  case $1 in
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
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (usage: run.sh [--timeout SECONDS] [--initrd FILE] [--hostfwd H:G]... [-- GUEST COMMAND...])" ;;
  esac
done
[[ $timeout_seconds =~ ^[1-9][0-9]*$ ]] || die "--timeout expects a positive whole number of seconds, got $timeout_seconds"
[ -z "$initrd" ] || [ -s "$initrd" ] || die "--initrd $initrd is missing or empty"
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

if [ -n "$initrd" ]; then
  INITRD=$initrd
else
  INITRD=$CACHE/initramfs/guest.cpio
  bash "$HERE/build-initramfs.sh" "$INITRD" "${guest_command[@]}"
fi

LOG=$CACHE/qemu-logs/run-$(date -u +%Y%m%dT%H%M%SZ).log
ln -sfn "$(basename "$LOG")" "$CACHE/qemu-logs/latest.log"
log "booting (timeout ${timeout_seconds} s), console log $LOG"

start=$SECONDS
set +e
# stdin from /dev/null: -nographic would otherwise take the caller's terminal for the serial console.
# --foreground keeps QEMU in this script's process group, so whoever stops the group (the full-boot test
# does) stops QEMU too; without it timeout(1) moves QEMU to a group of its own, out of reach.
timeout --foreground --kill-after="$KILL_AFTER_SECONDS" "$timeout_seconds" \
  "$QEMU_BIN" -L /usr/share/seabios -L /usr/share/qemu \
  -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
  -nographic -vga none -no-reboot \
  -kernel "$GUEST_KERNEL" -initrd "$INITRD" -append "console=ttyS0 panic=-1 quiet" \
  "${nic[@]}" -device virtio-nsm-pci < /dev/null 2>&1 | tee "$LOG"
qemu_status=${PIPESTATUS[0]}
set -e
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
