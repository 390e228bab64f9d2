/**
 * The attestation widget (bundled to /attestation-widget.js): shows a person what the enclave worker
 * verified before any of their data left the page: the trust result (pinned profile, TOFU recorded,
 * TOFU matched), PCR0-2 (shortened, each with a button that copies the full value), the suite, the session
 * id, the module id and the document's time; or, when the channel failed, the code and the stage it
 * failed at. Two ways in: `renderAttestationWidget(container, status, error?)`, or the custom element
 * `<steve-attestation>` (after `defineAttestationWidget()`) with `.status` / `.error` properties.
 *
 * Self-contained: its own styles inside a shadow root, no framework, text only through textContent (the
 * status holds text from the server, such as the module id). `describeStatus` is the pure part (what to
 * show), kept apart from the DOM so it can be tested without a browser.
 */

import type { ChannelStatus } from './messages.js';

/** A page-side failure (the worker was never reached) shown instead of the worker's status. */
export interface WidgetError {
  code: string;
  stage: string;
  message?: string;
}

export interface WidgetRow {
  label: string;
  value: string;
  /** The full value, when `value` is shortened (a copy button copies it). */
  full?: string;
  mono?: boolean;
  /** A badge instead of plain text. */
  badge?: 'good' | 'info';
}

export interface WidgetView {
  state: 'verified' | 'failed' | 'pending';
  title: string;
  subtitle: string;
  rows: WidgetRow[];
}

/** First and last `keep` characters of a long hex value. */
export function shorten(hex: string, keep = 8): string {
  return hex.length <= 2 * keep + 1 ? hex : `${hex.slice(0, keep)}…${hex.slice(-keep)}`;
}

export function formatTime(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return 'unknown';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

const STAGE_TEXT: Record<string, string> = {
  config: 'configuration',
  register: 'installing the worker',
  worker: 'reaching the worker',
  session: 'opening the session',
  attestation: 'verifying the attestation document',
  binding: 'binding the document to this session',
  pcr: "checking the enclave's measurements (PCRs)",
  confirm: 'confirming the session',
  request: 'sending the request',
};

/** What the widget shows for a status (and an optional page-side error, which wins). Pure. */
export function describeStatus(status: ChannelStatus | null, error?: WidgetError | null): WidgetView {
  const failure = error ?? (status?.state === 'failed' ? status.lastError : null);
  if (failure) {
    const rows: WidgetRow[] = [
      { label: 'Error', value: failure.code, mono: true },
      { label: 'Stage', value: `${failure.stage} · ${STAGE_TEXT[failure.stage] ?? 'unknown stage'}` },
    ];
    if (status?.origin) rows.unshift({ label: 'Enclave', value: status.origin, mono: true });
    if (failure.message) rows.push({ label: 'Detail', value: failure.message });
    const subtitle =
      failure.stage === 'request'
        ? 'This request did not complete through the secure channel, and it was not sent any other way.'
        : 'The enclave could not be verified, so nothing was sent to it.';
    return { state: 'failed', title: 'Secure channel failed', subtitle, rows };
  }
  const session = status?.session;
  if (status === null || session === null || session === undefined) {
    return {
      state: 'pending',
      title: 'Not verified yet',
      subtitle: 'The enclave is verified when the first request is sent through the secure channel.',
      rows: status?.origin ? [{ label: 'Enclave', value: status.origin, mono: true }] : [],
    };
  }
  const trust =
    session.trust.policy === 'pinned'
      ? `Pinned profile · ${session.trust.profile}`
      : session.trust.result === 'tofu-recorded'
        ? 'Trust on first use · recorded now'
        : 'Trust on first use · matched the record';
  const rows: WidgetRow[] = [
    { label: 'Enclave', value: status!.origin ?? '', mono: true },
    { label: 'Trust', value: trust, badge: session.trust.policy === 'pinned' || session.trust.result === 'tofu-matched' ? 'good' : 'info' },
    ...session.pcrs.map((pcr) => ({ label: `PCR${pcr.index}`, value: shorten(pcr.hex), full: pcr.hex, mono: true })),
    { label: 'Suite', value: session.suite, mono: true },
    { label: 'Session', value: shorten(session.sessionId), full: session.sessionId, mono: true },
    { label: 'Module', value: session.moduleId || 'unknown', mono: true },
    { label: 'Document', value: formatTime(session.documentTimeMs) },
  ];
  return {
    state: 'verified',
    title: 'End-to-end encrypted to a verified enclave',
    subtitle: 'Attestation document, session binding and measurements checked in this browser before any request was sent.',
    rows,
  };
}

const STYLES = `
:host { display: block; font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #0f172a; }
.card { border: 1px solid #e2e8f0; border-radius: 14px; background: #fff; box-shadow: 0 1px 2px rgba(15,23,42,.06), 0 8px 24px rgba(15,23,42,.06); overflow: hidden; }
.head { display: flex; gap: 14px; align-items: center; padding: 18px 20px; border-bottom: 1px solid #e2e8f0; }
.verified .head { background: linear-gradient(180deg, #f0fdf4, #ffffff); }
.failed .head { background: linear-gradient(180deg, #fef2f2, #ffffff); }
.pending .head { background: linear-gradient(180deg, #f8fafc, #ffffff); }
.icon { flex: none; width: 40px; height: 40px; border-radius: 50%; display: grid; place-items: center; }
.verified .icon { background: #16a34a; box-shadow: 0 0 0 5px #dcfce7; }
.failed .icon { background: #dc2626; box-shadow: 0 0 0 5px #fee2e2; }
.pending .icon { background: #94a3b8; box-shadow: 0 0 0 5px #f1f5f9; }
.icon svg { width: 22px; height: 22px; }
.title { font-size: 16px; font-weight: 650; margin: 0; }
.verified .title { color: #166534; }
.failed .title { color: #991b1b; }
.subtitle { margin: 3px 0 0; font-size: 13px; color: #475569; line-height: 1.4; }
dl { margin: 0; padding: 6px 20px 12px; display: grid; grid-template-columns: max-content 1fr; }
dt, dd { box-sizing: border-box; display: flex; align-items: center; min-height: 38px; padding: 6px 0; border-bottom: 1px solid #f1f5f9; font-size: 13px; }
dt { color: #64748b; font-weight: 550; padding-right: 20px; }
dd { margin: 0; gap: 8px; min-width: 0; }
dt:nth-last-of-type(1), dd:last-of-type { border-bottom: none; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, "DejaVu Sans Mono", monospace; font-size: 12.5px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.badge.good { background: #dcfce7; color: #166534; }
.badge.info { background: #e0f2fe; color: #075985; }
button.copy { margin-left: auto; flex: none; font: inherit; font-size: 11.5px; padding: 2px 9px; border-radius: 6px; border: 1px solid #cbd5e1; background: #f8fafc; color: #334155; cursor: pointer; }
button.copy:hover { background: #f1f5f9; border-color: #94a3b8; }
button.copy.done { color: #166534; border-color: #86efac; background: #f0fdf4; }
.foot { padding: 10px 20px; font-size: 11.5px; color: #94a3b8; border-top: 1px solid #f1f5f9; background: #fcfcfd; }
`;

const CHECK = '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"><path d="M5 12.5l4.5 4.5L19 7.5"/></svg>';
const CROSS = '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"><path d="M7 7l10 10M17 7L7 17"/></svg>';
const DOTS = '<svg viewBox="0 0 24 24" fill="#fff"><circle cx="6" cy="12" r="2"/><circle cx="12" cy="12" r="2"/><circle cx="18" cy="12" r="2"/></svg>';

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function copyButton(full: string, label: string): HTMLButtonElement {
  const button = element('button', 'copy', 'Copy');
  button.type = 'button';
  button.title = `Copy the full ${label}`;
  button.setAttribute('aria-label', `Copy the full ${label}`);
  button.addEventListener('click', () => {
    navigator.clipboard?.writeText(full).then(
      () => {
        button.textContent = 'Copied';
        button.classList.add('done');
        setTimeout(() => {
          button.textContent = 'Copy';
          button.classList.remove('done');
        }, 1500);
      },
      () => {
        button.textContent = 'Copy failed';
      },
    );
  });
  return button;
}

/** Renders the widget into `container` (inside a shadow root it creates once); replaces what was there. */
export function renderAttestationWidget(container: HTMLElement, status: ChannelStatus | null, error?: WidgetError | null): void {
  const root = container.shadowRoot ?? container.attachShadow({ mode: 'open' });
  const view = describeStatus(status, error);
  const style = element('style');
  style.textContent = STYLES;
  const card = element('section', `card ${view.state}`);
  card.setAttribute('role', 'status');
  card.setAttribute('aria-label', view.title);
  card.dataset.state = view.state;

  const head = element('div', 'head');
  const icon = element('div', 'icon');
  icon.innerHTML = view.state === 'verified' ? CHECK : view.state === 'failed' ? CROSS : DOTS; // constant SVG only
  const text = element('div');
  text.append(element('p', 'title', view.title), element('p', 'subtitle', view.subtitle));
  head.append(icon, text);
  card.append(head);

  if (view.rows.length > 0) {
    const list = element('dl');
    for (const row of view.rows) {
      const value = element('dd');
      value.dataset.field = row.label;
      if (row.badge !== undefined) value.append(element('span', `badge ${row.badge}`, row.value));
      else {
        const span = element('span', row.mono ? 'mono' : undefined, row.value);
        if (row.full !== undefined) span.title = row.full;
        value.append(span);
      }
      if (row.full !== undefined) value.append(copyButton(row.full, row.label));
      list.append(element('dt', undefined, row.label), value);
    }
    card.append(list);
  }
  if (view.state === 'verified') card.append(element('div', 'foot', 'STEVE · verified in this browser by the enclave service worker'));
  root.replaceChildren(style, card);
}

/** Registers `<steve-attestation>` (once); set its `status` and `error` properties to update it. */
export function defineAttestationWidget(tagName = 'steve-attestation'): void {
  if (customElements.get(tagName) !== undefined) return;
  class SteveAttestationElement extends HTMLElement {
    #status: ChannelStatus | null = null;
    #error: WidgetError | null = null;
    connectedCallback(): void {
      renderAttestationWidget(this, this.#status, this.#error);
    }
    get status(): ChannelStatus | null {
      return this.#status;
    }
    set status(value: ChannelStatus | null) {
      this.#status = value;
      renderAttestationWidget(this, this.#status, this.#error);
    }
    get error(): WidgetError | null {
      return this.#error;
    }
    set error(value: WidgetError | null) {
      this.#error = value;
      renderAttestationWidget(this, this.#status, this.#error);
    }
  }
  customElements.define(tagName, SteveAttestationElement);
}
