// Where the time of a cold `polyarch assets` goes, one step after another on one core (so each
// step's cost is its own): fetch from a loopback koji, sha256, RPM header checks, zstd decode,
// cpio parse and emulator digests, writing the extraction, compression, and writing the
// release folder. Then a warm run (full cache, new output folder). Run by hand:
//   node --import tsx bench/assets-phases.ts [hosts, default x86_64,aarch64,ppc64le,s390x]
import fs from 'node:fs';
import path from 'node:path';
import { buildAssets, writeAssets } from '../lib/assets.ts';
import type { HostArch } from '../lib/cpus.ts';
import { sha256 } from '../lib/digest.ts';
import { prepareEmulators } from '../lib/emulators.ts';
import { extractRpm } from '../lib/extract.ts';
import { RpmCache } from '../lib/fetch.ts';
import { createLock, releaseTag } from '../lib/lock.ts';
import { decompressPayload, readRpm } from '../lib/rpm.ts';
import { readCpio } from '../lib/cpio.ts';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';
import { scratch } from './tmp.ts';

const hosts = (process.argv[2] ?? 'x86_64,aarch64,ppc64le,s390x').split(',') as HostArch[];
const tmp = () => scratch('polyarch-phases-');
let root = scratch('polyarch-bench-koji-');
for (const h of hosts) root = kojiTree(buildFixtureRpms({ host: h as 'x86_64', layout: 'split', compression: 'zstd' }), SPLIT_BUILD, h, root);
const koji = await startKoji(root!);
const lock = await createLock({ ...SPLIT_BUILD, hosts, koji: koji.url, cacheDir: tmp() });
const rows: [string, number][] = [];
const step = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
  const t = performance.now();
  const v = await f();
  rows.push([name, performance.now() - t]);
  return v;
};
const pins = hosts.flatMap((h) => lock.hosts[h]!);
const rpmBytes = pins.reduce((n, r) => n + r.size, 0);

// Steps alone, serially.
const bufs = await step('fetch (HTTP body into memory)', () => Promise.all(pins.map(async (r) => Buffer.from(await (await fetch(r.url)).arrayBuffer()))));
await step('sha256 of the RPMs', () => bufs.map((b) => sha256(b)));
const cacheDir = tmp();
await step('write the RPM cache', async () => { const c = new RpmCache(cacheDir); for (const b of bufs) await c.write(b); });
const rpms = await step('RPM headers + payload digest', () => bufs.map((b, i) => readRpm(b, pins[i]!.url)));
const cpios: Buffer[] = [];
await step('zstd decode (one at a time)', async () => { for (const [i, r] of rpms.entries()) cpios.push(await decompressPayload(r, pins[i]!.url)); });
const emus = await step('cpio parse', () => cpios.flatMap((c) => [...readCpio(c, 'x')].filter((e) => /qemu-.*-static$/.test(e.name)).map((e) => e.data)));
const emuBytes = emus.reduce((n, e) => n + e.length, 0);
await step('sha256 of the emulators', () => emus.map((e) => sha256(e)));
const wdir = tmp();
await step('write the emulators', () => emus.forEach((e, i) => fs.writeFileSync(path.join(wdir, String(i)), e)));
await step('extractRpm whole (decode+parse+digests, 2 workers)', () => Promise.all(bufs.map((b, i) => extractRpm(b, pins[i]!.url))));

// The program's own phases, cold then warm.
const emulatorsDir = tmp();
const assetCache = tmp();
const prepared = await step('COLD prepareEmulators (fetch+extract, all hosts)', () => Promise.all(hosts.map((h) => prepareEmulators(lock, h, { cacheDir: tmp(), emulatorsDir, targets: 'all' }))));
const built = await step('COLD buildAssets (tarballs)', () => buildAssets(prepared, { cacheDir: assetCache, releaseTag: releaseTag(lock) }));
await step('COLD writeAssets', () => writeAssets(built.assets, tmp()));
const warm = await step('WARM prepareEmulators', () => Promise.all(hosts.map((h) => prepareEmulators(lock, h, { cacheDir: tmp(), emulatorsDir, targets: 'all' }))));
const wb = await step('WARM buildAssets', () => buildAssets(warm, { cacheDir: assetCache, releaseTag: releaseTag(lock) }));
await step('WARM writeAssets (new folder)', () => writeAssets(wb.assets, tmp()));
await koji.close();
const outBytes = built.assets.reduce((n, a) => n + a.size, 0);
console.log(`${hosts.join(',')}: ${pins.length} RPMs ${(rpmBytes / 1e6).toFixed(1)} MB, ${emus.length} emulators ${(emuBytes / 1e6).toFixed(1)} MB, ${built.assets.length} assets ${(outBytes / 1e6).toFixed(1)} MB`);
for (const [n, ms] of rows) console.log(`${ms.toFixed(0).padStart(7)} ms  ${n}`);
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB (whole script)`);
