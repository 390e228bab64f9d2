/**
 * AgentError: the one error class of the agent (wiring, config, CLI). `AGENT_USAGE` marks a command
 * line the user must fix (exit status 2).
 */

export type AgentErrorCode = 'AGENT_USAGE' | 'AGENT_IO';

export class AgentError extends Error {
  readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
  }
}
