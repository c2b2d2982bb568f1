// Release assets for four hosts from the fixture RPM set, served by a loopback koji, against
// baselines measured in the same run, rounds alternating (the machine is shared and noisy):
//   seed:     per RPM `curl | rpm2cpio | cpio -idm`, then `tar czf` per emulator, one after
//             another, plus the copies for x86_64's unprefixed names and sha256sum (the seed's way);
//   libdeflate-gzip -6 (native, Debian libdeflate-tools) over the same emulators, one process
//             per core at a time: compression alone, no fetch, no extraction; and our own
//             compression alone over the same files, in this process, for the part of the gap
//             that is compression.
// Ours runs in a child process (bench/assets-run.ts) so its peak RSS is its own, timed after
// its imports (the CLI's start-up is measured elsewhere). Cache states are named per figure:
//   cold = empty cache, RPMs fetched from koji; warm = same lockfile, full cache, new output folder.
// fallback: ours again without the native modules (POLYARCH_DEFLATE=wasm, POLYARCH_ZSTD=tool), as
// a machine without cargo or a C compiler runs it: the same bytes, for the native modules' ratio.
// BENCH_BEFORE=<folder>: a checkout of another commit, with node_modules (e.g. `git archive
// <commit> | tar -x -C <folder>` and a link to node_modules); its bench/assets-run.ts runs cold
// each round too, between the seed's and ours, for a before/after ratio from one script run.
// Goals (issue 14, 2 cores): cold >= 3x faster than seed and <= 1.3x native libdeflate-gzip -6;
// warm < 0.5 s for one host, < 1 s for four; peak RSS of a cold four-host run < 1.5 GB.
import { execFile, exec } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostTarballName, tarballName } from '../lib/assets.ts';
import { targetsFor, type HostArch } from '../lib/cpus.ts';
import { deflateBackend, deflateWorkers } from '../lib/deflate-pool.ts';
import { reproducibleTarball } from '../lib/tarball.ts';
import { createLock, writeLock } from '../lib/lock.ts';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';
import { releaseScratch, scratch, scratchMark } from './tmp.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const satisfies readonly HostArch[];
const tmp = () => scratch();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Asynchronous throughout: the koji server answers on this process's event loop.
const sh = promisify(exec);
const run = promisify(execFile);
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};
const wanted = (h: HostArch) => new Set(targetsFor(h, 'all').map((c) => c.emulator));

let root = scratch('polyarch-bench-koji-');
for (const h of HOSTS) root = kojiTree(buildFixtureRpms({ host: h, layout: 'split', compression: 'zstd' }), SPLIT_BUILD, h, root);
const koji = await startKoji(root!);
const lock = await createLock({ ...SPLIT_BUILD, hosts: [...HOSTS], koji: koji.url, cacheDir: tmp() });
const lockFile = path.join(tmp(), 'qemu.lock.json');
await writeLock(lockFile, lock);
const rpmCount = HOSTS.reduce((n, h) => n + lock.hosts[h]!.length, 0);
const rpmBytes = HOSTS.reduce((n, h) => n + lock.hosts[h]!.reduce((m, r) => m + r.size, 0), 0);

interface Run { ms: number; cpuMs: number; rssMB: number; compressed: number; deflate: string; zstd: string; copied: number; hashed: number; kept: number }
const BEFORE = process.env.BENCH_BEFORE ? path.resolve(process.env.BENCH_BEFORE) : undefined;
const ours = async (cache: string, out: string, hosts: readonly HostArch[], tree = path.dirname(import.meta.dirname), env: NodeJS.ProcessEnv = process.env): Promise<Run> =>
  JSON.parse((await run(process.execPath, ['--import', 'tsx', path.join(tree, 'bench', 'assets-run.ts'), lockFile, cache, out, hosts.join(',')], { encoding: 'utf8', cwd: tree, env })).stdout) as Run;
const FALLBACK = { ...process.env, POLYARCH_DEFLATE: 'wasm', POLYARCH_ZSTD: 'tool' };

/** The seed's way, from koji: curl | rpm2cpio | cpio, then tar czf per emulator, sequentially. */
async function seed(): Promise<string> {
  const work = tmp();
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  for (const h of HOSTS) {
    const dir = path.join(work, h);
    fs.mkdirSync(dir);
    for (const r of lock.hosts[h]!) await sh(`curl -fsS '${r.url}' | rpm2cpio - | cpio -idm --quiet`, { cwd: dir });
    const bin = path.join(dir, 'usr/bin');
    for (const cpu of [...wanted(h)].filter((c) => fs.existsSync(path.join(bin, `qemu-${c}-static`))).sort()) {
      await run('tar', ['czf', path.join(out, hostTarballName(h, cpu)), '-C', bin, `qemu-${cpu}-static`]);
      if (h === 'x86_64') {
        fs.copyFileSync(path.join(out, hostTarballName(h, cpu)), path.join(out, tarballName(cpu)));
        fs.copyFileSync(path.join(bin, `qemu-${cpu}-static`), path.join(out, `qemu-${cpu}-static`));
      }
    }
  }
  await sh('sha256sum * > ../SHA256SUMS && mv ../SHA256SUMS .', { cwd: out, shell: '/bin/sh' });
  return work;
}

// The emulators the tarballs are made of, for the native baseline (from a seed run's tree).
const seedTree = await seed();
const binaries = HOSTS.flatMap((h) => [...wanted(h)].map((c) => path.join(seedTree, h, 'usr/bin', `qemu-${c}-static`)).filter((f) => fs.existsSync(f)));
const bytes = binaries.reduce((n, f) => n + fs.statSync(f).size, 0);
let nativeBytes = 0;
let nativeCpuMs = 0;
/** Native libdeflate-gzip -6 over the same emulators, as many processes at once as we have compression workers. */
async function native(): Promise<void> {
  const out = tmp();
  const list = path.join(tmp(), 'list');
  fs.writeFileSync(list, binaries.join('\0'));
  // `times` prints the shell's children's CPU time on its second line: user and system.
  const { stdout } = await sh(`xargs -0 -P ${deflateWorkers()} -I{} sh -c 'libdeflate-gzip -6 -c "$1" > "$0/$(echo "$1" | tr / _).gz"' '${out}' {} < '${list}'; times`, { shell: '/bin/sh' });
  const secs = [...(stdout.trim().split('\n')[1] ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map((x) => Number(x[1]) * 60 + Number(x[2]));
  nativeCpuMs = secs.reduce((a, b) => a + b, 0) * 1000;
  nativeBytes = fs.readdirSync(out).reduce((n, f) => n + fs.statSync(path.join(out, f)).size, 0);
}

/**
 * Our compression alone over the same emulators, as the native baseline does it: read each file,
 * make its tarball on the deflate pool, write it. No fetch, no extraction, no hashing.
 */
async function oursCompressionOnly(): Promise<void> {
  const out = tmp();
  await Promise.all(binaries.map(async (f, i) => fs.promises.writeFile(path.join(out, `${i}.tar.gz`), await reproducibleTarball(path.basename(f), await fs.promises.readFile(f)))));
}

const r = { seed: [] as number[], native: [] as number[], nativeCpu: [] as number[], coldCpu: [] as number[], compressOnly: [] as number[], fallback: [] as number[], before: [] as number[], beforeRss: [] as number[], cold: [] as number[], rss: [] as number[], warm1: [] as number[], warm4: [] as number[] };
let last: { cold: Run; warm1: Run; warm4: Run; fallback: Run; out: string } | undefined;
for (let i = 0; i < ROUNDS; i++) {
  const mark = scratchMark();
  r.seed.push(await time(seed));
  r.native.push(await time(native));
  r.nativeCpu.push(nativeCpuMs);
  r.compressOnly.push(await time(oursCompressionOnly));
  const fallback = await ours(tmp(), path.join(tmp(), 'out'), HOSTS, undefined, FALLBACK);
  r.fallback.push(fallback.ms);
  if (BEFORE) {
    const b = await ours(tmp(), path.join(tmp(), 'out'), HOSTS, BEFORE);
    r.before.push(b.ms);
    r.beforeRss.push(b.rssMB);
  }
  const cache = tmp();
  const out = path.join(tmp(), 'out');
  const cold = await ours(cache, out, HOSTS);
  const warm1 = await ours(cache, path.join(tmp(), 'out'), ['x86_64']);
  const warm4 = await ours(cache, path.join(tmp(), 'out'), HOSTS);
  if (warm1.compressed + warm4.compressed !== 0) throw new Error('a warm run compressed tarballs');
  r.cold.push(cold.ms);
  r.coldCpu.push(cold.cpuMs);
  r.rss.push(cold.rssMB);
  r.warm1.push(warm1.ms);
  r.warm4.push(warm4.ms);
  last = { cold, warm1, warm4, fallback, out };
  // Each round starts with no earlier round's files in the page cache; the last output is read below.
  releaseScratch(mark, [path.dirname(out)]);
}
await koji.close();
const m = Object.fromEntries(Object.entries(r).filter(([, v]) => v.length > 0).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
const verdict = (ok: boolean) => (ok ? 'goal met' : 'goal MISSED');
const ours4 = fs.readdirSync(last!.out).filter((f) => /^(x86_64|aarch64|ppc64le|s390x)_qemu-.*\.tar\.gz$/.test(f)).reduce((n, f) => n + fs.statSync(path.join(last!.out, f)).size, 0);
console.log(`fixture: ${HOSTS.length} hosts, ${rpmCount} RPMs (${(rpmBytes / 1e6).toFixed(1)} MB) from a loopback koji, ${binaries.length} emulators to compress (${(bytes / 1e6).toFixed(1)} MB); ${os.availableParallelism()} cores, ${deflateWorkers()} deflate workers; ${ROUNDS} rounds, medians (all rounds: ${JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.map((x) => Math.round(x))])))})`);
console.log(`[cold] seed (curl | rpm2cpio | cpio, tar czf each, sequential): ${m.seed.toFixed(0)} ms; polyarch: ${m.cold.toFixed(0)} ms (deflate ${last!.cold.deflate}, zstd ${last!.cold.zstd})`);
console.log(`[cold] ratio seed/polyarch: ${(m.seed / m.cold).toFixed(2)}x (${verdict(m.seed / m.cold >= 3)}: >= 3x)`);
console.log(`[cold] polyarch without the native modules (deflate ${last!.fallback.deflate}, zstd ${last!.fallback.zstd}): ${m.fallback.toFixed(0)} ms; ratio fallback/polyarch ${(m.fallback / m.cold).toFixed(2)}x; seed/fallback ${(m.seed / m.fallback).toFixed(2)}x`);
if (BEFORE) {
  console.log(`[cold] before (${BEFORE}): ${m.before.toFixed(0)} ms, peak RSS ${m.beforeRss.toFixed(0)} MB; ratio seed/before ${(m.seed / m.before).toFixed(2)}x`);
  console.log(`[cold] ratio before/polyarch: ${(m.before / m.cold).toFixed(2)}x`);
}
console.log(`[cold] native libdeflate-gzip -6, ${deflateWorkers()} at a time, compression only: ${m.native.toFixed(0)} ms`);
console.log(`[cold] ratio polyarch/native: ${(m.cold / m.native).toFixed(2)}x (${verdict(m.cold / m.native <= 1.3)}: <= 1.3x)`);
console.log(`[cold] CPU time (user + system, all threads): polyarch ${m.coldCpu.toFixed(0)} ms, native libdeflate-gzip ${m.nativeCpu.toFixed(0)} ms; ratio ${(m.coldCpu / m.nativeCpu).toFixed(2)}x (on ${os.availableParallelism()} cores a run cannot take less than its CPU time over the cores)`);
console.log(`[cold] polyarch's compression alone over the same emulators (${deflateBackend().kind} libdeflate, read, tar, deflate, write): ${m.compressOnly.toFixed(0)} ms; ratio to native ${(m.compressOnly / m.native).toFixed(2)}x`);
console.log(`[cold] compressed size: polyarch host tarballs ${(ours4 / 1e6).toFixed(2)} MB, native -6 ${(nativeBytes / 1e6).toFixed(2)} MB; ratio ${(ours4 / nativeBytes).toFixed(3)}`);
console.log(`[cold] peak RSS of the four-host run: ${m.rss.toFixed(0)} MB (${verdict(m.rss < 1500)}: < 1500 MB)`);
console.log(`[warm] one host (x86_64): ${m.warm1.toFixed(0)} ms (${verdict(m.warm1 < 500)}: < 500 ms); ratio cold/warm ${(m.cold / m.warm1).toFixed(0)}x; ${last!.warm1.copied} files copied by the kernel, ${last!.warm1.hashed} hashed`);
console.log(`[warm] four hosts: ${m.warm4.toFixed(0)} ms (${verdict(m.warm4 < 1000)}: < 1000 ms); ratio cold/warm ${(m.cold / m.warm4).toFixed(0)}x; ${last!.warm4.copied} files copied by the kernel, ${last!.warm4.hashed} hashed`);
