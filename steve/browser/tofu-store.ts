/**
 * Trust on first use for the enclave worker: the STEVE client's `TofuStore` kept in IndexedDB, one record
 * per (worker scope, enclave origin, suite), so two apps on one origin, two enclaves, or one enclave's two
 * suites never share a pin. The client calls `save` only after a whole establishment succeeded
 * (steve/client/pcr-policy.ts); `clear` is the user's explicit "forget this enclave" (the worker's reset).
 * The database is shared with the worker's config (database.ts). Web-standard only.
 */

import type { TofuStore } from '../client/index.js';
import type { Suite } from '../protocol/index.js';
import { TOFU_STORE, withStore } from './database.js';

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

export function createIndexedDbTofuStore(key: TofuKey, factory: IDBFactory = indexedDB): IndexedDbTofuStore {
  // An array key: IndexedDB compares it element by element, so no separator can be smuggled in.
  const recordKey = [key.scope, key.origin, key.suite];
  return {
    async load() {
      const record = (await withStore(factory, TOFU_STORE, 'readonly', (store) => store.get(recordKey))) as TofuRecord | undefined;
      if (record === undefined) return null;
      if (!Array.isArray(record.pcrs)) throw new TypeError('the stored TOFU record is malformed');
      return new Map(record.pcrs.map(([index, value]) => [index, new Uint8Array(value)]));
    },
    async save(pcrs) {
      const record: TofuRecord = { pcrs: [...pcrs].map(([index, value]) => [index, value.slice()]) };
      await withStore(factory, TOFU_STORE, 'readwrite', (store) => store.put(record, recordKey));
    },
    async clear() {
      await withStore(factory, TOFU_STORE, 'readwrite', (store) => store.delete(recordKey));
    },
  };
}
