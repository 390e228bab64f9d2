/**
 * The enclave service worker (bundled to /enclave-sw.js, registered at that plain URL): wires the
 * browser's service worker events to the worker logic in worker.ts. Its config comes from a page's
 * `steve/configure` command and is kept in IndexedDB (config.ts explains why), so a worker the browser
 * restarts after idling reads it again before it handles that fetch: worker.ts starts reading as this
 * script runs, and holds fetches until it is done.
 *
 * - install / activate: take over at once (skipWaiting, clients.claim), so the page that registered it
 *   is controlled without a reload, and a new build of this script replaces the old worker.
 * - fetch: requests to the enclave origin go through STEVE (worker.ts has the routing); the rest is left
 *   to the browser.
 * - message: commands (configure included) from same-origin pages over a MessageChannel port (messages.ts).
 * The service worker types are declared here: the project's `lib` is DOM, whose global is a window.
 */

import { COMMAND_TYPES, type WorkerCommand, type WorkerReply } from './messages.js';
import { createEnclaveWorker } from './worker.js';

interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(response: Promise<Response>): void;
}
interface ExtendableMessageEvent extends ExtendableEvent {
  readonly data: unknown;
  readonly origin: string;
  readonly ports: readonly MessagePort[];
}
interface ServiceWorkerScope {
  readonly location: { readonly origin: string };
  readonly registration: { readonly scope: string };
  readonly clients: { claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
  addEventListener(type: 'message', listener: (event: ExtendableMessageEvent) => void): void;
}

const scope = globalThis as unknown as ServiceWorkerScope;
const worker = createEnclaveWorker({ scope: scope.registration.scope });

scope.addEventListener('install', (event) => {
  event.waitUntil(scope.skipWaiting());
});

scope.addEventListener('activate', (event) => {
  event.waitUntil(scope.clients.claim());
});

scope.addEventListener('fetch', (event) => {
  const answer = worker.handleFetch(event.request);
  if (answer !== null) event.respondWith(answer);
});

scope.addEventListener('message', (event) => {
  const port = event.ports[0];
  const command = event.data as Partial<WorkerCommand> | null;
  // Only same-origin pages, only known commands, and only with a port to answer on: a config from
  // anywhere else is never looked at.
  if (port === undefined || event.origin !== scope.location.origin || typeof command !== 'object' || command === null || !COMMAND_TYPES.has(String(command.type))) return;
  const reply = (async (): Promise<WorkerReply> => {
    if (command.type === 'steve/claim') await scope.clients.claim();
    return worker.handleCommand(command as WorkerCommand);
  })();
  event.waitUntil(reply.then((answer) => port.postMessage(answer)));
});
