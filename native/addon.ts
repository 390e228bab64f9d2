/**
 * Finds and loads (once) the one native addon, `build/Release/enclave_native.node` (binding.gyp), whose
 * parts are nsm/native/nsm.c (the top-level NSM calls), vsock/native/vsock.c (`exports.vsock`, with
 * relay.c's `exports.vsockRelay`), init/native/init.c (`exports.init`), agent/native/aes-gcm.c
 * (`exports.aesGcm`) and agent/native/handshake.c (`exports.handshake`). nsm/, vsock/, init/ and agent/ each import this loader and type their own part; it
 * lives here, beside the C helpers they share, so that none imports another for it.
 *
 * It must not know any part's functions, run anything at import time, or fall back to anything: a missing
 * or unloadable addon is always `NATIVE_ADDON_UNAVAILABLE`, which each part turns into its own coded error
 * (`NSM_DEVICE_UNAVAILABLE`, `VSOCK_UNAVAILABLE`, `INIT_NATIVE_UNAVAILABLE`, `AGENT_NATIVE_UNAVAILABLE`). It imports nothing of ours
 * (test/boundaries.test.ts).
 */

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `name` in package.json that marks the package root, found by walking up from this module: from
 * `native/` (vitest), `dist/native/` (tsc) or the image's bundle, beside which the image build writes a
 * package.json of that name (image/build-bundle.mjs).
 */
export const PACKAGE_NAME = 'enclave-agent';
/** Where node-gyp puts the addon, under the package root. */
export const ADDON_PATH = ['build', 'Release', 'enclave_native.node'] as const;

/** The addon's exports: each half reads its own part and checks that it is there. */
export type NativeAddon = Readonly<Record<string, unknown>>;

export class NativeAddonError extends Error {
  readonly code = 'NATIVE_ADDON_UNAVAILABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NativeAddonError';
  }
}

let cached: NativeAddon | undefined;

/** The nearest directory at or above `start` with a package.json named PACKAGE_NAME. */
export function findPackageRoot(start: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(manifest, 'utf8'));
        if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        // An unreadable or foreign package.json on the way up: keep walking.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Loads the addon once and returns the same object ever after; throws `NATIVE_ADDON_UNAVAILABLE`. */
export function loadNativeAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const root = findPackageRoot();
  if (root === undefined) {
    throw new NativeAddonError(`cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}`);
  }
  const addonPath = join(root, ...ADDON_PATH);
  if (!existsSync(addonPath)) {
    throw new NativeAddonError(`the native addon was not built (${addonPath} is missing): run \`npm ci\` (or \`npm run install\`)`);
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (cause) {
    throw new NativeAddonError(`cannot load the native addon ${addonPath}`, { cause });
  }
  return cached;
}
