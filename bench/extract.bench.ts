// lock + fetch + extract of the fixture RPM set (two hosts, split layout, zstd), against the
// seed's way, `rpm2cpio X | cpio -idm` of the same RPMs already on disk, in the same run.
// Prints medians and the ratio (>1 means we are faster).
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createLock, extractLocked } from '../lib/lock.ts';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';
import { scratch } from './tmp.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const hosts = ['x86_64', 'aarch64'] as const;
const rpms = Object.fromEntries(hosts.map((h) => [h, buildFixtureRpms({ host: h, layout: 'split', compression: 'zstd' })]));
const root = kojiTree(rpms.x86_64!, SPLIT_BUILD, 'x86_64', scratch('polyarch-bench-koji-'));
kojiTree(rpms.aarch64!, SPLIT_BUILD, 'aarch64', root);
const koji = await startKoji(root);
const tmp = () => scratch();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const bytes = Object.values(rpms).flat().reduce((n, f) => n + fs.statSync(f).size, 0);

async function ours(): Promise<number> {
  const t = performance.now();
  const cacheDir = tmp();
  const lock = await createLock({ version: SPLIT_BUILD.version, release: SPLIT_BUILD.release, hosts: [...hosts], koji: koji.url, cacheDir });
  for (const h of hosts) await extractLocked(lock, h, cacheDir, path.join(tmp(), h));
  return performance.now() - t;
}

function seed(): number {
  const t = performance.now();
  for (const h of hosts) {
    const out = path.join(tmp(), h);
    fs.mkdirSync(out);
    for (const f of rpms[h]!) execSync(`rpm2cpio '${f}' | cpio -idm --quiet`, { cwd: out });
  }
  return performance.now() - t;
}

const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  b.push(seed());
  a.push(await ours());
}
await koji.close();
const [mo, ms] = [median(a), median(b)];
console.log(`fixture set: ${Object.values(rpms).flat().length} RPMs, ${(bytes / 1e6).toFixed(1)} MB, ${ROUNDS} rounds`);
console.log(`baseline rpm2cpio | cpio -idm (files on disk): ${ms.toFixed(0)} ms`);
console.log(`polyarch lock + fetch + extract (loopback koji): ${mo.toFixed(0)} ms`);
console.log(`ratio baseline/polyarch: ${(ms / mo).toFixed(2)}x ${ms >= mo ? '(not slower: goal met)' : '(slower than baseline)'}`);
