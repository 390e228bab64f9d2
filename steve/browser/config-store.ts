/**
 * Where the enclave worker keeps its config between starts: IndexedDB (database.ts), one record per
 * registration scope holding the config's JSON text exactly as the worker accepted it. The browser stops
 * an idle worker and starts it again for the next fetch without the page; the worker reads this record
 * before it handles that fetch (config.ts explains the handshake). The text is parsed and validated again
 * on every load: storage is input like any other. Nothing here is secret. Web-standard only.
 */

import { CONFIG_STORE, withStore } from './database.js';

export interface WorkerConfigStore {
  /** The stored config text, or null when this scope has none. Throws when the record is malformed. */
  load(): Promise<string | null>;
  /** Replaces the stored config text; resolves once the transaction committed. */
  save(text: string): Promise<void>;
}

export function createIndexedDbConfigStore(scope: string, factory: IDBFactory = indexedDB): WorkerConfigStore {
  return {
    async load() {
      const value: unknown = await withStore(factory, CONFIG_STORE, 'readonly', (store) => store.get(scope));
      if (value === undefined) return null;
      if (typeof value !== 'string') throw new TypeError('the stored worker config is malformed');
      return value;
    },
    async save(text) {
      await withStore(factory, CONFIG_STORE, 'readwrite', (store) => store.put(text, scope));
    },
  };
}
