# Entry points; each target is a thin wrapper over an npm script or a script in image/ or bench/, so CI and people
# run the same thing. image/README.md describes the image targets.
.PHONY: build test test-reliability test-qemu bench initramfs eif reproduce image clean

# Dependencies, the native addon (node-gyp against local headers) and dist/: npm ci runs `prepare`, which is
# `npm run build`.
build:
	npm ci

test:
	npm test

# Fuzzing, fault injection under load, the soak run and mock safety (test/reliability/README.md); about 3 minutes.
test-reliability:
	npm run test:reliability

# The real-device rig: QEMU with virtio-nsm and the kernel's nsm driver, vsock loopback (test/qemu/).
test-qemu:
	npm run test:qemu

# The comparison benchmarks over the built dist/ (run `make build` first; bench/setup.sh installs Caddy, nginx
# and gnuplot from Debian when missing): a table on stdout, results and chart.png in dist/bench/; then the
# streams against the plain proxy (bench/stream.mjs); the image's bundle's start-up time and idle memory on the
# device path (bench/startup.mjs); then nginx in front of one and two agents (bench/scale-out.mjs, README
# "Scale-out").
bench:
	bash bench/setup.sh && node bench/compare.mjs $(BENCH_FLAGS) && node bench/stream.mjs && node bench/startup.mjs && node bench/scale-out.mjs

# dist/image/: the agent bundle with the addon, and initramfs.cpio (INIT_CONFIG=file.json, EXTRA_DIR=dir).
initramfs:
	INIT_CONFIG="$(INIT_CONFIG)" EXTRA_DIR="$(EXTRA_DIR)" bash image/build-initramfs.sh

# dist/image/enclave.eif: the platform and the deployment (INIT_CONFIG, EXTRA_DIR) as two ramdisks after the kernel
# (KERNEL=file, CMDLINE=text; default the QEMU rig's), with enclave.eif.json and enclave.pcrs.json beside it.
eif:
	INIT_CONFIG="$(INIT_CONFIG)" EXTRA_DIR="$(EXTRA_DIR)" KERNEL="$(KERNEL)" CMDLINE="$(CMDLINE)" bash image/build-eif.sh

# Builds bundle, addon and initramfs twice in two differing temporary trees; fails on any difference.
reproduce:
	bash image/reproduce.sh

# The OCI image from Containerfile (podman or docker with buildx); exits 1 without a container engine.
image:
	bash image/build-image.sh

clean:
	rm -rf dist build node_modules
