# Entry points; each target is a thin wrapper over an npm script so CI and people run the same thing.
.PHONY: build test test-qemu clean

build:
	npm ci

test:
	npm test

# The real-device rig: QEMU with virtio-nsm and the kernel's nsm driver, vsock loopback (test/qemu/).
test-qemu:
	npm run test:qemu

clean:
	rm -rf dist build node_modules
