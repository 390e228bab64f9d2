/**
 * The worker's IndexedDB helper (database.ts) without a browser: a hand-made IDBFactory whose requests
 * answer only when the test says so. What is shown: the upgrade creates only the missing stores (version
 * 1's TOFU records are kept), and an operation that gets no answer fails after IDB_TIMEOUT_MS with its
 * transaction aborted and the connection closed, rather than holding a fetch or a command forever. The
 * real IndexedDB is exercised in Chromium (test/browser/browser.e2e.test.ts).
 */

import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONFIG_STORE, DB_NAME, DB_VERSION, IDB_TIMEOUT_MS, TOFU_STORE, withStore } from './database.js';

interface FakeRequest {
  result: unknown;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
  onupgradeneeded?: (() => void) | null;
}

const request = (result: unknown = undefined): FakeRequest => ({ result, error: null, onsuccess: null, onerror: null });

/** A database with `existing` stores whose `get` requests never answer on their own. */
function fakeFactory(existing: string[], options: { openAnswers: boolean }) {
  const created: string[] = [];
  const log: string[] = [];
  const pendingGets: FakeRequest[] = [];
  const db = {
    objectStoreNames: { contains: (name: string) => existing.includes(name) || created.includes(name) },
    createObjectStore: (name: string) => created.push(name),
    onversionchange: null as (() => void) | null,
    close: () => log.push('close'),
    transaction(store: string, mode: string) {
      log.push(`transaction ${store} ${mode}`);
      const transaction = {
        oncomplete: null as (() => void) | null,
        onabort: null as (() => void) | null,
        onerror: null as (() => void) | null,
        error: null as unknown,
        abort() {
          log.push('abort');
          transaction.error = new Error('AbortError');
          for (const get of pendingGets.splice(0)) get.onerror?.();
          transaction.onabort?.();
        },
        objectStore: () => ({
          get() {
            const get = request();
            pendingGets.push(get);
            return get;
          },
        }),
      };
      return transaction;
    },
  };
  const factory = {
    open(name: string, version: number) {
      log.push(`open ${name} ${version}`);
      const open = request(db);
      if (options.openAnswers) {
        queueMicrotask(() => {
          open.onupgradeneeded?.();
          open.onsuccess?.();
        });
      }
      return open;
    },
  };
  return { factory: factory as unknown as IDBFactory, created, log };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('worker database', () => {
  it('upgrades steve-tofu to version 2 by adding the config store beside the TOFU records', async () => {
    expect([DB_NAME, DB_VERSION]).toEqual(['steve-tofu', 2]);
    vi.useFakeTimers();
    const { factory, created, log } = fakeFactory([TOFU_STORE], { openAnswers: true });
    const result = withStore(factory, CONFIG_STORE, 'readonly', (store) => store.get('scope'));
    const outcome = result.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    await vi.advanceTimersByTimeAsync(IDB_TIMEOUT_MS);
    expect(created).toEqual([CONFIG_STORE]);
    expect(await outcome).toBe(`IndexedDB did not answer within ${IDB_TIMEOUT_MS} ms`);
    // The transaction is aborted, so nothing it held commits late; the connection is closed.
    expect(log).toEqual(['open steve-tofu 2', 'transaction config readonly', 'abort', 'close']);
  });

  it('fails an open that never answers (blocked by another connection) after the timeout', async () => {
    vi.useFakeTimers();
    const { factory, log } = fakeFactory([TOFU_STORE, CONFIG_STORE], { openAnswers: false });
    const outcome = withStore(factory, TOFU_STORE, 'readwrite', (store) => store.get('x')).then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    await vi.advanceTimersByTimeAsync(IDB_TIMEOUT_MS - 1);
    expect(log).toEqual(['open steve-tofu 2']);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toBe(`IndexedDB did not answer within ${IDB_TIMEOUT_MS} ms`);
  });
});
