/**
 * Bench only: a preload (`node --import ./bench/lib/fake-nsm-device.mjs <agent> run --nsm device ...`) that
 * lets the agent's device path start on a machine without /dev/nsm, and records when start-up reaches each
 * step. Never part of the agent: nothing in agent/, nsm/ or the image imports it, and it takes effect only
 * through Node's own --import flag on the command line of the process it runs in, so no agent flag or
 * environment variable can turn it on (a production deployment cannot reach it).
 *
 * The fake device: the real native addon is loaded (so its cost is measured), then its NSM half (open,
 * request, close; nsm/device.ts NativeBinding) is replaced by one that answers the CBOR protocol of
 * specs/nsm.md §2 in process, like QEMU's emulated NSM (§4), with unsigned documents (unsigned-nsm.mjs).
 * It announces itself on stderr: "FAKE NSM DEVICE".
 *
 * The timeline: performance.now() (ms since the process started) at the end of Node's bootstrap, the end of
 * this preload, the first parseArgs (the CLI's modules are evaluated), the addon load, the device open, the
 * identity key generation, the first listen() and each 'listening'. Written as one line,
 * `FAKE-NSM-TIMELINE {json}`, to stderr when the process exits.
 */

import { createRequire, syncBuiltinESMExports } from 'node:module';
import { writeSync } from 'node:fs';

const require = createRequire(import.meta.url);
const marks = [['node bootstrap', performance.nodeTiming.bootstrapComplete]];
const mark = (name) => marks.push([name, performance.now()]);
const markOnce = (name) => marks.some(([n]) => n === name) || mark(name);

const fakeNsm = {
  open(path) {
    mark('device open');
    writeSync(2, `FAKE NSM DEVICE: ${path} is answered in process by bench/lib/fake-nsm-device.mjs, not by a kernel\n`);
    return 1_000_000;
  },
  async request(fd, requestBytes) {
    if (fd !== 1_000_000) throw Object.assign(new Error('bad fd'), { code: 'NSM_EBADF', errno: 'EBADF' });
    // Imported on the first request, not with this preload: its load would count in the start-up measured.
    const { unsignedNsmAnswer } = await import('./unsigned-nsm.mjs');
    return Buffer.from(await unsignedNsmAnswer(requestBytes));
  },
  close() {},
};

const realDlopen = process.dlopen;
process.dlopen = function dlopen(module, filename, ...rest) {
  if (!String(filename).endsWith('enclave_native.node')) return realDlopen.call(this, module, filename, ...rest);
  mark('addon load start');
  const result = realDlopen.call(this, module, filename, ...rest);
  module.exports = { ...module.exports, ...fakeNsm };
  mark('addon loaded');
  return result;
};

const crypto_ = require('node:crypto');
const realGenerate = crypto_.generateKeyPairSync;
crypto_.generateKeyPairSync = function generateKeyPairSync(...args) {
  mark(`key generation start (${args[0]})`);
  const result = realGenerate.apply(this, args);
  mark(`key generated (${args[0]})`);
  return result;
};
const util = require('node:util');
const realParseArgs = util.parseArgs;
util.parseArgs = function parseArgs(...args) {
  markOnce('modules evaluated (first parseArgs)');
  return realParseArgs.apply(this, args);
};
const net = require('node:net');
const realListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listen(...args) {
  markOnce('first listen()');
  this.once('listening', () => mark('listening'));
  return realListen.apply(this, args);
};
syncBuiltinESMExports();

process.on('exit', () => writeSync(2, `FAKE-NSM-TIMELINE ${JSON.stringify(marks.sort((a, b) => a[1] - b[1]))}\n`));
mark('preload done');
