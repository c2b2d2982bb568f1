// Build contexts: the Dockerfile and files of every image, content-addressed so that an
// unchanged image keeps its folder, written whole or not at all; `polyarch contexts`.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { imageLabels, writeContexts, type ContextOptions } from '../../lib/contexts.ts';
import { DEFAULT_BASE_IMAGE } from '../../lib/image-refs.ts';
import { registerLine } from '../../lib/binfmt.ts';
import { findCpu, HOST_ARCHES, type HostArch } from '../../lib/cpus.ts';
import type { HostEmulators } from '../../lib/emulators.ts';
import type { ManifestEntry } from '../../lib/extract.ts';
import { stampOf } from '../../lib/known-digests.ts';
import { flipByte } from '../helpers/tamper.ts';
import { planImages, type ImagePlan } from '../../lib/image-plan.ts';
import { QEMU_BINFMT } from '../fixtures/qemu-binfmt.ts';
import { HOST_ELF, hostElfBytes } from '../helpers/elf.ts';
import { fixtureLock } from '../helpers/program.ts';
import { canMountTmpfs, fillUp, requireSystem, withTmpfs } from '../helpers/system.ts';

function tmp(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-ctx-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A host's extraction folder with small stand-in emulators (and binfmt.d confs where given). */
function fakeHost(root: string, host: HostArch, cpus: Record<string, string | undefined>, mode = 0o755): HostEmulators {
  const dir = path.join(root, `emu-${host}`);
  fs.mkdirSync(path.join(dir, 'binfmt.d'), { recursive: true });
  const emulators: ManifestEntry[] = Object.entries(cpus).map(([cpu, conf]) => {
    const data = `stand-in qemu-${cpu}-static for ${host}\n`;
    fs.writeFileSync(path.join(dir, `qemu-${cpu}-static`), data, { mode });
    fs.chmodSync(path.join(dir, `qemu-${cpu}-static`), mode);
    if (conf) fs.writeFileSync(path.join(dir, `binfmt.d/qemu-${cpu}-static.conf`), conf);
    return { cpu, file: `qemu-${cpu}-static`, size: Buffer.byteLength(data), sha256: createHash('sha256').update(data).digest('hex'), rpm: 'x', ...(conf ? { conf: `binfmt.d/qemu-${cpu}-static.conf` } : {}) };
  });
  // Contexts need no RPM facts (those are for the release's SBOM).
  return { host, dir, emulators, rpms: [] };
}

const planFor = (hosts: HostEmulators[]): ImagePlan =>
  planImages({ server: 'localhost:5000', repository: 'polyarch/qemu-user-static', push: true, version: '9.2.4-1', hosts: hosts.map((h) => ({ host: h.host, targets: h.emulators.map((e) => e.cpu) })) });

// QEMU's own line for aarch64, with a mask that differs from the table's in one byte (ABI version ignored).
const AARCH64_CONF = ':qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F\n';

function setup(t: TestContext, overrides: Partial<ContextOptions> = {}) {
  const root = tmp(t);
  const hosts = [fakeHost(root, 'x86_64', { aarch64: AARCH64_CONF, arm: undefined, x86_64: undefined }), fakeHost(root, 'aarch64', { i386: undefined, x86_64: undefined })];
  const o: ContextOptions = { outDir: path.join(root, 'contexts'), baseImage: DEFAULT_BASE_IMAGE, labels: imageLabels({ imageSource: 'https://example.org/polyarch' }, { version: '9.2.4', release: '1.fc42' }, '9.2.4-1'), ...overrides };
  return { root, hosts, o };
}

const files = (dir: string): string[] =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
const mode = (f: string) => fs.statSync(f).mode & 0o777;

test('what each context holds: Dockerfile, files, modes, labels, per-platform folders', async (t) => {
  const { hosts, o } = setup(t);
  const ctx = await writeContexts(planFor(hosts), hosts, o);
  assert.deepEqual(Object.keys(ctx), ['emulators', 'register', 'x86_64-aarch64', 'x86_64-arm', 'x86_64-x86_64', 'aarch64-i386', 'aarch64-x86_64']);

  const labels = [
    'LABEL org.opencontainers.image.source="https://example.org/polyarch" \\',
    '      org.opencontainers.image.version="9.2.4-1" \\',
    '      org.opencontainers.image.revision="9.2.4-1.fc42"',
  ];
  const e = ctx['x86_64-aarch64']!;
  assert.equal(e.dockerfile, path.join(e.dir, 'Dockerfile'));
  assert.deepEqual(files(e.dir), ['Dockerfile', 'qemu-aarch64-static']);
  assert.deepEqual(fs.readFileSync(e.dockerfile, 'utf8').split('\n').slice(1), ['FROM scratch', 'COPY qemu-aarch64-static /usr/bin/qemu-aarch64-static', ...labels, '']);
  assert.equal(fs.readFileSync(path.join(e.dir, 'qemu-aarch64-static'), 'utf8'), 'stand-in qemu-aarch64-static for x86_64\n');
  assert.equal(mode(path.join(e.dir, 'qemu-aarch64-static')), 0o755);
  assert.equal(mode(e.dockerfile), 0o644);

  const r = ctx.register!;
  assert.deepEqual(files(r.dir), ['Dockerfile', 'register']);
  assert.deepEqual(fs.readFileSync(r.dockerfile, 'utf8').split('\n').slice(1), [`FROM ${DEFAULT_BASE_IMAGE}`, 'COPY register /register', ...labels, 'ENTRYPOINT ["/register"]', '']);
  assert.match(fs.readFileSync(path.join(r.dir, 'register'), 'utf8'), /^#!\/bin\/sh\n/);
  assert.equal(mode(path.join(r.dir, 'register')), 0o755);

  const l = ctx.emulators!;
  assert.deepEqual(files(l.dir), [
    'Dockerfile',
    'emulators/amd64/qemu-aarch64-static',
    'emulators/amd64/qemu-arm-static',
    'emulators/amd64/qemu-x86_64-static',
    'emulators/arm64/qemu-i386-static',
    'emulators/arm64/qemu-x86_64-static',
    'register/amd64',
    'register/arm64',
  ]);
  assert.deepEqual(fs.readFileSync(l.dockerfile, 'utf8').split('\n').slice(1), [
    `FROM ${DEFAULT_BASE_IMAGE}`,
    'ARG TARGETARCH',
    'COPY emulators/${TARGETARCH}/ /usr/bin/',
    'COPY register/${TARGETARCH} /register',
    ...labels,
    'ENTRYPOINT ["/register"]',
    '',
  ]);
  // Each host's /register registers what its image ships, outside the host's own family;
  // i486 comes along with qemu-i386, and the RPM's conf wins over the table (mask byte 8).
  const amd64 = fs.readFileSync(path.join(l.dir, 'register/amd64'), 'utf8');
  const arm64 = fs.readFileSync(path.join(l.dir, 'register/arm64'), 'utf8');
  assert.match(amd64, /^DEFAULT_TARGETS='aarch64 arm'$/m);
  assert.match(arm64, /^DEFAULT_TARGETS='i386 i486 x86_64'$/m);
  assert.match(amd64, /aarch64\) emu=aarch64 fam=arm off=0 magic=7f454c460201010000000000000000000200b700 mask=ffffffffffffff0000fffffffffffffffeffffff/);
});

test('four hosts: a context per host and target, a folder per platform, and each /register skips only its host\'s family', async (t) => {
  const { root, o } = setup(t);
  // The same emulators on every host; ppc and ppc64 are family ppc, ppc64le family ppcle.
  const cpus = ['aarch64', 'ppc', 'ppc64', 'ppc64le', 's390x', 'x86_64'];
  const hosts = HOST_ARCHES.map((h) => fakeHost(root, h, Object.fromEntries(cpus.map((c) => [c, undefined]))));
  const ctx = await writeContexts(planFor(hosts), hosts, o);
  assert.deepEqual(Object.keys(ctx), ['emulators', 'register', ...HOST_ARCHES.flatMap((h) => cpus.map((c) => `${h}-${c}`))]);
  for (const h of HOST_ARCHES) {
    const c = ctx[`${h}-s390x`]!;
    assert.deepEqual(files(c.dir), ['Dockerfile', 'qemu-s390x-static']);
    assert.equal(fs.readFileSync(path.join(c.dir, 'qemu-s390x-static'), 'utf8'), `stand-in qemu-s390x-static for ${h}\n`);
  }
  // Folders named as the builder's TARGETARCH spells each platform.
  const l = ctx.emulators!;
  const arches = ['amd64', 'arm64', 'ppc64le', 's390x'];
  assert.deepEqual(files(l.dir), ['Dockerfile', ...arches.flatMap((a) => cpus.map((c) => `emulators/${a}/qemu-${c}-static`)), ...arches.map((a) => `register/${a}`)].sort());
  for (const [i, a] of arches.entries()) {
    assert.equal(fs.readFileSync(path.join(l.dir, `emulators/${a}/qemu-aarch64-static`), 'utf8'), `stand-in qemu-aarch64-static for ${HOST_ARCHES[i]}\n`);
  }
  const defaults = (a: string) => /^DEFAULT_TARGETS='(.*)'$/m.exec(fs.readFileSync(path.join(l.dir, `register/${a}`), 'utf8'))?.[1];
  assert.equal(defaults('amd64'), 'aarch64 ppc ppc64 ppc64le s390x');
  assert.equal(defaults('arm64'), 'ppc ppc64 ppc64le s390x x86_64');
  // A ppc64le machine runs no big-endian ppc binaries natively: ppc and ppc64 are registered.
  assert.equal(defaults('ppc64le'), 'aarch64 ppc ppc64 s390x x86_64');
  assert.equal(defaults('s390x'), 'aarch64 ppc ppc64 ppc64le x86_64');
  // :register is one script for every platform; it picks the family on the machine it runs on.
  assert.deepEqual(planFor(hosts).images.find((i) => i.name === 'register')!.platforms, ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
});

test('an RPM conf that the table overrides is not registered: microblaze gets the table\'s bytes, microblazeel its conf\'s', async (t) => {
  const { root, o } = setup(t);
  const microblaze = findCpu('microblaze')!;
  const microblazeel = findCpu('microblazeel')!;
  // What a Fedora RPM ships for microblaze: QEMU's own line, which matches no real binary.
  const qemu = QEMU_BINFMT.find((r) => r.cpu === 'microblaze')!.line.replace(/:\/usr\/local\/bin\/(qemu-microblaze):$/, ':/usr/bin/$1-static:F');
  // A conf for a row without the override, differing from the table (OS ABI 0-3 only): it wins.
  const elMask = `${microblazeel.mask.slice(0, 14)}fc${microblazeel.mask.slice(16)}`;
  const el = registerLine({ ...microblazeel, mask: elMask });
  const host = fakeHost(root, 'x86_64', { microblaze: `${qemu}\n`, microblazeel: `${el}\n` });
  const ctx = await writeContexts(planFor([host]), [host], o);
  const script = fs.readFileSync(path.join(ctx.emulators!.dir, 'register/amd64'), 'utf8');
  const entry = (cpu: string) => new RegExp(`^\\s*${cpu}\\) emu=(\\S+) fam=\\S+ off=(\\d+) magic=([0-9a-f]+) mask=([0-9a-f]+)`, 'm').exec(script)?.slice(1);
  // e_type 00 02 (ET_EXEC, big-endian) at bytes 16-17, mask ff fe: the table's, not QEMU's 02 00 / fe ff.
  assert.deepEqual(entry('microblaze'), ['microblaze', '0', '7f454c460102010000000000000000000002baab', 'ffffffffffffff00fffffffffffffffffffeffff']);
  assert.deepEqual([microblaze.magic, microblaze.mask], entry('microblaze')!.slice(2));
  // Mask byte 7 fc: the conf's, where the table has 00.
  assert.deepEqual(entry('microblazeel'), ['microblazeel', '0', '7f454c460101010000000000000000000200abba', 'fffffffffffffffcfffffffffffffffffeffffff']);
  assert.equal(microblazeel.mask, 'ffffffffffffff00fffffffffffffffffeffffff');
});

test('unchanged input keeps every folder untouched; a changed emulator moves only the contexts holding it', async (t) => {
  const { root, hosts, o } = setup(t);
  const first = await writeContexts(planFor(hosts), hosts, o);
  const stamp = (d: string) => files(d).map((f) => `${f} ${fs.statSync(path.join(d, f)).ino} ${fs.statSync(path.join(d, f)).mtimeMs}`);
  const before = Object.fromEntries(Object.entries(first).map(([k, c]) => [k, stamp(c.dir)]));
  const again = await writeContexts(planFor(hosts), hosts, o);
  assert.deepEqual(again, first);
  for (const [k, c] of Object.entries(again)) assert.deepEqual(stamp(c.dir), before[k], `${k} was rewritten`);

  // A new qemu-x86_64 for the aarch64 host.
  const arm = fakeHost(path.join(root, 'v2'), 'aarch64', { i386: undefined, x86_64: undefined });
  fs.appendFileSync(path.join(arm.dir, 'qemu-x86_64-static'), 'patched\n');
  const x = arm.emulators.find((m) => m.cpu === 'x86_64')!;
  x.size += 'patched\n'.length;
  x.sha256 = createHash('sha256').update(fs.readFileSync(path.join(arm.dir, 'qemu-x86_64-static'))).digest('hex');
  const next = await writeContexts(planFor([hosts[0]!, arm]), [hosts[0]!, arm], o);
  const moved = Object.keys(next).filter((k) => next[k]!.dir !== first[k]!.dir).sort();
  assert.deepEqual(moved, ['aarch64-x86_64', 'emulators']);
  // The old folders stay (a cache), complete; nothing half-written is left behind.
  assert.ok(fs.existsSync(first['aarch64-x86_64']!.dir));
  assert.deepEqual(fs.readdirSync(o.outDir).filter((n) => n.startsWith('.')), []);
});

test('the base image and labels are part of the content; the base must be pinned by digest', async (t) => {
  const { hosts, o } = setup(t);
  const a = await writeContexts(planFor(hosts), hosts, o);
  const pinned = `127.0.0.1:5000/test/busybox@sha256:${'ab'.repeat(32)}`;
  const b = await writeContexts(planFor(hosts), hosts, { ...o, baseImage: pinned });
  const moved = Object.keys(b).filter((k) => b[k]!.dir !== a[k]!.dir).sort();
  assert.deepEqual(moved, ['emulators', 'register']);
  assert.match(fs.readFileSync(b.register!.dockerfile, 'utf8'), new RegExp(`^FROM ${pinned.replace(/\./g, '\\.')}$`, 'm'));
  const c = await writeContexts(planFor(hosts), hosts, { ...o, labels: { ...o.labels, revision: 'abc123' } });
  assert.ok(Object.keys(c).every((k) => c[k]!.dir !== a[k]!.dir));

  await assert.rejects(writeContexts(planFor(hosts), hosts, { ...o, baseImage: 'docker.io/library/busybox:1.36.1' }), /base image "docker\.io\/library\/busybox:1\.36\.1" must be pinned by digest/);
  await assert.rejects(
    writeContexts(planFor(hosts), hosts, { ...o, labels: { ...o.labels, source: 'https://x" \\\nRUN evil' } }),
    (e: Error) => !e.message.includes('\n') && /^image source label "https:\/\/x.*RUN evil" must be an http\(s\) URL$/.test(e.message),
  );
  await assert.rejects(writeContexts(planFor(hosts), hosts, { ...o, labels: { ...o.labels, revision: 'a b' } }), /image revision label "a b"/);
  await assert.rejects(writeContexts(planFor(hosts), [hosts[0]!], o), /no emulators were prepared for host aarch64/);
  const own = [fakeHost(tmp(t), 'x86_64', { x86_64: undefined })];
  await assert.rejects(writeContexts(planFor(own), own, o), /host x86_64: the :latest image would register nothing/);
});

test('a damaged context folder is rewritten whole; emulators are copies, never links into the cache', async (t) => {
  const { root, hosts, o } = setup(t);
  const a = await writeContexts(planFor(hosts), hosts, o);
  const f = path.join(a['x86_64-arm']!.dir, 'qemu-arm-static');
  fs.rmSync(f);
  fs.writeFileSync(f, 'x');
  const b = await writeContexts(planFor(hosts), hosts, o);
  assert.equal(b['x86_64-arm']!.dir, a['x86_64-arm']!.dir);
  assert.equal(fs.readFileSync(f, 'utf8'), 'stand-in qemu-arm-static for x86_64\n');
  // A copy: a write to the context cannot reach the extraction, nor the other way round.
  assert.notEqual(fs.statSync(f).ino, fs.statSync(path.join(hosts[0]!.dir, 'qemu-arm-static')).ino);
  assert.equal(mode(f), 0o755);

  // A byte flipped in a context (same size, mtime put back) is found, and the folder rewritten.
  flipByte(f);
  const c = await writeContexts(planFor(hosts), hosts, o);
  assert.equal(c['x86_64-arm']!.dir, a['x86_64-arm']!.dir);
  assert.equal(fs.readFileSync(f, 'utf8'), 'stand-in qemu-arm-static for x86_64\n');

  // A source that is not 0755 is copied, and the context still gets 0755.
  const loose = fakeHost(path.join(root, 'loose'), 'x86_64', { arm: undefined }, 0o644);
  const d = await writeContexts(planFor([loose]), [loose], { ...o, outDir: path.join(root, 'c2') });
  const g = path.join(d['x86_64-arm']!.dir, 'qemu-arm-static');
  assert.equal(mode(g), 0o755);
  assert.equal(mode(path.join(loose.dir, 'qemu-arm-static')), 0o644);

  // An emulator that changed after extraction is refused, and leaves nothing behind.
  fs.appendFileSync(path.join(loose.dir, 'qemu-arm-static'), 'tampered');
  await assert.rejects(writeContexts(planFor([loose]), [loose], { ...o, outDir: path.join(root, 'c3') }), /qemu-arm-static changed since extraction/);
  assert.deepEqual(fs.readdirSync(path.join(root, 'c3')), []);
});

test('a file in the way of a context folder is one error naming that folder, not the stage, and no stage is left', async (t) => {
  const { root, hosts, o } = setup(t);
  const ref = await writeContexts(planFor(hosts), hosts, { ...o, outDir: path.join(root, 'ref') });
  const blocked = path.join(o.outDir, path.basename(ref['x86_64-arm']!.dir));
  fs.mkdirSync(o.outDir);
  fs.writeFileSync(blocked, 'not a folder');
  await assert.rejects(writeContexts(planFor(hosts), hosts, o), { message: `${blocked}: cannot write (ENOTDIR: not a directory)` });
  assert.deepEqual(fs.readdirSync(o.outDir).filter((f) => f.startsWith('.')), []);
});

test('polyarch contexts --out writes every context of the stack and plan.json', async (t) => {
  const { file, cacheDir } = await fixtureLock(HOST_ARCHES);
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'Pulumi.yaml'), 'name: t\nruntime: nodejs\n');
  fs.writeFileSync(path.join(dir, 'Pulumi.ci.yaml'), `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cacheDir}\n  polyarch:hosts: [x86_64, aarch64, ppc64le, s390x]\n  polyarch:targets: [aarch64, s390x]\n  polyarch:imageRevision: 0123abc\n`);
  const cli = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
  const r = spawnSync(process.execPath, [cli, 'contexts', '--out', 'out', '--stack', 'ci'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const printed = JSON.parse(r.stdout) as { plan: string; contexts: Record<string, { dir: string; dockerfile: string }> };
  assert.equal(printed.plan, path.join('out', 'plan.json'));
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'plan.json'), 'utf8')) as ImagePlan & { contexts: Record<string, { dir: string }> };
  assert.deepEqual(saved.images.map((i) => i.name), ['emulators', 'register', ...HOST_ARCHES.flatMap((h) => [`${h}-aarch64`, `${h}-s390x`])]);
  assert.deepEqual(saved.contexts, printed.contexts);
  // Relative in, relative out: the folders do not depend on where the project lives.
  for (const c of Object.values(printed.contexts)) {
    assert.match(c.dir, /^out\/[a-z0-9_-]+-[0-9a-f]{16}$/);
    assert.match(fs.readFileSync(path.join(dir, c.dockerfile), 'utf8'), /org\.opencontainers\.image\.revision="0123abc"/);
  }
  // Every H-T context holds H's build of qemu-T, and :latest's folder per platform the same.
  for (const h of HOST_ARCHES) {
    for (const cpu of ['aarch64', 's390x']) {
      const bin = fs.readFileSync(path.join(dir, printed.contexts[`${h}-${cpu}`]!.dir, `qemu-${cpu}-static`));
      assert.equal(hostElfBytes(bin), HOST_ELF[h], `${h}-${cpu}`);
    }
  }
  const latest = path.join(dir, printed.contexts.emulators!.dir);
  assert.equal(hostElfBytes(fs.readFileSync(path.join(latest, 'emulators/ppc64le/qemu-s390x-static'))), HOST_ELF.ppc64le);
  assert.equal(hostElfBytes(fs.readFileSync(path.join(latest, 'emulators/s390x/qemu-aarch64-static'))), HOST_ELF.s390x);
  // The s390x image ships qemu-s390x too, but its /register leaves s390x binaries to the machine.
  const registers = (a: string) => /^DEFAULT_TARGETS='(.*)'$/m.exec(fs.readFileSync(path.join(latest, `register/${a}`), 'utf8'))?.[1];
  assert.equal(registers('s390x'), 'aarch64');
  assert.equal(registers('ppc64le'), 'aarch64 s390x');
  assert.equal(registers('arm64'), 's390x');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'out')).filter((n) => n.startsWith('.')), []);

  // A symlinked output folder is refused, not followed.
  fs.mkdirSync(path.join(dir, 'elsewhere'));
  fs.symlinkSync('elsewhere', path.join(dir, 'linked'));
  const linked = spawnSync(process.execPath, [cli, 'contexts', '--out', 'linked', '--stack', 'ci'], { cwd: dir, encoding: 'utf8' });
  assert.equal(linked.status, 1);
  assert.equal(linked.stderr, 'error: linked is a symlink to elsewhere; give the folder itself as the output folder\n');
  assert.equal(linked.stdout, '');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'elsewhere')), []);
});

/** Every file under `dir`, hidden ones too: relative path -> sha256. */
const digests = (dir: string): Record<string, string> =>
  Object.fromEntries(files(dir).map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));
/** Entries of the contexts folder that are not a context: stages, temps. */
const hidden = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('.'));
const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

test('runs at once on one folder: every run gets whole contexts, none replaces a folder another returned, no stage left', async (t) => {
  const { root, hosts, o } = setup(t);
  const plan = planFor(hosts);
  const ref = await writeContexts(plan, hosts, { ...o, outDir: path.join(root, 'ref') });
  const expected = Object.fromEntries(Object.entries(ref).map(([k, c]) => [k, digests(c.dir)]));
  for (const stagger of [0, 1, 3]) {
    fs.rmSync(o.outDir, { recursive: true, force: true });
    // What each context folder was when its run returned: its inode and every file's bytes.
    const returned: { run: number; key: string; ino: number; bytes: Record<string, string> }[] = [];
    const runs = [0, 1, 2, 3].map(async (run) => {
      for (let i = 0; i < run * stagger; i++) await new Promise((r) => setImmediate(r));
      const ctx = await writeContexts(plan, hosts, o);
      for (const [key, c] of Object.entries(ctx)) returned.push({ run, key, ino: fs.statSync(c.dir).ino, bytes: digests(c.dir) });
      return ctx;
    });
    const results = await Promise.all(runs);
    for (const ctx of results) assert.deepEqual(Object.fromEntries(Object.entries(ctx).map(([k, c]) => [k, c.digest])), Object.fromEntries(Object.entries(ref).map(([k, c]) => [k, c.digest])));
    for (const r of returned) {
      const dir = results[r.run]![r.key]!.dir;
      assert.deepEqual(r.bytes, expected[r.key], `stagger ${stagger}: run ${r.run}'s ${r.key} was whole when returned`);
      // A later run that removed and rewrote the folder would give it a new inode.
      assert.equal(fs.statSync(dir).ino, r.ino, `stagger ${stagger}: run ${r.run}'s ${r.key} kept after every run ended`);
    }
    assert.deepEqual(hidden(o.outDir), [], `stagger ${stagger}: no stage left`);
  }
});

/**
 * A project whose `contexts` run blocks while copying one emulator: the x86_64 host's
 * extraction (a private cache) has qemu-aarch64-static replaced by a FIFO of mode 0644, which
 * is copied rather than linked, and the copy waits for a writer. `restore` puts the file back.
 */
async function stalledProject(t: TestContext) {
  const { file } = await fixtureLock(HOST_ARCHES);
  const dir = tmp(t);
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache);
  const shared = path.join(import.meta.dirname, '../../.cache/fixtures/program-rpms');
  for (const n of fs.readdirSync(shared).filter((n) => n.endsWith('.rpm'))) fs.copyFileSync(path.join(shared, n), path.join(cache, n));
  fs.writeFileSync(path.join(dir, 'Pulumi.yaml'), 'name: t\nruntime: nodejs\n');
  fs.writeFileSync(path.join(dir, 'Pulumi.ci.yaml'), `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cache}\n  polyarch:hosts: [x86_64]\n  polyarch:targets: [aarch64, s390x]\n`);
  const cli = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
  const run = (out: string) => spawnSync(process.execPath, [cli, 'contexts', '--out', out, '--stack', 'ci'], { cwd: dir, encoding: 'utf8' });
  const ref = run('ref');
  assert.equal(ref.status, 0, ref.stderr);
  const refPlan = JSON.parse(fs.readFileSync(path.join(dir, 'ref', 'plan.json'), 'utf8')) as { contexts: Record<string, { dir: string }> };
  const expected = Object.fromEntries(Object.entries(refPlan.contexts).map(([k, c]) => [k, digests(path.join(dir, c.dir))]));
  const [ext] = fs.readdirSync(path.join(cache, 'emulators'));
  const emu = path.join(cache, 'emulators', ext!, 'qemu-aarch64-static');
  const manifestFile = path.join(cache, 'emulators', ext!, 'manifest.json');
  const saved = { bytes: fs.readFileSync(emu), manifest: fs.readFileSync(manifestFile, 'utf8') };
  fs.rmSync(emu);
  execFileSync('mkfifo', ['-m', '644', emu]);
  const manifest = JSON.parse(saved.manifest) as ManifestEntry[];
  manifest.find((m) => m.cpu === 'aarch64')!.size = 0;
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  // The cache trusts a file only by the stamp it was hashed with: forge the FIFO's as that.
  const stampsFile = path.join(cache, 'emulators', ext!, 'stamps.json');
  const stamps = JSON.parse(fs.readFileSync(stampsFile, 'utf8')) as Record<string, string>;
  fs.writeFileSync(stampsFile, JSON.stringify({ ...stamps, 'qemu-aarch64-static': stampOf(fs.lstatSync(emu, { bigint: true })) }));
  const restore = () => {
    fs.rmSync(emu);
    fs.writeFileSync(emu, saved.bytes, { mode: 0o755 });
    fs.writeFileSync(manifestFile, saved.manifest);
  };
  /** Starts `contexts --out out`, and resolves once its stage has the emulators folder: it is then blocked on the FIFO. */
  const startStalled = async (out: string) => {
    const child = spawn(process.execPath, [cli, 'contexts', '--out', out, '--stack', 'ci'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.on('close', (status, signal) => resolve({ status, signal, stderr })));
    const outDir = path.join(dir, out);
    for (let i = 0; i < 3000; i++) {
      const stage = fs.existsSync(outDir) ? fs.readdirSync(outDir).find((n) => n.startsWith('.polyarch-context-')) : undefined;
      if (stage && fs.existsSync(path.join(outDir, stage, 'emulators/amd64'))) return { child, done, stage: path.join(outDir, stage) };
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    assert.fail(`no stage seen: ${(await done).stderr}`);
  };
  /** Opens the FIFO for writing and closes it: a reader still waiting gets end of file (none waiting: ENXIO, fine). */
  const unblock = () => {
    try {
      fs.closeSync(fs.openSync(emu, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // No reader left.
    }
  };
  return { dir, run, expected, restore, startStalled, unblock };
}

test('polyarch contexts killed mid-write: SIGKILL leaves its stage and the next run sweeps it; SIGTERM removes it and says so', async (t) => {
  const p = await stalledProject(t);
  const killed = await p.startStalled('out');
  assert.ok(killed.stage.startsWith(path.join(p.dir, 'out', `.polyarch-context-${HOST_TAG}-${killed.child.pid}-`)), killed.stage);
  killed.child.kill('SIGKILL');
  assert.equal((await killed.done).signal, 'SIGKILL');
  // The :latest context, stopped at its first emulator.
  assert.deepEqual(files(killed.stage), ['Dockerfile', 'register/amd64'], 'the killed run left its stage');

  const stopped = await p.startStalled('out2');
  stopped.child.kill('SIGTERM');
  // The copy that waits on the FIFO holds one of Node's threads: let it finish so the process can exit.
  const r = await Promise.race([stopped.done, new Promise<void>((res) => setTimeout(res, 200)).then(() => (p.unblock(), stopped.done))]);
  assert.equal(r.status, 143, r.stderr);
  assert.equal(r.stderr, 'error: stopped by SIGTERM; unfinished files removed\n');
  assert.equal(fs.existsSync(stopped.stage), false, 'SIGTERM removed the stage');
  assert.deepEqual(fs.readdirSync(path.join(p.dir, 'out2')), []);

  // A stage of a run that is still going (a live pid on this host) is not touched.
  const live = spawn('sleep', ['60']);
  t.after(() => live.kill());
  const liveStage = path.join(p.dir, 'out', `.polyarch-context-${HOST_TAG}-${live.pid}-0123456789ab`);
  fs.mkdirSync(liveStage);
  fs.writeFileSync(path.join(liveStage, 'Dockerfile'), 'half');

  p.restore();
  const next = p.run('out');
  assert.equal(next.status, 0, next.stderr);
  assert.equal(fs.existsSync(killed.stage), false, 'the next run swept the killed run\'s stage');
  assert.deepEqual(hidden(path.join(p.dir, 'out')), [path.basename(liveStage)]);
  const plan = JSON.parse(fs.readFileSync(path.join(p.dir, 'out', 'plan.json'), 'utf8')) as { contexts: Record<string, { dir: string }> };
  assert.deepEqual(Object.fromEntries(Object.entries(plan.contexts).map(([k, c]) => [k, digests(path.join(p.dir, c.dir))])), p.expected);
});

test('plan.json that cannot be written (a full or read-only folder): one line naming it, no temp file, the contexts kept', async (t) => {
  if (!requireSystem(t, canMountTmpfs)) return;
  const { file, cacheDir } = await fixtureLock(HOST_ARCHES);
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'Pulumi.yaml'), 'name: t\nruntime: nodejs\n');
  fs.writeFileSync(path.join(dir, 'Pulumi.ci.yaml'), `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cacheDir}\n  polyarch:hosts: [x86_64]\n  polyarch:targets: [aarch64]\n`);
  const cli = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
  const run = (out: string) => spawnSync(process.execPath, [cli, 'contexts', '--out', out, '--stack', 'ci'], { cwd: dir, encoding: 'utf8' });
  await withTmpfs(dir, 64, async (out, remount) => {
    const first = run(out);
    assert.equal(first.status, 0, first.stderr);
    const contexts = digests(out);
    fs.rmSync(path.join(out, 'plan.json'));
    delete contexts['plan.json'];
    // A temp a killed run left (a gone pid on this host) is swept by the next run.
    const gone = spawnSync('true').pid!;
    const stale = path.join(out, `.plan.json.polyarch-tmp-${HOST_TAG}-${gone}-0123abcd`);
    // Empty: removing it frees no page of the full disk below.
    fs.writeFileSync(stale, '');
    // Every context is there already, so plan.json is the one file this run writes.
    fillUp(out);
    const full = run(out);
    assert.equal(full.status, 1);
    assert.equal(full.stdout, '');
    assert.equal(full.stderr, `error: no space left in ${out} while writing plan.json\n`);
    assert.deepEqual(fs.readdirSync(out).filter((n) => n.startsWith('.')), [], 'no temp file, the stale one swept');
    fs.rmSync(path.join(out, 'filler'));
    assert.deepEqual(digests(out), contexts, 'the contexts as they were, no plan.json');

    remount('ro');
    const ro = run(out);
    assert.equal(ro.status, 1);
    assert.equal(ro.stderr, `error: ${path.join(out, 'plan.json')}: cannot write (EROFS: read-only file system)\n`);
    assert.deepEqual(digests(out), contexts);
    remount('rw');
  });
});
