/**
 * `openNsm`: the one place a process turns a configured NSM mode into an `Nsm`. The mode is a required,
 * explicit value: `device` opens /dev/nsm and fails with NSM_DEVICE_UNAVAILABLE where there is none;
 * `mock` needs a mock PKI directory and logs a loud warning. Nothing falls back to anything.
 */

import { createNsm } from './client.js';
import { DEFAULT_NSM_DEVICE_PATH, openDeviceTransport } from './device.js';
import { NsmError } from './errors.js';
import { openMockNsm, type MockNsmLogger } from './mock.js';
import { loadMockPki } from './mock-pki.js';
import type { Nsm } from './types.js';

export type NsmMode = 'device' | 'mock';

export interface OpenNsmOptions {
  mode: NsmMode;
  /** Device path (mode `device`); default /dev/nsm. */
  devicePath?: string;
  /** Mock PKI directory written by `enclave-agent mock-pki` (mode `mock`, required). */
  mockPkiDir?: string;
  logger?: MockNsmLogger;
}

export async function openNsm(options: OpenNsmOptions): Promise<Nsm> {
  switch (options.mode) {
    case 'device':
      return createNsm(openDeviceTransport(options.devicePath ?? DEFAULT_NSM_DEVICE_PATH));
    case 'mock': {
      if (options.mockPkiDir === undefined) throw new NsmError('NSM_BAD_ARGUMENT', 'the mock NSM needs a mock PKI directory');
      const pki = await loadMockPki(options.mockPkiDir);
      return openMockNsm({ pki, ...(options.logger ? { logger: options.logger } : {}) });
    }
    default:
      throw new NsmError('NSM_BAD_ARGUMENT', `"mode" expected device or mock, got ${JSON.stringify(options.mode)}`);
  }
}
