/**
 * The manifest the demo serves: the existing schema (specs/agent-http.md §3) with demo values. A real
 * image ships its own manifest file, measured into the PCRs with the rest of the image.
 */

import { addBootstrapHashes, hashBootstrapFiles } from '../manifest.js';

export const DEMO_MANIFEST_JSON =
  '{"version":"1.0","powered_by":"enclave-agent","enclave_source":{"type":"local","path":"."},' +
  '"framework_source":{"type":"git_archive","url":"https://example.invalid/enclave-agent.tar.gz"},"run_command":"node demo-app.js"}';

/**
 * DEMO_MANIFEST_JSON with the `bootstrap` hashes of `files`, the bytes the demo app serves (from
 * loadDemoBootstrap). The demo page embeds the run's fresh mock root, so the hashes are taken at start,
 * from the very bytes the app then serves, not at build time.
 */
export function demoManifest(files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  return addBootstrapHashes(new TextEncoder().encode(DEMO_MANIFEST_JSON), hashBootstrapFiles(files), 'the demo manifest');
}
