#!/bin/sh
# /init of the enclave initramfs (image/build-initramfs.sh puts this file there; busybox sh runs it as
# PID 1). It only hands over: `enclave-agent init` (init/) does the boot steps itself (kernel filesystems,
# loopback, the nsm module, entropy from the NSM) and supervises the agent and the app. Anything added here
# is code outside the agent's tests, so this file must stay this small: no mounts, no module loading, no
# configuration of its own. The node flags are agent/node-flags.ts's (init's children inherit them).
export PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
cd /
exec /usr/bin/node --initial-old-space-size=64 /opt/enclave-agent/enclave-agent.mjs init --config /etc/enclave-agent/init.json
