/**
 * Boot steps as data: each step is `{ name, fatal, run(context) }`, and `runBootSteps` runs them in order,
 * logging each with its duration. A failed fatal step stops the boot (`INIT_STEP_FAILED`); a failed
 * non-fatal step is logged as a warning and the boot goes on. The steps themselves are in
 * init/boot-steps.ts; this file knows nothing about what they do.
 *
 * Log records (one logger, constant messages, data in the object):
 *   info  'boot step done'     { step, durationMs, ...what the step returned }
 *   info  'boot step skipped'  { step, durationMs, reason }
 *   warn  'boot step failed'   { step, fatal: false, durationMs, err: { code, message } }
 *   error 'boot step failed'   { step, fatal: true, durationMs, err: { code, message } }
 *   error 'boot stopped'       { step, code: 'INIT_STEP_FAILED' }
 *   info  'boot done'          { durationMs, steps }
 */

import { InitError } from './errors.js';
import { errorData, type Logger } from './log.js';

/** What a step may return: data for its log record, or `{ skipped: reason }` when it had nothing to do. */
export type StepOutcome = { skipped: string } | Record<string, unknown> | void;

export interface BootStep<C> {
  readonly name: string;
  /** A fatal step's failure stops the boot; a non-fatal one is logged and the boot goes on. */
  readonly fatal: boolean;
  run(context: C): Promise<StepOutcome> | StepOutcome;
}

export interface StepResult {
  name: string;
  fatal: boolean;
  outcome: 'done' | 'skipped' | 'failed';
  durationMs: number;
  error?: { code: string; message: string };
}

export interface BootReport {
  ok: boolean;
  results: StepResult[];
  /** The fatal error that stopped the boot: `INIT_STEP_FAILED` with the step's error as `cause`. */
  error: InitError | null;
}

export interface RunBootStepsOptions {
  logger: Logger;
  /** Milliseconds from a monotonic clock; default performance.now. */
  now?: () => number;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

function isSkipped(outcome: StepOutcome): outcome is { skipped: string } {
  return typeof outcome === 'object' && outcome !== null && typeof (outcome as { skipped?: unknown }).skipped === 'string';
}

export async function runBootSteps<C>(steps: readonly BootStep<C>[], context: C, options: RunBootStepsOptions): Promise<BootReport> {
  const { logger } = options;
  const now = options.now ?? (() => performance.now());
  const bootStarted = now();
  const results: StepResult[] = [];
  for (const step of steps) {
    const started = now();
    let outcome: StepOutcome;
    try {
      outcome = await step.run(context);
    } catch (err) {
      const durationMs = round(now() - started);
      const error = errorData(err);
      results.push({ name: step.name, fatal: step.fatal, outcome: 'failed', durationMs, error });
      if (!step.fatal) {
        logger.warn({ step: step.name, fatal: false, durationMs, err: error }, 'boot step failed');
        continue;
      }
      logger.error({ step: step.name, fatal: true, durationMs, err: error }, 'boot step failed');
      logger.error({ step: step.name, code: 'INIT_STEP_FAILED' }, 'boot stopped');
      return { ok: false, results, error: new InitError('INIT_STEP_FAILED', `boot step ${step.name} failed: ${error.code}`, { cause: err }) };
    }
    const durationMs = round(now() - started);
    if (isSkipped(outcome)) {
      results.push({ name: step.name, fatal: step.fatal, outcome: 'skipped', durationMs });
      logger.info({ step: step.name, durationMs, reason: outcome.skipped }, 'boot step skipped');
    } else {
      results.push({ name: step.name, fatal: step.fatal, outcome: 'done', durationMs });
      logger.info({ ...(outcome ?? {}), step: step.name, durationMs }, 'boot step done');
    }
  }
  logger.info({ durationMs: round(now() - bootStarted), steps: steps.length }, 'boot done');
  return { ok: true, results, error: null };
}
