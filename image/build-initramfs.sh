#!/usr/bin/env bash
# Builds the enclave's initramfs, a newc cpio whose bytes depend only on its inputs (image/README.md):
# busybox, node and the libraries it and the addon link, the vsock and nsm kernel modules, the agent bundle
# with the addon at /opt/enclave-agent, the init configuration, and /init (image/init.sh), which execs
# `enclave-agent init --config /etc/enclave-agent/init.json`.
#
#   build-initramfs.sh [OUTDIR]       (default dist/image; run as root: it creates device nodes)
#
# Writes OUTDIR/agent/ (what /opt/enclave-agent holds), OUTDIR/initramfs.cpio, OUTDIR/SHA256SUMS and keeps
# the staged tree in OUTDIR/rootfs/ to inspect (KEEP_STAGE=0 removes it). Inputs from the environment:
#   SOURCE_DATE_EPOCH   every mtime in the archive (default: the last commit's time, `git log -1 --format=%ct`)
#   INIT_CONFIG         copied to /etc/enclave-agent/init.json (default image/init.example.json)
#   EXTRA_DIR           a tree copied over the root last (tests: a demo app, a mock PKI)
#   GUEST_TOOLS_ROOT, GUEST_MODULES_DIR   busybox (bin/busybox under the first) and the .ko files; when unset,
#                       the rig's $ENCLAVE_AGENT_CACHE/qemu-rig.env (test/qemu/setup.sh runs if it is missing)
#   NODE_BIN            the node executable to ship (default: the `node` on PATH)
#   APP_RAMDISK=1       split the image in two (image/build-eif.sh): initramfs.cpio keeps the platform (busybox,
#                       node, modules, the agent, /init), and OUTDIR/app.cpio holds the deployment (the init
#                       configuration and EXTRA_DIR), so that an EIF's PCR1 names the platform, PCR2 the app
#
# It must not: download anything itself, run `npm ci` (node_modules and the built addon must exist: `make
# build`), change the project tree outside OUTDIR, or let the umask, the time or the paths of this build
# reach the archive.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:-$REPO_ROOT/dist/image}
ADDON=$REPO_ROOT/build/Release/enclave_native.node
INIT_CONFIG=${INIT_CONFIG:-$HERE/init.example.json}
EXTRA_DIR=${EXTRA_DIR:-}
# Load order (virtio_mmio for the devices of QEMU's nitro-enclave machine, then vsock with its virtio
# transport; nsm has no dependencies); vsock_loopback for the rig's other machine, as in
# test/qemu/build-initramfs.sh. The init configuration says which of them to load.
GUEST_MODULES=(virtio_mmio vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport vsock_loopback nsm)
# Where the modules go in the guest; init/'s configuration names them by path.
GUEST_MODULES_PATH=lib/modules/enclave-agent
AGENT_PATH=opt/enclave-agent

log() { printf '[image] %s\n' "$*"; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mknod for /dev/console and /dev/null)"
command -v cpio > /dev/null || die "cpio is missing (apt-get install cpio)"
[ "$(cpio --help | grep -c -- '--reproducible')" != 0 ] || die "this cpio has no --reproducible (GNU cpio >= 2.12 needed)"
[ -f "$ADDON" ] || die "$ADDON is missing: run \`make build\` first (npm ci builds the addon)"
[ -d "$REPO_ROOT/node_modules/esbuild" ] || die "node_modules/esbuild is missing: run \`make build\` first"
[ -f "$INIT_CONFIG" ] || die "INIT_CONFIG $INIT_CONFIG does not exist"
[ -z "$EXTRA_DIR" ] || [ -d "$EXTRA_DIR" ] || die "EXTRA_DIR $EXTRA_DIR is not a directory"
node -e 'try { JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")) } catch (e) { console.error(e.message); process.exit(1) }' \
  "$INIT_CONFIG" || die "INIT_CONFIG $INIT_CONFIG is not JSON"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$REPO_ROOT" log -1 --format=%ct 2> /dev/null) ||
    die "SOURCE_DATE_EPOCH is unset and $REPO_ROOT has no git history to take it from"
fi
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be whole seconds, got $SOURCE_DATE_EPOCH"
export SOURCE_DATE_EPOCH

# rig_ready: the rig's env file names a busybox and the nsm module that exist.
rig_ready() {
  [ -r "$CACHE/qemu-rig.env" ] || return 1
  # shellcheck source=/dev/null
  . "$CACHE/qemu-rig.env"
  [ -x "$GUEST_TOOLS_ROOT/bin/busybox" ] && [ -f "$GUEST_MODULES_DIR/nsm.ko" ]
}
if [ -z "${GUEST_TOOLS_ROOT:-}" ] || [ -z "${GUEST_MODULES_DIR:-}" ]; then
  CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
  # setup.sh only when the cache lacks them: it would also (re)build QEMU, which the image does not need.
  rig_ready || { bash "$REPO_ROOT/test/qemu/setup.sh" | sed 's/^/  /'; rig_ready; } ||
    die "test/qemu/setup.sh did not provide busybox and the kernel modules"
fi
[ -x "$GUEST_TOOLS_ROOT/bin/busybox" ] || die "no busybox at $GUEST_TOOLS_ROOT/bin/busybox"
NODE_BIN=$(readlink -f "${NODE_BIN:-$(command -v node)}")
[ -x "$NODE_BIN" ] || die "no node executable at $NODE_BIN"

start=$SECONDS
STAGE=$OUT/rootfs
AGENT_OUT=$OUT/agent
APP_STAGE=$OUT/app-rootfs
rm -rf "$STAGE" "$APP_STAGE" "$AGENT_OUT" "$OUT/initramfs.cpio" "$OUT/app.cpio" "$OUT/SHA256SUMS"
mkdir -p "$OUT"

# The agent tree: the bundle, the package.json the addon loader looks for, the addon at build/Release/.
node "$HERE/build-bundle.mjs" "$AGENT_OUT" | sed 's/^/  /'
mkdir -p "$AGENT_OUT/build/Release"
cp "$ADDON" "$AGENT_OUT/build/Release/enclave_native.node"

mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc/enclave-agent,"$GUEST_MODULES_PATH",opt}

# busybox and its applet links (absolute targets, so they work from any directory).
cp "$GUEST_TOOLS_ROOT/bin/busybox" "$STAGE/bin/busybox"
while read -r applet; do
  mkdir -p "$STAGE/$(dirname "$applet")"
  [ -e "$STAGE/$applet" ] || [ -L "$STAGE/$applet" ] || ln -s /bin/busybox "$STAGE/$applet"
done < <("$STAGE/bin/busybox" --list-full | LC_ALL=C sort)

cp "$NODE_BIN" "$STAGE/usr/bin/node"
cp -R "$AGENT_OUT" "$STAGE/$AGENT_PATH"

# copy_libraries ELF...: every library `ldd` resolves (and the loader), at the same path in the guest.
copy_libraries() {
  local elf lib
  for elf in "$@"; do
    if [ "$(ldd "$elf" | grep -c 'not found')" != 0 ]; then die "ldd cannot resolve every library of $elf"; fi
    while read -r lib; do
      mkdir -p "$STAGE$(dirname "$lib")"
      [ -e "$STAGE$lib" ] || cp -L "$lib" "$STAGE$lib"
    done < <(ldd "$elf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | LC_ALL=C sort -u)
  done
}
copy_libraries "$STAGE/usr/bin/node" "$STAGE/$AGENT_PATH/build/Release/enclave_native.node"

for module in "${GUEST_MODULES[@]}"; do
  [ -f "$GUEST_MODULES_DIR/$module.ko" ] || die "no $module.ko in $GUEST_MODULES_DIR"
  cp "$GUEST_MODULES_DIR/$module.ko" "$STAGE/$GUEST_MODULES_PATH/$module.ko"
done

# The deployment: in the platform's tree, or in a tree of its own for the second ramdisk.
DEPLOY=$STAGE
if [ "${APP_RAMDISK:-0}" = 1 ]; then
  DEPLOY=$APP_STAGE
  mkdir -p "$DEPLOY/etc/enclave-agent"
fi
cp "$INIT_CONFIG" "$DEPLOY/etc/enclave-agent/init.json"
# Just enough /etc for glibc's resolver (`localhost`) and os.userInfo().
printf '127.0.0.1 localhost\n::1 localhost\n' > "$STAGE/etc/hosts"
printf 'hosts: files\n' > "$STAGE/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$STAGE/etc/passwd"
printf 'root:x:0:\n' > "$STAGE/etc/group"
cp "$HERE/init.sh" "$STAGE/init"
chmod 755 "$STAGE/init"

if [ -n "$EXTRA_DIR" ]; then cp -R "$EXTRA_DIR/." "$DEPLOY/"; fi

# Normalise what the umask and the copies decided: directories 0755, files 0755 when their owner may run
# them and 0644 otherwise (git keeps only that bit too), /tmp 1777. Symlinks have no mode of their own.
normalise() {
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f -perm -u+x -exec chmod 0755 {} +
  find "$1" -type f ! -perm -u+x -exec chmod 0644 {} +
}
normalise "$STAGE"
[ "$DEPLOY" = "$STAGE" ] || normalise "$DEPLOY"
chmod 1777 "$STAGE/tmp"
# The kernel opens /dev/console for /init before anything is mounted.
rm -f "$STAGE/dev/console" "$STAGE/dev/null"
mknod -m 600 "$STAGE/dev/console" c 5 1
mknod -m 666 "$STAGE/dev/null" c 1 3
# archive TREE FILE: every mtime, links included, set last (adding entries changed their directories'
# mtimes); names sorted (a parent sorts before its children), owner 0:0, and --reproducible: inode numbers
# counted from the archive, not taken from the file system, and no device numbers of this disk.
archive() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$1" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z |
    cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) > "$2.tmp"
  mv "$2.tmp" "$2"
}
archive "$STAGE" "$OUT/initramfs.cpio"
# The bundle is code-split (build-bundle.mjs): enclave-agent.mjs and its chunk-*.mjs files, in sorted order.
mapfile -t BUNDLE_FILES < <(cd "$OUT" && LC_ALL=C ls agent/*.mjs)
OUTPUT_FILES=("${BUNDLE_FILES[@]}" agent/package.json agent/build/Release/enclave_native.node initramfs.cpio)
if [ "$DEPLOY" != "$STAGE" ]; then
  archive "$DEPLOY" "$OUT/app.cpio"
  OUTPUT_FILES+=(app.cpio)
fi

(cd "$OUT" && sha256sum "${OUTPUT_FILES[@]}") > "$OUT/SHA256SUMS"
sed 's/^/  /' "$OUT/SHA256SUMS"
if [ "${KEEP_STAGE:-1}" != 1 ]; then rm -rf "$STAGE" "$APP_STAGE"; fi
log "$OUT/initramfs.cpio: $(du -h "$OUT/initramfs.cpio" | cut -f1), $(cpio -t --quiet < "$OUT/initramfs.cpio" | wc -l) entries, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, in $((SECONDS - start)) s"
