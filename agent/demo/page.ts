/**
 * The demo's page (`GET /`, served by the app in plaintext like every bootstrap file, specs/steve.md §6):
 * it registers the enclave worker (/register.js) with the config embedded below, sends one protected call
 * to /api/echo through it, and shows the attestation widget (/attestation-widget.js). A small form sends
 * more. `window.steveDemo` exposes the client and the first call's outcome (tests drive the page with it).
 * The page holds no secret: the config is the expected suite, the PCR policy and the (mock) root.
 */

import type { Suite } from '../../steve/index.js';

/** The PCR policy in the JSON form the page hands to registerEnclaveServiceWorker (steve/browser/config.ts). */
export type DemoPcrPolicy = { kind: 'tofu' } | { kind: 'pinned'; profiles: Array<{ name: string; pcrs: Record<string, string> }> };

export interface DemoPageConfig {
  keyExchange: Suite;
  pcrPolicy: DemoPcrPolicy;
  /** PEM of the trust anchor; null for the AWS root. */
  root: string | null;
  requestTimeoutMs?: number;
}

/** JSON safe inside a <script> element: `<` escaped, so no `</script>` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const STYLE = `
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: #0f172a; font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 720px; margin: 0 auto; padding: 36px 20px 48px; }
header { margin-bottom: 22px; }
.eyebrow { font-size: 12px; font-weight: 650; letter-spacing: .08em; text-transform: uppercase; color: #4f46e5; margin: 0 0 6px; }
h1 { font-size: 26px; margin: 0 0 8px; letter-spacing: -.01em; }
header p { margin: 0; color: #475569; line-height: 1.5; font-size: 14.5px; }
steve-attestation { margin-bottom: 20px; }
.panel { background: #fff; border: 1px solid #e2e8f0; border-radius: 14px; padding: 18px 20px; box-shadow: 0 1px 2px rgba(15,23,42,.06); }
.panel h2 { font-size: 15px; margin: 0 0 4px; }
.panel p { margin: 0 0 12px; color: #64748b; font-size: 13px; }
textarea { width: 100%; min-height: 64px; font: 13px ui-monospace, "DejaVu Sans Mono", monospace; padding: 10px; border: 1px solid #cbd5e1; border-radius: 8px; resize: vertical; }
.actions { display: flex; gap: 8px; margin: 10px 0 12px; flex-wrap: wrap; }
button { font: inherit; font-size: 13px; font-weight: 600; padding: 7px 14px; border-radius: 8px; border: 1px solid #cbd5e1; background: #fff; color: #0f172a; cursor: pointer; }
button.primary { background: #4f46e5; border-color: #4f46e5; color: #fff; }
button:hover { filter: brightness(.97); }
pre { margin: 0; padding: 12px; background: #0f172a; color: #e2e8f0; border-radius: 8px; font-size: 12.5px; overflow: auto; min-height: 44px; white-space: pre-wrap; word-break: break-word; }
`;

const SCRIPT = `
import { registerEnclaveServiceWorker } from '/register.js';
import { defineAttestationWidget } from '/attestation-widget.js';

defineAttestationWidget();
const widget = document.querySelector('steve-attestation');
const output = document.getElementById('output');
const config = { ...JSON.parse(document.getElementById('steve-config').textContent), origin: location.origin };
if (config.root === null) delete config.root;

const client = registerEnclaveServiceWorker({ config });
const show = (value) => { output.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2); };
// Failures inside the worker are in its status, with the STEVE client's own message; only the page's own
// (no worker support, no control) are shown from here.
const refresh = async (error) => {
  const pageSide = error && !String(error.code).startsWith('STEVE_CLIENT_');
  widget.error = pageSide ? { code: error.code ?? 'ERROR', stage: error.stage ?? 'unknown', message: error.message } : null;
  try { widget.status = await client.getStatus(); } catch { /* the page-side error is shown */ }
  return widget.status;
};

async function echo(text) {
  try {
    const response = await client.send('/api/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: text }) });
    const body = await response.json();
    const session = response.headers.get('x-steve-session');
    show(\`HTTP \${response.status} from the enclave app, session \${session.slice(0, 8)}…, record \${response.headers.get('x-steve-sequence')}\n\n\` +
      JSON.stringify({ method: body.method, path: body.path, body: body.body }, null, 2));
    await refresh(null);
    return { ok: true, status: response.status, body, session };
  } catch (error) {
    const status = await refresh(error);
    const detail = String(error.code).startsWith('STEVE_CLIENT_') && status?.lastError ? status.lastError.message : error.message;
    show(\`\${error.code ?? 'ERROR'} at \${error.stage ?? 'unknown'}: \${detail}\`);
    return { ok: false, code: error.code, stage: error.stage, status: error.status ?? null };
  }
}

const ready = (async () => {
  try {
    await client.initialize();
  } catch (error) {
    show(\`\${error.code} at \${error.stage}: \${error.message}\`);
    widget.error = { code: error.code, stage: error.stage, message: error.message };
    return { ok: false, code: error.code, stage: error.stage };
  }
  return echo('hello from the page');
})();

window.steveDemo = { client, ready, echo, refresh };
document.getElementById('send').addEventListener('click', () => echo(document.getElementById('message').value));
document.getElementById('rotate').addEventListener('click', async () => { await client.rotateSession(); await echo('new session'); });
document.getElementById('forget').addEventListener('click', async () => { await client.reset(); await refresh(null); show('TOFU record cleared; the next request records the enclave again.'); });
`;

/** The page for `config` (origin is taken from the browser's location). */
export function renderDemoPage(config: DemoPageConfig): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>enclave-agent · STEVE demo</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
<script type="application/json" id="steve-config">${scriptJson(config)}</script>
<script type="module">${SCRIPT}</script>
</head>
<body>
<main>
  <header>
    <p class="eyebrow">enclave-agent demo</p>
    <h1>Talking to an enclave, end to end</h1>
    <p>This page reaches the app inside the enclave only through STEVE: a service worker in your browser
    verifies the enclave's attestation, then encrypts every request to it. The host in between sees ciphertext.</p>
  </header>
  <steve-attestation></steve-attestation>
  <section class="panel">
    <h2>Send through the secure channel</h2>
    <p><code>POST /api/echo</code>, sealed in the browser and opened only inside the enclave.</p>
    <textarea id="message" aria-label="Message">hello, enclave</textarea>
    <div class="actions">
      <button id="send" class="primary" type="button">Send</button>
      <button id="rotate" type="button">New session</button>
      <button id="forget" type="button">Forget trust</button>
    </div>
    <pre id="output" aria-live="polite">connecting…</pre>
  </section>
</main>
</body>
</html>
`;
}
