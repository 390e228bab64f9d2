/**
 * The image's code-split bundle (image/build-bundle.mjs), without running it: what `enclave-agent run`
 * (what init spawns in the enclave) reads at start is the entry plus the chunks that run-command.ts and
 * command-runner.ts import statically, and none of them may hold what start-up does not use: the other
 * commands, the verifier and X.509, the mock NSM and its PKI, init's boot steps, the bridges, the EIF code,
 * or undici (imported on the first call to the app). Issue 16: these were a third of the start-up time and
 * 13 MiB of the idle memory (bench/startup.mjs measures them; this test holds the structure, not a time).
 */

import { describe, expect, it } from 'vitest';
// @ts-expect-error build-bundle.mjs is plain JavaScript (run as `node image/build-bundle.mjs OUTDIR`).
import { buildAgentBundle } from '../image/build-bundle.mjs';

interface MetafileOutput {
  entryPoint?: string;
  imports: Array<{ path: string; kind: string }>;
  inputs: Record<string, unknown>;
}

/** Inputs `run` must not load at start, by path. */
const NOT_AT_START: ReadonlyArray<RegExp> = [
  /^agent\/commands\.ts$/,
  /^agent\/(?:verify-remote|verify-bootstrap|fetch-command|manifest-command|eif-command|demo\/)/,
  /^nsm\/(?:mock|mock-pki|mock-signed-device|verify|x509|ecdsa|document|aws-root)\.ts$/,
  /^steve\/client\//,
  /^init\/(?!app-state\.ts$)/,
  /^bridge\//,
  /^vsock\//,
  /^eif\//,
  /^node_modules\/(?:undici|@peculiar|asn1js|pvtsutils|pvutils|tslib)\//,
];

describe('the agent bundle', () => {
  it('loads only the agent at start for `run`: no other command, verifier, mock, init step or undici', async () => {
    const { metafile } = (await buildAgentBundle()) as { metafile: { outputs: Record<string, MetafileOutput> } };
    const outputs = metafile.outputs;
    const byEntry = (entry: string): string => {
      const found = Object.entries(outputs).find(([, output]) => output.entryPoint === entry);
      if (found === undefined) throw new Error(`no output for ${entry}: the bundle is not split`);
      return found[0];
    };
    // The entry itself holds cli.ts only: the command is chosen before anything else is evaluated.
    expect(Object.keys(outputs[byEntry('agent/cli.ts')]!.inputs)).toEqual(['agent/cli.ts']);

    const atStart = new Set<string>();
    const pending = [byEntry('agent/run-command.ts'), byEntry('agent/command-runner.ts')];
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (atStart.has(name)) continue;
      atStart.add(name);
      for (const imported of outputs[name]!.imports) if (imported.kind === 'import-statement' && !imported.path.startsWith('node:') && imported.path in outputs) pending.push(imported.path);
    }
    const inputs = [...atStart].flatMap((name) => Object.keys(outputs[name]!.inputs));
    expect(inputs.filter((input) => NOT_AT_START.some((pattern) => pattern.test(input)))).toEqual([]);
    // What it does load: the agent, the device transport and the STEVE server.
    expect(inputs).toEqual(expect.arrayContaining(['agent/agent.ts', 'nsm/device.ts', 'nsm/open.ts', 'steve/server/server.ts', 'init/app-state.ts']));
  });
});
