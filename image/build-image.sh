#!/usr/bin/env bash
# Builds the OCI image from Containerfile with podman or docker (BuildKit, through buildx), from a clean copy
# of the sources, with SOURCE_DATE_EPOCH set to the last commit's time and layer timestamps rewritten to it,
# then exports the `artifacts` stage (initramfs.cpio, SHA256SUMS, /opt/enclave-agent) to
# dist/image/container/.
#
#   build-image.sh                 the working tree (IMAGE_SOURCE=HEAD: the last commit)
#   IMAGE_TAG=name:tag build-image.sh      default enclave-agent:<short commit>
#
# Without a working container engine it says so and exits 1: there is nothing to fall back to.
# It must not change the project tree outside dist/image/container/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$HERE/.." && pwd)
ARTIFACTS=$REPO_ROOT/dist/image/container

log() { printf '[image] %s\n' "$*"; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

engine=
if command -v podman > /dev/null && podman info > /dev/null 2>&1; then
  engine=podman
elif command -v docker > /dev/null && docker info > /dev/null 2>&1; then
  docker buildx version > /dev/null 2>&1 ||
    die "docker works but has no buildx plugin: the image build needs BuildKit (SOURCE_DATE_EPOCH, --output)"
  engine=docker
else
  die "no working container engine (podman, or docker with a running daemon and buildx): cannot build the image.
       \`make initramfs\` and \`make reproduce\` build the same bundle, addon and initramfs without one."
fi

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_ROOT" log -1 --format=%ct)}
IMAGE_TAG=${IMAGE_TAG:-enclave-agent:$(git -C "$REPO_ROOT" rev-parse --short HEAD)}
CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/enclave-agent-image.XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
SOURCE=${IMAGE_SOURCE:-worktree} bash "$HERE/copy-sources.sh" "$CONTEXT"
log "$engine: $IMAGE_TAG from ${IMAGE_SOURCE:-worktree}, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"

rm -rf "$ARTIFACTS"
case $engine in
  podman)
    # --timestamp: the image's creation time and every layer file's mtime.
    podman build --file "$REPO_ROOT/Containerfile" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
      --timestamp "$SOURCE_DATE_EPOCH" --tag "$IMAGE_TAG" "$CONTEXT"
    podman build --file "$REPO_ROOT/Containerfile" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
      --timestamp "$SOURCE_DATE_EPOCH" --target artifacts --output "type=local,dest=$ARTIFACTS" "$CONTEXT"
    ;;
  docker)
    # BuildKit reads SOURCE_DATE_EPOCH from the build arg; rewrite-timestamp applies it to the layers' files.
    docker buildx build --file "$REPO_ROOT/Containerfile" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
      --output "type=docker,name=$IMAGE_TAG,rewrite-timestamp=true" "$CONTEXT"
    docker buildx build --file "$REPO_ROOT/Containerfile" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
      --target artifacts --output "type=local,dest=$ARTIFACTS" "$CONTEXT"
    ;;
esac
sed 's/^/  /' "$ARTIFACTS/SHA256SUMS"
log "image $IMAGE_TAG; artifacts in $ARTIFACTS"
