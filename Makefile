# Entry points; each target is a thin wrapper over an npm script so CI and people run the same thing.
.PHONY: build test clean

build:
	npm ci

test:
	npm test

clean:
	rm -rf dist build node_modules
