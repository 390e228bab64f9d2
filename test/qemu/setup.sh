#!/usr/bin/env bash
# Prepares the QEMU test rig (specs/qemu-rig.md "Recipe that worked") on a Debian 12 machine, as root:
# installs the build and firmware packages from Debian, builds qemu-system-x86_64 with virtio-nsm from
# Debian's bookworm-backports source, and fetches the guest's pieces (a 6.12 cloud kernel with its vsock,
# virtio-mmio and nsm modules, busybox-static, socat) and, for QEMU's nitro-enclave machine, Debian sid's
# vhost-device-vsock (unpacked, not installed). Everything lands under the repo's git-ignored .cache/ and
# each step is skipped when its output is already there, so a second run does nothing.
#
# It must not: edit the system's apt sources (backports and sid come in through private apt
# configurations under .cache/apt and .cache/apt-sid; sid's is used only to download one package, never
# to install), install anything that is not a Debian package, load kernel modules, or touch vsock on this
# machine (its /dev/vsock leads out of the machine; vsock is only ever used inside the guest; the
# vhost-device-vsock binary is only run here with --help).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# ENCLAVE_AGENT_CACHE moves the cache out of the work tree (CI keeps it across fresh clones).
CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
APT_DIR=$CACHE/apt
SYSTEM_SOURCES=/etc/apt/sources.list.d/debian.sources
BACKPORTS=bookworm-backports

# Host packages. meson comes from backports: QEMU 10 needs meson >= 1.5 and bookworm has 1.0.
HOST_PACKAGES=(
  build-essential pkgconf ninja-build python3 python3-venv python3-pycotap flex bison
  libcbor-dev libgnutls28-dev libglib2.0-dev libpixman-1-dev libfdt-dev libslirp-dev
  seabios qemu-system-data
  cpio xz-utils
)
BACKPORTS_PACKAGES=(meson)
# Guest kernel modules, in load order (vsock first; nsm has no dependencies; virtio_net needs
# net_failover, which needs failover). The NIC is only for run.sh --hostfwd (user-mode networking).
# virtio_mmio and vmw_vsock_virtio_transport are for QEMU's nitro-enclave machine, whose devices are
# virtio-mmio and whose vsock is a virtio device (specs/nitro-enclave.md §3: virtio_mmio, vsock,
# vmw_vsock_virtio_transport_common, vmw_vsock_virtio_transport, nsm).
GUEST_MODULES=(virtio_mmio vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport vsock_loopback nsm
  failover net_failover virtio_net)

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# step NAME DONE_TEST FUNCTION: runs FUNCTION unless DONE_TEST succeeds, and says how long it took.
step() {
  local name=$1 done_test=$2 fn=$3 start
  if eval "$done_test"; then
    log "$name: cached"
    return
  fi
  log "$name: running"
  start=$SECONDS
  "$fn"
  log "$name: done in $((SECONDS - start)) s"
}

# retry CMD...: a download step gets one more try after a failure (mirrors drop connections).
retry() {
  if "$@"; then return 0; fi
  log "retrying once: $*"
  sleep 5
  "$@"
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs Debian packages)"

# One setup at a time: two runs of the rig starting together would otherwise build into the same tree.
mkdir -p "$CACHE"
exec 8> "$CACHE/qemu-setup.lock"
if ! flock -n 8; then
  log "waiting for another setup to finish"
  flock 8
fi
[ -r "$SYSTEM_SOURCES" ] || die "$SYSTEM_SOURCES is missing: this script expects Debian 12's deb822 sources"

# The private apt configuration: the system's sources plus bookworm-backports (deb and deb-src) on the
# same mirror, with its own lists and caches so the system's apt state stays as it was.
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
  -o "Dir::Etc::sourceparts=$APT_DIR/sources.list.d"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::Cache::pkgcache=$APT_DIR/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$APT_DIR/srcpkgcache.bin"
)
private_apt_get() { DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" "$@"; }
private_apt_cache() { apt-cache "${APT_OPTS[@]}" "$@"; }

# The URIs of the stanza that serves the plain `bookworm` suite.
mirror_uris() {
  awk '
    /^[[:space:]]*$/ { if (ok && uris != "" && !found) { print uris; found = 1 } ok = 0; uris = ""; next }
    /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") ok = 1 }
    END { if (ok && uris != "" && !found) print uris }
  ' "$SYSTEM_SOURCES"
}

write_apt_config() {
  local uris
  uris=$(mirror_uris)
  [ -n "$uris" ] || die "no URIs for suite bookworm in $SYSTEM_SOURCES"
  mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial"
  : > "$APT_DIR/sources.list"
  cp "$SYSTEM_SOURCES" "$APT_DIR/sources.list.d/debian.sources"
  cat > "$APT_DIR/sources.list.d/backports.sources" <<EOF
Types: deb deb-src
URIs: $uris
Suites: $BACKPORTS
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

apt_update() {
  write_apt_config
  retry private_apt_get update
}

packages_installed() {
  local p
  for p in "${HOST_PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || return 1
  done
  # meson from bookworm would be too old for QEMU 10.
  dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson)" ge 1.5
}

install_packages() {
  local bp=() p
  for p in "${BACKPORTS_PACKAGES[@]}"; do bp+=("$p/$BACKPORTS"); done
  retry private_apt_get install -y --no-install-recommends "${HOST_PACKAGES[@]}" "${bp[@]}"
}

step "private apt lists (+$BACKPORTS)" '[ -n "$(ls "$APT_DIR/lists/" 2>/dev/null | grep -- "_${BACKPORTS}_main_source_Sources")" ]' apt_update
step "host packages" packages_installed install_packages

# --- QEMU with virtio-nsm ------------------------------------------------------------------------------

QEMU_VERSION=$(private_apt_cache showsrc qemu | awk '/^Version:/ { print $2 }' | sort -V | tail -n 1)
[ -n "$QEMU_VERSION" ] || die "no qemu source package in $BACKPORTS"
QEMU_UPSTREAM=${QEMU_VERSION%-*}        # 1:10.0.2+ds-1~bpo12+1 -> 1:10.0.2+ds
QEMU_UPSTREAM=${QEMU_UPSTREAM#*:}      # -> 10.0.2+ds
# The build's features are part of the cache key, so a cache built with fewer is rebuilt, not reused.
QEMU_FEATURES=nsm-slirp
QEMU_CACHE=$CACHE/qemu/$QEMU_UPSTREAM-$QEMU_FEATURES
QEMU_BIN=$QEMU_CACHE/qemu-system-x86_64
QEMU_SRC_DIR=$CACHE/qemu-src/$QEMU_UPSTREAM
QEMU_TARBALL=$QEMU_SRC_DIR/qemu_$QEMU_UPSTREAM.orig.tar.xz

# The .dsc and .debian.tar.xz can 404 on the mirror while the orig tarball downloads (specs/qemu-rig.md
# step 3): the tarball is all the build needs, so apt-get's failure counts only if the tarball is missing.
download_qemu_tarball() {
  (cd "$QEMU_SRC_DIR" && private_apt_get -o APT::Sandbox::User=root source --download-only -t "$BACKPORTS" qemu) || true
  [ -s "$QEMU_TARBALL" ]
}

fetch_qemu_source() {
  mkdir -p "$QEMU_SRC_DIR"
  retry download_qemu_tarball || die "apt-get source did not produce $QEMU_TARBALL"
}

build_qemu() {
  local tree=$QEMU_SRC_DIR/tree
  rm -rf "$tree"
  mkdir -p "$tree"
  tar -xJf "$QEMU_TARBALL" -C "$tree" --strip-components=1
  # The +ds tarball drops the edk2 firmware blobs (pc-bios/*.fd.bz2) that meson.build unpacks whenever
  # bzip2 is found; the rig loads firmware from seabios/qemu-system-data instead, so never unpack them.
  sed -i 's/^\([[:space:]]*unpack_edk2_blobs = \).*$/\1false/' "$tree/meson.build"
  if grep -E '^[[:space:]]*unpack_edk2_blobs = ' "$tree/meson.build" | grep -vq '= false$'; then
    die "could not disable unpack_edk2_blobs in meson.build"
  fi
  mkdir -p "$tree/build"
  # In QEMU 10.0 VIRTIO_NSM has no `default y`: only the nitro-enclave machine selects it, and that machine
  # depends on VHOST_USER (hw/i386/Kconfig), which --without-default-features turns off. Hence
  # --enable-vhost-user; it only compiles the vhost-user code, the rig never passes a vhost device.
  # --enable-slirp: user-mode networking, for run.sh --hostfwd (a loopback port forward into the guest;
  # no host network is reachable from the guest, `restrict=on`).
  (
    cd "$tree/build"
    ../configure --python=/usr/bin/python3 --target-list=x86_64-softmmu --without-default-features \
      --enable-libcbor --enable-gnutls --enable-tcg --enable-fdt=system --enable-vhost-user --enable-slirp \
      --disable-docs --disable-werror --disable-install-blobs
    ninja qemu-system-x86_64
  )
  "$tree/build/qemu-system-x86_64" -device help 2>/dev/null | grep -q '"virtio-nsm-pci"' ||
    die "the built QEMU does not list virtio-nsm-pci in -device help (libcbor missing?)"
  "$tree/build/qemu-system-x86_64" -netdev help 2>/dev/null | grep -qx 'user' ||
    die "the built QEMU has no user-mode networking in -netdev help (libslirp-dev missing?)"
  mkdir -p "$QEMU_CACHE"
  cp "$tree/build/qemu-system-x86_64" "$QEMU_BIN.tmp"
  mv "$QEMU_BIN.tmp" "$QEMU_BIN"
  rm -rf "$tree"
}

step "qemu $QEMU_UPSTREAM source" '[ -x "$QEMU_BIN" ] || [ -s "$QEMU_TARBALL" ]' fetch_qemu_source
step "qemu $QEMU_UPSTREAM build (virtio-nsm)" '[ -x "$QEMU_BIN" ]' build_qemu

# --- Guest kernel and tools ------------------------------------------------------------------------------

# The newest linux-image-6.12.*-cloud-amd64 in backports itself (the signed one; the regex skips -unsigned
# and -dbg). Read from backports' own list: bookworm-security carries 6.12 builds too, under the same names.
read -r KERNEL_PACKAGE KERNEL_VERSION < <(
  /usr/lib/apt/apt-helper cat-file "$APT_DIR/lists/"*"_dists_${BACKPORTS}_main_binary-amd64_Packages"* |
    awk '/^Package: / { p = ($2 ~ /^linux-image-6\.12\.[^ ]*-cloud-amd64$/) ? $2 : "" }
         /^Version: / && p != "" { print p, $2; p = "" }' |
    sort -V | tail -n 1
) || true
[ -n "${KERNEL_PACKAGE:-}" ] || die "no linux-image-6.12.*-cloud-amd64 in $BACKPORTS"
KERNEL_CACHE=$CACHE/guest-kernel/$KERNEL_VERSION

# download_extract DIR PACKAGE[/SUITE]: `apt-get download` PACKAGE into DIR and unpack it into DIR/root.
download_extract() {
  local dir=$1 package=$2
  mkdir -p "$dir/root"
  (cd "$dir" && retry private_apt_get -o APT::Sandbox::User=root download "$package")
  dpkg -x "$dir/${package%/*}_"*.deb "$dir/root"
}

fetch_kernel() {
  local tmp=$KERNEL_CACHE.tmp module path
  rm -rf "$tmp"
  download_extract "$tmp" "$KERNEL_PACKAGE/$BACKPORTS"
  path=$(find "$tmp/root" -name 'vmlinuz-*' -type f | head -n 1)
  [ -n "$path" ] || die "no vmlinuz in $KERNEL_PACKAGE"
  cp "$path" "$tmp/vmlinuz"
  mkdir -p "$tmp/modules"
  for module in "${GUEST_MODULES[@]}"; do
    path=$(find "$tmp/root" -name "$module.ko*" -type f | head -n 1)
    [ -n "$path" ] || die "no $module module in $KERNEL_PACKAGE"
    case $path in
      *.ko.xz) xz -dc "$path" > "$tmp/modules/$module.ko" ;;
      *.ko) cp "$path" "$tmp/modules/$module.ko" ;;
      *) die "unexpected module file $path" ;;
    esac
    log "module $module <- ${path#"$tmp/root"}"
  done
  rm -rf "$tmp/root" "$tmp"/*.deb
  if [ -d "$KERNEL_CACHE" ]; then
    # A cache from a run that kept fewer modules: another run (CI) may be reading it right now, so the
    # files are renamed into place one by one (atomic, same content for what was there) and the directory
    # stays.
    local file
    mkdir -p "$KERNEL_CACHE/modules"
    for file in "$tmp/vmlinuz" "$tmp/modules/"*.ko; do mv -f "$file" "$KERNEL_CACHE/${file#"$tmp/"}"; done
    rm -rf "$tmp"
  else
    mv "$tmp" "$KERNEL_CACHE"
  fi
}

kernel_cached() {
  local module
  [ -s "$KERNEL_CACHE/vmlinuz" ] || return 1
  for module in "${GUEST_MODULES[@]}"; do [ -s "$KERNEL_CACHE/modules/$module.ko" ] || return 1; done
}
step "guest kernel $KERNEL_PACKAGE $KERNEL_VERSION" kernel_cached fetch_kernel

GUEST_TOOLS=$CACHE/guest-tools
# Guest tools are unpacked (not installed) so the host stays as it was; socat's libraries are resolved
# against this tree first, then the host's (build-initramfs.sh).
fetch_guest_tools() {
  local tmp=$GUEST_TOOLS.tmp package
  rm -rf "$tmp"
  for package in busybox-static socat; do
    download_extract "$tmp" "$package"
  done
  # socat links libwrap0, which a plain Debian 12 host may not have.
  if ! ldconfig -p | grep -q 'libwrap\.so\.0'; then download_extract "$tmp" libwrap0; fi
  [ -x "$tmp/root/bin/busybox" ] || die "busybox-static did not unpack to bin/busybox"
  [ -x "$tmp/root/usr/bin/socat" ] || die "socat did not unpack to usr/bin/socat"
  rm -f "$tmp"/*.deb
  rm -rf "$GUEST_TOOLS"
  mv "$tmp" "$GUEST_TOOLS"
}

step "guest tools (busybox-static, socat)" '[ -x "$GUEST_TOOLS/root/bin/busybox" ] && [ -x "$GUEST_TOOLS/root/usr/bin/socat" ]' fetch_guest_tools

# --- vhost-device-vsock, the vsock backend of QEMU's nitro-enclave machine --------------------------------

# Debian packages it only in sid (rust-vmm's, specs/nitro-enclave.md §3); its binary runs on bookworm (it
# needs glibc 2.34). This version is the one tested with the rig, pinned by its SHA-256; sid keeps only
# its newest version, so when this one is gone the current one is taken (apt checks Debian's signatures
# either way) and the log says so. run.sh starts it only with --uds-path: never --forward-cid or
# --forward-listen, which open AF_VSOCK on this machine.
VHOST_VSOCK_PACKAGE=vhost-device-vsock
VHOST_VSOCK_TESTED_VERSION=0.3.0-2
VHOST_VSOCK_TESTED_SHA256=fd36382419cc174f00d9b1691486b581e13e8c1168dc339b86b2a65180a29ce7
VHOST_VSOCK_DIR=$CACHE/vhost-device-vsock
SID_APT_DIR=$CACHE/apt-sid
# A second private configuration with sid alone (binary packages, no translations): the backports one
# installs host packages, and sid must never be a candidate for those.
SID_APT_OPTS=(
  -o "Dir::Etc::sourcelist=$SID_APT_DIR/sources.list"
  -o "Dir::Etc::sourceparts=$SID_APT_DIR/sources.list.d"
  -o "Dir::State::Lists=$SID_APT_DIR/lists"
  -o "Dir::Cache::pkgcache=$SID_APT_DIR/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$SID_APT_DIR/srcpkgcache.bin"
  -o "Acquire::Languages=none"
)
sid_apt_get() { DEBIAN_FRONTEND=noninteractive apt-get "${SID_APT_OPTS[@]}" "$@"; }

# The version cached last: the file fetch_vhost_device_vsock writes once the binary is in place.
vhost_vsock_version() { cat "$VHOST_VSOCK_DIR/version" 2> /dev/null || true; }
vhost_vsock_bin() { printf '%s/%s/root/usr/bin/vhost-device-vsock' "$VHOST_VSOCK_DIR" "$(vhost_vsock_version)"; }
vhost_vsock_cached() { [ -n "$(vhost_vsock_version)" ] && [ -x "$(vhost_vsock_bin)" ]; }

fetch_vhost_device_vsock() {
  local uris versions version tmp deb sum
  uris=$(mirror_uris)
  [ -n "$uris" ] || die "no URIs for suite bookworm in $SYSTEM_SOURCES"
  rm -rf "$SID_APT_DIR"
  mkdir -p "$SID_APT_DIR/sources.list.d" "$SID_APT_DIR/lists/partial" "$VHOST_VSOCK_DIR"
  : > "$SID_APT_DIR/sources.list"
  cat > "$SID_APT_DIR/sources.list.d/sid.sources" <<EOF
Types: deb
URIs: $uris
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  retry sid_apt_get update
  versions=$(apt-cache "${SID_APT_OPTS[@]}" madison "$VHOST_VSOCK_PACKAGE" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
  [ -n "$versions" ] || die "$VHOST_VSOCK_PACKAGE is not in sid"
  if grep -qxF "$VHOST_VSOCK_TESTED_VERSION" <<< "$versions"; then
    version=$VHOST_VSOCK_TESTED_VERSION
  else
    version=$(sort -V <<< "$versions" | tail -n 1)
    log "$VHOST_VSOCK_PACKAGE $VHOST_VSOCK_TESTED_VERSION (the tested one) is gone from sid: taking $version (untested with the rig; apt checked Debian's signature)"
  fi
  tmp=$VHOST_VSOCK_DIR/$version.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp/root"
  (cd "$tmp" && retry sid_apt_get -o APT::Sandbox::User=root download "$VHOST_VSOCK_PACKAGE=$version")
  deb=$(find "$tmp" -maxdepth 1 -name "${VHOST_VSOCK_PACKAGE}_*.deb" | head -n 1)
  [ -n "$deb" ] || die "apt-get download did not produce a $VHOST_VSOCK_PACKAGE .deb"
  sum=$(sha256sum "$deb" | awk '{ print $1 }')
  if [ "$version" = "$VHOST_VSOCK_TESTED_VERSION" ] && [ "$sum" != "$VHOST_VSOCK_TESTED_SHA256" ]; then
    die "$deb has SHA-256 $sum, not the tested $VHOST_VSOCK_TESTED_SHA256"
  fi
  log "$VHOST_VSOCK_PACKAGE $version: $(basename "$deb") sha256 $sum"
  dpkg-deb -x "$deb" "$tmp/root"
  [ -x "$tmp/root/usr/bin/vhost-device-vsock" ] || die "$VHOST_VSOCK_PACKAGE did not unpack to usr/bin/vhost-device-vsock"
  # It must start here (glibc, libgcc); --help opens no socket.
  "$tmp/root/usr/bin/vhost-device-vsock" --help > /dev/null || die "vhost-device-vsock $version does not run on this machine"
  rm -f "$deb"
  rm -rf "${VHOST_VSOCK_DIR:?}/$version"
  mv "$tmp" "$VHOST_VSOCK_DIR/$version"
  echo "$version" > "$VHOST_VSOCK_DIR/version.tmp"
  mv "$VHOST_VSOCK_DIR/version.tmp" "$VHOST_VSOCK_DIR/version"
  # sid's package lists (tens of MB unpacked) were only needed for this one download.
  rm -rf "$SID_APT_DIR"
}

step "$VHOST_VSOCK_PACKAGE (from sid)" vhost_vsock_cached fetch_vhost_device_vsock

# Paths the other scripts read: one line each, `key=value`; replaced whole, as another run may read it.
cat > "$CACHE/qemu-rig.env.tmp" <<EOF
QEMU_BIN=$QEMU_BIN
GUEST_KERNEL=$KERNEL_CACHE/vmlinuz
GUEST_MODULES_DIR=$KERNEL_CACHE/modules
GUEST_TOOLS_ROOT=$GUEST_TOOLS/root
VHOST_DEVICE_VSOCK=$(vhost_vsock_bin)
VHOST_DEVICE_VSOCK_VERSION=$(vhost_vsock_version)
EOF
mv "$CACHE/qemu-rig.env.tmp" "$CACHE/qemu-rig.env"
log "ready: $CACHE/qemu-rig.env"
