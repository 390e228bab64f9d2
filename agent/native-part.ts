/**
 * The agent's own parts of the one native addon (agent/native/: `exports.aesGcm`, `exports.handshake`),
 * each typed and wrapped by its module (aes-gcm-native.ts, handshake-native.ts). No fallback: a part that
 * cannot be had is AGENT_NATIVE_UNAVAILABLE, and the agent does not start.
 */

import { loadNativeAddon } from '../native/index.js';
import { AgentError } from './errors.js';

/**
 * `exports[name]` of the addon, once `fits` accepts it; AGENT_NATIVE_UNAVAILABLE when the addon does not
 * load (`what` says for what) or was built without `source` (the C file that adds the part).
 */
export function agentNativePart<T>(name: string, source: string, what: string, fits: (part: T) => boolean): T {
  let part: T | undefined;
  try {
    part = (loadNativeAddon() as Record<string, T | undefined>)[name];
  } catch (cause) {
    throw new AgentError('AGENT_NATIVE_UNAVAILABLE', `cannot load the native addon for ${what}`, { cause });
  }
  if (part === undefined || !fits(part)) {
    throw new AgentError('AGENT_NATIVE_UNAVAILABLE', `the native addon was built without ${source}: rebuild it (\`npm run install\`)`);
  }
  return part;
}
