// One `polyarch assets --lock` run as the CLI does it (lib/ calls, without the CLI's start-up),
// for bench/assets.bench.ts, in a process of its own so its peak RSS is its own. Prints JSON:
// elapsed ms (after imports), CPU ms of all its threads, peak RSS in MB, the compressor and zstd decoder it used, and what
// writeAssets copied (by the kernel, or read and hashed) or kept.
//   node --import tsx bench/assets-run.ts LOCK CACHE OUT HOSTS
import fs from 'node:fs';
import path from 'node:path';
import { buildAssets, writeAssets } from '../lib/assets.ts';
import type { HostArch } from '../lib/cpus.ts';
import { deflateBackend } from '../lib/deflate-pool.ts';
import { prepareEmulators } from '../lib/emulators.ts';
import { readLock, releaseTag } from '../lib/lock.ts';
import { zstdBackend } from '../lib/zstd-pool.ts';

/**
 * This process's own peak RSS (VmHWM), in MB. Not getrusage's maxRSS: Linux carries that across
 * fork and exec, so it would report the bench's own RSS whenever that is larger.
 */
const peakRssMB = () => Number(/^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

const [lockFile, cache, out, hostList] = process.argv.slice(2) as [string, string, string, string];
const start = performance.now();
const cpuStart = process.cpuUsage();
const lock = await readLock(lockFile);
const emulatorsDir = path.join(cache, 'emulators');
const hosts = hostList.split(',').map((h) => prepareEmulators(lock, h as HostArch, { cacheDir: cache, emulatorsDir, targets: 'all' }));
const built = await buildAssets(hosts, { cacheDir: path.join(cache, 'assets'), releaseTag: releaseTag(lock) });
const written = await writeAssets(built.assets, out);
const ms = performance.now() - start;
const cpu = process.cpuUsage(cpuStart);
console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, rssMB: peakRssMB(), compressed: built.compressed, deflate: deflateBackend().kind, zstd: zstdBackend().kind, ...written }));
