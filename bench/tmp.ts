// Benchmarks' scratch folders: hundreds of megabytes each (RPMs, emulators, tarballs), so every
// one is removed when the process exits, however the run ends, and a round's can be removed when
// the round ends: page cache left growing makes every later round pay for the kernel's reclaim.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** A new folder under TMPDIR, removed at exit. */
export function scratch(prefix = 'polyarch-bench-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** How many scratch folders exist so far, for releaseScratch. */
export const scratchMark = () => made.length;

/** Removes the scratch folders made since `mark`, but those in `keep`. */
export function releaseScratch(mark: number, keep: readonly string[] = []): void {
  for (const dir of made.splice(mark)) {
    if (keep.includes(dir)) made.push(dir);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}
