#!/usr/bin/env bash
# Builds the QEMU guest's initramfs (a newc cpio, specs/qemu-rig.md step 6): busybox-static, /usr/bin/node,
# socat, every shared library they and the project's native addons need, the vsock and nsm kernel modules,
# the project tree (sources, node_modules, the built addon) under /project, and an /init that loads the
# modules, checks /dev/nsm, runs one command in /project, prints `QEMU-GUEST-EXIT <status>` and powers off.
#
#   build-initramfs.sh OUT.cpio [COMMAND...]
#
# COMMAND is an argv (each word quoted for the guest's shell, so `-- sh -c 'a && b'` for shell syntax);
# the default runs the guest vitest suites. The tree is staged in .cache/initramfs-stage/<name>/ and kept
# there to inspect; the root vitest.config.ts must exclude `.cache/**`, or it collects the staged copies of
# every *.test.ts. KEEP_INITRAMFS_STAGE=0 removes the stage once packed.
#
# It must not: download anything (setup.sh did that), change the project tree (it copies from it), or run
# anything that opens a vsock socket on this machine.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# ENCLAVE_AGENT_CACHE moves the cache out of the work tree (CI keeps it across fresh clones).
CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
RIG_ENV=$CACHE/qemu-rig.env
# Load order matters: the virtio transport and loopback need vsock; nsm has no dependencies.
GUEST_MODULES=(vsock vmw_vsock_virtio_transport_common vsock_loopback nsm)
DEFAULT_COMMAND=(node node_modules/vitest/vitest.mjs run --config test/qemu/vitest.guest.config.ts)
# Every top-level source folder goes to the guest (agent, cbor, nsm, steve, init, test, vsock, ...: the
# tree grows; dot folders never), except these: copied separately (node_modules, build) or build output.
EXCLUDED_DIRS=(node_modules build dist test-output)
PROJECT_FILES=(package.json vitest.config.ts)
ADDON=build/Release/enclave_native.node

log() { printf '[initramfs] %s\n' "$*"; }
die() { printf '[initramfs] error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OUT.cpio [COMMAND...]"
OUT=$1
shift
if [ $# -gt 0 ]; then COMMAND=("$@"); else COMMAND=("${DEFAULT_COMMAND[@]}"); fi

[ -r "$RIG_ENV" ] || die "$RIG_ENV is missing: run test/qemu/setup.sh first"
# shellcheck source=/dev/null
. "$RIG_ENV"
[ -f "$REPO_ROOT/$ADDON" ] || die "$REPO_ROOT/$ADDON is missing: run \`npm ci\` in $REPO_ROOT first"
[ -d "$REPO_ROOT/node_modules/vitest" ] || die "$REPO_ROOT/node_modules is missing vitest: run \`npm ci\` first"
command -v cpio > /dev/null || die "cpio is missing: run test/qemu/setup.sh"

start=$SECONDS
OUT_NAME=$(basename "$OUT")
STAGE=$CACHE/initramfs-stage/${OUT_NAME%.cpio}
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,lib64,lib/x86_64-linux-gnu,usr/lib/x86_64-linux-gnu} \
  "$STAGE"/{dev,proc,sys,tmp,run,root,etc,project,lib/modules/rig}

# busybox and its applet links (absolute, so the links work from any directory).
cp "$GUEST_TOOLS_ROOT/bin/busybox" "$STAGE/bin/busybox"
while read -r applet; do
  [ -e "$STAGE/$applet" ] || [ -L "$STAGE/$applet" ] || ln -s /bin/busybox "$STAGE/$applet"
done < <("$STAGE/bin/busybox" --list-full)

cp -L /usr/bin/node "$STAGE/usr/bin/node"
cp "$GUEST_TOOLS_ROOT/usr/bin/socat" "$STAGE/usr/bin/socat"

# copy_libraries ELF...: copies every library `ldd` resolves (and the loader) to the same path in the
# guest. Libraries unpacked by setup.sh (socat's libwrap) resolve under GUEST_TOOLS_ROOT first.
copy_libraries() {
  local tools_libs=$GUEST_TOOLS_ROOT/usr/lib/x86_64-linux-gnu:$GUEST_TOOLS_ROOT/lib/x86_64-linux-gnu
  local elf lib guest
  for elf in "$@"; do
    if LD_LIBRARY_PATH=$tools_libs ldd "$elf" | grep -q 'not found'; then
      die "ldd cannot resolve every library of $elf"
    fi
    while read -r lib; do
      guest=${lib#"$GUEST_TOOLS_ROOT"}
      mkdir -p "$STAGE$(dirname "$guest")"
      [ -e "$STAGE$guest" ] || cp -L "$lib" "$STAGE$guest"
    done < <(LD_LIBRARY_PATH=$tools_libs ldd "$elf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  done
}

# The project, as the tests see it at /project.
for path in "$REPO_ROOT"/*/; do
  dir=$(basename "$path")
  if [[ " ${EXCLUDED_DIRS[*]} " != *" $dir "* ]]; then cp -a "$REPO_ROOT/$dir" "$STAGE/project/"; fi
done
for file in "${PROJECT_FILES[@]}"; do
  if [ -f "$REPO_ROOT/$file" ]; then cp -a "$REPO_ROOT/$file" "$STAGE/project/"; fi
done
cp -a "$REPO_ROOT"/tsconfig*.json "$STAGE/project/"
cp -a "$REPO_ROOT/node_modules" "$STAGE/project/"
# Only the built addons from build/, not the object files.
mkdir -p "$STAGE/project/build/Release"
cp -a "$REPO_ROOT"/build/Release/*.node "$STAGE/project/build/Release/"

# Native code the guest will load: node, socat, the addon, and native packages (rolldown, ...).
mapfile -t native_addons < <(find "$STAGE/project" -name '*.node' -type f)
copy_libraries "$STAGE/usr/bin/node" "$STAGE/usr/bin/socat" "${native_addons[@]}"

for module in "${GUEST_MODULES[@]}"; do
  cp "$GUEST_MODULES_DIR/$module.ko" "$STAGE/lib/modules/rig/$module.ko"
done

# Just enough /etc for glibc's resolver (tests bind `localhost`) and for os.userInfo().
printf '127.0.0.1 localhost\n::1 localhost\n' > "$STAGE/etc/hosts"
printf 'hosts: files\n' > "$STAGE/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$STAGE/etc/passwd"
printf 'root:x:0:\n' > "$STAGE/etc/group"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 600 "$STAGE/dev/console" c 5 1
mknod -m 666 "$STAGE/dev/null" c 1 3

# The command, each word single-quoted for the guest's sh.
quoted_command=
for word in "${COMMAND[@]}"; do
  quoted_command+=" '${word//\'/\'\\\'\'}'"
done

cat > "$STAGE/init" <<EOF
#!/bin/sh
# The guest's PID 1, written by test/qemu/build-initramfs.sh: mounts the kernel filesystems, loads the
# vsock and nsm modules, runs the test command in /project and powers off. The marker line below is how
# run.sh learns the command's exit status; any failure before the command still prints it (non-zero).
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TERM=dumb NO_COLOR=1
# Tells guest tests they run inside this rig, where /dev/nsm and vsock loopback must exist.
export ENCLAVE_QEMU_GUEST=1

finish() {
  echo "QEMU-GUEST-EXIT \$1"
  sync
  poweroff -f
  sleep 5
}
fail() {
  echo "guest init: \$*"
  finish 125
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
ip link set lo up || fail "cannot bring lo up"

for module in ${GUEST_MODULES[*]}; do
  insmod /lib/modules/rig/\$module.ko || fail "insmod \$module failed"
done
# The nsm driver binds to the virtio-nsm-pci device as it loads; give devtmpfs a moment for the node.
tries=0
while [ ! -c /dev/nsm ]; do
  tries=\$((tries + 1))
  [ \$tries -le 50 ] || fail "/dev/nsm did not appear (is -device virtio-nsm-pci on the QEMU command line?)"
  sleep 0.1
done
echo "guest init: modules loaded, /dev/nsm present after \$(cut -d' ' -f1 /proc/uptime) s of uptime, running:$quoted_command"

cd /project || fail "no /project"
# Through a pipe so tools see a plain stream, not the serial console's tty (no redraws in the log).
{ $quoted_command < /dev/null; echo \$? > /tmp/.guest-status; } 2>&1 | cat
finish "\$(cat /tmp/.guest-status 2>/dev/null || echo 126)"
EOF
chmod 755 "$STAGE/init"

mkdir -p "$(dirname "$OUT")"
(cd "$STAGE" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
if [ "${KEEP_INITRAMFS_STAGE:-1}" = 1 ]; then
  log "$OUT: $(du -h "$OUT" | cut -f1) in $((SECONDS - start)) s (staging tree kept: $STAGE)"
else
  rm -rf "$STAGE"
  log "$OUT: $(du -h "$OUT" | cut -f1) in $((SECONDS - start)) s"
fi
