#!/usr/bin/env node
/**
 * Lists every member of a newc cpio archive with all of its header fields and the SHA-256 of its data, one
 * line each, so two archives can be compared with `diff` (reproduce.sh does, when they differ). `cpio -tv`
 * shows neither inode numbers, nor mtimes to the second, nor device numbers of regular files.
 *
 *   node image/cpio-list.mjs ARCHIVE.cpio
 *
 * Reads the "070701" format only (Linux's initramfs-buffer-format.rst); it never extracts anything.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const HEADER_BYTES = 110;
/** The 13 eight-digit hex fields after the 6-byte magic, in order. */
const FIELDS = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'];

const align4 = (n) => (n + 3) & ~3;

function main() {
  const path = process.argv[2];
  if (path === undefined) throw new Error('usage: node image/cpio-list.mjs ARCHIVE.cpio');
  const archive = readFileSync(path);
  let offset = 0;
  for (;;) {
    if (offset + HEADER_BYTES > archive.length) throw new Error(`truncated header at ${offset}`);
    const magic = archive.toString('latin1', offset, offset + 6);
    if (magic !== '070701') throw new Error(`bad magic ${JSON.stringify(magic)} at ${offset}`);
    const header = {};
    FIELDS.forEach((field, i) => {
      header[field] = Number.parseInt(archive.toString('latin1', offset + 6 + i * 8, offset + 14 + i * 8), 16);
    });
    const nameStart = offset + HEADER_BYTES;
    const name = archive.toString('utf8', nameStart, nameStart + header.namesize - 1);
    const dataStart = align4(nameStart + header.namesize);
    const data = archive.subarray(dataStart, dataStart + header.filesize);
    offset = align4(dataStart + header.filesize);
    if (name === 'TRAILER!!!') break;
    const sha256 = createHash('sha256').update(data).digest('hex');
    const fields = FIELDS.filter((f) => f !== 'namesize').map((f) => `${f}=${f === 'mode' ? header[f].toString(8) : header[f]}`);
    process.stdout.write(`${name} ${fields.join(' ')} sha256=${sha256}\n`);
  }
}

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

try {
  main();
} catch (error) {
  process.stderr.write(`cpio-list.mjs: ${error.message}\n`);
  process.exit(1);
}
