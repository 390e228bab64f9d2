/**
 * The boot-step runner with injected steps and a scripted clock: the exact log record of each outcome
 * (done with the step's data, skipped, non-fatal failure, fatal failure and the stop), the order, and
 * that nothing after a fatal failure runs.
 */

import { describe, expect, it } from 'vitest';

import { InitError } from './errors.js';
import { runBootSteps, type BootStep } from './steps.js';
import { memoryLogger } from './test-support.js';

/** A clock that advances 1.25 ms per reading, so every duration is exact. */
function steppingClock(): () => number {
  let t = 100;
  return () => (t += 1.25);
}

const step = (name: string, fatal: boolean, run: BootStep<string[]>['run']): BootStep<string[]> => ({ name, fatal, run });

describe('runBootSteps', () => {
  it('runs every step in order and logs each with its duration', async () => {
    const { logger, records } = memoryLogger();
    const ran: string[] = [];
    const steps = [
      step('one', true, (ctx) => void ctx.push('one')),
      step('two', true, async (ctx) => {
        ctx.push('two');
        return { mounted: ['/proc'] };
      }),
      step('three', false, (ctx) => {
        ctx.push('three');
        return { skipped: 'nothing to do' };
      }),
    ];
    const report = await runBootSteps(steps, ran, { logger, now: steppingClock() });
    expect(ran).toEqual(['one', 'two', 'three']);
    expect(report).toEqual({
      ok: true,
      error: null,
      results: [
        { name: 'one', fatal: true, outcome: 'done', durationMs: 1.3 },
        { name: 'two', fatal: true, outcome: 'done', durationMs: 1.3 },
        { name: 'three', fatal: false, outcome: 'skipped', durationMs: 1.3 },
      ],
    });
    expect(records).toEqual([
      { level: 30, msg: 'boot step done', step: 'one', durationMs: 1.3 },
      { level: 30, msg: 'boot step done', mounted: ['/proc'], step: 'two', durationMs: 1.3 },
      { level: 30, msg: 'boot step skipped', step: 'three', durationMs: 1.3, reason: 'nothing to do' },
      { level: 30, msg: 'boot done', durationMs: 8.8, steps: 3 },
    ]);
  });

  it('a step cannot overwrite step or durationMs with its own data', async () => {
    const { logger, records } = memoryLogger();
    await runBootSteps([step('real', true, () => ({ step: 'fake', durationMs: -1 }))], [], { logger, now: steppingClock() });
    expect(records[0]).toMatchObject({ step: 'real', durationMs: 1.3 });
  });

  it('a failed non-fatal step is a warning and the boot goes on', async () => {
    const { logger, records } = memoryLogger();
    const ran: string[] = [];
    const report = await runBootSteps(
      [
        step('files', false, () => {
          throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        }),
        step('after', true, (ctx) => void ctx.push('after')),
      ],
      ran,
      { logger, now: steppingClock() },
    );
    expect(report.ok).toBe(true);
    expect(ran).toEqual(['after']);
    expect(records[0]).toEqual({ level: 40, msg: 'boot step failed', step: 'files', fatal: false, durationMs: 1.3, err: { code: 'EACCES', message: 'EACCES: permission denied' } });
    expect(report.results[0]).toEqual({ name: 'files', fatal: false, outcome: 'failed', durationMs: 1.3, error: { code: 'EACCES', message: 'EACCES: permission denied' } });
  });

  it('a failed fatal step stops the boot with INIT_STEP_FAILED; later steps never run', async () => {
    const { logger, records } = memoryLogger();
    const ran: string[] = [];
    const cause = new InitError('INIT_EPERM', 'mount proc on /proc (proc): Operation not permitted', { errno: 'EPERM' });
    const report = await runBootSteps(
      [
        step('mounts', true, async () => {
          throw cause;
        }),
        step('loopback', true, (ctx) => void ctx.push('loopback')),
      ],
      ran,
      { logger, now: steppingClock() },
    );
    expect(ran).toEqual([]);
    expect(report.ok).toBe(false);
    expect(report.error).toBeInstanceOf(InitError);
    expect(report.error!.code).toBe('INIT_STEP_FAILED');
    expect(report.error!.cause).toBe(cause);
    expect(records).toEqual([
      { level: 50, msg: 'boot step failed', step: 'mounts', fatal: true, durationMs: 1.3, err: { code: 'INIT_EPERM', message: 'mount proc on /proc (proc): Operation not permitted' } },
      { level: 50, msg: 'boot stopped', step: 'mounts', code: 'INIT_STEP_FAILED' },
    ]);
  });

  it('a thrown non-Error is still a coded record', async () => {
    const { logger, records } = memoryLogger();
    await runBootSteps([step('odd', false, () => Promise.reject('plain string'))], [], { logger, now: steppingClock() });
    expect(records[0]!.err).toEqual({ code: 'error', message: 'plain string' });
  });
});
