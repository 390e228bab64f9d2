/**
 * The demo's page (`GET /`, served by the app in plaintext like every bootstrap file, specs/steve.md §6):
 * it registers the enclave worker (/register.js) with the config embedded below, sends one protected call
 * to /api/echo through it, and shows the attestation widget (/attestation-widget.js). A small form sends
 * more. A prompt box asks the app's fake LLM (/api/generate) and shows its answer as the words arrive:
 * the worker hands over the stream as STEVE opens its records (steve/protocol/stream.md), and the page
 * reads it with a reader, parsing the server-sent events itself. `window.steveDemo` exposes the client,
 * the first call's outcome and `generate` (which also reports each chunk's arrival time); tests drive the
 * page with it.
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
main { max-width: 1160px; margin: 0 auto; padding: 36px 20px 48px; }
header { margin-bottom: 22px; }
.eyebrow { font-size: 12px; font-weight: 650; letter-spacing: .08em; text-transform: uppercase; color: #4f46e5; margin: 0 0 6px; }
h1 { font-size: 26px; margin: 0 0 8px; letter-spacing: -.01em; }
header p { margin: 0; color: #475569; line-height: 1.5; font-size: 14.5px; }
steve-attestation { margin-bottom: 20px; }
.columns { display: grid; gap: 20px; align-items: start; }
@media (min-width: 1000px) { .columns { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); } }
.panel + .panel { margin-top: 20px; }
input[type=text] { width: 100%; font: inherit; font-size: 14px; padding: 8px 10px; border: 1px solid #cbd5e1; border-radius: 8px; }
#answer { min-height: 120px; padding: 12px 14px; border: 1px solid #e2e8f0; border-radius: 8px; background: #f8fafc; font-size: 15px; line-height: 1.6; white-space: pre-wrap; }
#answer[data-state=streaming]::after { content: "▍"; color: #4f46e5; }
#answer[data-state=failed] { border-color: #fca5a5; }
#answer-status { margin: 8px 0 0; font-size: 12.5px; color: #64748b; }
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

const answer = document.getElementById('answer');
const answerStatus = document.getElementById('answer-status');

// Asks the fake LLM and shows its words as they arrive. Each chunk's arrival time (epoch ms, comparable
// with the app's emittedAtMs on one machine) is kept, so a test can see the answer was not held back.
// A failed read (the channel refused a record, or the answer broke off) is an error, never a short answer.
async function generate(prompt, { tokens, delayMs } = {}) {
  const query = new URLSearchParams({ prompt });
  if (tokens !== undefined) query.set('tokens', String(tokens));
  if (delayMs !== undefined) query.set('delay_ms', String(delayMs));
  const chunks = [];
  const received = [];
  let text = '';
  answer.textContent = '';
  answer.dataset.state = 'streaming';
  answerStatus.textContent = 'waiting for the enclave…';
  try {
    const response = await client.send(\`/api/generate?\${query}\`, { headers: { accept: 'text/event-stream' } });
    if (!response.ok) throw new Error(\`HTTP \${response.status}: \${await response.text()}\`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    let finished = false;
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      const atMs = performance.timeOrigin + performance.now();
      pending += decoder.decode(value, { stream: true }).replace(/\\r\\n?/g, '\\n');
      const events = pending.split('\\n\\n');
      pending = events.pop();
      const indexes = [];
      for (const event of events) {
        const data = event.split('\\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trimStart()).join('\\n');
        if (data === '[DONE]') { finished = true; break; }
        const token = JSON.parse(data);
        text += token.token;
        indexes.push(token.index);
        received.push({ index: token.index, emittedAtMs: token.emittedAtMs, arrivedAtMs: atMs });
      }
      chunks.push({ atMs, bytes: value.length, indexes });
      answer.textContent = text;
      answerStatus.textContent = \`\${received.length} tokens so far, session \${response.headers.get('x-steve-session').slice(0, 8)}…\`;
    }
    if (!finished) throw new Error('the answer ended before [DONE]');
    answer.dataset.state = 'done';
    answerStatus.textContent = \`\${received.length} tokens, each opened in this browser as it arrived\`;
    await refresh(null);
    return { ok: true, text, chunks, tokens: received };
  } catch (error) {
    answer.dataset.state = 'failed';
    answerStatus.textContent = \`The answer broke off: \${error.code ?? error.name}: \${error.message}. The words above, if any, were authenticated; nothing after them was shown.\`;
    await refresh(error);
    return { ok: false, text, chunks, tokens: received, error: { name: error.name, code: error.code ?? null, message: error.message } };
  }
}

window.steveDemo = { client, ready, echo, refresh, generate };
document.getElementById('generate').addEventListener('click', () => generate(document.getElementById('prompt').value));
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
  <div class="columns">
  <steve-attestation></steve-attestation>
  <div>
  <section class="panel">
    <h2>Ask the enclave, answer streamed</h2>
    <p><code>GET /api/generate</code>: a stand-in LLM streams its answer word by word; each word is its own sealed record.</p>
    <input id="prompt" type="text" aria-label="Prompt" value="What does the host see?">
    <div class="actions"><button id="generate" class="primary" type="button">Generate</button></div>
    <div id="answer" aria-live="polite"></div>
    <p id="answer-status"></p>
  </section>
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
  </div>
  </div>
</main>
</body>
</html>
`;
}
