/**
 * The addon loader nsm/, vsock/, init/ and agent/ share: one load, one object, every part in it, and the
 * package root found by its package.json name (as the image's bundle finds it). Never calls into a half.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { NativeAddonError, PACKAGE_NAME, findPackageRoot, loadNativeAddon } from './index.js';

describe('loadNativeAddon', () => {
  it('loads the addon once and returns the same object, with the NSM calls and the vsock, relay, init and AES-GCM parts', () => {
    const addon = loadNativeAddon();
    expect(loadNativeAddon()).toBe(addon);
    expect(typeof addon.request).toBe('function');
    expect(typeof addon.vsock).toBe('object');
    expect(typeof addon.init).toBe('object');
    expect(typeof addon.vsockRelay).toBe('object');
    expect(typeof addon.aesGcm).toBe('object');
  });

  it('has a coded error for a missing addon', () => {
    expect(new NativeAddonError('x')).toMatchObject({ code: 'NATIVE_ADDON_UNAVAILABLE', name: 'NativeAddonError' });
  });
});

describe('findPackageRoot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'enclave-native-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('walks up past foreign and unreadable package.json files to the one named enclave-agent', () => {
    const nested = join(dir, 'root', 'a', 'b');
    mkdirSync(nested, { recursive: true });
    writeFileSync(join(dir, 'root', 'package.json'), JSON.stringify({ name: PACKAGE_NAME }));
    writeFileSync(join(dir, 'root', 'a', 'package.json'), JSON.stringify({ name: 'other' }));
    writeFileSync(join(nested, 'package.json'), '{ not json');
    expect(findPackageRoot(nested)).toBe(join(dir, 'root'));
  });

  it('answers undefined when no package.json on the way up has the name', () => {
    const lone = join(dir, 'lone');
    mkdirSync(lone);
    // The temporary directory's ancestors (/tmp, /) hold no enclave-agent package.json.
    expect(findPackageRoot(lone)).toBeUndefined();
  });
});
