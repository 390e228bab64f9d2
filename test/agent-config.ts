/**
 * One loopback configuration for tests that start the real agent in process: every listener on
 * 127.0.0.1 port 0, the mock NSM in a test deployment, the shipped defaults elsewhere; each test
 * overrides what it is about. It must not be used outside tests (`deployment: 'test'` admits the mock).
 */

import type { AgentOptions } from '../agent/agent.js';

export type TestAgentConfig = AgentOptions['config'];

export function testAgentConfig(overrides: Partial<TestAgentConfig> = {}): TestAgentConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    attestationListen: null,
    internalListen: { host: '127.0.0.1', port: 0 },
    // Nothing listens on port 9 (discard); tests that need an app pass its URL.
    upstream: 'http://127.0.0.1:9/',
    metadataPath: null,
    corsOrigins: [],
    allowPlaintextFallback: false,
    nsmConcurrency: 4,
    nsmQueueMax: 256,
    nsmTimeoutMs: 10_000,
    shutdownTimeoutMs: 2000,
    nsm: 'mock',
    deployment: 'test',
    ...overrides,
  };
}
