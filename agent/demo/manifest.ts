/**
 * The manifest the demo serves: the existing schema (specs/agent-http.md §3) with demo values. A real
 * image ships its own manifest file, measured into the PCRs with the rest of the image.
 */

export const DEMO_MANIFEST_JSON =
  '{"version":"1.0","powered_by":"enclave-agent","enclave_source":{"type":"local","path":"."},' +
  '"framework_source":{"type":"git_archive","url":"https://example.invalid/enclave-agent.tar.gz"},"run_command":"node demo-app.js"}';
