#!/usr/bin/env bash
# Builds the enclave image file (EIF, specs/nitro-enclave.md §1) from a kernel, its command line and two
# ramdisks that image/build-initramfs.sh stages with APP_RAMDISK=1: first the platform (busybox, node, the
# kernel modules, the agent with its addon, /init), then the deployment (the init configuration and
# EXTRA_DIR: the app, its manifest). So PCR1 (kernel, command line, first ramdisk) names the platform and
# is the same for every app built on this agent, and PCR2 (the ramdisks after the first) names the app.
#
#   build-eif.sh [OUTDIR]      (default dist/image; run as root, as build-initramfs.sh)
#
# Writes OUTDIR/enclave.eif, OUTDIR/enclave.eif.json (`enclave-agent eif describe --json`: sections, sizes,
# CRC, PCRs) and OUTDIR/enclave.pcrs.json ({"pcr0", "pcr1", "pcr2"}, the shape `verify --pcrs` reads),
# beside build-initramfs.sh's outputs. Inputs from the environment, besides build-initramfs.sh's:
#   KERNEL     the kernel (default: the QEMU rig's Debian 6.12 cloud kernel, which boots under QEMU's
#              nitro-enclave machine but not on real Nitro: README "EIF")
#   CMDLINE    the kernel command line, measured into PCR0 and PCR1 (default: the rig's)
#   EIF_NAME   the metadata's ImageName (default enclave)
# The metadata's build time is SOURCE_DATE_EPOCH (build-initramfs.sh's default: the last commit's time), so
# two builds of the same sources give the same bytes (image/reproduce.sh compares them).
#
# It must not: download anything, read the clock, or take anything that changes the image's behaviour from
# outside its inputs (QEMU's -append text is not measured: the command line lives here).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:-$REPO_ROOT/dist/image}
CLI=$REPO_ROOT/dist/agent/cli.js
# The rig's command line: the serial console QEMU's -nographic shows, and a panic powers off at once.
DEFAULT_CMDLINE='console=ttyS0 panic=-1 quiet'

log() { printf '[eif] %s\n' "$*"; }
die() { printf '[eif] error: %s\n' "$*" >&2; exit 1; }

[ -f "$CLI" ] || die "$CLI is missing: run \`make build\` first"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$REPO_ROOT" log -1 --format=%ct 2> /dev/null) ||
    die "SOURCE_DATE_EPOCH is unset and $REPO_ROOT has no git history to take it from"
fi
export SOURCE_DATE_EPOCH

if [ -z "${KERNEL:-}" ]; then
  CACHE=${ENCLAVE_AGENT_CACHE:-$REPO_ROOT/.cache}
  [ -r "$CACHE/qemu-rig.env" ] || bash "$REPO_ROOT/test/qemu/setup.sh" | sed 's/^/  /'
  # shellcheck source=/dev/null
  . "$CACHE/qemu-rig.env"
  KERNEL=$GUEST_KERNEL
fi
[ -f "$KERNEL" ] || die "KERNEL $KERNEL does not exist"
CMDLINE=${CMDLINE:-$DEFAULT_CMDLINE}

start=$SECONDS
APP_RAMDISK=1 bash "$HERE/build-initramfs.sh" "$OUT"
# Zeros after the deployment's archive (the kernel skips zero padding between and after initramfs archives)
# keep the two ramdisks' last 4 KiB page at most 3 KiB full. Measured here, and read in QEMU 10.0.2's
# source: the nitro-enclave machine loads the ramdisks as one initrd that ends at the start of the last
# page of its 2 GiB plus the initrd's size modulo 4096, and SeaBIOS keeps the ACPI tables in that last
# page from offset 3,200 up; an initrd that reaches past it (size mod 4096 in 3,201..4,095) overwrites
# them, and the guest then finds no virtio devices. Nitro does not need this; it costs at most 4.5 KiB and
# keeps the image bootable on the rig whatever the app's size.
PAGE_BYTES=4096
LAST_PAGE_MAX=3072
ramdisks_bytes=$(($(stat -c %s "$OUT/initramfs.cpio") + $(stat -c %s "$OUT/app.cpio")))
last_page=$(((ramdisks_bytes - 1) % PAGE_BYTES + 1))
if [ "$last_page" -gt "$LAST_PAGE_MAX" ]; then
  head -c $((PAGE_BYTES - last_page + 512)) /dev/zero >> "$OUT/app.cpio"
fi
(cd "$OUT" && sed -i '/  app\.cpio$/d' SHA256SUMS && sha256sum app.cpio >> SHA256SUMS)
rm -f "$OUT/enclave.eif" "$OUT/enclave.eif.json" "$OUT/enclave.pcrs.json"
node "$CLI" eif build --kernel "$KERNEL" --cmdline "$CMDLINE" --ramdisk "$OUT/initramfs.cpio" --ramdisk "$OUT/app.cpio" \
  --name "${EIF_NAME:-enclave}" --out "$OUT/enclave.eif" --json > "$OUT/enclave.eif.json"
node -e '
  const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const pcr = (i) => { const v = d.pcrs[String(i)]; if (typeof v !== "string") throw new Error(`no PCR${i} in eif describe --json`); return v; };
  process.stdout.write(JSON.stringify({ pcr0: pcr(0), pcr1: pcr(1), pcr2: pcr(2) }, null, 2) + "\n");
' "$OUT/enclave.eif.json" > "$OUT/enclave.pcrs.json"
(cd "$OUT" && sha256sum enclave.eif >> SHA256SUMS)
log "$OUT/enclave.eif: $(stat -c %s "$OUT/enclave.eif") bytes, in $((SECONDS - start)) s"
sed 's/^/  /' "$OUT/enclave.pcrs.json"
