/**
 * Trust on first use for the enclave worker: the STEVE client's `TofuStore` kept in IndexedDB, one record
 * per (worker scope, enclave origin, suite), so two apps on one origin, two enclaves, or one enclave's two
 * suites never share a pin. The client calls `save` only after a whole establishment succeeded
 * (steve/client/pcr-policy.ts); `clear` is the user's explicit "forget this enclave" (the worker's reset).
 * Web-standard only (IndexedDB exists in pages and workers).
 */

import type { TofuStore } from '../client/index.js';
import type { Suite } from '../protocol/index.js';

const DB_NAME = 'steve-tofu';
const DB_VERSION = 1;
const STORE_NAME = 'records';

export interface TofuKey {
  scope: string;
  origin: string;
  suite: Suite;
}

/** What one record holds: PCR index -> value (IndexedDB clones Uint8Array as it is). */
interface TofuRecord {
  pcrs: Array<[number, Uint8Array]>;
}

export interface IndexedDbTofuStore extends TofuStore {
  clear(): Promise<void>;
}

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

function openDatabase(factory: IDBFactory): Promise<IDBDatabase> {
  const request = factory.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    if (!request.result.objectStoreNames.contains(STORE_NAME)) request.result.createObjectStore(STORE_NAME);
  };
  return promised(request);
}

/** Runs one request in its own transaction and waits for the transaction to commit. */
async function withStore<T>(factory: IDBFactory, mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDatabase(factory);
  try {
    const transaction = db.transaction(STORE_NAME, mode);
    const committed = new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onabort = transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'));
    });
    const result = await promised(run(transaction.objectStore(STORE_NAME)));
    await committed;
    return result;
  } finally {
    db.close();
  }
}

export function createIndexedDbTofuStore(key: TofuKey, factory: IDBFactory = indexedDB): IndexedDbTofuStore {
  // An array key: IndexedDB compares it element by element, so no separator can be smuggled in.
  const recordKey = [key.scope, key.origin, key.suite];
  return {
    async load() {
      const record = (await withStore(factory, 'readonly', (store) => store.get(recordKey))) as TofuRecord | undefined;
      if (record === undefined) return null;
      if (!Array.isArray(record.pcrs)) throw new TypeError('the stored TOFU record is malformed');
      return new Map(record.pcrs.map(([index, value]) => [index, new Uint8Array(value)]));
    },
    async save(pcrs) {
      const record: TofuRecord = { pcrs: [...pcrs].map(([index, value]) => [index, value.slice()]) };
      await withStore(factory, 'readwrite', (store) => store.put(record, recordKey));
    },
    async clear() {
      await withStore(factory, 'readwrite', (store) => store.delete(recordKey));
    },
  };
}
