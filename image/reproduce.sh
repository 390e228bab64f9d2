#!/usr/bin/env bash
# Builds the agent bundle, the addon, the two ramdisks and the EIF twice from the same sources, in two directories
# that differ in everything a build should not depend on, and fails unless every output is byte for byte
# the same (image/README.md "Checking it").
#
#   reproduce.sh            the working tree as it is (tracked and untracked files that git does not ignore),
#                           so a change can be checked before it is committed (copied once, at the start)
#   REPRODUCE_SOURCE=HEAD reproduce.sh      the last commit (`git archive HEAD`), what a release is built from
#
# What differs between the two builds: the directory (name, depth, length), the umask (022 / 077) and with
# it every file mode, the sources' mtimes (as copied / 2001-09-09), TZ and LANG. What is the same:
# SOURCE_DATE_EPOCH (the last commit's time), this machine's node, compiler and npm cache, and the rig's
# busybox, kernel modules and kernel (.cache/qemu-rig.env). Each build is `npm ci --prefer-offline` (which
# builds the addon and dist/) and image/build-eif.sh (which runs build-initramfs.sh), under a time limit. Both temporary trees are
# removed at the end (KEEP_REPRODUCE=1 keeps them and prints where).
#
# It must not: change the project tree (it copies from it), touch the rig's cache beyond what setup.sh does,
# or leave processes behind.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/.." && pwd)
SOURCE=${REPRODUCE_SOURCE:-worktree}
# One build is npm ci (about 20 s from a warm npm cache on 2 cores) plus the ramdisks and the EIF (about
# 10 s). These bound a hang: two builds take at most 2 x (120 + 90) s, about 7 minutes.
BUILD_TIMEOUT_SECONDS=${REPRODUCE_BUILD_TIMEOUT:-120}
IMAGE_TIMEOUT_SECONDS=90
# The outputs compared, relative to a build's OUTDIR or tree.
OUTPUTS=(agent/enclave-agent.mjs agent/package.json agent/build/Release/enclave_native.node initramfs.cpio app.cpio enclave.eif enclave.pcrs.json)

log() { printf '[reproduce] %s\n' "$*"; }
die() { printf '[reproduce] error: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (the initramfs build creates device nodes)"
command -v git > /dev/null || die "git is missing"
case $SOURCE in worktree | HEAD) ;; *) die "REPRODUCE_SOURCE must be worktree or HEAD, got $SOURCE" ;; esac

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_ROOT" log -1 --format=%ct)}
export SOURCE_DATE_EPOCH
# node-gyp downloads Node's headers unless it is pointed at local ones (specs/qemu-rig.md "Node and vsock").
if [ -z "${npm_config_nodedir:-}" ]; then
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  [ -f "$node_prefix/include/node/node_api.h" ] || die "no Node headers under $node_prefix/include/node: set npm_config_nodedir"
  export npm_config_nodedir=$node_prefix
fi

# The rig's busybox and modules, resolved once here: the copies have no .cache of their own. setup.sh runs
# only if the cache lacks them (it would also rebuild QEMU after a rig change, which this does not need).
CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
rig_ready() {
  [ -r "$CACHE/qemu-rig.env" ] || return 1
  # shellcheck source=/dev/null
  . "$CACHE/qemu-rig.env"
  [ -x "$GUEST_TOOLS_ROOT/bin/busybox" ] && [ -f "$GUEST_MODULES_DIR/nsm.ko" ]
}
rig_ready || { bash "$REPO_ROOT/test/qemu/setup.sh" > /dev/null && rig_ready; } ||
  die "test/qemu/setup.sh did not provide busybox and the kernel modules (run it alone to see why)"
KERNEL=${KERNEL:-$GUEST_KERNEL}
export GUEST_TOOLS_ROOT GUEST_MODULES_DIR KERNEL

WORK=$(mktemp -d "${TMPDIR:-/tmp}/enclave-agent-reproduce.XXXXXX")
cleanup() {
  if [ "${KEEP_REPRODUCE:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# build NAME DIR UMASK TZ LANG MTIME: one isolated build; its log is $WORK/NAME.log.
build() {
  local name=$1 dir=$2 mask=$3 tz=$4 lang=$5 mtime=$6 start=$SECONDS status=0
  log "build $name: umask $mask, TZ=$tz, LANG=$lang, source mtimes ${mtime:-as copied}, in $dir"
  (
    umask "$mask"
    mkdir -p "$dir"
    tar -x --no-same-permissions -f "$WORK/sources.tar" -C "$dir"
    if [ -n "$mtime" ]; then find "$dir" -exec touch -h -d "$mtime" {} +; fi
    cd "$dir"
    export TZ=$tz LANG=$lang LC_ALL=$lang
    timeout --kill-after=10 "$BUILD_TIMEOUT_SECONDS" npm ci --prefer-offline --no-audit --no-fund
    timeout --kill-after=10 "$IMAGE_TIMEOUT_SECONDS" bash image/build-eif.sh "$dir/dist/image"
  ) > "$WORK/$name.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$WORK/$name.log" >&2
    die "build $name failed (status $status$([ "$status" -eq 124 ] && echo ": out of time"); KEEP_REPRODUCE=1 keeps the trees and logs)"
  fi
  log "build $name: done in $((SECONDS - start)) s"
}

start=$SECONDS
log "sources: $SOURCE of $REPO_ROOT; SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
# One snapshot for both builds: the working tree may change while they run.
SOURCE=$SOURCE bash "$HERE/copy-sources.sh" "$WORK/snapshot"
tar -C "$WORK/snapshot" -cf "$WORK/sources.tar" .
rm -rf "$WORK/snapshot"
A=$WORK/a
B=$WORK/second-build/with-a-longer/and-deeper/path
build A "$A" 022 UTC C.UTF-8 ''
build B "$B" 077 Pacific/Chatham POSIX 2001-09-09T01:46:40Z

# Also the browser bundles npm ci built: they ship to users (steve/browser/build.mjs).
compared=()
for output in "${OUTPUTS[@]}"; do compared+=("dist/image/$output"); done
# The bundle's chunks (build-bundle.mjs splits it): their names are content hashes, so a differing chunk
# shows up as a file missing from one tree.
for file in "$A"/dist/image/agent/chunk-*.mjs "$B"/dist/image/agent/chunk-*.mjs; do
  [ -e "$file" ] || continue
  name="dist/image/agent/$(basename "$file")"
  [[ " ${compared[*]} " == *" $name "* ]] || compared+=("$name")
done
for file in "$A"/dist/browser/*.js; do compared+=("dist/browser/$(basename "$file")"); done

differences=0
printf '\n  %-4s  %-64s  %s\n' '' 'sha256' 'output'
for output in "${compared[@]}"; do
  if [ ! -f "$A/$output" ] || [ ! -f "$B/$output" ]; then
    printf '  %-4s  %-64s  %s\n' MISS '' "$output"
    differences=$((differences + 1))
    continue
  fi
  hash_a=$(sha256sum < "$A/$output" | cut -d' ' -f1)
  hash_b=$(sha256sum < "$B/$output" | cut -d' ' -f1)
  if [ "$hash_a" = "$hash_b" ]; then
    printf '  %-4s  %s  %s (%s bytes)\n' same "$hash_a" "$output" "$(stat -c %s "$A/$output")"
  else
    printf '  %-4s  %s  %s (A)\n  %-4s  %s  %s (B)\n' DIFF "$hash_a" "$output" '' "$hash_b" "$output"
    differences=$((differences + 1))
  fi
done
echo

if [ "$differences" -eq 0 ]; then
  log "reproducible: ${#compared[@]} outputs identical across both builds, in $((SECONDS - start)) s"
  exit 0
fi

# Hints: the first differing bytes of each file, and for the archive which members differ.
for output in "${compared[@]}"; do
  if [ ! -f "$A/$output" ] || [ ! -f "$B/$output" ] || cmp -s "$A/$output" "$B/$output"; then continue; fi
  log "$output: $(cmp -l "$A/$output" "$B/$output" 2> /dev/null | wc -l) bytes differ; first ones (offset, octal A, octal B):"
  cmp -l "$A/$output" "$B/$output" 2> /dev/null | head -n 5 | sed 's/^/    /' || true
done
if ! cmp -s "$A/dist/image/initramfs.cpio" "$B/dist/image/initramfs.cpio"; then
  log "initramfs members that differ (image/cpio-list.mjs: every header field and the data's sha256; < A, > B):"
  diff <(node "$HERE/cpio-list.mjs" "$A/dist/image/initramfs.cpio") <(node "$HERE/cpio-list.mjs" "$B/dist/image/initramfs.cpio") |
    grep '^[<>]' | LC_ALL=C sort -s -k2,2 | head -n 20 | cut -c1-220 | sed 's/^/    /' || true
fi
log "NOT reproducible: $differences of ${#compared[@]} outputs differ (KEEP_REPRODUCE=1 keeps both trees)"
exit 1
