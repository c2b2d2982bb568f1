// Lockfile, fetch and cache against a koji-shaped tree on loopback HTTP, with the failures
// a real server has; and the `polyarch lock` / `polyarch extract` command line end to end.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { sha256 } from '../../lib/digest.ts';
import { fetchText, RpmCache } from '../../lib/fetch.ts';
import { buildDirUrl, compareReleases, compareVersions, newestBuild, selectRpms } from '../../lib/koji.ts';
import { createLock, extractLocked, readLock, writeLock, type Lock } from '../../lib/lock.ts';
import { kojiTree, startKoji, type KojiServer } from '../fixtures/koji.ts';
import { buildFixtureRpms, SINGLE_BUILD, SPLIT_BUILD, type FixtureHost } from '../fixtures/rpms.ts';
import { HOST_ELF, hostElfBytes } from '../helpers/elf.ts';
import { requireSystem } from '../helpers/system.ts';
import { canRunAsNobody, unprivileged } from '../helpers/as-nobody.ts';
import { closedPort } from '../helpers/ports.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-lock-'));
const fast = { retries: 3, minTimeout: 10 };


const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
let koji: KojiServer;
/** The split build's RPMs per host, as koji serves them. */
let split: Record<FixtureHost, string[]>;
let splitX86: string[];
let single: string[];

before(async () => {
  split = Object.fromEntries(HOSTS.map((host) => [host, buildFixtureRpms({ host, layout: 'split', compression: 'zstd' })])) as Record<FixtureHost, string[]>;
  splitX86 = split.x86_64;
  single = buildFixtureRpms({ host: 'x86_64', layout: 'single', compression: 'xz' });
  const root = kojiTree(splitX86, SPLIT_BUILD, 'x86_64');
  for (const host of HOSTS.slice(1)) kojiTree(split[host], SPLIT_BUILD, host, root);
  kojiTree(single, SINGLE_BUILD, 'x86_64', root);
  // Decoys for the newest-build search: listed, never downloaded.
  const decoy = (version: string, release: string, host: string) => {
    const dir = path.join(root, 'packages/qemu', version, release, host);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `qemu-user-static-arm-${version}-${release}.${host}.rpm`), '');
  };
  decoy('10.1.0', '0.1.rc1.fc44', 'x86_64'); // a release candidate
  decoy('10.1.0', '0.1.rc1.fc44', 'aarch64');
  decoy('10.0.2', '1.eln150', 'x86_64'); // not a Fedora build
  decoy('9.10.0', '1.fc43', 'x86_64'); // newer than 9.2.4, but built for x86_64 only
  decoy('9.2.4', '1.fc41', 'x86_64'); // the same version for an older Fedora
  decoy('9.2.4', '1.fc41', 'aarch64');
  koji = await startKoji(root);
});
after(() => koji.close());

describe('koji directory index', () => {
  test('split layout: subpackages only, no debuginfo, no empty meta package', () => {
    const html = '<a href="qemu-user-static-9.2.4-1.fc42.x86_64.rpm">x</a><a href="qemu-user-static-arm-9.2.4-1.fc42.x86_64.rpm">x</a>'
      + '<a href="qemu-user-static-arm-debuginfo-9.2.4-1.fc42.x86_64.rpm">x</a><a href="qemu-img-9.2.4-1.fc42.x86_64.rpm">x</a>'
      + '<a href="qemu-user-static-arm-9.2.3-1.fc42.x86_64.rpm">x</a><a href="../">up</a>';
    assert.deepEqual(selectRpms(html, 'http://k/d/', '9.2.4', '1.fc42', 'x86_64').map((r) => [r.name, r.url]), [
      ['qemu-user-static-arm', 'http://k/d/qemu-user-static-arm-9.2.4-1.fc42.x86_64.rpm'],
    ]);
  });
  test('old layout: the one RPM is the whole set', () => {
    const html = '<a href="qemu-user-static-5.0.0-2.fc30.x86_64.rpm">x</a><a href="qemu-user-static-debuginfo-5.0.0-2.fc30.x86_64.rpm">x</a>';
    assert.deepEqual(selectRpms(html, 'http://k/d/', '5.0.0', '2.fc30', 'x86_64').map((r) => r.name), ['qemu-user-static']);
  });
  test('versions and releases that would bend the URL are refused', () => {
    assert.throws(() => buildDirUrl('http://k', '9.2.4/../..', '1.fc42', 'x86_64'), /malformed QEMU version "9\.2\.4\/\.\.\/\.\."/);
    assert.throws(() => buildDirUrl('http://k', '9.2.4', '1.fc42/../../x', 'x86_64'), /malformed Fedora release/);
  });
});

describe('newest build', () => {
  const read = (url: string) => fetchText(url, fast);
  test('versions compare by number, releases by Fedora then build', () => {
    assert.deepEqual(['9.2.4', '10.0.0', '9.10.0', '9.2.10'].sort(compareVersions), ['10.0.0', '9.10.0', '9.2.10', '9.2.4']);
    assert.deepEqual(['2.fc41', '1.fc42', '10.fc41', '1.fc42.1'].sort(compareReleases), ['1.fc42.1', '1.fc42', '10.fc41', '2.fc41']);
  });
  test('skips release candidates, non-Fedora builds and builds missing a host', async () => {
    assert.deepEqual(await newestBuild(koji.url, ['x86_64', 'aarch64'], read), { version: '9.2.4', release: '1.fc42' });
    assert.deepEqual(await newestBuild(koji.url, [...HOSTS], read), { version: '9.2.4', release: '1.fc42' });
    assert.deepEqual(await newestBuild(koji.url, ['x86_64'], read), { version: '9.10.0', release: '1.fc43' });
  });
  test('no build for a host is one clear error', async (t) => {
    // A koji of its own: the shared one has a build for every host.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-koji-'));
    const dir = path.join(root, 'packages/qemu/9.10.0/1.fc43/x86_64');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'qemu-user-static-arm-9.10.0-1.fc43.x86_64.rpm'), '');
    const lone = await startKoji(root);
    t.after(async () => {
      await lone.close();
      fs.rmSync(root, { recursive: true, force: true });
    });
    await assert.rejects(newestBuild(lone.url, ['x86_64', 's390x'], read), { message: `${lone.url}/packages/qemu/: no finished Fedora build of qemu has qemu-user-static RPMs for x86_64, s390x` });
  });
  test('a koji failure is not mistaken for a missing host', async () => {
    koji.failNext.set('/packages/qemu/9.10.0/1.fc43/x86_64/', 99);
    try {
      await assert.rejects(newestBuild(koji.url, ['x86_64'], (url) => fetchText(url, { retries: 1, minTimeout: 5 })), /9\.10\.0\/1\.fc43\/x86_64\/: HTTP 503/);
    } finally {
      koji.failNext.delete('/packages/qemu/9.10.0/1.fc43/x86_64/');
    }
  });
});

describe('lock and extract', () => {
  let lock: Lock;
  let cacheDir: string;
  before(async () => {
    cacheDir = tmp();
    lock = await createLock({ version: '9.2.4', release: '1.fc42', hosts: [...HOSTS], koji: koji.url, cacheDir, ...fast });
  });

  test('pins every subpackage per host with size, sha256 and the CPUs it holds', () => {
    assert.deepEqual(lock.qemu, { version: '9.2.4', release: '1.fc42' });
    assert.deepEqual(Object.keys(lock.hosts), [...HOSTS]);
    for (const host of HOSTS) {
      const pinned = lock.hosts[host]!;
      assert.deepEqual(pinned.map((r) => r.name), ['qemu-user-static-aarch64', 'qemu-user-static-arm', 'qemu-user-static-ppc', 'qemu-user-static-riscv', 'qemu-user-static-s390x', 'qemu-user-static-x86']);
      for (const r of pinned) {
        // Each pin is the host's own build, from the host's own folder.
        assert.equal(new URL(r.url).pathname, `/packages/qemu/9.2.4/1.fc42/${host}/${r.name}-9.2.4-1.fc42.${host}.rpm`);
        const file = split[host].find((f) => path.basename(f) === path.basename(new URL(r.url).pathname))!;
        const bytes = fs.readFileSync(file);
        assert.equal(r.sha256, sha256(bytes));
        assert.equal(r.size, bytes.length);
      }
      assert.deepEqual(pinned.find((r) => r.name === 'qemu-user-static-x86')!.emulators, ['i386', 'x86_64']);
      assert.deepEqual(pinned.find((r) => r.name === 'qemu-user-static-aarch64')!.emulators, ['aarch64', 'aarch64_be']);
    }
    // Four builds of one package, four different files: no host's pin stands for another's.
    const arm = HOSTS.map((h) => lock.hosts[h]!.find((r) => r.name === 'qemu-user-static-arm')!.sha256);
    assert.equal(new Set(arm).size, HOSTS.length);
  });

  test('old single-RPM build', async () => {
    const old = await createLock({ version: '5.0.0', release: '2.fc30', hosts: ['x86_64'], koji: koji.url, cacheDir, ...fast });
    assert.deepEqual(old.hosts.x86_64!.map((r) => [r.name, r.emulators]), [['qemu-user-static', ['aarch64', 'arm', 's390x']]]);
  });

  test('the lockfile round-trips through its schema', async () => {
    const file = path.join(tmp(), 'qemu.lock.json');
    await writeLock(file, lock);
    assert.deepEqual(await readLock(file), lock);
  });

  test('a lockfile listing one RPM twice is refused, naming the RPM and the hosts', async (t) => {
    const dir = tmp();
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const x86 = lock.hosts.x86_64!;
    const arm = lock.hosts.aarch64!;
    const cases: [string, Lock['hosts'], string][] = [
      ['same host', { x86_64: [...x86, x86[1]!] }, `hosts.x86_64.6: the lockfile lists the same RPM twice under host x86_64: ${x86[1]!.name} (${x86[1]!.url})`],
      ['two hosts', { x86_64: x86, aarch64: [...arm, x86[0]!] }, `hosts.aarch64.6: the lockfile lists the same RPM twice, under hosts x86_64 and aarch64: ${x86[0]!.name} (${x86[0]!.url}); an RPM is built for one host`],
      ['one package, two files', { x86_64: [...x86, { ...arm[1]!, name: x86[1]!.name }] }, `hosts.x86_64.6: the lockfile lists ${x86[1]!.name} twice under host x86_64: ${x86[1]!.url} and ${arm[1]!.url}`],
      ['one emulator in two packages', { x86_64: [x86[0]!, { ...x86[1]!, emulators: [...x86[1]!.emulators, x86[0]!.emulators[0]!].sort() }] }, `hosts.x86_64.1: the lockfile pins qemu-${x86[0]!.emulators[0]}-static in both ${x86[0]!.name} and ${x86[1]!.name} under host x86_64`],
    ];
    for (const [what, hosts, message] of cases) {
      const file = path.join(dir, `${what.replace(/\W+/g, '-')}.json`);
      fs.writeFileSync(file, JSON.stringify({ ...lock, hosts }));
      await assert.rejects(readLock(file), { message: `${file}: ${message}` }, what);
      // Also when a program builds the lock itself instead of reading it.
      const host = Object.keys(hosts).at(-1) as 'x86_64';
      await assert.rejects(extractLocked({ ...lock, hosts }, host, cacheDir, path.join(dir, 'out'), fast), { message: message.replace(/^\S+: /, '') }, what);
    }
    assert.ok(!fs.existsSync(path.join(dir, 'out')));
  });

  test('a lockfile that cannot be written is named in the error, not its temp file', async () => {
    const missing = path.join(tmp(), 'no-such-folder', 'qemu.lock.json');
    await assert.rejects(writeLock(missing, lock), { message: `${missing}: cannot write the lockfile (ENOENT: no such file or directory)` });
    const dir = tmp();
    fs.mkdirSync(path.join(dir, 'qemu.lock.json'));
    await assert.rejects(writeLock(path.join(dir, 'qemu.lock.json'), lock), { message: `${path.join(dir, 'qemu.lock.json')}: cannot write the lockfile (EISDIR: illegal operation on a directory)` });
    assert.deepEqual(fs.readdirSync(dir), ['qemu.lock.json'], 'no temp file left');
  });

  test('extracting each locked host uses the cache and no network, and gives that host\'s binaries', async () => {
    const before = new Map(koji.hits);
    for (const host of HOSTS) {
      const out = tmp();
      const manifest = await extractLocked(lock, host, cacheDir, out, fast);
      assert.deepEqual(manifest.map((m) => m.cpu), ['aarch64', 'aarch64_be', 'arm', 'armeb', 'i386', 'ppc64le', 'riscv64', 's390x', 'x86_64']);
      for (const m of manifest) {
        const bytes = fs.readFileSync(path.join(out, m.file));
        assert.equal(sha256(bytes), m.sha256);
        assert.equal(hostElfBytes(bytes), HOST_ELF[host], `${host} ${m.file}`);
      }
      fs.rmSync(out, { recursive: true, force: true });
    }
    assert.deepEqual(koji.hits, before, 'every RPM came from the cache');
  });

  test('a damaged cache entry is not trusted: it is fetched again', async () => {
    const r = lock.hosts.x86_64![0]!;
    const cache = new RpmCache(cacheDir);
    fs.writeFileSync(cache.pathOf(r.sha256), 'half a file');
    const got = await cache.get(r.url, r, fast);
    assert.equal(got.sha256, r.sha256);
    assert.equal(sha256(fs.readFileSync(cache.pathOf(r.sha256))), r.sha256);
  });

  test('a digest mismatch names the url and both digests, and caches nothing', async () => {
    const r = lock.hosts.x86_64![1]!;
    const wrong = 'ab'.repeat(32);
    const empty = tmp();
    await assert.rejects(new RpmCache(empty).get(r.url, { sha256: wrong, size: r.size }, fast), (e: Error) => {
      assert.equal(e.message, `${r.url}: sha256 mismatch: expected ${wrong}, got ${r.sha256}`);
      return true;
    });
    assert.deepEqual(fs.readdirSync(empty), []);
  });
});

describe('network failures', () => {
  test('5xx answers are retried with backoff until the server recovers', async () => {
    const dir = `/packages/qemu/9.2.4/1.fc42/x86_64/`;
    const rpm = `${dir}qemu-user-static-s390x-9.2.4-1.fc42.x86_64.rpm`;
    koji.failNext.set(dir, 2);
    koji.failNext.set(rpm, 3);
    const hitsBefore = koji.hits.get(rpm) ?? 0;
    const lock = await createLock({ version: '9.2.4', release: '1.fc42', hosts: ['x86_64'], koji: koji.url, cacheDir: tmp(), ...fast });
    assert.equal(lock.hosts.x86_64!.length, 6);
    assert.equal(koji.hits.get(rpm)! - hitsBefore, 4, 'three 503s, then the RPM');
  });
  test('a connection dropped mid-body is retried, then reported; nothing is cached', async () => {
    const name = 'qemu-user-static-riscv-9.2.4-1.fc42.x86_64.rpm';
    const urlPath = `/packages/qemu/9.2.4/1.fc42/x86_64/${name}`;
    koji.truncate.add(urlPath);
    const cacheDir = tmp();
    try {
      await assert.rejects(new RpmCache(cacheDir).get(`${koji.url}${urlPath}`, undefined, { retries: 1, minTimeout: 10 }), (e: Error) => {
        assert.match(e.message, new RegExp(`^${koji.url}${urlPath}: `));
        return true;
      });
    } finally {
      koji.truncate.delete(urlPath);
    }
    assert.deepEqual(fs.readdirSync(cacheDir).filter((f) => !f.startsWith('.tmp')), []);
  });
  test('a missing build is a clear 404, not retried', async () => {
    const dir = `${koji.url}/packages/qemu/9.9.9/1.fc99/x86_64/`;
    await assert.rejects(createLock({ version: '9.9.9', release: '1.fc99', hosts: ['x86_64'], koji: koji.url, cacheDir: tmp(), ...fast }), {
      message: `${dir}: HTTP 404 Not Found`,
    });
    assert.equal(koji.hits.get('/packages/qemu/9.9.9/1.fc99/x86_64/'), 1);
  });
  test('an unreachable koji names the url', async () => {
    const closed = await closedPort();
    await assert.rejects(createLock({ version: '9.2.4', release: '1.fc42', hosts: ['x86_64'], koji: `http://127.0.0.1:${closed}`, cacheDir: tmp(), retries: 1, minTimeout: 10 }), (e: Error) => {
      assert.equal(e.message.split(': ')[0], `http://127.0.0.1:${closed}/packages/qemu/9.2.4/1.fc42/x86_64/`);
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
  });
});

describe('polyarch CLI', () => {
  const cli = (args: string[]) => run('npx', ['--no-install', 'polyarch', ...args], { cwd: ROOT, maxBuffer: 16 << 20 });

  test('lock then extract --lock against the fixture koji', async () => {
    const dir = tmp();
    const lockFile = path.join(dir, 'qemu.lock.json');
    const cache = path.join(dir, 'cache');
    const { stdout } = await cli(['lock', '--qemu', '9.2.4', '--release', '1.fc42', '--hosts', HOSTS.join(','), '--koji', koji.url, '--out', lockFile, '--cache', cache]);
    assert.deepEqual(JSON.parse(stdout).hosts, { x86_64: 6, aarch64: 6, ppc64le: 6, s390x: 6 });
    const lock = await readLock(lockFile);
    assert.equal(lock.hosts.s390x!.length, 6);

    // The big-endian host, through the command line.
    const out = path.join(dir, 'out');
    const manifest = JSON.parse((await cli(['extract', '--out', out, '--lock', lockFile, '--host', 's390x', '--cache', cache])).stdout);
    assert.equal(manifest.length, 9);
    const arm = manifest.find((m: { cpu: string }) => m.cpu === 'arm');
    assert.deepEqual(Object.keys(arm).sort(), ['conf', 'cpu', 'file', 'rpm', 'sha256', 'size']);
    assert.equal(arm.rpm, 'qemu-user-static-arm-9.2.4-1.fc42.s390x');
    const bytes = fs.readFileSync(path.join(out, arm.file));
    assert.equal(sha256(bytes), arm.sha256);
    assert.equal(hostElfBytes(bytes), HOST_ELF.s390x);
  });

  test('lock --out into a read-only folder names the lockfile, before fetching anything', async (t) => {
    // Root writes anywhere: run as nobody then (test/helpers/as-nobody.ts).
    if (process.getuid?.() === 0 && !requireSystem(t, canRunAsNobody)) return;
    const dir = tmp();
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro, { mode: 0o555 });
    fs.chmodSync(ro, 0o555);
    fs.chmodSync(dir, 0o777);
    const lockFile = path.join(ro, 'qemu.lock.json');
    const cli = unprivileged((clone) => [process.execPath, path.join(clone, 'bin/polyarch.js'), 'lock', '--qemu', '9.2.4', '--release', '1.fc42', '--koji', koji.url, '--out', lockFile, '--cache', path.join(dir, 'cache')]);
    const before = new Map(koji.hits);
    await assert.rejects(
      run(cli.command, cli.args, { cwd: cli.cwd, env: { PATH: process.env.PATH, HOME: dir } }),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.equal(e.stderr, `error: ${lockFile}: cannot write the lockfile (EACCES: permission denied)\n`);
        return true;
      },
    );
    assert.deepEqual(koji.hits, before, 'nothing fetched');
    assert.deepEqual(fs.readdirSync(ro), []);
  });

  test('lock numbers the release from the lockfile it replaces: the same pins keep n, other pins of the same QEMU raise it, a new QEMU starts at 1', async () => {
    const dir = tmp();
    const lockFile = path.join(dir, 'qemu.lock.json');
    const lockAs = async (build: { version: string; release: string }, hosts: string) =>
      JSON.parse((await cli(['lock', '--qemu', build.version, '--release', build.release, '--hosts', hosts, '--koji', koji.url, '--out', lockFile, '--cache', path.join(dir, 'c')])).stdout).tag;
    assert.equal(await lockAs(SPLIT_BUILD, 'x86_64'), 'v9.2.4-1');
    assert.equal((await readLock(lockFile)).releaseNumber, 1);
    assert.equal(await lockAs(SPLIT_BUILD, 'x86_64'), 'v9.2.4-1', 'a re-run changes nothing');
    // Other RPMs for the same QEMU (here a host added; a Fedora rebuild alike): the published v9.2.4-1 stays as it is.
    assert.equal(await lockAs(SPLIT_BUILD, 'x86_64,aarch64'), 'v9.2.4-2');
    assert.equal(await lockAs(SINGLE_BUILD, 'x86_64'), `v${SINGLE_BUILD.version}-1`);
    // A lockfile that cannot be read is not silently numbered from 1: named, and left as it is.
    fs.writeFileSync(lockFile, '{"qemu": ');
    await assert.rejects(lockAs(SPLIT_BUILD, 'x86_64'), (e: { stderr: string }) => {
      assert.match(e.stderr, new RegExp(`^error: ${lockFile.replace(/[.]/g, '\\.')}: .*JSON.*\n$`));
      return true;
    });
    assert.equal(fs.readFileSync(lockFile, 'utf8'), '{"qemu": ');
  });

  test('lock --latest pins the newest build that every host has', async () => {
    const lockFile = path.join(tmp(), 'qemu.lock.json');
    const { stdout } = await cli(['lock', '--latest', '--hosts', 'x86_64,aarch64', '--koji', koji.url, '--out', lockFile, '--cache', path.join(tmp(), 'c')]);
    assert.deepEqual(JSON.parse(stdout).qemu, { version: '9.2.4', release: '1.fc42' });
    assert.deepEqual((await readLock(lockFile)).qemu, { version: '9.2.4', release: '1.fc42' });
  });

  test('extract from a file and from a URL', async () => {
    const out = tmp();
    const file = splitX86.find((f) => f.includes('-s390x-'))!;
    const url = `${koji.url}/packages/qemu/9.2.4/1.fc42/x86_64/${path.basename(splitX86.find((f) => f.includes('-riscv-'))!)}`;
    const manifest = JSON.parse((await cli(['extract', '--out', out, '--cache', path.join(out, '.c'), file, url])).stdout);
    assert.deepEqual(manifest.map((m: { cpu: string }) => m.cpu), ['riscv64', 's390x']);
  });

  for (const [what, args, message] of [
    ['unknown host arch', ['lock', '--qemu', '9.2.4', '--release', '1.fc42', '--hosts', 'arm64'], /^error: unknown host arch "arm64" \(valid: x86_64, aarch64, ppc64le, s390x\)\n$/],
    ['malformed version', ['lock', '--qemu', 'latest', '--release', '1.fc42', '--koji', 'http://127.0.0.1:9'], /^error: malformed QEMU version "latest"/],
    ['--latest with a version', ['lock', '--latest', '--qemu', '9.2.4'], /^error: give either --latest or --qemu and --release, not both\n$/],
    ['no build named', ['lock', '--qemu', '9.2.4'], /^error: give --qemu and --release, or --latest\n$/],
    ['missing file', ['extract', '--out', '/tmp/x', '/nonexistent.rpm'], /^error: \/nonexistent\.rpm: ENOENT/],
    ['not an RPM', ['extract', '--out', '/tmp/x', 'package.json'], /^error: package\.json: bad lead magic \(not an RPM\)\n$/],
  ] as const) {
    test(`one-line error: ${what}`, async () => {
      await assert.rejects(cli([...args]), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        const lines = e.stderr.split('\n').filter((l) => l && !/^npm warn/.test(l));
        assert.equal(lines.length, 1, e.stderr);
        assert.match(`${lines[0]}\n`, message);
        return true;
      });
    });
  }
});
