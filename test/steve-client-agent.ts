/**
 * The real agent for steve/client/client.e2e.test.ts, on loopback port 0 with the mock NSM: it lives in
 * test/ because steve/ must not import agent/ (test/boundaries.test.ts).
 */

import { pino } from 'pino';
import { startAgent, type RunningAgent } from '../agent/agent.js';
import { testAgentConfig, type TestAgentConfig } from './agent-config.js';
import { DEMO_MANIFEST_JSON } from '../agent/demo/manifest.js';
import { parseManifest } from '../agent/manifest.js';
import { openMockNsm, type MockPki, type Nsm } from '../nsm/index.js';
import type { Suite } from '../steve/index.js';


export interface TestAgent {
  /** `http://127.0.0.1:port`. */
  origin: string;
  agent: RunningAgent;
  nsm: Nsm;
  stop(): Promise<void>;
}

/**
 * Starts the real agent (mock NSM on `pki`, pinned `suite`) on 127.0.0.1:0 in front of `upstream`;
 * `config` overrides other settings (CORS origins, ...).
 */
export async function startTestAgent(options: {
  pki: MockPki;
  suite: Suite;
  upstream: string;
  pcrs?: ReadonlyMap<number, Uint8Array>;
  config?: Partial<TestAgentConfig>;
}): Promise<TestAgent> {
  const nsm = openMockNsm({ pki: options.pki, logger: { warn() {} }, ...(options.pcrs !== undefined ? { pcrs: options.pcrs } : {}) });
  const agent = await startAgent({
    config: testAgentConfig({ upstream: options.upstream, nsmQueueMax: 64, keyExchange: options.suite, ...options.config }),
    nsm,
    manifest: parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'test manifest'),
    logger: pino({ level: 'silent' }),
  });
  return {
    origin: `http://${agent.addresses.public}`,
    agent,
    nsm,
    async stop() {
      await agent.stop();
      await nsm.close();
    },
  };
}
