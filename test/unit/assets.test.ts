// Release assets: names per host and target, reproducible tarballs (checked with the system's
// gzip, tar and sha256sum), the digest-keyed cache, and the `polyarch assets` command.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { before, test } from 'node:test';
import { buildAssets, hostTarballName, SBOM_FILE, SUMS_FILE, tarballName, Tarballs, writeAssets, type Asset, type BuiltAssets } from '../../lib/assets.ts';
import { releaseNotes } from '../../lib/release-notes.ts';
import { prepareEmulators, type HostEmulators } from '../../lib/emulators.ts';
import { gzipMember, reproducibleTarball, tarOne } from '../../lib/tarball.ts';
import { writeLock, type Lock } from '../../lib/lock.ts';
import { DEFAULT_API_URL, downloadBase } from '../../lib/github-release.ts';
import { buildFixtureRpms } from '../fixtures/rpms.ts';
import { HOST_ELF, hostElfBytes } from '../helpers/elf.ts';
import { fixtureLock } from '../helpers/program.ts';
import { flipByte } from '../helpers/tamper.ts';
import { requireSystem } from '../helpers/system.ts';
import { canRunAsNobody, unprivileged } from '../helpers/as-nobody.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const X86_TARGETS = ['aarch64', 'aarch64_be', 'arm', 'armeb', 'ppc64le', 'riscv64', 's390x'];
const ARM_TARGETS = ['aarch64_be', 'armeb', 'i386', 'ppc64le', 'riscv64', 's390x', 'x86_64'];
// Each host leaves out only its own family: ppc64le (family ppcle) keeps i386 and s390x; s390x keeps ppc64le.
const PPC_TARGETS = ['aarch64', 'aarch64_be', 'arm', 'armeb', 'i386', 'riscv64', 's390x', 'x86_64'];
const S390X_TARGETS = ['aarch64', 'aarch64_be', 'arm', 'armeb', 'i386', 'ppc64le', 'riscv64', 'x86_64'];
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
const TARGETS = { x86_64: X86_TARGETS, aarch64: ARM_TARGETS, ppc64le: PPC_TARGETS, s390x: S390X_TARGETS };
/** The tag the fixture lockfile publishes (releaseTag of it): the SBOM names it. */
const TAG = 'v9.2.4-1';
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `polyarch-assets-${tag}-`));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let x86Rpms: string[] = [];
let hosts: HostEmulators[] = [];
/** One cold build of every host's assets, shared by the tests that read it. */
let cold: BuiltAssets;
let coldCache = '';
let locked: Lock;
let lockFile = '';
let rpmCache = '';
before(async () => {
  x86Rpms = buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' });
  const { lock, cacheDir, file } = await fixtureLock(HOSTS);
  [locked, lockFile, rpmCache] = [lock, file, cacheDir];
  const emulatorsDir = tmp('emulators');
  hosts = await Promise.all(HOSTS.map((h) => prepareEmulators(lock, h, { cacheDir, emulatorsDir, targets: 'all' })));
  coldCache = tmp('cache');
  cold = await buildAssets(hosts, { cacheDir: coldCache, releaseTag: TAG });
});

function polyarch(args: string[]) {
  return spawnSync(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 });
}

test('tarball: one ustar entry, 0755 root:root, mtime 0, gzip header without name or time and OS Unix', async () => {
  const data = Buffer.from('\x7fELF pretend emulator\n'.repeat(1000));
  const { bytes: tgz, entrySha1 } = await reproducibleTarball('qemu-arm-static', data);
  // The worker takes the file's SHA-1 from the archive it compresses: the file's own.
  assert.equal(entrySha1, createHash('sha1').update(data).digest('hex'));
  assert.deepEqual([...tgz.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  const archive = zlib.gunzipSync(tgz);
  assert.deepEqual(archive, await tarOne('qemu-arm-static', data));
  // One 512-byte header, the data padded to 512, then two zero blocks: nothing else.
  assert.equal(archive.length, 512 + Math.ceil(data.length / 512) * 512 + 1024);
  const field = (off: number, len: number) => archive.subarray(off, off + len).toString('latin1').replace(/[\0 ]+$/, '');
  assert.equal(field(0, 100), 'qemu-arm-static');
  assert.equal(field(100, 8), '000755');
  assert.equal(field(108, 8), '000000');
  assert.equal(field(116, 8), '000000');
  assert.equal(Number.parseInt(field(124, 12), 8), data.length);
  assert.equal(Number.parseInt(field(136, 12), 8), 0);
  assert.equal(field(156, 1), '0');
  assert.equal(field(257, 6), 'ustar');
  assert.deepEqual(archive.subarray(512, 512 + data.length), data);
  await assert.rejects(tarOne('../etc/passwd', data), /must be a plain file name/);
});

test('tarball bytes are pinned: a fixed input gives these exact bytes on every machine', async () => {
  // Pseudo-random but compressible input: any change to the recipe or the compressor shows here.
  let x = 1;
  const data = Buffer.alloc(1 << 20, 0);
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    // Runs of repeated bytes among random nibbles: matches of every length for the compressor.
    data[i] = i % 4096 < 1024 ? data[i - 64] ?? 0 : (x >>> 24) & 0x0f;
  }
  const { bytes: tgz } = await reproducibleTarball('qemu-riscv64-static', data);
  assert.equal(sha256(tgz), GOLDEN_TARBALL);
  assert.equal(sha256(zlib.gunzipSync(tgz)), sha256(await tarOne('qemu-riscv64-static', data)));
  // The compressor's heap in each worker now holds other allocations: the bytes must not care.
  await Promise.all([3 << 20, 5 << 20].map((n) => reproducibleTarball('qemu-other-static', Buffer.alloc(n, 7))));
  const again = await Promise.all([0, 1, 2].map(() => reproducibleTarball('qemu-riscv64-static', data)));
  assert.deepEqual(again.map((t) => sha256(t.bytes)), [GOLDEN_TARBALL, GOLDEN_TARBALL, GOLDEN_TARBALL]);
});
const GOLDEN_TARBALL = '54f9ddd230d2f1839808f3a187de8b86348fb0a1542c73a821c83fdbc3a56c7b';

test('gzip framing: crc and size trailer, level in XFL', () => {
  const m = gzipMember(zlib.deflateRawSync(Buffer.from('abc')), zlib.crc32(Buffer.from('abc')), 3, 9);
  assert.equal(m[8], 2);
  assert.equal(zlib.gunzipSync(m).toString(), 'abc');
  assert.equal(m.readUInt32LE(m.length - 4), 3);
});

test('four hosts: names, shared bytes for x86_64 prefixed and unprefixed, the SBOM, SHA256SUMS over every file', async () => {
  const { assets, compressed, reused } = cold;
  assert.equal(reused, 0);
  assert.equal(compressed, HOSTS.reduce((n, h) => n + TARGETS[h].length, 0));
  const names = assets.map((a) => a.name);
  const expected = [
    SUMS_FILE,
    SBOM_FILE,
    ...X86_TARGETS.flatMap((t) => [`qemu-${t}-static`, tarballName(t), hostTarballName('x86_64', t)]),
    ...HOSTS.slice(1).flatMap((h) => TARGETS[h].map((t) => hostTarballName(h, t))),
  ].sort();
  assert.deepEqual(names, expected);
  assert.ok(names.includes('ppc64le_qemu-s390x-static.tar.gz') && names.includes('s390x_qemu-ppc64le-static.tar.gz'));
  const by = new Map(assets.map((a) => [a.name, a]));
  for (const t of X86_TARGETS) {
    const plain = by.get(tarballName(t))!;
    const prefixed = by.get(hostTarballName('x86_64', t))!;
    assert.equal(plain.file, prefixed.file, 'compressed once');
    assert.equal(plain.sha256, prefixed.sha256);
    assert.equal(by.get(`qemu-${t}-static`)!.sha256, hosts[0]!.emulators.find((e) => e.cpu === t)!.sha256);
  }
  // The other hosts' x86_64 emulators differ from anything x86_64 publishes: no unprefixed name for them.
  assert.ok(!by.has('qemu-x86_64-static') && !by.has(tarballName('x86_64')));
  // Each H_ tarball holds H's build: one ustar entry named for the target, an ELF for H.
  for (const h of HOSTS) {
    for (const t of TARGETS[h]) {
      const tar = zlib.gunzipSync(fs.readFileSync(by.get(hostTarballName(h, t))!.file));
      assert.equal(tar.toString('latin1', 0, 100).replace(/\0+$/, ''), `qemu-${t}-static`);
      assert.equal(hostElfBytes(tar.subarray(512)), HOST_ELF[h], hostTarballName(h, t));
    }
  }
  const sbom = by.get(SBOM_FILE)!;
  assert.equal(sbom.kind, 'sbom', 'the SBOM is an asset of its own kind');
  assert.equal(sbom.contentType, 'application/spdx+json', 'the SBOM has SPDX JSON\'s media type');
  const sums = fs.readFileSync(by.get(SUMS_FILE)!.file, 'utf8');
  const lines = sums.trimEnd().split('\n');
  // Every file but SHA256SUMS itself, the SBOM included.
  assert.equal(lines.length, assets.length - 1, 'SHA256SUMS lines');
  assert.ok(lines.includes(`${sbom.sha256}  ${SBOM_FILE}`), 'SHA256SUMS lists the SBOM');
  for (const a of assets.filter((x) => x.name !== SUMS_FILE)) {
    assert.ok(lines.includes(`${a.sha256}  ${a.name}`), a.name);
    assert.equal(sha256(fs.readFileSync(a.file)), a.sha256, `${a.name} bytes`);
    assert.equal(fs.statSync(a.file).size, a.size);
  }
});

test('the cache: a warm run compresses nothing; a damaged entry is rebuilt; a wrong emulator is refused', async () => {
  const cacheDir = coldCache;
  const warm = await buildAssets(hosts, { cacheDir, releaseTag: TAG });
  assert.equal(warm.compressed, 0);
  assert.equal(warm.reused, cold.compressed);
  assert.deepEqual(warm.assets, cold.assets);

  const victim = cold.assets.find((a) => a.name === hostTarballName('aarch64', 's390x'))!;
  fs.truncateSync(victim.file, 100);
  const healed = await buildAssets(hosts, { cacheDir, releaseTag: TAG });
  assert.equal(healed.compressed, 1);
  assert.equal(sha256(fs.readFileSync(victim.file)), victim.sha256);

  // Entries cached before the SBOM kept no SHA1s: they get them from their bytes, compressing
  // nothing, and the SBOM is the same.
  const metas = fs.readdirSync(path.join(cacheDir, 'tarballs')).filter((f) => f.endsWith('.json')).map((f) => path.join(cacheDir, 'tarballs', f));
  for (const m of metas) {
    const meta = JSON.parse(fs.readFileSync(m, 'utf8')) as Record<string, unknown>;
    delete meta.sha1;
    delete meta.emulatorSha1;
    fs.writeFileSync(m, `${JSON.stringify(meta)}\n`);
  }
  const upgraded = await buildAssets(hosts, { cacheDir, releaseTag: TAG });
  assert.equal(upgraded.compressed, 0, 'SHA1s are taken from the cached bytes, not by compressing again');
  assert.deepEqual(upgraded.assets, cold.assets, 'the same assets, the SBOM included');
  for (const m of metas) assert.match(fs.readFileSync(m, 'utf8'), /"emulatorSha1":"[0-9a-f]{40}".*"sha1":"[0-9a-f]{40}"/, `${m} keeps its SHA1s now`);

  // Emulator bytes that no longer match the manifest never enter the cache under its digest.
  const dir = tmp('bad');
  const e = hosts[0]!.emulators[0]!;
  const bytes = fs.readFileSync(path.join(hosts[0]!.dir, e.file));
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  fs.writeFileSync(path.join(dir, e.file), bytes);
  const badCache = tmp('cache');
  await assert.rejects(buildAssets([{ host: 'x86_64', dir, emulators: [e], rpms: hosts[0]!.rpms }], { cacheDir: badCache, releaseTag: TAG }), new RegExp(`${e.file}: sha256 [0-9a-f]{64} .*the manifest says ${e.sha256}`));
  assert.deepEqual(fs.readdirSync(path.join(badCache, 'tarballs')), []);
});

test('polyarch assets: two runs in two folders give the same bytes; gzip -t, tar -tvzf and sha256sum -c agree', () => {
  const outs = ['a', 'b'].map((tag) => {
    const work = tmp(tag);
    const r = polyarch(['assets', '--out', path.join(work, 'out'), '--host', 'x86_64', '--cache', path.join(work, 'cache'), ...x86Rpms]);
    assert.equal(r.status, 0, r.stderr);
    return { dir: path.join(work, 'out'), listing: JSON.parse(r.stdout) as Asset[] };
  });
  const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
  assert.deepEqual(a.listing, b.listing);
  const files = fs.readdirSync(a.dir).sort();
  assert.deepEqual(files, fs.readdirSync(b.dir).sort());
  assert.deepEqual(files, a.listing.map((x) => x.name).sort());
  for (const f of files) assert.ok(fs.readFileSync(path.join(a.dir, f)).equals(fs.readFileSync(path.join(b.dir, f))), `${f} differs between runs`);
  // RPM files without a lockfile: the SBOM names the tag a lockfile pinning them anew would get
  // (v<version>-1), and a local file has no download location.
  const sbom = JSON.parse(fs.readFileSync(path.join(a.dir, SBOM_FILE), 'utf8')) as { name: string; packages: { SPDXID: string; downloadLocation: string }[] };
  assert.equal(sbom.name, 'qemu-user-static-v9.2.4-1', 'the SBOM names the release tag');
  const rpmPackages = sbom.packages.filter((p) => p.SPDXID.startsWith('SPDXRef-RPM-'));
  assert.equal(rpmPackages.length, x86Rpms.length, 'one package per RPM given');
  assert.deepEqual(new Set(rpmPackages.map((p) => p.downloadLocation)), new Set(['NOASSERTION']), 'local files have no download location');

  const tarballs = files.filter((f) => f.endsWith('.tar.gz'));
  assert.equal(tarballs.length, X86_TARGETS.length * 2);
  execFileSync('gzip', ['-t', ...tarballs], { cwd: a.dir });
  for (const t of tarballs) {
    const entry = t.replace(/^x86_64_/, '').replace(/\.tar\.gz$/, '');
    const size = fs.statSync(path.join(a.dir, entry)).size;
    const listing = execFileSync('tar', ['--numeric-owner', '-tvzf', t], { cwd: a.dir, encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    assert.match(listing, new RegExp(`^-rwxr-xr-x 0/0 +${size} 1970-01-01 00:00 ${entry}\n$`));
  }
  const check = execFileSync('sha256sum', ['-c', SUMS_FILE], { cwd: a.dir, encoding: 'utf8' });
  assert.deepEqual(check.trimEnd().split('\n').sort(), files.filter((f) => f !== SUMS_FILE).map((f) => `${f}: OK`).sort());
  assert.equal(fs.statSync(path.join(a.dir, 'qemu-arm-static')).mode & 0o777, 0o755);
  assert.equal(fs.statSync(path.join(a.dir, 'qemu-arm-static.tar.gz')).mode & 0o777, 0o644);
});

test('polyarch assets --lock: every host the lockfile pins, or the ones --hosts names', async () => {
  const out = path.join(tmp('lock'), 'out');
  const all = polyarch(['assets', '--out', out, '--lock', lockFile, '--cache', rpmCache]);
  assert.equal(all.status, 0, all.stderr);
  const listing = JSON.parse(all.stdout) as Asset[];
  // Every host's files, the SBOM and SHA256SUMS.
  assert.equal(listing.length, X86_TARGETS.length * 3 + ARM_TARGETS.length + PPC_TARGETS.length + S390X_TARGETS.length + 2);
  assert.deepEqual(fs.readdirSync(out).sort(), listing.map((a) => a.name).sort());
  execFileSync('sha256sum', ['--quiet', '-c', SUMS_FILE], { cwd: out });
  const one = polyarch(['assets', '--out', path.join(tmp('lock'), 'out'), '--lock', lockFile, '--hosts', 'ppc64le', '--cache', rpmCache]);
  assert.equal(one.status, 0, one.stderr);
  assert.deepEqual((JSON.parse(one.stdout) as Asset[]).map((a) => a.name).sort(), [SUMS_FILE, SBOM_FILE, ...PPC_TARGETS.map((t) => hostTarballName('ppc64le', t))].sort());
  // A lockfile pinning fewer hosts than asked for.
  const twoHosts = path.join(tmp('lock'), 'qemu.lock.json');
  await writeLock(twoHosts, { ...locked, hosts: { x86_64: locked.hosts.x86_64!, aarch64: locked.hosts.aarch64! } });
  const none = polyarch(['assets', '--out', path.join(tmp('lock'), 'out'), '--lock', twoHosts, '--hosts', 's390x', '--cache', rpmCache]);
  assert.match(none.stderr, /^error: .*qemu\.lock\.json pins no RPMs for host\(s\) s390x \(it has: x86_64, aarch64\)\n$/);
});

test('a cold polyarch assets is one pipeline: each tarball is made once, from the bytes extraction checked, while other RPMs are still extracted', () => {
  // A cache holding the pinned RPMs and nothing else: the extraction is cold, nothing downloads.
  const cache = tmp('pipeline');
  for (const r of HOSTS.flatMap((h) => locked.hosts[h]!)) fs.copyFileSync(path.join(rpmCache, `${r.sha256}.rpm`), path.join(cache, `${r.sha256}.rpm`));
  const trace = path.join(tmp('pipeline-trace'), 'timeline.json');
  const out = path.join(tmp('pipeline-out'), 'out');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), 'assets', '--out', out, '--lock', lockFile, '--cache', cache], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, POLYARCH_TIMELINE: trace } });
  assert.equal(r.status, 0, r.stderr);
  const { spans } = JSON.parse(fs.readFileSync(trace, 'utf8')) as { spans: { step: string; file: string; start: number; end: number }[] };
  const of = (step: string) => spans.filter((x) => x.step === step);
  // One compression per published emulator digest: x86_64's prefixed and unprefixed tarballs share one.
  const published = new Set(cold.assets.filter((a) => a.kind === 'tarball').map((a) => `${a.target} ${hosts.find((h) => h.host === a.host)!.emulators.find((e) => e.cpu === a.target)!.sha256}`));
  assert.equal(of('deflate').length, published.size, `deflate spans: ${of('deflate').map((x) => x.file).join(', ')}`);
  assert.deepEqual(of('read'), [], 'no emulator is read back from disk to make its tarball');
  assert.ok(Math.min(...of('deflate').map((x) => x.start)) < Math.max(...of('zstd').map((x) => x.end)), 'compressing starts before the last RPM is decoded');
  // The same bytes as the reference build made one step after the other.
  const listing = new Map((JSON.parse(r.stdout) as Asset[]).map((a) => [a.name, a.sha256]));
  for (const a of cold.assets) assert.equal(listing.get(a.name), a.sha256, a.name);
});

test('Tarballs: offered bytes are made into the same tarballs, once, and offer holds extraction back while too many wait', async () => {
  const dir = tmp('offer');
  const tarballs = new Tarballs(dir, 3 << 20);
  const emulator = (cpu: string, mb: number) => {
    const data = Buffer.alloc(mb << 20, cpu.charCodeAt(0));
    data.write('\x7fELF', 0, 'latin1');
    return { cpu, data, sha256: sha256(data) };
  };
  const a = emulator('arm', 1);
  const b = emulator('aarch64', 1);
  const c = emulator('s390x', 2);
  // Settled within microtasks, before any worker can have answered.
  const settled = async (p: Promise<unknown>) => {
    let done = false;
    void p.then(() => (done = true));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return done;
  };
  assert.equal(await settled(tarballs.offer(a)), true, '1 MB waiting: room for more');
  assert.equal(await settled(tarballs.offer(b)), true, '2 MB waiting: room for more');
  // 4 MB offered against 3 MB of room: the third offer waits until a tarball is made.
  const third = tarballs.offer(c);
  assert.equal(await settled(third), false, 'the offer past the room is held');
  await third;
  const made = await Promise.all([a, b, c].map((e) => tarballs.get(e.cpu, e.sha256, e.data.length, path.join(dir, 'nowhere'))));
  assert.equal(tarballs.compressed, 3);
  for (const [i, e] of [a, b, c].entries()) {
    const bytes = fs.readFileSync(made[i]!.file);
    assert.equal(made[i]!.sha256, sha256(bytes), `${e.cpu}: its digest`);
    assert.deepEqual(bytes, (await reproducibleTarball(`qemu-${e.cpu}-static`, e.data)).bytes, `${e.cpu}: the bytes a tarball of the file has`);
    assert.equal(made[i]!.emulatorSha1, createHash('sha1').update(e.data).digest('hex'));
  }
  // Offered again (another host with the same emulator): nothing more is made.
  await tarballs.offer(a);
  assert.equal(tarballs.compressed, 3);
});

test('polyarch assets: bad input is one error line and writes nothing', () => {
  const work = tmp('err');
  const out = path.join(work, 'out');
  const cases: [string[], RegExp][] = [
    [['--out', out], /^error: no input: give --lock FILE, or --host H and RPM files\n$/],
    [['--out', out, '--host', 'x86_64', '--lock', 'x.json'], /^error: --host goes with RPM files/],
    [['--out', out, '--lock', 'x.json', x86Rpms[0]!], /^error: give either --lock FILE or --host H with RPM files, not both\n$/],
    [['--out', out, '--host', 'sparc', x86Rpms[0]!], /^error: unknown host arch "sparc"/],
    [['--out', out, '--host', 'aarch64', '--cache', path.join(work, 'cache'), ...x86Rpms], /^error: qemu-user-static-\S+\.x86_64 is not built for host aarch64/],
    [['--out', out, '--lock', path.join(work, 'missing.json')], /^error: .*missing\.json: ENOENT/],
  ];
  for (const [args, message] of cases) {
    const r = polyarch(['assets', ...args]);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.ok(!fs.existsSync(out) || fs.readdirSync(out).length === 0, 'nothing written');
  }
});

test('writeAssets: one bad copy among many stops every writer before cleanup, reports its own error and leaves nothing', async () => {
  const src = tmp('many');
  // Many small files: the queue is still busy creating files in the stage when the bad one fails.
  const assets: Asset[] = Array.from({ length: 300 }, (_, i) => {
    const data = Buffer.alloc(32 << 10, i);
    const file = path.join(src, `f${i}`);
    fs.writeFileSync(file, data);
    return { name: `qemu-t${String(i).padStart(3, '0')}-static`, kind: 'emulator', file, size: data.length, sha256: sha256(data), contentType: 'application/octet-stream' };
  });
  const bad = assets[1]!;
  bad.sha256 = 'ab'.repeat(32);
  for (let i = 0; i < 5; i++) {
    const out = tmp('many-out');
    await assert.rejects(writeAssets(assets, out), { message: `${bad.file}: sha256 is ${sha256(fs.readFileSync(bad.file))}, expected ${bad.sha256} (the file changed since the assets were built; remove it and run again)` });
    // Anything still writing would show up a moment later.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(fs.readdirSync(out), []);
  }
});

test('polyarch assets: staging folders of killed runs are removed, those of live runs kept', async () => {
  const work = tmp('stale');
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  // A "killed run": a process that made its staging folder, wrote a file into it and died.
  const killed = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    import fs from 'node:fs';
    import { makeStage } from ${JSON.stringify(path.join(ROOT, 'lib/out-dir.ts'))};
    const stage = await makeStage(${JSON.stringify(out)}, '.polyarch-assets-');
    fs.writeFileSync(stage + '/qemu-arm-static', 'complete-looking');
    process.kill(process.pid, 'SIGKILL');
  `], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  const [dead] = fs.readdirSync(out);
  assert.match(dead ?? '', /^\.polyarch-assets-/);
  // This test's own process stands for a live run; an ownerless folder is judged by age.
  const { makeStage } = await import('../../lib/out-dir.ts');
  const live = path.basename(await makeStage(out, '.polyarch-assets-'));
  fs.mkdirSync(path.join(out, '.polyarch-assets-unowned-fresh'));
  const old = path.join(out, '.polyarch-assets-unowned-old');
  fs.mkdirSync(old);
  const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
  fs.utimesSync(old, twoDaysAgo, twoDaysAgo);

  const r = polyarch(['assets', '--out', out, '--host', 'x86_64', '--cache', path.join(work, 'cache'), ...x86Rpms]);
  assert.equal(r.status, 0, r.stderr);
  const left = fs.readdirSync(out).filter((f) => f.startsWith('.'));
  assert.deepEqual(left.sort(), [live, '.polyarch-assets-unowned-fresh'].sort());
});

test('polyarch assets and extract into a read-only folder: one line naming the folder, never the staging folder', (t) => {
  // Root writes anywhere: run as nobody then (test/helpers/as-nobody.ts).
  if (process.getuid?.() === 0 && !requireSystem(t, canRunAsNobody)) return;
  const work = tmp('ro');
  // Open to nobody, so the cache below can be made and only the output folder refuses.
  fs.chmodSync(work, 0o777);
  const ro = path.join(work, 'ro');
  fs.mkdirSync(ro, { mode: 0o555 });
  fs.chmodSync(ro, 0o555);
  const cache = path.join(work, 'cache');
  // A copy nobody may read: the fixture cache lives in this clone, which may be closed to nobody.
  const rpm = path.join(work, path.basename(x86Rpms[0]!));
  fs.copyFileSync(x86Rpms[0]!, rpm);
  fs.chmodSync(rpm, 0o644);
  for (const args of [['assets', '--out', ro, '--host', 'x86_64', '--cache', cache, rpm], ['extract', '--out', ro, '--cache', cache, rpm]]) {
    const cli = unprivileged((clone) => [process.execPath, path.join(clone, 'bin/polyarch.js'), ...args]);
    const r = spawnSync(cli.command, cli.args, { cwd: cli.cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: work } });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `error: ${ro}: cannot write (EACCES: permission denied)\n`);
    assert.doesNotMatch(r.stderr, /\.polyarch-/);
    assert.deepEqual(fs.readdirSync(ro), []);
  }
});

test('polyarch assets and extract: a folder in the way of a file is one line naming that file, and no staging folder is left', () => {
  const work = tmp('in-way');
  for (const command of ['assets', 'extract']) {
    const out = path.join(work, command);
    // Not empty, so the move into place cannot replace it.
    fs.mkdirSync(path.join(out, 'qemu-aarch64-static', 'keep'), { recursive: true });
    const r = polyarch([command, '--out', out, ...(command === 'assets' ? ['--host', 'x86_64'] : []), '--cache', path.join(work, 'cache'), ...x86Rpms]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `error: ${path.join(out, 'qemu-aarch64-static')}: cannot write (EISDIR: illegal operation on a directory)\n`);
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('.')), []);
  }
});

test('polyarch assets: a symlinked --out is refused with one line naming it and its target', () => {
  const work = tmp('link');
  const real = path.join(work, 'real');
  fs.mkdirSync(real);
  fs.symlinkSync(real, path.join(work, 'out'));
  const r = polyarch(['assets', '--out', path.join(work, 'out'), '--host', 'x86_64', '--cache', path.join(work, 'cache'), ...x86Rpms]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `error: ${path.join(work, 'out')} is a symlink to ${real}; give the folder itself as the output folder\n`);
  assert.equal(r.stdout, '');
  assert.deepEqual(fs.readdirSync(real), []);
});

test('release notes list hosts, targets, usage and every checksum', async () => {
  const { assets } = cold;
  const notes = (apiUrl: string) => releaseNotes({ tag: 'v9.2.4-1', qemu: { version: '9.2.4', release: '1.fc42' }, hosts, assets, downloadBase: downloadBase(apiUrl, 'polyarch/qemu-user-static', 'v9.2.4-1') });
  const body = notes(DEFAULT_API_URL);
  // On GitHub Enterprise Server the links follow the server.
  assert.match(notes('https://ghe.example.com/api/v3'), /curl -fsSLO https:\/\/ghe\.example\.com\/polyarch\/qemu-user-static\/releases\/download\/v9\.2\.4-1\/x86_64_qemu-aarch64-static\.tar\.gz/);
  assert.match(body, /^QEMU 9\.2\.4 user-mode static emulators, from Fedora's qemu-user-static 9\.2\.4-1\.fc42\./);
  assert.match(body, /\| x86_64 \| aarch64, aarch64_be, arm, armeb, ppc64le, riscv64, s390x \|/);
  assert.match(body, /\| aarch64 \| aarch64_be, armeb, i386, ppc64le, riscv64, s390x, x86_64 \|/);
  assert.match(body, /\| ppc64le \| aarch64, aarch64_be, arm, armeb, i386, riscv64, s390x, x86_64 \|/);
  assert.match(body, /\| s390x \| aarch64, aarch64_be, arm, armeb, i386, ppc64le, riscv64, x86_64 \|/);
  assert.match(body, /curl -fsSLO https:\/\/github\.com\/polyarch\/qemu-user-static\/releases\/download\/v9\.2\.4-1\/x86_64_qemu-aarch64-static\.tar\.gz/);
  assert.match(body, /sha256sum -c --ignore-missing SHA256SUMS/);
  assert.match(body, /\n`sbom\.spdx\.json` is the release's SBOM \(SPDX 2\.3\): which Fedora RPM each emulator came from/, 'the notes say what the SBOM is');
  for (const a of assets.filter((x) => x.name !== SUMS_FILE)) assert.ok(body.includes(`${a.sha256}  ${a.name}\n`), a.name);
});

test('writeAssets: outputs are files of their own, a folder that holds them is left alone, and a cache file changed after the build is refused', async () => {
  const cacheDir = tmp('copies-cache');
  const { assets } = await buildAssets(hosts, { cacheDir, releaseTag: TAG });
  const out = tmp('copies-out');
  // Every source is known by its stamp (this process hashed it): the kernel copies, nothing is hashed.
  assert.deepEqual(await writeAssets(assets, out), { copied: assets.length, hashed: 0, kept: 0 });
  // No output shares an inode with the cache, or with another output.
  const inodes = new Set(assets.map((a) => fs.statSync(a.file).ino));
  for (const a of assets) assert.ok(!inodes.has(fs.statSync(path.join(out, a.name)).ino), `${a.name} is a hard link`);
  const tarball = assets.find((a) => a.name === tarballName('arm'))!;
  assert.notEqual(fs.statSync(path.join(out, tarball.name)).ino, fs.statSync(path.join(out, hostTarballName('x86_64', 'arm'))).ino);
  assert.equal(fs.statSync(path.join(out, 'qemu-arm-static')).mode & 0o777, 0o755);
  assert.equal(fs.statSync(path.join(out, tarball.name)).mode & 0o777, 0o644);
  execFileSync('sha256sum', ['--quiet', '-c', SUMS_FILE], { cwd: out });

  // Again into the same folder: every file is there already (hashed to be sure), nothing is written.
  assert.deepEqual(await writeAssets(assets, out), { copied: 0, hashed: 0, kept: assets.length });

  // An in-place write to an output reaches no cache file: the next run puts that one file back.
  flipByte(path.join(out, tarball.name));
  assert.equal(sha256(fs.readFileSync(tarball.file)), tarball.sha256);
  assert.deepEqual(await writeAssets(assets, out), { copied: 1, hashed: 0, kept: assets.length - 1 });
  execFileSync('sha256sum', ['--quiet', '-c', SUMS_FILE], { cwd: out });

  // A cache file changed between build and write (same size, mtime put back) is refused, and
  // nothing is left in the folder: its stamp changed, so its bytes were hashed.
  flipByte(tarball.file);
  const again = tmp('copies-again');
  await assert.rejects(writeAssets(assets, again), { message: `${tarball.file}: sha256 is ${sha256(fs.readFileSync(tarball.file))}, expected ${tarball.sha256} (the file changed since the assets were built; remove it and run again)` });
  assert.deepEqual(fs.readdirSync(again), []);
  // The next build finds it by its stamp and makes it again from its emulator.
  const rebuilt = await buildAssets(hosts, { cacheDir, releaseTag: TAG });
  assert.equal(rebuilt.compressed, 1);
  assert.deepEqual(rebuilt.assets, assets);
  await writeAssets(rebuilt.assets, again);
  execFileSync('sha256sum', ['--quiet', '-c', SUMS_FILE], { cwd: again });
});
