/**
 * AgentError: the one error class of the agent (wiring, config, CLI, the remote verifier).
 * `AGENT_USAGE` and `AGENT_CONFIG` mark input the user must fix (exit status 2).
 */

export type AgentErrorCode =
  | 'AGENT_USAGE'
  | 'AGENT_IO'
  | 'AGENT_CONFIG'
  | 'AGENT_MANIFEST'
  | 'AGENT_METADATA'
  | 'AGENT_BUSY'
  /** The native addon, or its AES-256-GCM, cannot be loaded (agent/aes-gcm-native.ts): no fallback. */
  | 'AGENT_NATIVE_UNAVAILABLE'
  | 'AGENT_VERIFY_FETCH'
  | 'AGENT_VERIFY_RESPONSE'
  | 'AGENT_VERIFY_MANIFEST'
  | 'AGENT_VERIFY_TOFU'
  | 'AGENT_VERIFY_BOOTSTRAP'
  /** `verify --eif`: the document's PCRs differ from those computed from the local EIF. */
  | 'AGENT_VERIFY_EIF';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  /** Every problem found, for errors that gather several (configuration). */
  readonly problems: readonly string[];
  /**
   * Structured, public facts about a verdict for a machine-readable report (`verify --json` prints the
   * per-path bootstrap results of an `AGENT_VERIFY_BOOTSTRAP` failure). Never secrets.
   */
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown; problems?: readonly string[]; detail?: Readonly<Record<string, unknown>> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.problems = options?.problems ?? [message];
    this.detail = options?.detail;
  }
}
