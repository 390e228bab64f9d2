/**
 * What the attestation widget shows (describeStatus, the pure half of attestation-widget.ts). The DOM half
 * is looked at in Chromium by test/browser/browser.e2e.test.ts (and its screenshot).
 */

import { describe, expect, it } from 'vitest';
import { describeStatus, formatTime, shorten } from './attestation-widget.js';
import type { ChannelStatus } from './messages.js';

const status = (overrides: Partial<ChannelStatus> = {}): ChannelStatus => ({
  state: 'verified',
  scope: 'https://e.example/',
  origin: 'https://e.example',
  suite: 'X25519',
  policy: 'pinned',
  configId: 'cf'.repeat(32),
  profiles: ['prod'],
  session: {
    sessionId: '00112233445566778899aabbccddeeff',
    suite: 'X25519',
    trust: { policy: 'pinned', profile: 'prod' },
    pcrs: [0, 1, 2].map((index) => ({ index, hex: String(index).repeat(96) })),
    moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
    documentTimeMs: Date.UTC(2026, 4, 1, 12, 34, 56, 789),
    rootSha256: 'ff'.repeat(32),
    createdAtMs: 0,
  },
  lastError: null,
  requests: { succeeded: 1, failed: 0 },
  ...overrides,
});

describe('attestation widget', () => {
  it('shortens long values and formats document times', () => {
    expect(shorten('0123456789abcdef0123456789')).toBe('01234567…23456789');
    expect(shorten('0123456789')).toBe('0123456789');
    expect(formatTime(Date.UTC(2026, 4, 1, 12, 34, 56, 789))).toBe('2026-05-01 12:34:56 UTC');
    expect(formatTime(0)).toBe('unknown');
  });

  it('shows a verified session: trust, PCR0-2 with their full values, suite, session, module, time', () => {
    const view = describeStatus(status());
    expect(view.state).toBe('verified');
    expect(view.rows.map((row) => row.label)).toEqual(['Enclave', 'Trust', 'PCR0', 'PCR1', 'PCR2', 'Suite', 'Session', 'Module', 'Document']);
    expect(view.rows[1]).toMatchObject({ value: 'Pinned profile · prod', badge: 'good' });
    expect(view.rows[2]).toMatchObject({ value: `${'0'.repeat(8)}…${'0'.repeat(8)}`, full: '0'.repeat(96), mono: true });
    expect(view.rows[8]!.value).toBe('2026-05-01 12:34:56 UTC');
  });

  it('names the TOFU result', () => {
    const tofu = (result: 'tofu-recorded' | 'tofu-matched') => describeStatus(status({ session: { ...status().session!, trust: { policy: 'tofu', result } } })).rows[1];
    expect(tofu('tofu-recorded')).toMatchObject({ value: 'Trust on first use · recorded now', badge: 'info' });
    expect(tofu('tofu-matched')).toMatchObject({ value: 'Trust on first use · matched the record', badge: 'good' });
  });

  it('shows a failure with its code and stage; a page-side error wins over the status', () => {
    const failed = describeStatus(status({ state: 'failed', session: null, lastError: { code: 'STEVE_CLIENT_PCR', stage: 'pcr', message: 'no pinned PCR profile matches ("prod")', status: 502, atMs: 1 } }));
    expect(failed.state).toBe('failed');
    expect(failed.subtitle).toMatch(/nothing was sent/);
    expect(failed.rows.map((row) => [row.label, row.value])).toEqual([
      ['Enclave', 'https://e.example'],
      ['Error', 'STEVE_CLIENT_PCR'],
      ['Stage', "pcr · checking the enclave's measurements (PCRs)"],
      ['Detail', 'no pinned PCR profile matches ("prod")'],
    ]);
    const page = describeStatus(status(), { code: 'STEVE_BROWSER_UNSUPPORTED', stage: 'register' });
    expect(page.state).toBe('failed');
    expect(page.rows[1]!.value).toBe('STEVE_BROWSER_UNSUPPORTED');
  });

  it('is pending before the first request', () => {
    expect(describeStatus(null)).toMatchObject({ state: 'pending', rows: [] });
    expect(describeStatus(status({ state: 'idle', session: null })).state).toBe('pending');
  });
});
