// Release assets from the fixture RPM set (two hosts, split layout, zstd), against baselines
// measured in the same run:
//   seed:  `rpm2cpio X | cpio -idm` per RPM, then `tar czf` per emulator, one after another
//          (plus the copy for x86_64's unprefixed names and sha256sum), as the seed's scripts did;
//   gzip:  `gzip -6` over the same emulators, one process per core at a time.
// Goals (2 cores): >= 2x faster than seed; compression within 1.3x of parallel gzip -6; a warm
// run (what every preview does) >= 20x faster than a cold one.
import { execFileSync, execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildAssets, hostTarballName, tarballName, writeAssets, type Asset } from '../lib/assets.ts';
import { targetsFor } from '../lib/cpus.ts';
import { deflateWorkers } from '../lib/deflate-pool.ts';
import { prepareEmulators, type HostEmulators } from '../lib/emulators.ts';
import { extractToDir } from '../lib/extract.ts';
import { createLock } from '../lib/lock.ts';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const hosts = ['x86_64', 'aarch64'] as const;
const rpms = Object.fromEntries(hosts.map((h) => [h, buildFixtureRpms({ host: h, layout: 'split', compression: 'zstd' })])) as Record<(typeof hosts)[number], string[]>;
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bench-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = async (f: () => unknown) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};
const wanted = (h: (typeof hosts)[number]) => new Set(targetsFor(h, 'all').map((c) => c.emulator));

/** Ours, from RPM files on disk: extract, build every asset with an empty cache, write the folder. */
async function ours(): Promise<void> {
  const work = tmp();
  // Hosts extract concurrently; each host's tarballs start as soon as its emulators are out.
  const prepared = hosts.map(async (h): Promise<HostEmulators> => {
    const dir = path.join(work, h);
    const manifest = await extractToDir(rpms[h].map((f) => ({ label: f, buf: fs.readFileSync(f) })), dir);
    return { host: h, dir, emulators: manifest.filter((m) => wanted(h).has(m.cpu)) };
  });
  const { assets } = await buildAssets(prepared, { cacheDir: path.join(work, 'cache') });
  await writeAssets(assets, path.join(work, 'out'));
}

/** The seed's way: rpm2cpio | cpio, then tar czf per emulator, sequentially. */
function seed(): void {
  const work = tmp();
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  for (const h of hosts) {
    const root = path.join(work, h);
    fs.mkdirSync(root);
    for (const f of rpms[h]) execSync(`rpm2cpio '${f}' | cpio -idm --quiet`, { cwd: root });
    const bin = path.join(root, 'usr/bin');
    for (const cpu of [...wanted(h)].filter((c) => fs.existsSync(path.join(bin, `qemu-${c}-static`))).sort()) {
      execFileSync('tar', ['czf', path.join(out, hostTarballName(h, cpu)), '-C', bin, `qemu-${cpu}-static`]);
      if (h === 'x86_64') {
        fs.copyFileSync(path.join(out, hostTarballName(h, cpu)), path.join(out, tarballName(cpu)));
        fs.copyFileSync(path.join(bin, `qemu-${cpu}-static`), path.join(out, `qemu-${cpu}-static`));
      }
    }
  }
  execSync('sha256sum * > ../SHA256SUMS && mv ../SHA256SUMS .', { cwd: out, shell: '/bin/sh' });
}

// Emulators extracted once (through the lockfile, as the program does) for the compression
// and warm-run measurements.
const root = kojiTree(rpms.x86_64, SPLIT_BUILD, 'x86_64');
kojiTree(rpms.aarch64, SPLIT_BUILD, 'aarch64', root);
const koji = await startKoji(root);
const rpmCache = tmp();
const lock = await createLock({ ...SPLIT_BUILD, hosts: [...hosts], koji: koji.url, cacheDir: rpmCache });
await koji.close();
const program = async (emulatorsDir: string, assetCache: string) => {
  const prepared = await Promise.all(hosts.map((h) => prepareEmulators(lock, h, { cacheDir: rpmCache, emulatorsDir, targets: 'all' })));
  return { prepared, built: await buildAssets(prepared, { cacheDir: assetCache }) };
};
const emulatorsDir = tmp();
const { prepared } = await program(emulatorsDir, tmp());
const binaries = prepared.flatMap((h) => h.emulators.map((e) => path.join(h.dir, e.file)));
const bytes = binaries.reduce((n, f) => n + fs.statSync(f).size, 0);

/** Bytes gzip -6 wrote in its last run. */
let gzipBytes = 0;
/** gzip -6 over the same binaries, as many processes at once as we have compression workers. */
function gzipParallel(): void {
  const out = tmp();
  execSync(`xargs -0 -P ${deflateWorkers()} -I{} sh -c 'gzip -6 -c "$1" > "$0/$(basename "$(dirname "$1")")-$(basename "$1").gz"' '${out}' {}`, { input: binaries.join('\0') });
  gzipBytes = fs.readdirSync(out).reduce((n, f) => n + fs.statSync(path.join(out, f)).size, 0);
}

let assets: Asset[] = [];
const r = { seed: [] as number[], ours: [] as number[], gzip: [] as number[], compress: [] as number[], cold: [] as number[], warm: [] as number[] };
for (let i = 0; i < ROUNDS; i++) {
  r.seed.push(await time(seed));
  r.ours.push(await time(ours));
  r.gzip.push(await time(gzipParallel));
  r.compress.push(await time(async () => ({ assets } = await buildAssets(prepared, { cacheDir: tmp() }))));
  const [e, c] = [tmp(), tmp()];
  r.cold.push(await time(() => program(e, c)));
  r.warm.push(await time(async () => {
    const { built } = await program(e, c);
    if (built.compressed !== 0) throw new Error(`warm run compressed ${built.compressed} tarballs`);
  }));
}
const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
const verdict = (ok: boolean) => (ok ? '(goal met)' : '(goal missed)');
console.log(`fixture set: ${Object.values(rpms).flat().length} RPMs, ${binaries.length} emulators, ${(bytes / 1e6).toFixed(1)} MB; ${deflateWorkers()} compression workers; ${ROUNDS} rounds, medians`);
console.log(`seed (rpm2cpio | cpio, tar czf each, sequential): ${m.seed.toFixed(0)} ms`);
console.log(`polyarch (extract, build every asset, write the folder): ${m.ours.toFixed(0)} ms`);
console.log(`ratio seed/polyarch: ${(m.seed / m.ours).toFixed(2)}x ${verdict(m.seed / m.ours >= 2)} [goal >= 2x]`);
console.log(`gzip -6 in parallel over the same emulators: ${m.gzip.toFixed(0)} ms; polyarch tarballs + SHA256SUMS, cold cache: ${m.compress.toFixed(0)} ms`);
console.log(`ratio polyarch/gzip: ${(m.compress / m.gzip).toFixed(2)}x ${verdict(m.compress / m.gzip <= 1.3)} [goal <= 1.3x]`);
// Speed must not be bought with size: the host-prefixed tarballs (one per emulator) against gzip -6.
const tarBytes = assets.filter((a) => a.kind === 'tarball' && a.name === hostTarballName(a.host!, a.target!)).reduce((n, a) => n + a.size, 0);
console.log(`compressed size: polyarch tarballs ${(tarBytes / 1e6).toFixed(2)} MB, gzip -6 ${(gzipBytes / 1e6).toFixed(2)} MB; ratio ${(tarBytes / gzipBytes).toFixed(3)}`);
console.log(`program path (prepareEmulators + buildAssets) cold: ${m.cold.toFixed(0)} ms, warm: ${m.warm.toFixed(1)} ms`);
console.log(`ratio cold/warm: ${(m.cold / m.warm).toFixed(0)}x ${verdict(m.cold / m.warm >= 20)} [goal >= 20x]`);
