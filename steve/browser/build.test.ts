/**
 * The browser bundles (build.mjs), without a browser: every build is byte-identical, and each bundle holds
 * only web-standard code (no Node builtin, nothing of the agent or the server). Chromium runs them in
 * test/browser/browser.e2e.test.ts, which also compares two builds written to two directories.
 */

import { describe, expect, it } from 'vitest';
// @ts-expect-error build.mjs is plain JavaScript (run as `node steve/browser/build.mjs OUTDIR`).
import { BUNDLES, buildBundles } from './build.mjs';

interface Built {
  output: string;
  bytes: Uint8Array;
  sha256: string;
  inputs: string[];
}

describe('browser bundles', () => {
  it('are deterministic and hold only web-standard code', async () => {
    const first = (await buildBundles()) as Built[];
    const second = (await buildBundles()) as Built[];
    expect(first.map((b) => b.output)).toEqual(['attestation-widget.js', 'enclave-sw.js', 'register.js']);
    expect((BUNDLES as Array<{ output: string }>).map((b) => b.output)).toEqual(first.map((b) => b.output));
    expect(second.map((b) => b.sha256)).toEqual(first.map((b) => b.sha256));
    const allowed = /^(?:steve\/(?:browser|client|protocol)\/|steve\/errors\.ts$|cbor\/|nsm\/(?:verifier|verify|x509|ecdsa|aws-root|document|codec|encoding|errors|types)\.ts$|node_modules\/(?:@noble|@peculiar|asn1js|pvtsutils|pvutils|tslib)\/)/;
    for (const bundle of first) {
      expect(bundle.inputs.filter((input) => !allowed.test(input)), bundle.output).toEqual([]);
      const text = new TextDecoder().decode(bundle.bytes);
      expect(text, bundle.output).not.toMatch(/["']node:[a-z_]+["']/);
    }
    // The page-side files stay small: the crypto lives in the worker only.
    const sizes = Object.fromEntries(first.map((b) => [b.output, b.bytes.length]));
    expect(sizes['register.js']).toBeLessThan(20_000);
    expect(sizes['attestation-widget.js']).toBeLessThan(20_000);
  });
});
