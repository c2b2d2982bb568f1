// Reproducible one-entry tarballs (`qemu-<cpu>-static.tar.gz`): the same emulator bytes give
// the same tarball bytes on every run and machine. Every field that could vary is fixed:
// ustar entry with mode 0755, uid/gid 0 (root/root), mtime 0; gzip header without name or
// timestamp and with OS = 3 (Unix); DEFLATE from libdeflate, the release the WebAssembly
// package pinned by package-lock.json is built from (natively or that package: the same bytes,
// see lib/deflate-pool.ts).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import tar from 'tar-stream';
import { deflateInWorker, inputBuffer } from './deflate-pool.ts';

/** The entry's mtime. A constant: the bytes must not depend on when or where they were built. */
export const TARBALL_MTIME = new Date(0);
/**
 * DEFLATE level: libdeflate's default. On the emulators it is about twice as fast as
 * `gzip -6` and its output is slightly smaller.
 */
export const GZIP_LEVEL = 6;
// The package exports no package.json, so it is read beside its entry point. The recipe names the
// WebAssembly package: it is the reference a native build is held to, not the compressor used.
const deflatePackage = path.join(path.dirname(createRequire(import.meta.url).resolve('libdeflate')), 'package.json');
const DEFLATE = `libdeflate-wasm-${(JSON.parse(readFileSync(deflatePackage, 'utf8')) as { version: string }).version}`;

/**
 * Everything besides the emulator's name and bytes that decides a tarball's bytes. It is part
 * of every tarball's cache key, so changing any of it (or upgrading libdeflate) rebuilds them.
 */
export const TARBALL_RECIPE = `ustar 0755 0:0 mtime=${TARBALL_MTIME.getTime() / 1000} gzip os=3 ${DEFLATE} level=${GZIP_LEVEL}`;

/** The parts of a ustar archive holding exactly one regular file (header, the bytes, padding, end), in order. */
async function tarParts(name: string, data: Buffer): Promise<Buffer[]> {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new Error(`tarball entry name ${JSON.stringify(name)} must be a plain file name of at most 100 characters`);
  const pack = tar.pack();
  pack.entry({ name, size: data.length, mode: 0o755, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: TARBALL_MTIME, type: 'file' }, data);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const part of pack) parts.push(part as Buffer);
  return parts;
}

/** A ustar archive holding exactly one regular file, `name`, with `data`. */
export async function tarOne(name: string, data: Buffer): Promise<Buffer> {
  return Buffer.concat(await tarParts(name, data));
}

/** A gzip member (RFC 1952) around raw DEFLATE data: no name, no mtime, OS fixed to Unix. */
export function gzipMember(deflated: Buffer, crc32: number, size: number, level = GZIP_LEVEL): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level >= 9 ? 2 : level <= 1 ? 4 : 0, 3]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32 >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  return Buffer.concat([header, deflated, trailer]);
}

/** A tarball's bytes, and the SHA-1 of the file in it (the SBOM lists both). */
export interface Tarball {
  bytes: Buffer;
  entrySha1: string;
}

/** tarOne's archives start with one header block: the file's bytes follow it. */
const HEADER_BLOCK = 512;

/** `<name>.tar.gz` holding `data` as `name`, compressed on a worker thread. */
export async function reproducibleTarball(name: string, data: Buffer): Promise<Tarball> {
  const parts = await tarParts(name, data);
  const size = parts.reduce((n, p) => n + p.length, 0);
  // Laid out in memory a worker handed back (tarOne's bytes): no new pages for each tarball.
  const archive = inputBuffer(size);
  let at = 0;
  for (const p of parts) {
    archive.set(p, at);
    at += p.length;
  }
  // The archive's memory moves to the worker, which reads it once for the DEFLATE stream, its
  // CRC-32 and the file's SHA-1; only the size is kept here.
  const d = await deflateInWorker(archive, GZIP_LEVEL, name, [HEADER_BLOCK, HEADER_BLOCK + data.length]);
  return { bytes: gzipMember(d.deflated, d.crc32, size), entrySha1: d.sha1! };
}
