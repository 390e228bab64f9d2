#!/usr/bin/env bash
# Installs what bench/compare.mjs needs beyond Node, from Debian's packages only: caddy and nginx (the
# TLS-terminating proxies it compares STEVE with) and gnuplot-nox (chart.png). nginx is also the balancer
# of bench/scale-out.mjs and test/scale-out.e2e.test.ts (.ci/run calls this script for it). Idempotent: a
# package already installed is left alone, and with all three present it does nothing at all.
#
# It must not: edit apt sources, start the packages' own services (they would take ports 80 and 443;
# the benchmark runs its own instances on free loopback ports with generated configs), or install
# anything that is not a Debian package.
set -euo pipefail

log() { printf '[bench/setup] %s\n' "$*"; }

# command -> package. nginx-light is bookworm's smallest nginx with the ssl and proxy modules; nginx
# (the full one) is accepted when it is already there.
declare -A WANTED=([caddy]=caddy [nginx]=nginx-light [gnuplot]=gnuplot-nox)
missing=()
for command in caddy nginx gnuplot; do
  if ! command -v "$command" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$command" ]; then
    missing+=("${WANTED[$command]}")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  log "caddy, nginx and gnuplot present"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { log "error: ${missing[*]} missing and not root (no sudo)" >&2; exit 1; }
  SUDO=(sudo)
fi

# Keep the packages' services from starting (invoke-rc.d asks policy-rc.d; 101 means "not allowed").
# Containers usually have one already; a temporary one is removed again on exit.
POLICY=/usr/sbin/policy-rc.d
if ! [ -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

install() {
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}
log "installing ${missing[*]}"
# A package index older than the archive gives 404s: refresh it once, then one retry of the install.
if ! install; then
  log "retrying once after apt-get update"
  "${SUDO[@]}" apt-get update -qq
  install
fi

# If a service started anyway (no policy-rc.d honoured), stop the one the package started: nginx's
# init script records its pid in /run/nginx.pid; Debian's caddy runs only under systemd.
if [ -s /run/nginx.pid ] && grep -q nginx "/proc/$(cat /run/nginx.pid)/comm" 2>/dev/null; then
  log "stopping the nginx service the package started (pid $(cat /run/nginx.pid))"
  "${SUDO[@]}" kill "$(cat /run/nginx.pid)" || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${SUDO[@]}" systemctl disable --now caddy.service nginx.service >/dev/null 2>&1 || true
fi
log "done: $(caddy version 2>/dev/null | cut -d' ' -f1), $(/usr/sbin/nginx -v 2>&1 | cut -d' ' -f3), $(gnuplot --version)"
