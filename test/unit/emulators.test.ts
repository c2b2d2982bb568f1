// A stack's emulators are extracted once per set of pins and reused; a damaged cache is
// extracted again, never trusted and never fatal.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { before, test } from 'node:test';
import { buildAssets, writeAssets } from '../../lib/assets.ts';
import { imageLabels, writeContexts } from '../../lib/contexts.ts';
import { DEFAULT_BASE_IMAGE } from '../../lib/image-refs.ts';
import { extractionKey, extractOnce, prepareEmulators, prepareStackEmulators } from '../../lib/emulators.ts';
import { planImages } from '../../lib/image-plan.ts';
import type { Lock } from '../../lib/lock.ts';
import { fixtureLock } from '../helpers/program.ts';
import { flipByte } from '../helpers/tamper.ts';

let lock: Lock;
let cacheDir = '';
before(async () => {
  ({ lock, cacheDir } = await fixtureLock(['x86_64']));
});

test('extracted once, reused, and extracted again when the cache was damaged', async () => {
  const emulatorsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  const o = { cacheDir, emulatorsDir, targets: 'all' as const };
  const first = await prepareEmulators(lock, 'x86_64', o);
  assert.equal(first.dir, path.join(emulatorsDir, extractionKey(lock, 'x86_64')));
  const arm = path.join(first.dir, 'qemu-arm-static');
  const inode = fs.statSync(arm).ino;
  assert.deepEqual(await prepareEmulators(lock, 'x86_64', o), first);
  assert.equal(fs.statSync(arm).ino, inode, 'the second run reused the files');

  fs.writeFileSync(path.join(first.dir, 'manifest.json'), '{"truncated');
  assert.deepEqual((await prepareEmulators(lock, 'x86_64', o)).emulators, first.emulators);
  fs.truncateSync(arm, 10);
  const again = await prepareEmulators(lock, 'x86_64', o);
  assert.equal(fs.statSync(arm).size, again.emulators.find((e) => e.cpu === 'arm')!.size, 'a cut-short emulator was extracted again');
});

test('each RPM\'s facts are kept with the extraction; a folder without them (made before the SBOM) or with damaged ones is extracted again', async () => {
  const emulatorsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  const said: string[] = [];
  const o = { cacheDir, emulatorsDir, targets: 'all' as const, progress: (m: string) => said.push(m) };
  const first = await prepareEmulators(lock, 'x86_64', o);
  const pins = lock.hosts.x86_64!;
  assert.deepEqual(first.rpms.map((r) => r.sha256).sort(), pins.map((p) => p.sha256).sort(), 'one entry per pinned RPM');
  for (const r of first.rpms) {
    const pin = pins.find((p) => p.sha256 === r.sha256)!;
    assert.deepEqual({ name: r.name, url: r.url, size: r.size, emulators: r.emulators }, { name: pin.name, url: pin.url, size: pin.size, emulators: pin.emulators }, `${r.name}: the pin`);
    // The fixture spec's header: License, no Epoch, built for x86_64 (test/fixtures/rpms.ts).
    assert.deepEqual({ version: r.version, release: r.release, arch: r.arch, license: r.license, epoch: r.epoch }, { version: '9.2.4', release: '1.fc42', arch: 'x86_64', license: 'GPL-2.0-or-later', epoch: undefined }, `${r.name}: the header`);
    assert.ok(Number.isInteger(r.buildTime) && r.buildTime! > 1_500_000_000, `${r.name}: a BuildTime (${r.buildTime})`);
  }
  const facts = path.join(first.dir, 'rpms.json');
  const recorded = fs.readFileSync(facts, 'utf8');
  const damages: [string, () => void][] = [
    ['missing (an extraction made before rpms.json)', () => fs.rmSync(facts)],
    ['cut short', () => fs.writeFileSync(facts, recorded.slice(0, 100))],
    ['one RPM left out', () => fs.writeFileSync(facts, JSON.stringify((JSON.parse(recorded) as unknown[]).slice(1)))],
    ['another RPM\'s digest', () => fs.writeFileSync(facts, recorded.replace(pins[0]!.sha256, 'f'.repeat(64)))],
  ];
  for (const [what, damage] of damages) {
    damage();
    said.length = 0;
    const again = await prepareEmulators(lock, 'x86_64', o);
    assert.equal(said[0], `${facts}: missing or not the RPMs of this extraction (a folder made by an older polyarch has none); extracting again from the pinned RPMs`, what);
    assert.match(said[1] ?? '', /^x86_64: fetching and extracting /, what);
    assert.deepEqual(again, first, what);
    assert.equal(fs.readFileSync(facts, 'utf8'), recorded, `${what}: recorded again`);
  }

  // A lockfile moved to another koji mirror pins the same RPMs: the folder is reused, and each
  // RPM's URL is the lockfile's.
  const mirror = 'https://koji.example.org';
  const moved: Lock = { ...lock, hosts: { x86_64: pins.map((p) => ({ ...p, url: p.url.replace(/^https?:\/\/[^/]+/, mirror) })) } };
  said.length = 0;
  const reused = await prepareEmulators(moved, 'x86_64', o);
  assert.deepEqual(said, [`x86_64: ${pins.flatMap((p) => p.emulators).length} emulators already extracted`]);
  assert.equal(reused.dir, first.dir, 'the same folder');
  assert.ok(reused.rpms.every((r) => r.url.startsWith(`${mirror}/`)), 'the URLs are the moved lockfile\'s');
});

test('a host the lockfile does not pin is named, with the command that fixes it', async () => {
  await assert.rejects(prepareStackEmulators({ lockFile: 'qemu.lock.json', hosts: ['s390x'], targets: ['all'], cacheDir }, lock), {
    message: 'qemu.lock.json pins no RPMs for host(s) s390x; run polyarch lock with --hosts s390x',
  });
});

test('progress: a cold host says what it fetches and how long extraction took; a warm one says it reused', async () => {
  const emulatorsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  const said: string[] = [];
  const o = { cacheDir, emulatorsDir, targets: 'all' as const, progress: (m: string) => said.push(m) };
  await prepareEmulators(lock, 'x86_64', o);
  const rpms = lock.hosts.x86_64!.length;
  assert.match(said[0]!, new RegExp(`^x86_64: fetching and extracting ${rpms} RPMs \\(\\d+\\.\\d MB\\) \\.\\.\\.$`));
  const extracted = /^x86_64: (\d+) emulators \(\d+\.\d MB\) extracted in \d+\.\d s$/.exec(said[1]!);
  assert.ok(extracted, said[1]);
  said.length = 0;
  await prepareEmulators(lock, 'x86_64', o);
  assert.deepEqual(said, [`x86_64: ${extracted[1]} emulators already extracted`]);
});

test('an assets output is a copy a write cannot reach the cache through; a byte flipped in the emulator cache (same size and mtime) is extracted again from the pinned RPMs', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const o = { cacheDir, emulatorsDir: path.join(root, 'emulators'), targets: 'all' as const };
  const host = await prepareEmulators(lock, 'x86_64', o);
  const plan = planImages({ server: 'localhost:5000', repository: 'polyarch/qemu-user-static', push: true, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets: host.emulators.map((e) => e.cpu) }] });
  const co = (name: string) => ({ outDir: path.join(root, name), baseImage: DEFAULT_BASE_IMAGE, labels: imageLabels({ imageSource: 'https://example.org/polyarch' }, { version: '9.2.4', release: '1.fc42' }, '9.2.4-1') });
  const first = await writeContexts(plan, [host], co('contexts'));

  const { assets } = await buildAssets([host], { cacheDir: path.join(root, 'assets'), releaseTag: 'v9.2.4-1' });
  const out = path.join(root, 'out');
  await writeAssets(assets, out);
  const cached = path.join(host.dir, 'qemu-aarch64-static');
  const output = path.join(out, 'qemu-aarch64-static');
  assert.notEqual(fs.statSync(output).ino, fs.statSync(cached).ino, 'the output is a file of its own');
  const original = fs.readFileSync(cached);
  const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  // A `cp` onto the output writes in place: it stays there.
  fs.writeFileSync(output, Buffer.alloc(original.length, 0x41));
  assert.ok(fs.readFileSync(cached).equals(original), 'the write did not reach the cache');

  // Now the cache itself, as a same-size write with the mtime put back would leave it.
  flipByte(cached);
  const tampered = fs.readFileSync(cached);
  // The contexts written before are copies, untouched; a new one from the emulators as prepared
  // before the flip is refused, one line naming the cache file.
  assert.deepEqual(await writeContexts(plan, [host], co('contexts')), first);
  await assert.rejects(writeContexts(plan, [host], co('contexts-2')), (e: Error) => {
    assert.equal(e.message, `${cached} changed since extraction: sha256 ${hex(tampered)} (${original.length} bytes), extracted as ${hex(original)} (${original.length} bytes); remove the folder and run again`);
    return true;
  });

  // The next run, a new process (only what the cache recorded): prepare, contexts, assets.
  const lib = path.resolve(import.meta.dirname, '../../lib');
  const next = `
    const { prepareEmulators } = await import(${JSON.stringify(path.join(lib, 'emulators.ts'))});
    const { writeContexts } = await import(${JSON.stringify(path.join(lib, 'contexts.ts'))});
    const { buildAssets, writeAssets } = await import(${JSON.stringify(path.join(lib, 'assets.ts'))});
    const [lock, o, plan, co, assetsCache, out] = JSON.parse(process.argv[1]);
    const said = [];
    const host = await prepareEmulators(lock, 'x86_64', { ...o, progress: (m) => said.push(m) });
    const contexts = await writeContexts(plan, [host], co);
    await writeAssets((await buildAssets([host], { cacheDir: assetsCache, releaseTag: 'v9.2.4-1' })).assets, out);
    process.stdout.write(JSON.stringify({ said, contexts }));
  `;
  const again = path.join(root, 'out-again');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', next, JSON.stringify([lock, o, plan, co('contexts-3'), path.join(root, 'assets'), again])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { said, contexts } = JSON.parse(r.stdout) as { said: string[]; contexts: Record<string, { dir: string }> };
  assert.equal(said[0], `${cached}: not the file extracted (its stamp changed: written, linked or replaced since); extracting again from the pinned RPMs`);
  assert.match(said[1]!, /^x86_64: fetching and extracting /);
  assert.ok(fs.readFileSync(cached).equals(original), 'extracted again');
  assert.ok(fs.readFileSync(path.join(contexts['x86_64-aarch64']!.dir, 'qemu-aarch64-static')).equals(original));
  assert.ok(fs.readFileSync(path.join(contexts.emulators!.dir, 'emulators/amd64/qemu-aarch64-static')).equals(original));
  assert.ok(fs.readFileSync(path.join(again, 'qemu-aarch64-static')).equals(original));
  execFileSync('sha256sum', ['--quiet', '--strict', '-c', 'SHA256SUMS'], { cwd: again });
});

test('an extraction that cannot be moved into the cache (a file in the way) names the cache folder, never its stage', async (t) => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  t.after(() => fs.rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, 'x86_64-0123456789abcdef');
  fs.writeFileSync(dir, 'not a folder\n');
  await assert.rejects(
    extractOnce(dir, async (into) => {
      fs.writeFileSync(path.join(into, 'qemu-aarch64-static'), 'emulator');
      return { manifest: [], rpms: [] };
    }),
    (e: Error) => {
      assert.match(e.message, new RegExp(`^${dir.replace(/[.]/g, '\\.')}: cannot write \\(ENOTDIR`));
      assert.doesNotMatch(e.message, /\.polyarch-/);
      return true;
    },
  );
  assert.deepEqual(fs.readdirSync(parent), [path.basename(dir)], 'no stage left behind');
});
