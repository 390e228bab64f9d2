/**
 * init/'s public surface: the configuration, the boot steps and their runner, the supervisor, the app
 * state messages the agent understands, and `runInit`, which the CLI's `init` subcommand calls.
 */

export { InitError, type InitErrorCode } from './errors.js';
export { parseInitConfig, DEFAULT_RESTART_POLICY, type InitConfig, type RestartPolicy, type ServiceConfig, type InterfaceConfig } from './config.js';
export { loadInitConfig, configPath } from './config-file.js';
export { parseProcfile, procfileCommand } from './procfile.js';
export { canonicalJson, measureConfig, type ConfigMeasurement } from './measurement.js';
export { runBootSteps, type BootStep, type BootReport, type StepResult } from './steps.js';
export { createBootSteps, systemActions, type BootContext, type SystemActions } from './boot-steps.js';
export { createSupervisor, spawnProcess, type Supervisor, type SupervisorSnapshot, type ChildState } from './supervisor.js';
export { parseAppStateMessage, appStateMessage, isAppStateRequest, APP_STATE_REQUEST, INIT_IPC_ENV, type AppState } from './app-state.js';
export { runInit, type RunInitOptions } from './main.js';
export { createInitLogger } from './log.js';
export { runInitCommand, INIT_USAGE, INIT_OPTIONS } from './command.js';
