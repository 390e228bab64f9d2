/**
 * `runInit`: the init process from a loaded configuration to its exit status. It runs the boot steps
 * (init/boot-steps.ts), then starts the configured services in order (the bridges, for one), the agent
 * and the app, each under its own supervisor with the same restart policy, and waits for SIGTERM or
 * SIGINT. On a signal it stops them in reverse: the app and the agent at once, then the services one by
 * one from the last; each gets SIGTERM and, after `shutdownDeadlineMs`, SIGKILL. So the bridges carry
 * traffic until the app is gone, and a service never loses one started before it.
 *
 * The agent is spawned with an IPC channel; init sends it the app's state on every change and whenever it
 * asks (init/app-state.ts), and the agent shows it under `app` in `/healthz`. A child that crash-loops is
 * left `failed` while the rest keeps running (a failed app stays visible through the agent's health);
 * once neither the agent nor the app is left running, init exits: services alone serve nothing.
 *
 * Exit status: 0 after a signal with no child failed; 1 when the boot failed, a child crash-looped, or
 * nothing was left to supervise. (Config errors are the CLI's: 2.)
 *
 * Orphans: init makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so processes orphaned below it
 * (a daemonising app) are re-parented to it rather than to PID 1, and reaps them on SIGCHLD and once a
 * second (init/reaper.ts). This also makes init a correct PID 1. Node itself cannot wait for arbitrary
 * children, and libuv must keep reaping its own: the reaper skips them. When init is PID 1 and returns,
 * the kernel panics, which ends the enclave: that is the intended end of an enclave whose init stopped.
 */

import type { EventEmitter } from 'node:events';

import { bytesToHex, openNsm } from '../nsm/index.js';

import { appStateFromSnapshot, appStateMessage, INIT_IPC_ENV, isAppStateRequest, type AppState } from './app-state.js';
import { createBootSteps, lazyNsm, systemActions, type BootContext, type SystemActions } from './boot-steps.js';
import type { InitConfig } from './config.js';
import { InitError } from './errors.js';
import { errorData, type Logger } from './log.js';
import { measureConfig } from './measurement.js';
import { reapOrphans, setChildSubreaper } from './native.js';
import { startOrphanReaper, type OrphanReaper } from './reaper.js';
import { runBootSteps, type BootStep } from './steps.js';
import { createSupervisor, type Clock, type SpawnChild, type Supervisor, type SupervisorSnapshot } from './supervisor.js';

export interface ReaperActions {
  setChildSubreaper(): void;
  reapOrphans(ownPids: readonly number[]): number[];
}

export interface RunInitOptions {
  config: InitConfig;
  logger: Logger;
  /** argv prefix that runs this package's CLI (`[process.execPath, cli.js]`), for `agent.args` and services' `args`. */
  cli?: readonly string[];
  /** Where SIGTERM and SIGINT come from; default `process`. */
  signals?: EventEmitter;
  /** Base environment of every child; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Tests: system actions, NSM opener, spawn, clock, reaper (null: none). */
  system?: SystemActions;
  openNsm?: typeof openNsm;
  spawnChild?: SpawnChild;
  clock?: Clock;
  reaper?: ReaperActions | null;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

const realReaper: ReaperActions = { setChildSubreaper, reapOrphans };

export async function runInit(options: RunInitOptions): Promise<number> {
  const { config, logger } = options;
  const signals = options.signals ?? process;
  const baseEnv = options.env ?? process.env;
  const reaperActions = options.reaper === undefined ? realReaper : options.reaper;
  const measurement = measureConfig(config);
  logger.info({ pid: process.pid, nsm: config.nsm, configSha384: bytesToHex(measurement.digest) }, 'init starting');

  // Signals are taken from the start: after one during the boot, nothing more is started.
  let signalled: NodeJS.Signals | null = null;
  /** Set once the children are being stopped, whatever the reason: later signals only log. */
  let stopping = false;
  let onSignal: ((signal: NodeJS.Signals) => void) | null = null;
  const handlers = (['SIGTERM', 'SIGINT'] as const).map((name) => {
    const handler = () => {
      if (signalled !== null || stopping) {
        logger.warn({ signal: name }, 'signal received during shutdown; waiting for the deadline');
        return;
      }
      signalled = name;
      onSignal?.(name);
    };
    signals.on(name, handler);
    return { name, handler };
  });

  /** The services in start order. */
  const services: Supervisor[] = [];
  let agent: Supervisor | null = null;
  let app: Supervisor | null = null;
  let reaper: OrphanReaper | null = null;
  let everythingEnded: (() => void) | null = null;

  const appState = (): AppState =>
    app === null ? { state: 'starting', pid: null, restarts: 0, lastExit: null } : appStateFromSnapshot(app.snapshot());
  const tellAgent = () => agent?.send(appStateMessage(appState()));
  const checkEnded = () => {
    const live = [agent, app].filter((s): s is Supervisor => s !== null && !['stopped', 'failed'].includes(s.snapshot().state));
    if (live.length === 0) everythingEnded?.();
  };

  function supervise(name: string, command: readonly string[], env: NodeJS.ProcessEnv, ipc: boolean, cwd: string | null, hooks: { onChange(s: SupervisorSnapshot): void; onMessage?(m: unknown): void }): Supervisor {
    return createSupervisor({
      name,
      spec: { command, env, ipc, ...(cwd !== null ? { cwd } : {}) },
      restart: config.restart,
      shutdownDeadlineMs: config.shutdownDeadlineMs,
      logger,
      ...(options.spawnChild ? { spawnChild: options.spawnChild } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      onChange: (snapshot) => {
        hooks.onChange(snapshot);
        if (snapshot.state === 'failed') checkEnded();
      },
      ...(hooks.onMessage ? { onMessage: hooks.onMessage } : {}),
    });
  }

  const startSteps: BootStep<BootContext>[] = [
    {
      name: 'reaper',
      fatal: false,
      run() {
        if (reaperActions === null) return { skipped: 'no reaper' };
        reaperActions.setChildSubreaper();
        reaper = startOrphanReaper({
          reap: reaperActions.reapOrphans,
          ownPids: () => [...services.map((s) => s.pid()), agent?.pid(), app?.pid()].filter((pid): pid is number => typeof pid === 'number'),
          logger,
          signals,
        });
        return { subreaper: true, pid1: process.pid === 1 };
      },
    },
    {
      name: 'services',
      fatal: true,
      run() {
        if (signalled !== null) return { skipped: `${signalled} received` };
        if (config.services.length === 0) return { skipped: 'no services configured' };
        // Every command first, so a service that cannot be resolved starts none of them.
        const commands = config.services.map((service) => {
          if (service.command !== null) return service.command;
          if (options.cli === undefined) throw new InitError('INIT_CONFIG_INVALID', `service ${service.name}: "args" needs the path of this CLI; use "command"`);
          return [...options.cli, ...service.args];
        });
        config.services.forEach((service, i) => {
          const supervisor = supervise(service.name, commands[i]!, { ...baseEnv, ...service.env }, false, null, { onChange: () => {} });
          services.push(supervisor);
          supervisor.start();
        });
        return { started: services.map((s) => ({ name: s.name, pid: s.pid() })) };
      },
    },
    {
      name: 'agent',
      fatal: true,
      run() {
        if (signalled !== null) return { skipped: `${signalled} received` };
        if (config.agent === null) return { skipped: 'agent is null' };
        let command = config.agent.command;
        if (command === null) {
          if (options.cli === undefined) throw new InitError('INIT_CONFIG_INVALID', 'agent.args needs the path of this CLI; use agent.command');
          command = [...options.cli, 'run', ...config.agent.args];
        }
        agent = supervise('agent', command, { ...baseEnv, ...config.agent.env, [INIT_IPC_ENV]: '1' }, true, null, {
          onChange: (snapshot) => {
            if (snapshot.state === 'running') tellAgent();
          },
          onMessage: (message) => {
            if (isAppStateRequest(message)) tellAgent();
          },
        });
        agent.start();
        return { pid: agent.pid() };
      },
    },
    {
      name: 'app',
      fatal: true,
      run() {
        if (signalled !== null) return { skipped: `${signalled} received` };
        app = supervise('app', config.app.command, { ...baseEnv, ...config.app.env }, false, config.app.cwd, { onChange: () => tellAgent() });
        app.start();
        return { pid: app.pid(), command: config.app.command[0] };
      },
    },
  ];

  const nsm = lazyNsm(config, logger, options.openNsm);
  const context: BootContext = { config, system: options.system ?? systemActions, logger, nsm: nsm.nsm };
  let status = EXIT_OK;
  try {
    const report = await runBootSteps([...createBootSteps(), ...startSteps], context, { logger });
    await nsm.close().catch((err: unknown) => logger.warn({ err: errorData(err) }, 'NSM close failed'));
    if (!report.ok) {
      status = EXIT_FAILURE;
    } else if (signalled === null) {
      const ended = await new Promise<'signal' | 'ended'>((resolve) => {
        onSignal = () => resolve('signal');
        everythingEnded = () => resolve('ended');
        checkEnded();
      });
      if (ended === 'ended') {
        logger.error({ code: 'INIT_CRASH_LOOP' }, 'nothing left to supervise');
        status = EXIT_FAILURE;
      }
    }
    if (signalled !== null) logger.info({ signal: signalled }, 'signal received; stopping');
  } finally {
    stopping = true;
    const [agentEnd, appEnd] = await Promise.all([(agent as Supervisor | null)?.stop(), (app as Supervisor | null)?.stop()]);
    const serviceEnds: Record<string, object | null> = {};
    for (const service of [...services].reverse()) {
      const end = await service.stop();
      serviceEnds[service.name] = summary(end);
      if (end.state === 'failed') status = EXIT_FAILURE;
    }
    (reaper as OrphanReaper | null)?.stop();
    for (const { name, handler } of handlers) signals.off(name, handler);
    if (agentEnd?.state === 'failed' || appEnd?.state === 'failed') status = EXIT_FAILURE;
    logger.info({ exitCode: status, app: summary(appEnd), agent: summary(agentEnd), services: serviceEnds }, 'init stopped');
  }
  return status;
}

function summary(snapshot: SupervisorSnapshot | undefined): object | null {
  if (snapshot === undefined) return null;
  return { state: snapshot.state, restarts: snapshot.restarts, lastExit: snapshot.lastExit };
}

