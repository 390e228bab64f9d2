#!/usr/bin/env bash
# Extracts Caution's shipped STEVE v2 browser client (register.js, enclave-sw.js, xwing/steve_xwing_wasm_bg.wasm)
# into DEST, OUTSIDE this repository, for the local interop check test/browser/caution-interop.e2e.test.ts
# (CAUTION_CLIENT_DIR=DEST). The files are Caution's (CautionHosting/platform, AGPL-3.0 or commercial) and must
# never be committed here; see test/browser/README.md.
#
# Usage: bash test/browser/caution-client.sh DEST [GIT_DIR]
#   GIT_DIR  an existing clone or mirror of https://github.com/CautionHosting/platform; without it the branch
#            is cloned (shallow, bare) into a temporary directory, which needs GitHub.
#   CAUTION_BRANCH  the branch (default feat/public-e2ee-verifier); the client lives in
#            frontend/public/verify-e2ee/client/<steve-commit>/, and exactly one such folder must exist
#            unless CAUTION_CLIENT_COMMIT names one.
set -euo pipefail

REPO_URL=https://github.com/CautionHosting/platform
BRANCH="${CAUTION_BRANCH:-feat/public-e2ee-verifier}"
CLIENT_ROOT=frontend/public/verify-e2ee/client
FILES=(register.js enclave-sw.js xwing/steve_xwing_wasm_bg.wasm)

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: bash test/browser/caution-client.sh DEST [GIT_DIR]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")/../.." && pwd -P)"
DEST="$(realpath -m "$1")"
case "$DEST/" in
  "$HERE"/*) echo "caution-client: DEST must be outside this repository ($HERE)" >&2; exit 2 ;;
esac
mkdir -p "$DEST"

GIT_DIR="${2:-}"
if [ -z "$GIT_DIR" ]; then
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  git clone -q --bare --depth 1 --branch "$BRANCH" "$REPO_URL" "$TMP/platform.git"
  GIT_DIR="$TMP/platform.git"
fi
g() { git --git-dir="$GIT_DIR" "$@"; }
[ -d "$GIT_DIR/.git" ] && GIT_DIR="$GIT_DIR/.git"

REF=""
for candidate in "refs/heads/$BRANCH" "refs/remotes/origin/$BRANCH"; do
  if g rev-parse -q --verify "$candidate^{commit}" >/dev/null; then REF="$candidate"; break; fi
done
if [ -z "$REF" ]; then echo "caution-client: branch $BRANCH not found in $GIT_DIR" >&2; exit 1; fi
BRANCH_COMMIT="$(g rev-parse "$REF^{commit}")"

if [ -n "${CAUTION_CLIENT_COMMIT:-}" ]; then
  CLIENT="$CAUTION_CLIENT_COMMIT"
else
  mapfile -t FOLDERS < <(g ls-tree -d --name-only "$REF" "$CLIENT_ROOT/" | sed "s#^$CLIENT_ROOT/##")
  if [ "${#FOLDERS[@]}" -ne 1 ]; then
    echo "caution-client: expected one folder under $CLIENT_ROOT/ at $BRANCH_COMMIT, found ${#FOLDERS[@]}: ${FOLDERS[*]:-}; set CAUTION_CLIENT_COMMIT" >&2
    exit 1
  fi
  CLIENT="${FOLDERS[0]}"
fi

for file in "${FILES[@]}"; do
  mkdir -p "$(dirname "$DEST/$file")"
  g cat-file blob "$REF:$CLIENT_ROOT/$CLIENT/$file" > "$DEST/$file"
done
echo "caution-client: $REPO_URL $BRANCH at $BRANCH_COMMIT, $CLIENT_ROOT/$CLIENT/ -> $DEST"
(cd "$DEST" && sha256sum "${FILES[@]}")
