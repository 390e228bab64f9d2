#!/usr/bin/env bash
# Installs the browser the e2e tests in test/browser/ drive: Debian's `chromium` package through apt-get,
# never a browser build downloaded by a tool (no `npx playwright install`: only the package registries
# are reachable, see README "Tests"). Idempotent: nothing to do when /usr/bin/chromium exists. Each apt
# step is retried once (a mirror hiccup should not fail CI). Needs root, as CI and developers run.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "setup: $($CHROMIUM --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "setup: need root (or sudo) for apt-get" >&2; exit 1; fi
fi

retry() {
  "$@" || { echo "setup: '$*' failed; retrying once" >&2; sleep 5; "$@"; }
}

export DEBIAN_FRONTEND=noninteractive
retry $SUDO apt-get update -q
retry $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core

if [ ! -x "$CHROMIUM" ]; then
  echo "setup: apt-get finished but $CHROMIUM is missing" >&2
  exit 1
fi
echo "setup: $($CHROMIUM --version 2>/dev/null || echo chromium) installed"
