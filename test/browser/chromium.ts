/**
 * Headless Chromium for the browser tests: Debian's /usr/bin/chromium (installed by test/browser/setup.sh,
 * never downloaded by a tool) driven through playwright-core. Playwright gives every launch a fresh,
 * empty profile directory of its own (it refuses a `--user-data-dir` argument), and every test takes a
 * new context, so no service worker, IndexedDB record or cache leaks between tests.
 */

import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM_PATH);

/**
 * Flags for this sandbox: root needs --no-sandbox; no GPU; no QUIC; nothing that phones home (first-run,
 * background networking, component updates, sync). http://127.0.0.1 is a secure context, so service
 * workers run without TLS.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}
