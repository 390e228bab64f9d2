#!/usr/bin/env bash
# Copies the project's sources, and nothing else (no node_modules, build/, dist/, .cache/, .git), into DEST:
# the clean tree that reproduce.sh builds twice and build-image.sh sends to the container builder.
#
#   copy-sources.sh DEST                the working tree: tracked and untracked files git does not ignore
#   SOURCE=HEAD copy-sources.sh DEST    the last commit (`git archive HEAD`)
#
# Modes go through the caller's umask, as a checkout's do. It must not change the project tree.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOURCE=${SOURCE:-worktree}
[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
DEST=$1

mkdir -p "$DEST"
case $SOURCE in
  HEAD) git -C "$REPO_ROOT" archive --format=tar HEAD | tar -x --no-same-permissions -C "$DEST" ;;
  worktree)
    # --cached lists files deleted in the working tree too: only those that exist are copied.
    (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done |
      tar --null -T - -cf -) | tar -x --no-same-permissions -C "$DEST"
    ;;
  *) echo "$0: SOURCE must be worktree or HEAD, got $SOURCE" >&2; exit 2 ;;
esac
