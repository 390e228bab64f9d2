/**
 * The enclave worker's one IndexedDB database: the TOFU records (tofu-store.ts) and the worker's config
 * (config-store.ts), each in an object store of its own. Opening, upgrading and running one request per
 * transaction live here so the two stores cannot drift apart in how they do it. Web-standard only
 * (IndexedDB exists in pages and workers).
 *
 * The name stays `steve-tofu`, the database's name since the first release: renaming it would orphan the
 * TOFU records browsers already hold, and every enclave would be trusted on first use again. Version 2
 * added the `config` store; the upgrade only creates the stores that are missing, so records survive it.
 */

export const DB_NAME = 'steve-tofu';
export const DB_VERSION = 2;
/** TOFU records, keyed by [scope, enclave origin, suite] (version 1). */
export const TOFU_STORE = 'records';
/** The worker's config text, keyed by the registration's scope (version 2). */
export const CONFIG_STORE = 'config';
const STORES = [TOFU_STORE, CONFIG_STORE] as const;
export type StoreName = (typeof STORES)[number];

/**
 * Longest wait for one open + transaction. Ours: IndexedDB answers in milliseconds; a database that does
 * not (blocked by an upgrade, a stuck disk) fails the operation instead of holding a fetch or a command
 * forever. Below the page's 5 s command timeout (register.ts), so the page gets the worker's coded answer.
 */
export const IDB_TIMEOUT_MS = 3_000;

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

function openDatabase(factory: IDBFactory): Promise<IDBDatabase> {
  const request = factory.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    for (const name of STORES) if (!request.result.objectStoreNames.contains(name)) request.result.createObjectStore(name);
  };
  return promised(request).then((db) => {
    // A newer worker version upgrading the database must not wait for this connection.
    db.onversionchange = () => db.close();
    return db;
  });
}

/**
 * Runs one request on `storeName` in its own transaction and waits for the transaction to commit, within
 * `timeoutMs` (the transaction is aborted when the time is up, so nothing commits after a timeout).
 */
export async function withStore<T>(
  factory: IDBFactory,
  storeName: StoreName,
  mode: IDBTransactionMode,
  run: (store: IDBObjectStore) => IDBRequest<T>,
  timeoutMs: number = IDB_TIMEOUT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let transaction: IDBTransaction | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        transaction?.abort();
      } catch {
        // Already committed or aborted: the timeout still wins the race below.
      }
      reject(new Error(`IndexedDB did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const work = (async () => {
    const db = await openDatabase(factory);
    try {
      transaction = db.transaction(storeName, mode);
      const committed = new Promise<void>((resolve, reject) => {
        transaction!.oncomplete = () => resolve();
        transaction!.onabort = transaction!.onerror = () => reject(transaction!.error ?? new Error('IndexedDB transaction failed'));
      });
      // When the request fails first, its error is the one reported; the abort that follows is not left unhandled.
      committed.catch(() => undefined);
      const result = await promised(run(transaction.objectStore(storeName)));
      await committed;
      return result;
    } finally {
      db.close();
    }
  })();
  work.catch(() => undefined); // When the timeout won, a late failure has no one to tell.
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
