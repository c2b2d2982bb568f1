// Registering every target with /register (dash and busybox ash, -p yes with Debian's
// emulators), against a baseline measured in the same run: a plain dash loop over the same
// lines doing one `printf > register` each, with no checks at all. Also the idempotent re-run, where
// every entry is already there. Prints medians in ms and the ratio to the baseline.
// Needs root and binfmt_misc; restores the machine's entries when done.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { registerLine } from '../lib/binfmt.ts';
import { CPUS, hostFamily } from '../lib/cpus.ts';
import { BINFMT, ensureMounted, readEntries, removeEntry, restoreEntries, registerScript } from '../test/helpers/binfmt.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(argv: string[]): number {
  const t = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return ms;
}

function clearQemu(): void {
  for (const name of readEntries().keys()) if (name.startsWith('qemu-')) removeEntry(name);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !fs.readFileSync('/proc/filesystems', 'utf8').includes('binfmt_misc')) {
    console.log('register bench: skipped (needs root and binfmt_misc)');
    return;
  }
  const family = hostFamily(os.machine());
  const cpus = CPUS.filter((c) => !c.removedIn && c.family !== family && fs.existsSync(`/usr/bin/qemu-${c.emulator}-static`));
  if (cpus.length === 0) {
    console.log('register bench: skipped (needs Debian qemu-user-static in /usr/bin)');
    return;
  }
  ensureMounted();
  const before = readEntries();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bench-'));
  try {
    // The lines are plain words in single quotes (the codec allows no quote characters).
    const words = cpus.map((c) => `  '${registerLine(c)}'`).join(' \\\n');
    const loop = path.join(dir, 'loop.sh');
    fs.writeFileSync(loop, `for l in \\\n${words}; do\n  printf '%s\\n' "$l" >${BINFMT}/register\ndone\n`);
    const script = registerScript();

    const runs: Record<string, number[]> = { baseline: [], dash: [], 'busybox ash': [], 'dash, all unchanged': [] };
    for (let i = 0; i < ROUNDS; i++) {
      clearQemu();
      runs.baseline!.push(time(['dash', loop]));
      const made = [...readEntries().keys()].filter((n) => n.startsWith('qemu-')).length;
      if (made !== cpus.length) throw new Error(`baseline registered ${made} of ${cpus.length} entries`);
      clearQemu();
      runs.dash!.push(time(['dash', script, '-p', 'yes']));
      runs['dash, all unchanged']!.push(time(['dash', script, '-p', 'yes']));
      clearQemu();
      runs['busybox ash']!.push(time(['busybox', 'sh', script, '-p', 'yes']));
    }
    const base = median(runs.baseline!);
    console.log(`register bench: ${cpus.length} entries, ${ROUNDS} rounds, median wall time including process start`);
    for (const [name, xs] of Object.entries(runs)) {
      const m = median(xs);
      console.log(`  ${name.padEnd(22)} ${m.toFixed(2).padStart(7)} ms   ${(m / base).toFixed(2)}x baseline`);
    }
  } finally {
    restoreEntries(before);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
