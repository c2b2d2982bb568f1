// A same-size change to a cached file that hides from size and mtime: one byte flipped in place
// (same inode), the mtime put back to the nanosecond. Only the ctime, which no call can set back,
// shows it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Flips the byte at `at` (default: the middle) of `file` in place and restores its mtime exactly. */
export function flipByte(file: string, at?: number): void {
  const before = fs.statSync(file, { bigint: true });
  const offset = at ?? Number(before.size / 2n);
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
  // utimes from Node takes doubles (no nanoseconds); touch sets them exactly.
  const secs = before.mtimeNs / 1_000_000_000n;
  const nanos = (before.mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  execFileSync('touch', ['-m', '-d', `@${secs}.${nanos}`, file]);
  const after = fs.statSync(file, { bigint: true });
  assert.equal(after.ino, before.ino, `${file}: flipped in place`);
  assert.equal(after.size, before.size, `${file}: same size`);
  assert.equal(after.mtimeNs, before.mtimeNs, `${file}: same mtime`);
}
