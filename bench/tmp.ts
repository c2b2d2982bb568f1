// Benchmarks' scratch folders: hundreds of megabytes each (RPMs, emulators, tarballs), so every
// one is removed when the process exits, however the run ends.
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
