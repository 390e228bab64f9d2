/**
 * The whole enclave image booted under QEMU (issue 7's full boot), driven from this machine the way a
 * user drives an enclave from the parent instance. `make initramfs` (image/build-initramfs.sh) builds the
 * image with the test's init configuration; test/qemu/run.sh boots it on the rig's kernel with the
 * emulated NSM and a restricted user-mode NIC whose only door is a loopback port forward; our init is
 * /init's target and brings up everything else.
 *
 * Inside the guest (ports on its 127.0.0.1 unless said otherwise):
 *   - init: modules (vsock, nsm, virtio_net), mounts, lo and eth0 up, entropy from the NSM, the rig's
 *     stand-in for Nitro's measured boot (PCR0-2 extended and 0-15 locked, test deployments only), the
 *     configuration PCR 16, then services, the agent and the app;
 *   - the agent on 8080 with `mock-signed-device` (the device answers, a mock PKI signs: QEMU's NSM cannot
 *     sign, so this is what lets a STEVE client finish a session), and a second agent on 8090 with the
 *     plain `device` NSM, whose documents are QEMU's own, unsigned;
 *   - the app (test/qemu/boot/app.mjs) on 8083;
 *   - services: `enclave-bridge` (vsock 8080 -> 127.0.0.1:8080, vsock 8090 -> 127.0.0.1:8090), and two
 *     `host-bridge`s standing in for the parent instance (eth0 :8081 -> vsock CID 1:8080, :8091 -> 8090).
 * So every request from here crosses QEMU's port forward, a host-bridge, vsock, the enclave bridge and
 * the agent: the same path as parent -> enclave on Nitro, with vsock on the loopback transport.
 *
 * It must not: open vsock sockets on this machine (only the guest has vsock), give the guest a network
 * beyond the restricted NIC, or leave QEMU running (it is killed with its process group in afterAll).
 * Runs only with ENCLAVE_QEMU_BOOT=1 (`npm run test:qemu` sets it), as root (mknod in the image build).
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile, cp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = dirname(dirname(dirname(dirname(fileURLToPath(import.meta.url)))));
const CLI = join(REPO, 'dist/agent/cli.js');
const ENABLED = process.env.ENCLAVE_QEMU_BOOT === '1';
const CACHE = process.env.ENCLAVE_AGENT_CACHE ?? join(REPO, '.cache');
/** Boot under TCG plus seven Node processes starting on two emulated CPUs: a few minutes at worst. */
const READY_TIMEOUT_MS = 420_000;
const QEMU_TIMEOUT_S = 1200;
const GREETING = 'hello from the app inside the guest';
const CONFIG_PCR = 16;
/** What the rig's measured-boot stand-in extends into PCR0-2 (UTF-8 bytes), as Nitro measures image, kernel and app. */
const RIG_MEASUREMENTS: Record<string, string> = {
  '0': 'qemu rig: enclave image',
  '1': 'qemu rig: kernel and boot ramfs',
  '2': 'qemu rig: application',
};
const GUEST_MODULES = '/lib/modules/enclave-agent';
const NET_MODULES = ['failover', 'net_failover', 'virtio_net'];

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ status, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** PCR value after one extend from zero: SHA-384(48 zero bytes || data). */
function extendedOnce(data: Uint8Array): string {
  return createHash('sha384').update(new Uint8Array(48)).update(data).digest('hex');
}

function run(command: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ status, stdout, stderr });
    });
  });
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const answer = await fetch(url, { signal: AbortSignal.timeout(20_000) });
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

/** The public /healthz: a status only (the details are on the internal listener, never bridged). */
interface Health {
  status: string;
}

describe.runIf(ENABLED)('the enclave image booted under QEMU', () => {
  let work: string;
  let qemu: ChildProcess | undefined;
  let consoleLog = '';
  let mainPort: number;
  let devicePort: number;
  let expectedPcrs: Record<string, string>;
  let pcrsFile: string;
  let rootPem: string;

  const health = async (port: number): Promise<Health | undefined> => {
    const { status, body } = await getJson(`http://127.0.0.1:${port}/healthz`);
    return status === 200 ? (body as Health) : undefined;
  };
  /** init's records of the app's starts on the console, in order: its pid and how many restarts it had. */
  const appStarts = (): Array<{ pid: number; restarts: number }> =>
    consoleLog
      .split('\n')
      .filter((line) => line.includes('"child started"') && line.includes('"child":"app"'))
      .map((line) => {
        const record = JSON.parse(line.slice(line.indexOf('{'))) as { pid: number; restarts: number };
        return { pid: record.pid, restarts: record.restarts };
      });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'enclave-boot-'));
    const extra = join(work, 'extra');
    const etc = join(extra, 'etc/enclave-agent');
    await mkdir(join(extra, 'opt/test-app'), { recursive: true });
    await mkdir(join(extra, GUEST_MODULES.slice(1)), { recursive: true });
    await cp(join(REPO, 'test/qemu/boot/app.mjs'), join(extra, 'opt/test-app/app.mjs'));
    expect((await cli(['mock-pki', '--out', join(etc, 'mock-pki')])).status).toBe(0);
    rootPem = join(etc, 'mock-pki/root.pem');
    const { DEMO_MANIFEST_JSON } = (await import(join(REPO, 'dist/agent/demo/manifest.js'))) as { DEMO_MANIFEST_JSON: string };
    await writeFile(join(etc, 'manifest.json'), DEMO_MANIFEST_JSON);
    const rigEnv = await readFile(join(CACHE, 'qemu-rig.env'), 'utf8');
    const modulesDir = /^GUEST_MODULES_DIR=(.*)$/m.exec(rigEnv)?.[1];
    expect(modulesDir, 'qemu-rig.env names GUEST_MODULES_DIR').toBeDefined();
    for (const module of NET_MODULES) await cp(join(modulesDir!, `${module}.ko`), join(extra, GUEST_MODULES.slice(1), `${module}.ko`));

    const agentCommon = ['--manifest', '/etc/enclave-agent/manifest.json', '--upstream', 'http://127.0.0.1:8083', '--log-level', 'warn'];
    const config = {
      nsm: 'device',
      deployment: 'test',
      modules: ['vsock', 'vmw_vsock_virtio_transport_common', 'vsock_loopback', 'nsm', ...NET_MODULES].map((m) => `${GUEST_MODULES}/${m}.ko`),
      boot: { mounts: true, loopback: true, entropy: true, heartbeat: false, interfaces: [{ name: 'eth0', address: '10.0.2.15/24' }] },
      rigMeasurements: RIG_MEASUREMENTS,
      pcr: { index: CONFIG_PCR, lock: true },
      services: [
        { name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080', '--ingress-port', '8090'] },
        { name: 'parent-main', args: ['host-bridge', '--listen', '0.0.0.0:8081', '--cid', '1', '--port', '8080'] },
        { name: 'parent-device', args: ['host-bridge', '--listen', '0.0.0.0:8091', '--cid', '1', '--port', '8090'] },
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

    // What the document must show: PCR0-2 from the rig's measured boot, PCR16 the configuration's hash.
    const measurement = await cli(['init', '--config', configFile, '--print-measurement']);
    expect(measurement.status, measurement.stderr).toBe(0);
    const printed = JSON.parse(measurement.stdout) as { pcr: { index: number; value: string } };
    expect(printed.pcr.index).toBe(CONFIG_PCR);
    expectedPcrs = Object.fromEntries(Object.entries(RIG_MEASUREMENTS).map(([i, text]) => [`pcr${i}`, extendedOnce(new TextEncoder().encode(text))]));
    expectedPcrs[`pcr${CONFIG_PCR}`] = printed.pcr.value;
    pcrsFile = join(work, 'pcrs.json');
    await writeFile(pcrsFile, JSON.stringify(expectedPcrs));

    const image = join(work, 'image');
    const build = await run('bash', [join(REPO, 'image/build-initramfs.sh'), image], { INIT_CONFIG: configFile, EXTRA_DIR: extra, KEEP_STAGE: '0', ENCLAVE_AGENT_CACHE: CACHE }, 600_000);
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);

    mainPort = await freePort();
    devicePort = await freePort();
    qemu = spawn(
      'bash',
      [join(REPO, 'test/qemu/run.sh'), '--timeout', String(QEMU_TIMEOUT_S), '--initrd', join(image, 'initramfs.cpio'), '--hostfwd', `${mainPort}:8081`, '--hostfwd', `${devicePort}:8091`],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ENCLAVE_AGENT_CACHE: CACHE } },
    );
    // The console, echoed line by line (QEMU writes in arbitrary pieces).
    let partial = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      consoleLog += text;
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      for (const line of lines) process.stdout.write(`[guest] ${line}\n`);
    };
    qemu.stdout!.on('data', collect);
    qemu.stderr!.on('data', collect);

    const ready = await until('both agents healthy through the bridges', async () => {
      if (qemu!.exitCode !== null) throw new QemuExited(`QEMU exited with ${qemu!.exitCode} before the agents were up`);
      const [main, device] = await Promise.all([health(mainPort), health(devicePort)]);
      return main?.status === 'ok' && device !== undefined && appStarts().length > 0 ? main : undefined;
    }, READY_TIMEOUT_MS);
    expect(ready).toEqual({ status: 'ok' });
  }, READY_TIMEOUT_MS + 900_000);

  afterAll(async () => {
    if (qemu?.pid !== undefined && qemu.exitCode === null) {
      // The whole group: run.sh, timeout and QEMU (bash defers signals while it waits for a pipeline).
      process.kill(-qemu.pid, 'SIGTERM');
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          if (qemu?.exitCode === null) process.kill(-qemu.pid!, 'SIGKILL');
          resolve(undefined);
        }, 15_000);
        qemu!.once('exit', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('verify gets a document from the emulated NSM through the bridges: parsed, and refused as unsigned', async () => {
    const result = await cli(['verify', '--url', `http://127.0.0.1:${devicePort}/attestation`, '--json']);
    expect(result.status, result.stderr).toBe(1);
    expect(`${result.stdout}${result.stderr}`).toContain('ATTESTATION_UNSUPPORTED_ALGORITHM');
    // The raw document: QEMU's structure, with the PCRs init measured.
    const answer = await fetch(`http://127.0.0.1:${devicePort}/attestation?nonce=${'ab'.repeat(32)}`, { headers: { accept: 'application/cbor' }, signal: AbortSignal.timeout(60_000) });
    expect(answer.status).toBe(200);
    const { parseAttestationDocument, bytesToHex } = (await import(join(REPO, 'dist/nsm/index.js'))) as typeof import('../../../nsm/index.js');
    const document = parseAttestationDocument(new Uint8Array(await answer.arrayBuffer()));
    expect(document.algorithm).toBe(-1);
    expect(bytesToHex(document.nonce!)).toBe('ab'.repeat(32));
    for (const [key, value] of Object.entries(expectedPcrs)) expect(bytesToHex(document.pcrs.get(Number(key.slice(3)))!), key).toBe(value);
  }, 180_000);

  it('fetch completes a STEVE session with the guest agent, pinned to the measured PCRs and the configuration PCR', async () => {
    const result = await cli(['fetch', `http://127.0.0.1:${mainPort}/`, '--pcrs', pcrsFile, '--root', rootPem]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe(GREETING);
    // A different configuration (another PCR16) is refused before any request is sent.
    const other = join(work, 'other-pcrs.json');
    await writeFile(other, JSON.stringify({ ...expectedPcrs, [`pcr${CONFIG_PCR}`]: '00'.repeat(48) }));
    const refused = await cli(['fetch', `http://127.0.0.1:${mainPort}/`, '--pcrs', other, '--root', rootPem]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('STEVE_CLIENT_PCR');
  }, 300_000);

  it('a killed app is restarted by init; a kill loop stops at the limit with a clear log', async () => {
    // The app's state is the operator's (the internal /healthz, never bridged): here, init's console records.
    const before = appStarts();
    expect(before).toEqual([{ pid: expect.any(Number), restarts: 0 }]);
    const kill = async () => cli(['fetch', `http://127.0.0.1:${mainPort}/kill`, '--pcrs', pcrsFile, '--root', rootPem]);
    await kill();
    const restarted = await until('the app restarted', async () => appStarts().find((start) => start.restarts === 1), 180_000);
    expect(restarted.pid).not.toBe(before[0]!.pid);
    const again = await until('the restarted app answering', async () => {
      const result = await cli(['fetch', `http://127.0.0.1:${mainPort}/`, '--pcrs', pcrsFile, '--root', rootPem]);
      return result.stdout === GREETING ? result : undefined;
    }, 120_000, 2000);
    expect(again.stdout).toBe(GREETING);

    // Kill it until init gives up: the restart policy allows 3 restarts within the window.
    await until('the app given up on', async () => {
      if (consoleLog.includes('INIT_CRASH_LOOP')) return true;
      await kill();
      return undefined;
    }, 300_000, 3000);
    expect(Math.max(...appStarts().map((start) => start.restarts))).toBe(3);
    const record = consoleLog.split('\n').find((line) => line.includes('INIT_CRASH_LOOP'))!;
    expect(record).toMatch(/"child":"app"/);
    // The public /healthz still says only that the agent is up.
    expect(await health(mainPort)).toEqual({ status: 'ok' });
  }, 600_000);
});
