/**
 * What the page and the enclave worker say to each other besides fetches: the status the worker keeps
 * (what was verified for the current session, the last failure), the commands the page may send over a
 * MessageChannel, and the response headers the worker adds. Types and names only; no behaviour.
 *
 * Header rules (ours): the worker strips every `x-steve-*` header the app sent, then adds its own, so a
 * page can trust that `x-steve-error` came from the worker (the channel failed) and `x-steve-session` from
 * a response that crossed the channel. The page's `send` adds `x-steve-config` (its config's id, config.ts)
 * to a request; the worker checks it and removes it before the request enters the channel.
 */

import type { Suite } from '../protocol/index.js';

/** Set on the worker's own 502/504 answers: the STEVE client's code and stage. */
export const ERROR_HEADER = 'x-steve-error';
export const STAGE_HEADER = 'x-steve-stage';
/** Set on answers that crossed the channel: the session id (hex) and the record's sequence. */
export const SESSION_HEADER = 'x-steve-session';
export const SEQUENCE_HEADER = 'x-steve-sequence';
export const HEADER_PREFIX = 'x-steve-';
/** On a request from the page's `send`: the id of the config the page configured (config.ts workerConfigId). */
export const CONFIG_HEADER = 'x-steve-config';

/** The body of every answer the worker makes up when the channel failed (502, or 504 on a timeout). */
export const CHANNEL_FAILED_BODY = '{"error":"secure channel failed"}';

/** How the PCRs were trusted: a pinned profile, or trust on first use recorded now / matched a record. */
export type TrustResult = { policy: 'pinned'; profile: string } | { policy: 'tofu'; result: 'tofu-recorded' | 'tofu-matched' };

/** What the worker verified for one session (display data; the decisions were the STEVE client's). */
export interface VerifiedSession {
  /** Hex of the 16-byte session id. */
  sessionId: string;
  suite: Suite;
  trust: TrustResult;
  /** PCR0-2 (and any other non-zero PCR), hex, by index. */
  pcrs: Array<{ index: number; hex: string }>;
  moduleId: string;
  /** The document's timestamp, ms since the epoch. */
  documentTimeMs: number;
  /** Hex SHA-256 of cabundle[0], the root the chain was checked against. */
  rootSha256: string;
  /** When the worker started establishing this session, ms since the epoch. */
  createdAtMs: number;
}

export interface ChannelFailure {
  code: string;
  stage: string;
  message: string;
  /** The worker's HTTP status for it (502, or 504 on a timeout). */
  status: number;
  atMs: number;
}

export interface ChannelStatus {
  /** `verified`: the last exchange crossed a verified session; `failed`: the last one failed; `idle`: none yet. */
  state: 'idle' | 'verified' | 'failed';
  /** The worker's scope, enclave origin and suite (null while it has no usable config). */
  scope: string;
  origin: string | null;
  suite: Suite | null;
  policy: 'pinned' | 'tofu' | null;
  /** The id of the config in use (hex SHA-256 of its JSON, config.ts), or null while it has none. */
  configId: string | null;
  /** The names of the pinned profiles, when pinned. */
  profiles: string[];
  session: VerifiedSession | null;
  lastError: ChannelFailure | null;
  requests: { succeeded: number; failed: number };
}

export type WorkerCommand =
  /**
   * Use this config (normalised JSON text, config.ts): validated, stored, then in use; answers the status.
   * The same config again changes nothing.
   */
  | { type: 'steve/configure'; config: string }
  /** The current status. */
  | { type: 'steve/status' }
  /** End the current session; the next request establishes (and verifies) a new one. */
  | { type: 'steve/rotate' }
  /** End the session, forget the TOFU record of this scope/origin/suite, clear the status. */
  | { type: 'steve/reset' }
  /** Take control of pages that loaded without the worker (a hard reload bypasses it). */
  | { type: 'steve/claim' };

export type WorkerReply = { ok: true; status: ChannelStatus } | { ok: false; error: { code: string; stage: string; message: string } };

export const COMMAND_TYPES: ReadonlySet<string> = new Set(['steve/configure', 'steve/status', 'steve/rotate', 'steve/reset', 'steve/claim']);
