// `polyarch assets` at real size: Fedora's split of Debian's real qemu-user-static binaries
// (test/fixtures/rpms.ts, layout 'fedora': for x86_64, 18 RPMs and 31 published emulators, about
// 370 MB), run as `npx polyarch` runs it (bin/polyarch.js on the compiled build), whole
// process, against baselines measured in the same script, rounds alternating (machines are noisy):
//   seed:   the seed's way from the loopback koji: per RPM `curl | rpm2cpio | cpio -idm`, then
//           `tar czf` per emulator, the copies for x86_64's unprefixed names, and sha256sum;
//   native: bench/native-pipeline.sh, the pipeline a skilled engineer would write in shell on the
//           same cores, two jobs at a time (sha256sum and rpm2cpio | cpio per RPM, then per
//           emulator a raw copy and `tar | libdeflate-gzip -6`, the host-prefixed tarball as a
//           hard link, sha256sum for SHA256SUMS), from RPMs already on disk: not charged the
//           download.
// Cache states: cold = empty --cache, RPMs fetched from the loopback koji; warm = the same
// --cache full, a new --out folder; its floor, `cp -r` of the same files into a new folder, runs
// in the same rounds. Peak RSS and CPU time come from GNU time. Before each run,
// `sync` writes out what earlier runs left dirty, and the one-host cold runs take turns going first.
// BENCH_WARMUP rounds (default 1) run first and are printed apart, not in the medians: on a fresh
// VM the first touch of each page of guest memory is a fault the host serves, and in the first
// rounds every contender that fills new page cache paid it (a `cp -r` of the warm release took
// 1.26 s once, against 0.15 s later).
// BENCH_BEFORE=<folder>: a checkout of another commit with node_modules and its build (`git
// worktree add`, `npm ci`); its CLI runs cold on one host each round too, for a before/after ratio.
// Goals (issue 24, 2 cores): cold one host >= 3x the seed and >= 1.3x native; warm one host
// < 0.5 s, four hosts < 1 s; peak RSS of a cold four-host run < 1.5 GB.
import { execFile, exec } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostTarballName, tarballName } from '../lib/assets.ts';
import { targetsFor, type HostArch } from '../lib/cpus.ts';
import { createLock, writeLock } from '../lib/lock.ts';
import { compiledCliUrl, compiledUrl } from '../scripts/compiled.mjs';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';
import { releaseScratch, scratch, scratchMark } from './tmp.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Rounds run first and left out of the medians (printed apart): see the header. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const satisfies readonly HostArch[];
const ONE: HostArch = 'x86_64';
const REPO = path.dirname(import.meta.dirname);
const BEFORE = process.env.BENCH_BEFORE ? path.resolve(process.env.BENCH_BEFORE) : undefined;
const tmp = () => scratch();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Asynchronous throughout: the koji server answers on this process's event loop.
const sh = promisify(exec);
const run = promisify(execFile);

// An older tree's launcher may run its file-per-source build instead of the bundle.
for (const tree of [REPO, ...(BEFORE ? [BEFORE] : [])]) {
  if (!(compiledCliUrl(tree) ?? compiledUrl(tree, 'bin/polyarch.ts'))) throw new Error(`${tree}: the compiled CLI is missing or stale; run npm run build there first (the bench times the CLI as npm runs it)`);
}

let root: string | undefined;
for (const h of HOSTS) root = kojiTree(buildFixtureRpms({ host: h, layout: 'fedora', compression: 'zstd' }), SPLIT_BUILD, h, root ?? scratch('polyarch-bench-koji-'));
const koji = await startKoji(root!);
const lock = await createLock({ ...SPLIT_BUILD, hosts: [...HOSTS], koji: koji.url, cacheDir: tmp() });
const lockFile = path.join(tmp(), 'qemu.lock.json');
await writeLock(lockFile, lock);
const pins = lock.hosts[ONE]!;
/** The pinned RPMs of one host as files of the koji tree (the native pipeline reads them from disk). */
const rpmFiles = pins.map((r) => path.join(root!, decodeURIComponent(new URL(r.url).pathname)));
const published = targetsFor(ONE, 'all').map((c) => c.emulator);

interface Measured { ms: number; cpuMs: number; rssMB: number }
/** Runs a command under GNU time: wall time as seen from here, CPU (user + system) and peak RSS of it and its children. */
async function timed(cmd: string, args: string[], cwd = REPO): Promise<Measured> {
  const report = path.join(tmp(), 'time');
  const t = performance.now();
  await run('/usr/bin/time', ['-f', '%U %S %M', '-o', report, cmd, ...args], { cwd, maxBuffer: 64 << 20 });
  const ms = performance.now() - t;
  const [user, system, kb] = fs.readFileSync(report, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number];
  return { ms, cpuMs: (user + system) * 1000, rssMB: kb / 1024 };
}

/** `polyarch assets` of the given hosts, as `npx polyarch` runs it: the tree's bin/polyarch.js, on its compiled build. */
const ours = (cache: string, out: string, hosts: readonly HostArch[], tree = REPO) =>
  timed(path.join(tree, 'bin/polyarch.js'), ['assets', '--lock', lockFile, '--hosts', hosts.join(','), '--cache', cache, '--out', out], tree);

/** The seed's way for one host, from koji: curl | rpm2cpio | cpio, then tar czf per emulator, sequentially. */
async function seed(): Promise<void> {
  const work = tmp();
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  for (const r of pins) await sh(`curl -fsS '${r.url}' | rpm2cpio - | cpio -idm --quiet`, { cwd: work });
  const bin = path.join(work, 'usr/bin');
  for (const cpu of published) {
    await run('tar', ['czf', path.join(out, hostTarballName(ONE, cpu)), '-C', bin, `qemu-${cpu}-static`]);
    fs.copyFileSync(path.join(out, hostTarballName(ONE, cpu)), path.join(out, tarballName(cpu)));
    fs.copyFileSync(path.join(bin, `qemu-${cpu}-static`), path.join(out, `qemu-${cpu}-static`));
  }
  await sh('sha256sum * > ../SHA256SUMS && mv ../SHA256SUMS .', { cwd: out, shell: '/bin/sh' });
}

const native = (out: string) => timed('sh', [path.join(import.meta.dirname, 'native-pipeline.sh'), out, ONE, published.join(' '), ...rpmFiles]);

/** Our listing and the native one name the same files (ours has the SBOM too) and the same raw emulators. */
function sameRelease(oursDir: string, nativeDir: string): void {
  const names = (d: string) => fs.readdirSync(d).filter((f) => !f.startsWith('.')).sort();
  const mine = names(oursDir).filter((f) => f !== 'sbom.spdx.json');
  const theirs = names(nativeDir);
  if (mine.join(' ') !== theirs.join(' ')) throw new Error(`ours and native differ in files: ${mine.filter((f) => !theirs.includes(f)).join(', ')} / ${theirs.filter((f) => !mine.includes(f)).join(', ')}`);
  const sums = (d: string) => new Map(fs.readFileSync(path.join(d, 'SHA256SUMS'), 'utf8').trim().split('\n').map((l) => l.split(/\s+/).reverse() as [string, string]));
  const a = sums(oursDir);
  const b = sums(nativeDir);
  for (const cpu of published) if (a.get(`qemu-${cpu}-static`) !== b.get(`qemu-${cpu}-static`)) throw new Error(`qemu-${cpu}-static differs between ours and native`);
}

const record = () => ({ seed: [] as number[], native: [] as number[], nativeCpu: [] as number[], cold1: [] as number[], cold1Cpu: [] as number[], cold1Rss: [] as number[], before1: [] as number[], warm1: [] as number[], warm1Cpu: [] as number[], copy1: [] as number[], cold4: [] as number[], cold4Cpu: [] as number[], cold4Rss: [] as number[], warm4: [] as number[], warm4Cpu: [] as number[] });
const r = record();
const warmup = record();
/** Each figure's values in ms, rounded, per round. */
const perRound = (x: ReturnType<typeof record>) => JSON.stringify(Object.fromEntries(Object.entries(x).filter(([, v]) => v.length > 0).map(([k, v]) => [k, v.map((n) => Math.round(n))])));
let outBytes = 0;
let outFiles = 0;
/** Writes out the dirty pages earlier runs left, untimed: their writeback is not charged to the next run. */
const settle = () => run('sync', []);
for (let i = 0; i < WARMUP + ROUNDS; i++) {
  const into = i < WARMUP ? warmup : r;
  const mark = scratchMark();
  await settle();
  const t = performance.now();
  await seed();
  into.seed.push(performance.now() - t);
  const nativeOut = path.join(tmp(), 'out');
  const out1 = path.join(tmp(), 'out');
  const cache1 = tmp();
  // The one-host cold runs in a rotating order: none always runs on the heels of another.
  const contenders: (() => Promise<void>)[] = [
    async () => {
      const n = await native(nativeOut);
      into.native.push(n.ms);
      into.nativeCpu.push(n.cpuMs);
      fs.rmSync(`${nativeOut}.tree`, { recursive: true, force: true });
    },
    async () => {
      const c1 = await ours(cache1, out1, [ONE]);
      into.cold1.push(c1.ms);
      into.cold1Cpu.push(c1.cpuMs);
      into.cold1Rss.push(c1.rssMB);
    },
    ...(BEFORE
      ? [
          async () => {
            const out = path.join(tmp(), 'out');
            into.before1.push((await ours(tmp(), out, [ONE], BEFORE)).ms);
          },
        ]
      : []),
  ];
  for (let k = 0; k < contenders.length; k++) {
    await settle();
    await contenders[(i + k) % contenders.length]!();
  }
  sameRelease(out1, nativeOut);
  outFiles = fs.readdirSync(out1).length;
  outBytes = fs.readdirSync(out1).reduce((s, f) => s + fs.statSync(path.join(out1, f)).size, 0);
  // The floor of a warm run: the kernel copying the same files (`cp -r`, no reflinks on ext4)
  // into a new folder, the two taking turns going first.
  const warmPair: (() => Promise<void>)[] = [
    async () => {
      const w1 = await ours(cache1, path.join(tmp(), 'out'), [ONE]);
      into.warm1.push(w1.ms);
      into.warm1Cpu.push(w1.cpuMs);
    },
    async () => {
      into.copy1.push((await timed('cp', ['-r', out1, path.join(tmp(), 'copy')])).ms);
    },
  ];
  for (let k = 0; k < warmPair.length; k++) {
    await settle();
    await warmPair[(i + k) % warmPair.length]!();
  }
  const cache4 = tmp();
  await settle();
  const c4 = await ours(cache4, path.join(tmp(), 'out'), HOSTS);
  into.cold4.push(c4.ms);
  into.cold4Cpu.push(c4.cpuMs);
  into.cold4Rss.push(c4.rssMB);
  await settle();
  const w4 = await ours(cache4, path.join(tmp(), 'out'), HOSTS);
  into.warm4.push(w4.ms);
  into.warm4Cpu.push(w4.cpuMs);
  // Each round starts with no earlier round's files in the page cache.
  releaseScratch(mark);
}
await koji.close();

const m = Object.fromEntries(Object.entries(r).filter(([, v]) => v.length > 0).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
const verdict = (ok: boolean) => (ok ? 'goal met' : 'goal MISSED');
const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
const rpmBytes = pins.reduce((s, p) => s + p.size, 0);
console.log(`fixture: ${ONE}: ${pins.length} RPMs (${mb(rpmBytes)}) from a loopback koji, ${published.length} emulators published, ${outFiles} files (${mb(outBytes)}); four hosts: ${HOSTS.reduce((s, h) => s + lock.hosts[h]!.length, 0)} RPMs; ${os.availableParallelism()} cores; ${ROUNDS} rounds, medians (all rounds, ms: ${perRound(r)})`);
if (WARMUP > 0) console.log(`warm-up: ${WARMUP} round(s) first, not in the medians (ms: ${perRound(warmup)})`);
console.log(`[cold] one host: seed ${m.seed.toFixed(0)} ms, native pipeline ${m.native.toFixed(0)} ms (CPU ${m.nativeCpu.toFixed(0)} ms), polyarch ${m.cold1.toFixed(0)} ms (CPU ${m.cold1Cpu.toFixed(0)} ms, ${((100 * m.cold1Cpu) / (m.cold1 * os.availableParallelism())).toFixed(0)}% of ${os.availableParallelism()} cores)`);
console.log(`[cold] ratio seed/polyarch: ${(m.seed / m.cold1).toFixed(2)}x (${verdict(m.seed / m.cold1 >= 3)}: >= 3x)`);
console.log(`[cold] ratio native/polyarch: ${(m.native / m.cold1).toFixed(2)}x (${verdict(m.native / m.cold1 >= 1.3)}: >= 1.3x)`);
if (BEFORE) console.log(`[cold] before (${BEFORE}): ${m.before1.toFixed(0)} ms; ratio before/polyarch ${(m.before1 / m.cold1).toFixed(2)}x`);
console.log(`[cold] peak RSS: one host ${m.cold1Rss.toFixed(0)} MB; four hosts ${m.cold4Rss.toFixed(0)} MB (${verdict(m.cold4Rss < 1500)}: < 1500 MB), ${m.cold4.toFixed(0)} ms, CPU ${m.cold4Cpu.toFixed(0)} ms`);
console.log(`[warm] one host: ${m.warm1.toFixed(0)} ms, CPU ${m.warm1Cpu.toFixed(0)} ms (${verdict(m.warm1 < 500)}: < 500 ms); \`cp -r\` of the same ${outFiles} files: ${m.copy1.toFixed(0)} ms, ratio polyarch/cp ${(m.warm1 / m.copy1).toFixed(2)}x`);
console.log(`[warm] four hosts: ${m.warm4.toFixed(0)} ms, CPU ${m.warm4Cpu.toFixed(0)} ms (${verdict(m.warm4 < 1000)}: < 1000 ms)`);
