/**
 * The whole enclave image booted the way Nitro boots it (issue 14), driven from this machine the way a user
 * drives an enclave from the parent instance. `image/build-eif.sh` (`make eif`) builds the EIF with the
 * test's init configuration and files; test/qemu/run.sh --eif boots it under QEMU's nitro-enclave machine,
 * which checks the file's CRC, measures PCR0-2 from it as Nitro does and boots its own kernel, command line
 * and ramdisks (specs/nitro-enclave.md §3). Nothing else stands in for the measured boot: the PCRs the guest
 * reads from the NSM are QEMU's measurement of the file, and `eif describe` must give the same values.
 *
 * Inside the guest (ports on its 127.0.0.1): init loads virtio_mmio, vsock and its virtio transport and nsm,
 * answers Nitro's boot heartbeat (to CID 2, the only CID the rig's vsock delivers), seeds entropy from the
 * NSM, extends and locks the configuration PCR 16, then starts `enclave-bridge` (vsock 8080 -> 8080, 8090 ->
 * 8090), a second agent on 8090 with the plain `device` NSM (QEMU's own, unsigned documents), the agent on
 * 8080 with `mock-signed-device` (QEMU's NSM does not sign: a mock PKI re-signs, keeping the PCRs) and the
 * app (test/qemu/boot/app.mjs) on 8083. The machine has no NIC: this machine reaches the guest only through
 * vhost-device-vsock's Unix socket, with `host-bridge --uds` standing in for the parent's bridge. So every
 * request from here crosses a host-bridge, hybrid vsock, the enclave bridge and the agent.
 *
 * Then, with that guest stopped: a copy of the EIF with a bad CRC is refused by `eif describe` and by QEMU,
 * and two more images with one and three ramdisks (the same platform ramdisk and kernel) are booted just
 * long enough to read QEMU's PCRs through an agent and compare them with `eif describe`'s.
 *
 * It must not: open vsock sockets on this machine (only the guest has vsock; the host side is Unix sockets),
 * give the guest a network, or leave QEMU or a bridge running (their process groups are killed in afterAll).
 * Runs only with ENCLAVE_QEMU_BOOT=1 (`npm run test:qemu` sets it), as root (mknod in the image build).
 * It prints the boot time and the EIF's size and writes them to test-output/qemu-boot/figures.json.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixCrc, flipByte } from '../../eif-images.js';
import { freePort } from '../../free-port.js';

const REPO = dirname(dirname(dirname(dirname(fileURLToPath(import.meta.url)))));
const CLI = join(REPO, 'dist/agent/cli.js');
const ENABLED = process.env.ENCLAVE_QEMU_BOOT === '1';
const CACHE = process.env.ENCLAVE_AGENT_CACHE ?? join(REPO, '.cache');
const FIGURES = join(REPO, 'test-output/qemu-boot/figures.json');
/** Boot under TCG plus four Node processes starting on two emulated CPUs: about a minute, a few at worst. */
const READY_TIMEOUT_MS = 420_000;
const QEMU_TIMEOUT_S = 1200;
/** A guest's health is polled this often, so the measured boot time is this coarse. */
const READY_STEP_MS = 500;
/** run.sh on an image QEMU refuses: setup (cached), the helpers, QEMU's CRC check; seconds, not minutes. */
const REFUSED_BOOT_TIMEOUT_MS = 120_000;
const GREETING = 'hello from the app inside the guest';
/** The end-to-end measurement: requests of each kind, one after another. */
const E2E_REQUESTS = 30;
const CONFIG_PCR = 16;
/** The NSM's module_id (run.sh --id): a document carrying it came from this QEMU machine. */
const ENCLAVE_ID = 'enclave-agent-boot-test';
const GUEST_MODULES = '/lib/modules/enclave-agent';
/** specs/nitro-enclave.md §3: the nitro-enclave machine's devices are virtio-mmio; vsock over virtio; then nsm. */
const MODULES = ['virtio_mmio', 'vsock', 'vmw_vsock_virtio_transport_common', 'vmw_vsock_virtio_transport', 'nsm'].map((m) => `${GUEST_MODULES}/${m}.ko`);
/** Under the rig only CID 2 (the host) is delivered (specs/nitro-enclave.md §3); run.sh answers on UDS_9000. */
const HEARTBEAT = { cid: 2, port: 9000 };
/** PCR2 of an image with one ramdisk: SHA-384(48 zero bytes || SHA-384 of nothing) (specs/nitro-enclave.md §2). */
const PCR2_ONE_RAMDISK = '21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a';

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { env?: Record<string, string>; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...options.env }, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ status, stdout, stderr });
    });
  });
}

const cli = (args: string[], timeoutMs = 120_000): Promise<Run> => run(process.execPath, [CLI, ...args], { timeoutMs });


async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const answer = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await answer.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the text is the body.
  }
  return { status: answer.status, body };
}

/** Thrown by a probe when waiting longer cannot help. */
class QemuExited extends Error {}
/** The kernel printed nothing in KERNEL_START_TIMEOUT_MS: the rig's early-boot hang (bootEif). */
class EarlyStall extends QemuExited {}

/**
 * A boot that shows no kernel line this long after run.sh's `booting` line has hung: measured here, about
 * 1 boot in 6 of QEMU 10.0.2's nitro-enclave machine (TCG, -smp 2) stops early in the kernel, before its
 * console exists and before it starts the second CPU, at the same code offset each time under a random
 * KASLR base, whatever the image. A good boot prints its first kernel line within about 10 s.
 */
const KERNEL_START_TIMEOUT_MS = 60_000;
/** Boots of one image that may hang that way before the test fails. */
const BOOT_ATTEMPTS = 3;
/** Kernel lines (`[    0.671178] ...`) or init's JSON log: the kernel is running. */
const KERNEL_OUTPUT_RE = /\[\s*\d+\.\d{6}\]|"service":"enclave-init"/;
/** Early-boot hangs met and retried in this run, reported with the figures. */
let earlyStalls = 0;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, stepMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof QemuExited) throw err;
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last error: ${String(last)})`);
}

/** Stops a detached child's whole process group: SIGTERM, SIGKILL after `graceMs`. */
async function stopGroup(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // The whole group: run.sh, timeout, QEMU and its helpers (bash defers signals while it waits for a pipeline).
  process.kill(-child.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
  if (child.exitCode === null && child.signalCode === null) {
    process.kill(-child.pid, 'SIGKILL');
    await exited;
  }
}

/** A fresh document from the agent behind host `port` (Accept: application/cbor), parsed by our document parser. */
async function documentOf(port: number, nonce: string) {
  const answer = await fetch(`http://127.0.0.1:${port}/attestation?nonce=${nonce}`, { headers: { accept: 'application/cbor' }, signal: AbortSignal.timeout(60_000) });
  expect(answer.status).toBe(200);
  const { parseAttestationDocument } = (await import(join(REPO, 'dist/nsm/index.js'))) as typeof import('../../../nsm/index.js');
  return parseAttestationDocument(new Uint8Array(await answer.arrayBuffer()));
}

function pcrHex(document: { pcrs: Map<number, Uint8Array> }, indexes: readonly number[]): Record<string, string> {
  return Object.fromEntries(indexes.map((i) => [String(i), Buffer.from(document.pcrs.get(i) ?? []).toString('hex')]));
}

interface EifJson {
  sizeBytes: number;
  cmdline: string;
  sections: Array<{ type: string; offset: number; sizeBytes: number }>;
  pcrs: Record<string, string>;
}

async function describeEif(file: string): Promise<EifJson> {
  const result = await cli(['eif', 'describe', file, '--json']);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  return JSON.parse(result.stdout) as EifJson;
}

/** One EIF booted with run.sh --eif, and host-bridges from 127.0.0.1 ports here to the guest's vsock ports. */
interface Boot {
  /** Host port for each guest vsock port. */
  ports: Map<number, number>;
  console(): string;
  /** From run.sh's `booting` line (it then starts vhost-device-vsock, the heartbeat responder and QEMU) to `ready`. */
  bootMs: number;
  stop(): Promise<void>;
}

/** bootEifOnce, again (at most BOOT_ATTEMPTS in all) when the kernel hung before printing anything. */
async function bootEif(label: string, eif: string, uds: string, guestPorts: readonly number[], ready: (boot: Omit<Boot, 'bootMs' | 'stop'>) => Promise<boolean>): Promise<Boot> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bootEifOnce(label, eif, uds, guestPorts, ready);
    } catch (err) {
      if (!(err instanceof EarlyStall) || attempt >= BOOT_ATTEMPTS) throw err;
      earlyStalls++;
      process.stdout.write(`[${label}] ${err.message}: QEMU's early-boot hang, booting the same image again (attempt ${attempt + 1} of ${BOOT_ATTEMPTS})\n`);
    }
  }
}

async function bootEifOnce(label: string, eif: string, uds: string, guestPorts: readonly number[], ready: (boot: Omit<Boot, 'bootMs' | 'stop'>) => Promise<boolean>): Promise<Boot> {
  const ports = new Map<number, number>();
  const bridges: ChildProcess[] = [];
  let consoleLog = '';
  let bootingAt: number | undefined;
  const qemu = spawn('bash', [join(REPO, 'test/qemu/run.sh'), '--eif', eif, '--uds', uds, '--id', ENCLAVE_ID, '--timeout', String(QEMU_TIMEOUT_S)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, ENCLAVE_AGENT_CACHE: CACHE },
  });
  const stop = async () => {
    await stopGroup(qemu, 15_000);
    await Promise.all(bridges.map((bridge) => stopGroup(bridge, 5_000)));
  };
  // The console, echoed line by line (QEMU writes in arbitrary pieces).
  let partial = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    consoleLog += text;
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (bootingAt === undefined && line.startsWith('[qemu-run] booting')) bootingAt = Date.now();
      process.stdout.write(`[${label}] ${line}\n`);
    }
  };
  qemu.stdout!.on('data', collect);
  qemu.stderr!.on('data', collect);
  try {
    for (const guestPort of guestPorts) {
      const port = await freePort();
      ports.set(guestPort, port);
      // The parent's side: this machine's TCP port -> the guest's vsock port through the hybrid vsock socket.
      const bridge = spawn(process.execPath, [CLI, 'host-bridge', '--listen', `127.0.0.1:${port}`, '--uds', uds, '--port', String(guestPort), '--connect-timeout-ms', '5000', '--log-level', 'error'], {
        stdio: ['ignore', 'inherit', 'inherit'],
        detached: true,
      });
      bridges.push(bridge);
    }
    const view = { ports, console: () => consoleLog };
    await until(`${label}: ready through the bridges`, async () => {
      if (qemu.exitCode !== null) throw new QemuExited(`${label}: run.sh exited with ${qemu.exitCode} before the guest was ready`);
      if (bootingAt !== undefined && Date.now() - bootingAt > KERNEL_START_TIMEOUT_MS && !KERNEL_OUTPUT_RE.test(consoleLog)) {
        throw new EarlyStall(`${label}: no kernel output ${KERNEL_START_TIMEOUT_MS / 1000} s after QEMU started`);
      }
      for (const bridge of bridges) if (bridge.exitCode !== null) throw new QemuExited(`${label}: a host-bridge exited with ${bridge.exitCode}`);
      return (await ready(view)) ? true : undefined;
    }, READY_TIMEOUT_MS, READY_STEP_MS);
    const readyAt = Date.now();
    expect(bootingAt, 'run.sh printed its booting line').toBeDefined();
    return { ...view, bootMs: readyAt - bootingAt!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The public /healthz through a host port: a status only (the details are on the internal listener, never bridged). */
async function healthy(port: number | undefined): Promise<boolean> {
  const { status, body } = await getJson(`http://127.0.0.1:${port}/healthz`);
  return status === 200 && (body as { status?: unknown }).status === 'ok';
}

/** A newc cpio of `tree` (entries sorted, owner 0:0), written to `file`. */
async function cpioOf(tree: string, file: string): Promise<void> {
  const result = await run('bash', ['-c', 'cd "$1" && find . -mindepth 1 -printf "%P\\0" | LC_ALL=C sort -z | cpio --null --create --format=newc --reproducible --owner=0:0 --quiet > "$2"', 'cpio', tree, file], { timeoutMs: 60_000 });
  expect(result.status, result.stderr).toBe(0);
}

describe.runIf(ENABLED)("the EIF booted under QEMU's nitro-enclave machine", () => {
  let work: string;
  let out: string;
  let eifFile: string;
  let eif: EifJson;
  let pcrsFile: string;
  let configPcr: string;
  let rootPem: string;
  let kernel: string;
  let cmdline: string;
  let main: Boot | undefined;
  const figures: Record<string, unknown> = {};
  const extraBoots: Boot[] = [];

  const mainPort = () => main!.ports.get(8080)!;
  const devicePort = () => main!.ports.get(8090)!;
  /** init's records of the app's starts on the console, in order: its pid and how many restarts it had. */
  const appStarts = (): Array<{ pid: number; restarts: number }> =>
    main!
      .console()
      .split('\n')
      .filter((line) => line.includes('"child started"') && line.includes('"child":"app"'))
      .map((line) => {
        const record = JSON.parse(line.slice(line.indexOf('{'))) as { pid: number; restarts: number };
        return { pid: record.pid, restarts: record.restarts };
      });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'enclave-eif-boot-'));
    const extra = join(work, 'extra');
    const etc = join(extra, 'etc/enclave-agent');
    await mkdir(join(extra, 'opt/test-app'), { recursive: true });
    await cp(join(REPO, 'test/qemu/boot/app.mjs'), join(extra, 'opt/test-app/app.mjs'));
    expect((await cli(['mock-pki', '--out', join(etc, 'mock-pki')])).status).toBe(0);
    rootPem = join(work, 'root.pem');
    await cp(join(etc, 'mock-pki/root.pem'), rootPem);
    const { DEMO_MANIFEST_JSON } = (await import(join(REPO, 'dist/agent/demo/manifest.js'))) as { DEMO_MANIFEST_JSON: string };
    await writeFile(join(etc, 'manifest.json'), DEMO_MANIFEST_JSON);

    const agentCommon = ['--manifest', '/etc/enclave-agent/manifest.json', '--upstream', 'http://127.0.0.1:8083', '--log-level', 'warn'];
    const config = {
      nsm: 'device',
      deployment: 'test',
      modules: MODULES,
      boot: { mounts: true, loopback: true, entropy: true, heartbeat: HEARTBEAT, interfaces: [] },
      pcr: { index: CONFIG_PCR, lock: true },
      services: [
        { name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080', '--ingress-port', '8090'] },
        {
          name: 'agent-device',
          args: ['run', '--nsm', 'device', '--listen', '127.0.0.1:8090', '--internal-listen', '127.0.0.1:9091', ...agentCommon],
        },
      ],
      agent: {
        args: ['--nsm', 'mock-signed-device', '--deployment', 'test', '--mock-pki', '/etc/enclave-agent/mock-pki', '--listen', '127.0.0.1:8080', ...agentCommon],
      },
      app: { command: ['/usr/bin/node', '/opt/test-app/app.mjs'] },
      restart: { initialBackoffMs: 200, maxBackoffMs: 1000, crashLoopRestarts: 3, crashLoopWindowMs: 120_000, stableAfterMs: 600_000 },
    };
    const configFile = join(work, 'init.json');
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
    const measurement = await cli(['init', '--config', configFile, '--print-measurement']);
    expect(measurement.status, measurement.stderr).toBe(0);
    const printed = JSON.parse(measurement.stdout) as { pcr: { index: number; value: string } };
    expect(printed.pcr.index).toBe(CONFIG_PCR);
    configPcr = printed.pcr.value;

    // `make eif` with the test's deployment: the platform ramdisk, then the deployment ramdisk.
    out = join(work, 'image');
    const buildStarted = Date.now();
    const build = await run('bash', [join(REPO, 'image/build-eif.sh'), out], { env: { INIT_CONFIG: configFile, EXTRA_DIR: extra, KEEP_STAGE: '0', ENCLAVE_AGENT_CACHE: CACHE }, timeoutMs: 600_000 });
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);
    figures.buildMs = Date.now() - buildStarted;
    eifFile = join(out, 'enclave.eif');
    eif = await describeEif(eifFile);
    figures.eifBytes = eif.sizeBytes;
    figures.sections = eif.sections;
    // The pinned PCRs: the build's enclave.pcrs.json, plus the configuration PCR.
    const built = JSON.parse(await readFile(join(out, 'enclave.pcrs.json'), 'utf8')) as Record<string, string>;
    expect(built).toEqual({ pcr0: eif.pcrs['0'], pcr1: eif.pcrs['1'], pcr2: eif.pcrs['2'] });
    pcrsFile = join(work, 'pcrs.json');
    await writeFile(pcrsFile, JSON.stringify({ ...built, [`pcr${CONFIG_PCR}`]: configPcr }));
    const rigEnv = await readFile(join(CACHE, 'qemu-rig.env'), 'utf8');
    kernel = /^GUEST_KERNEL=(.*)$/m.exec(rigEnv)![1]!;
    cmdline = eif.cmdline;

    // Ready: the agent's first /healthz through the host-bridge. Then the device agent and the app.
    main = await bootEif('guest', eifFile, join(work, 'vsock.sock'), [8080, 8090], async ({ ports }) => healthy(ports.get(8080)));
    await until('the device agent healthy and the app started', async () => ((await healthy(devicePort())) && appStarts().length > 0 ? true : undefined), READY_TIMEOUT_MS);
    figures.bootMs = main.bootMs;
    // init's boot steps, by its own record (the kernel is quiet: the image's command line says so).
    figures.initBootStepsMs = (JSON.parse(main.console().split('\n').find((line) => line.includes('"msg":"boot done"'))!.replace(/^[^{]*/, '')) as { durationMs: number }).durationMs;
    process.stdout.write(
      `[boot] EIF ${eif.sizeBytes} bytes (${(eif.sizeBytes / 1024 / 1024).toFixed(1)} MiB), built in ${(Number(figures.buildMs) / 1000).toFixed(1)} s; ` +
        `QEMU start to the agent's first /healthz through the bridge: ${(main.bootMs / 1000).toFixed(1)} s (init's boot steps ${figures.initBootStepsMs} ms)\n`,
    );
  }, READY_TIMEOUT_MS + 900_000);

  afterAll(async () => {
    await main?.stop();
    for (const boot of extraBoots) await boot.stop();
    if (Object.keys(figures).length > 0) {
      figures.earlyStallsRetried = earlyStalls;
      await mkdir(dirname(FIGURES), { recursive: true });
      await writeFile(FIGURES, `${JSON.stringify(figures, null, 2)}\n`);
      process.stdout.write(`[boot] figures: ${JSON.stringify(figures)}\n`);
    }
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('the boot heartbeat was answered and no rig measurement stood in for the measured boot', () => {
    const records = main!
      .console()
      .split('\n')
      .filter((line) => line.includes('"service":"enclave-init"') && line.includes('"step":'))
      .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as { step: string; msg: string; cid?: number; port?: number; reason?: string });
    expect(records.find((r) => r.step === 'heartbeat')).toMatchObject({ msg: 'boot step done', cid: HEARTBEAT.cid, port: HEARTBEAT.port });
    expect(records.find((r) => r.step === 'rig-measurements')).toMatchObject({ msg: 'boot step skipped' });
    expect(records.find((r) => r.step === 'modules')).toMatchObject({ msg: 'boot step done' });
  });

  it('eif describe gives the PCR0-2 that QEMU measured from the file: in the re-signed and in the device document', async () => {
    const nonce = 'c3'.repeat(32);
    const signed = await documentOf(mainPort(), nonce);
    const device = await documentOf(devicePort(), nonce);
    const expected = { '0': eif.pcrs['0'], '1': eif.pcrs['1'], '2': eif.pcrs['2'] };
    expect(pcrHex(signed, [0, 1, 2])).toEqual(expected);
    expect(pcrHex(device, [0, 1, 2])).toEqual(expected);
    expect(pcrHex(signed, [CONFIG_PCR])).toEqual({ [CONFIG_PCR]: configPcr });
    // QEMU's nitro-enclave NSM answered (its module_id is run.sh's --id); its own document is unsigned.
    expect([signed.moduleId, device.moduleId]).toEqual([ENCLAVE_ID, ENCLAVE_ID]);
    expect(device.algorithm).toBe(-1);
    expect(signed.algorithm).toBe(-35);
    const refused = await cli(['verify', '--url', `http://127.0.0.1:${devicePort()}/attestation`, '--json']);
    expect(refused.status, refused.stderr).toBe(1);
    expect(`${refused.stdout}${refused.stderr}`).toContain('ATTESTATION_UNSUPPORTED_ALGORITHM');
  }, 180_000);

  it('verify --eif passes against the booted enclave; a copy with one app-ramdisk byte changed fails naming PCR0 and PCR2', async () => {
    const url = `http://127.0.0.1:${mainPort()}/attestation`;
    const passed = await cli(['verify', '--url', url, '--eif', eifFile, '--root', rootPem]);
    expect(passed.status, passed.stdout + passed.stderr).toBe(0);
    expect(passed.stdout).toMatch(/EIF {13}every PCR matches/);

    // The app ramdisk is the last section; one byte of its data changed, the CRC recomputed: a valid image of other code.
    const last = eif.sections.at(-1)!;
    expect(last.type).toBe('ramdisk');
    expect(last.offset + 12 + last.sizeBytes).toBe(eif.sizeBytes);
    const copy = Buffer.from(await readFile(eifFile));
    flipByte(copy, last.offset + 12 + Math.floor(last.sizeBytes / 2), 0x01);
    const changedFile = join(work, 'changed.eif');
    await writeFile(changedFile, fixCrc(copy));
    const changed = await describeEif(changedFile);
    expect(changed.pcrs['1']).toBe(eif.pcrs['1']);
    const failed = await cli(['verify', '--url', url, '--eif', changedFile, '--root', rootPem]);
    expect(failed.status, failed.stdout + failed.stderr).toBe(1);
    expect(failed.stdout).toContain('AGENT_VERIFY_EIF');
    expect(failed.stdout).toContain(`PCR0 expected ${changed.pcrs['0']} (from the EIF), got ${eif.pcrs['0']}`);
    expect(failed.stdout).toContain(`PCR2 expected ${changed.pcrs['2']} (from the EIF), got ${eif.pcrs['2']}`);
    expect(failed.stdout).not.toContain('PCR1 expected');
    await rm(changedFile);
  }, 180_000);

  it('fetch completes a STEVE session pinned to the EIF PCRs and the configuration PCR; another PCR16 is refused', async () => {
    const result = await cli(['fetch', `http://127.0.0.1:${mainPort()}/`, '--pcrs', pcrsFile, '--root', rootPem]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe(GREETING);
    const other = join(work, 'other-pcrs.json');
    await writeFile(other, JSON.stringify({ ...JSON.parse(await readFile(pcrsFile, 'utf8')), [`pcr${CONFIG_PCR}`]: '00'.repeat(48) }));
    const refused = await cli(['fetch', `http://127.0.0.1:${mainPort()}/`, '--pcrs', other, '--root', rootPem]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('STEVE_CLIENT_PCR');
  }, 300_000);

  it('measures the path from here through host-bridge into the booted EIF: health checks and STEVE requests', async () => {
    // Every byte crosses host-bridge (this machine), vhost-device-vsock, the guest's enclave-bridge and the
    // agent; STEVE adds the session and AES-GCM both ends. The guest is emulated (TCG): the figures are
    // this rig's, reported and kept in figures.json, not asserted. Answers stay small: in this rig an
    // answer of 256 KiB or more from the guest stalls or arrives out of order whatever the relay (README
    // "EIF": the rig's limits).
    const { request } = await import('undici');
    const { createSteveClient } = (await import(join(REPO, 'dist/steve/client/index.js'))) as typeof import('../../../steve/client/index.js');
    const { parseFetchFlags } = (await import(join(REPO, 'dist/agent/fetch-command.js'))) as typeof import('../../../agent/fetch-command.js');
    const { nodeAesGcm } = (await import(join(REPO, 'dist/steve/server/index.js'))) as typeof import('../../../steve/server/index.js');
    const { nodeP384Verifier } = (await import(join(REPO, 'dist/nsm/index.js'))) as typeof import('../../../nsm/index.js');
    const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const origin = `http://127.0.0.1:${mainPort()}`;

    const plainMs: number[] = [];
    for (let i = 0; i < E2E_REQUESTS; i++) {
      const started = performance.now();
      const answer = await request(`${origin}/healthz`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
      expect(answer.statusCode).toBe(200);
      await answer.body.arrayBuffer();
      plainMs.push(performance.now() - started);
    }
    const parsed = await parseFetchFlags({ pcrs: [pcrsFile], root: rootPem }, [`${origin}/`]);
    const establishMs: Record<string, number> = {};
    const steveMs: Record<string, number[]> = { stream: [], v2: [] };
    for (const [kind, streaming] of [['stream', true], ['v2', false]] as const) {
      const client = createSteveClient({ origin, keyExchange: 'X25519', pcrPolicy: parsed.pcrPolicy!, root: parsed.root!, aead: nodeAesGcm, verifier: nodeP384Verifier, streaming });
      const started = performance.now();
      expect(await (await client.request('/')).text()).toBe(GREETING);
      establishMs[kind] = performance.now() - started;
      for (let i = 0; i < E2E_REQUESTS; i++) {
        const t0 = performance.now();
        expect(await (await client.request('/')).text()).toBe(GREETING);
        steveMs[kind]!.push(performance.now() - t0);
      }
    }
    figures.endToEnd = {
      requests: E2E_REQUESTS,
      plainHealthP50Ms: median(plainMs),
      steveEstablishMs: establishMs,
      steveStreamP50Ms: median(steveMs.stream!),
      steveV2P50Ms: median(steveMs.v2!),
    };
    process.stdout.write(
      `[boot] here -> host-bridge -> guest (TCG), ${E2E_REQUESTS} requests each, one after another: /healthz p50 ${median(plainMs).toFixed(1)} ms; ` +
        `STEVE session and first request ${establishMs.stream!.toFixed(0)} ms, then p50 ${median(steveMs.stream!).toFixed(1)} ms streamed, ${median(steveMs.v2!).toFixed(1)} ms over /e2p/v2/request\n`,
    );
  }, 300_000);

  it('a killed app is restarted by init; a kill loop stops at the limit with a clear log', async () => {
    // The app's state is the operator's (the internal /healthz, never bridged): here, init's console records.
    const before = appStarts();
    expect(before).toEqual([{ pid: expect.any(Number), restarts: 0 }]);
    const kill = async () => cli(['fetch', `http://127.0.0.1:${mainPort()}/kill`, '--pcrs', pcrsFile, '--root', rootPem]);
    await kill();
    const restarted = await until('the app restarted', async () => appStarts().find((start) => start.restarts === 1), 180_000);
    expect(restarted.pid).not.toBe(before[0]!.pid);
    const again = await until('the restarted app answering', async () => {
      const result = await cli(['fetch', `http://127.0.0.1:${mainPort()}/`, '--pcrs', pcrsFile, '--root', rootPem]);
      return result.stdout === GREETING ? result : undefined;
    }, 120_000, 2000);
    expect(again.stdout).toBe(GREETING);

    // Kill it until init gives up: the restart policy allows 3 restarts within the window.
    await until('the app given up on', async () => {
      if (main!.console().includes('INIT_CRASH_LOOP')) return true;
      await kill();
      return undefined;
    }, 300_000, 3000);
    expect(Math.max(...appStarts().map((start) => start.restarts))).toBe(3);
    const record = main!.console().split('\n').find((line) => line.includes('INIT_CRASH_LOOP'))!;
    expect(record).toMatch(/"child":"app"/);
    // The public /healthz still says only that the agent is up.
    expect(await healthy(mainPort())).toBe(true);
  }, 600_000);

  it('a copy with a bad CRC is refused by eif describe (EIF_CRC) and by QEMU (CRC mismatch)', async () => {
    // One guest at a time (run.sh's lock, one vhost-user socket): the main guest's checks are done.
    await main?.stop();
    const copy = Buffer.from(await readFile(eifFile));
    const last = eif.sections.at(-1)!;
    flipByte(copy, last.offset + 12 + Math.floor(last.sizeBytes / 2), 0x01);
    const badFile = join(work, 'bad-crc.eif');
    await writeFile(badFile, copy);
    const described = await cli(['eif', 'describe', badFile]);
    expect(described.status).toBe(1);
    expect(described.stdout).toMatch(/^INVALID EIF_CRC: /);
    const started = Date.now();
    const booted = await run('bash', [join(REPO, 'test/qemu/run.sh'), '--eif', badFile, '--uds', join(work, 'bad.sock'), '--timeout', '60'], {
      env: { ENCLAVE_AGENT_CACHE: CACHE },
      timeoutMs: REFUSED_BOOT_TIMEOUT_MS,
    });
    process.stdout.write(`[boot] QEMU on the bad-CRC copy: exit ${booted.status} after ${Date.now() - started} ms\n`);
    expect(booted.status).not.toBe(0);
    expect(booted.stdout).toMatch(/CRC mismatch/);
    expect(booted.stdout).not.toMatch(/Linux version/);
    await rm(badFile);
  }, REFUSED_BOOT_TIMEOUT_MS + 60_000);

  it('images with one and with three ramdisks: QEMU measures the PCRs eif describe computes', async () => {
    // A small deployment of its own (the plain device agent behind the enclave bridge, nothing else), so
    // these boots are short; as the last ramdisk it replaces init.json and the manifest of those before it.
    const lightTree = join(work, 'light');
    await mkdir(join(lightTree, 'etc/enclave-agent'), { recursive: true });
    const lightConfig = {
      nsm: 'device',
      deployment: 'test',
      modules: MODULES,
      boot: { mounts: true, loopback: true, entropy: false, heartbeat: HEARTBEAT, interfaces: [] },
      services: [{ name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080'] }],
      agent: { args: ['--nsm', 'device', '--manifest', '/etc/enclave-agent/manifest.json', '--listen', '127.0.0.1:8080', '--log-level', 'warn'] },
      app: { command: ['/bin/sleep', '100000'] },
    };
    await writeFile(join(lightTree, 'etc/enclave-agent/init.json'), `${JSON.stringify(lightConfig)}\n`);
    const { DEMO_MANIFEST_JSON } = (await import(join(REPO, 'dist/agent/demo/manifest.js'))) as { DEMO_MANIFEST_JSON: string };
    await writeFile(join(lightTree, 'etc/enclave-agent/manifest.json'), DEMO_MANIFEST_JSON);
    const light = join(work, 'light.cpio');
    await cpioOf(lightTree, light);
    const platform = join(out, 'initramfs.cpio');
    // One ramdisk: the platform and the small deployment as one file (the kernel unpacks concatenated archives).
    const single = join(work, 'single.cpio');
    await writeFile(single, Buffer.concat([await readFile(platform), await readFile(light)]));
    const variants = [
      { name: 'one-ramdisk', ramdisks: [single] },
      { name: 'three-ramdisks', ramdisks: [platform, join(out, 'app.cpio'), light] },
    ];
    // As image/build-eif.sh does: zeros after the last archive keep the initrd's last 4 KiB page at most 3 KiB
    // full (QEMU's nitro-enclave machine overwrites its ACPI tables with an initrd whose last page holds more).
    for (const variant of variants) {
      const last = variant.ramdisks.at(-1)!;
      let total = 0;
      for (const ramdisk of variant.ramdisks) total += (await stat(ramdisk)).size;
      const lastPage = ((total - 1) % 4096) + 1;
      const padded = join(work, `${variant.name}-last.cpio`);
      await writeFile(padded, Buffer.concat([await readFile(last), Buffer.alloc(lastPage > 3072 ? 4096 - lastPage + 512 : 0)]));
      variant.ramdisks[variant.ramdisks.length - 1] = padded;
    }
    for (const variant of variants) {
      const file = join(work, `${variant.name}.eif`);
      const built = await cli(['eif', 'build', '--kernel', kernel, '--cmdline', cmdline, ...variant.ramdisks.flatMap((r) => ['--ramdisk', r]), '--out', file, '--json']);
      expect(built.status, built.stdout + built.stderr).toBe(0);
      const described = JSON.parse(built.stdout) as EifJson;
      expect(described.sections.filter((s) => s.type === 'ramdisk')).toHaveLength(variant.ramdisks.length);
      const boot = await bootEif(variant.name, file, join(work, `${variant.name}.sock`), [8080], async ({ ports }) => healthy(ports.get(8080)));
      extraBoots.push(boot);
      const document = await documentOf(boot.ports.get(8080)!, 'd4'.repeat(32));
      await boot.stop();
      figures[`${variant.name}BootMs`] = boot.bootMs;
      process.stdout.write(`[boot] ${variant.name}: ${described.sizeBytes} bytes, ready in ${(boot.bootMs / 1000).toFixed(1)} s; PCRs ${JSON.stringify(pcrHex(document, [0, 1, 2]))}\n`);
      expect(document.moduleId).toBe(ENCLAVE_ID);
      expect(pcrHex(document, [0, 1, 2]), variant.name).toEqual({ '0': described.pcrs['0'], '1': described.pcrs['1'], '2': described.pcrs['2'] });
      if (variant.ramdisks.length === 1) {
        // Nothing after the first ramdisk: PCR2 is the hash of nothing, and PCR0 measures what PCR1 does.
        expect(described.pcrs['2']).toBe(PCR2_ONE_RAMDISK);
        expect(described.pcrs['0']).toBe(described.pcrs['1']);
      } else {
        // The same kernel, command line and first ramdisk as the main image: the same PCR1.
        expect(described.pcrs['1']).toBe(eif.pcrs['1']);
        expect(described.pcrs['2']).not.toBe(eif.pcrs['2']);
      }
      await rm(file);
    }
  }, 2 * READY_TIMEOUT_MS + 120_000);
});
