// Digests already computed for files on disk, so the bytes are not read and hashed again: a
// file is known by its stamp (device, inode, size, mtime and ctime to the nanosecond), which any
// write to it changes, in place or by replacing it. The ctime is what makes a stamp hold against
// a same-size write whose mtime was put back (`touch -d`): no file call sets it, the kernel does
// on every write, chmod, link or rename. So a stamp is taken after a file's last rename and
// chmod, and a cached file is never hard-linked (that would change its stamp, and share its
// bytes with whoever holds the link). Stamps come from files this process wrote after hashing
// their bytes, and from cache metadata a run recorded the same way. A file whose stamp differs
// is simply unknown.
import fs from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { sha256 } from './digest.ts';

export type Stamp = string;

const known = new Map<Stamp, string>();

export const stampOf = (st: BigIntStats): Stamp => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

/** The stamp without its ctime: what a rename leaves as it was. */
const unmoved = (stamp: Stamp) => stamp.slice(0, stamp.lastIndexOf(':'));

/**
 * Carries what is known of a file over its rename (which sets its ctime): `after` is known as
 * `before` was when device, inode, size and mtime are unchanged. For files of a private staging
 * folder, moved right after they were written and stamped.
 */
export function rememberMoved(before: Stamp | undefined, after: Stamp | undefined): void {
  const digest = digestOf(before);
  if (digest !== undefined && after !== undefined && unmoved(before!) === unmoved(after)) remember(after, digest);
}

/** The stamp of `file` now, or undefined when it is not a regular file. */
export async function stampFile(file: string): Promise<Stamp | undefined> {
  const st = await fs.lstat(file, { bigint: true }).catch(() => undefined);
  return st?.isFile() ? stampOf(st) : undefined;
}

/** Records that the file with `stamp` holds bytes hashing to `sha256`. */
export function remember(stamp: Stamp | undefined, sha256: string): void {
  if (stamp) known.set(stamp, sha256);
}

/** The sha256 recorded for a file with this stamp, if any. */
export const digestOf = (stamp: Stamp | undefined): string | undefined => (stamp ? known.get(stamp) : undefined);

/** Whether `file` is, by its stamp, the bytes `sha256` names. */
export async function knownAs(file: string, sha256: string): Promise<boolean> {
  return digestOf(await stampFile(file)) === sha256;
}

/**
 * The sha256 of `file` and its stamp as read: taken from the stamp when it is known, else the
 * bytes are hashed (and remembered). One open file, so the stamp describes the bytes hashed.
 */
export async function hashStamped(file: string): Promise<{ sha256: string; size: number; stamp: Stamp }> {
  const fh = await fs.open(file, 'r');
  try {
    const st = await fh.stat({ bigint: true });
    const stamp = stampOf(st);
    const digest = digestOf(stamp) ?? sha256(await fh.readFile());
    remember(stamp, digest);
    return { sha256: digest, size: Number(st.size), stamp };
  } finally {
    await fh.close();
  }
}
