/**
 * `openNsm`: the one place a process turns a configured NSM mode into an `Nsm`. The mode is a required,
 * explicit value: `device` opens /dev/nsm and fails with NSM_DEVICE_UNAVAILABLE where there is none;
 * `mock` needs a mock PKI directory and logs a loud warning. Nothing falls back to anything.
 *
 * The mocks and the mock PKI (with its X.509 and P-384 libraries) are imported only when a mock is chosen:
 * the device path never loads them (issue 16: start-up time and idle memory, bench/startup.mjs).
 */

import { createNsm } from './client.js';
import { DEFAULT_NSM_DEVICE_PATH, openDeviceTransport } from './device.js';
import { NsmError } from './errors.js';
import type { MockNsmLogger } from './mock.js';
import type { Nsm } from './types.js';

/**
 * `mock-signed-device`: the device answers and a mock PKI re-signs its documents (test rigs whose
 * device cannot sign, such as QEMU's; mock-signed-device.ts). Like `mock`, never for production.
 */
export type NsmMode = 'device' | 'mock' | 'mock-signed-device';

export interface OpenNsmOptions {
  mode: NsmMode;
  /** Device path (mode `device`); default /dev/nsm. */
  devicePath?: string;
  /** Mock PKI directory written by `enclave-agent mock-pki` (modes `mock` and `mock-signed-device`, required). */
  mockPkiDir?: string;
  logger?: MockNsmLogger;
}

export async function openNsm(options: OpenNsmOptions): Promise<Nsm> {
  switch (options.mode) {
    case 'device':
      return createNsm(openDeviceTransport(options.devicePath ?? DEFAULT_NSM_DEVICE_PATH));
    case 'mock': {
      if (options.mockPkiDir === undefined) throw new NsmError('NSM_BAD_ARGUMENT', 'the mock NSM needs a mock PKI directory');
      const [{ loadMockPki }, { openMockNsm }] = await Promise.all([import('./mock-pki.js'), import('./mock.js')]);
      const pki = await loadMockPki(options.mockPkiDir);
      return openMockNsm({ pki, ...(options.logger ? { logger: options.logger } : {}) });
    }
    case 'mock-signed-device': {
      if (options.mockPkiDir === undefined) throw new NsmError('NSM_BAD_ARGUMENT', 'the mock-signed device needs a mock PKI directory');
      const [{ loadMockPki }, { stderrLogger }, { createMockSignedDeviceTransport }] = await Promise.all([import('./mock-pki.js'), import('./mock.js'), import('./mock-signed-device.js')]);
      const pki = await loadMockPki(options.mockPkiDir);
      const device = openDeviceTransport(options.devicePath ?? DEFAULT_NSM_DEVICE_PATH);
      return createNsm(createMockSignedDeviceTransport({ device, pki, logger: options.logger ?? stderrLogger }));
    }
    default:
      throw new NsmError('NSM_BAD_ARGUMENT', `"mode" expected device, mock or mock-signed-device, got ${JSON.stringify(options.mode)}`);
  }
}
