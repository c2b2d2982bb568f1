// The GitHub release through the real engine, against a local server that speaks the GitHub
// REST endpoints and keeps GitHub's rules (test/fixtures/github.ts), with the repository's
// immutable releases on: a first publish (draft, files, publish; no asset write after it), a
// no-change up and refresh, a Fedora rebuild pinned without a new release number (refused at
// preview, nothing written), the same rebuild numbered by `polyarch lock` (a new tag; the old
// release byte for byte as it was), an up killed half-way through a QEMU bump (nothing public
// until the next up completes one release, no file twice), the primary rate limit, and a
// destroy that leaves every release published. After each step the test downloads what the
// server holds and checks it with sha256sum, and SHA256SUMS and the SBOM with cosign: the stack
// signs with a key pair, so every release's bundles must be there before it is published; the
// token and the signing key never show in state, output or logs.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { changes, engineBin, engineProject, hasEngine, parseJson, urnName, urnType, type Step } from '../helpers/engine.ts';
import { startFakeGitHub, type FakeGitHub } from '../fixtures/github.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

const RELEASE = 'pulumi-nodejs:dynamic/polyarch:GitHubRelease';
const ASSET = 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset';
const PUBLICATION = 'pulumi-nodejs:dynamic/polyarch:ReleasePublication';
const SIGNATURE = 'pulumi-nodejs:dynamic/polyarch:BlobSignature';
const KEY_PASSWORD = 'release-github-key-password-4417';
/** The test's cosign key pair: the private key a stack secret, the public one what users verify with. */
let keys: { dir: string; privateKey: string };

type Fixture = Awaited<ReturnType<typeof fixtureLock>>;
let github: FakeGitHub;
let lock: Fixture;
let rebuilt: Fixture;
let renumbered: Fixture;
let bumped: Fixture;
before(async () => {
  github = await startFakeGitHub({ immutable: true });
  lock = await fixtureLock(['x86_64', 'aarch64']);
  // A Fedora rebuild of the same QEMU: other bytes for riscv64. Pinned over the first lockfile
  // (as `polyarch lock` does) it becomes release 2; the stale copy keeps release 1.
  const rebuild = { version: '9.2.4', release: '2.fc42' };
  renumbered = await fixtureLock(['x86_64', 'aarch64'], rebuild, { alter: 'riscv64', previous: lock.lock });
  rebuilt = { ...renumbered, file: path.join(path.dirname(renumbered.file), 'stale.lock.json'), lock: { ...renumbered.lock, releaseNumber: 1 } };
  fs.writeFileSync(rebuilt.file, JSON.stringify(rebuilt.lock));
  bumped = await fixtureLock(['x86_64', 'aarch64'], { version: '9.2.5', release: '1.fc42' }, { previous: renumbered.lock });
});
after(() => github?.close());

/** Downloads a release's assets as the server holds them, checks them against their own SHA256SUMS and the signed ones with cosign, and returns name -> bytes. */
function checkRelease(tag: string): Map<string, Buffer> {
  const releases = github.releases().filter((r) => r.tag === tag);
  assert.equal(releases.length, 1, `one release ${tag}`);
  assert.equal(releases[0]!.draft, false, `${tag} is published`);
  const assets = github.assets(releases[0]!.id);
  assert.ok(assets.every((a) => a.state === 'uploaded'), 'no unfinished upload');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-download-'));
  try {
    for (const a of assets) fs.writeFileSync(path.join(dir, a.name), a.data);
    const names = assets.map((a) => a.name).sort();
    assert.equal(new Set(names).size, names.length, 'no name twice');
    const ok = execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' }).trim().split('\n');
    const bundles = ['SHA256SUMS.cosign.bundle', 'sbom.spdx.json.cosign.bundle'];
    assert.deepEqual([...ok.map((l) => l.replace(/: OK$/, '')), 'SHA256SUMS', ...bundles].sort(), names, 'the release holds exactly what SHA256SUMS lists and the signatures');
    for (const signed of ['SHA256SUMS', 'sbom.spdx.json']) {
      const r = spawnSync(path.join(engineBin(), 'cosign'), ['verify-blob', '--key', path.join(keys.dir, 'cosign.pub'), '--insecure-ignore-tlog', '--bundle', `${signed}.cosign.bundle`, signed], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, `${tag}: cosign verify-blob ${signed}: ${r.stderr}`);
    }
    return new Map(assets.map((a) => [a.name, Buffer.from(a.data)]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const assetWrites = (from: number) => github.log.slice(from).filter((l) => l.event === 'asset write').length;

test('a GitHub release on the real engine, immutable releases on: public only when whole, never rewritten, a rebuild under a new tag, a killed run completed, limits named, token never in the open', { timeout: 20 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('sha256sum'))) return;
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-keys-'));
  t.after(() => fs.rmSync(keyDir, { recursive: true, force: true }));
  const made = spawnSync(path.join(engineBin(), 'cosign'), ['generate-key-pair'], { cwd: keyDir, env: { ...process.env, COSIGN_PASSWORD: KEY_PASSWORD }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(made.status, 0, `cosign generate-key-pair: ${made.stderr}`);
  keys = { dir: keyDir, privateKey: fs.readFileSync(path.join(keyDir, 'cosign.key'), 'utf8') };
  const p = await engineProject(t, 'github', {
    config: {
      'polyarch:lockFile': lock.file,
      'polyarch:cacheDir': lock.cacheDir,
      'polyarch:hosts': ['x86_64', 'aarch64'],
      // A few targets keep the uploads (spaced a second apart, as GitHub asks) to seconds.
      'polyarch:targets': ['aarch64', 'riscv64', 's390x'],
      'polyarch:release': { repository: `${github.owner}/${github.repo}`, apiUrl: github.url },
      'polyarch:signing': 'key',
    },
    secrets: { 'polyarch:githubToken': github.token, 'polyarch:signingKey': keys.privateKey, 'polyarch:signingPassword': KEY_PASSWORD },
  });

  // The first up, with the engine's debug log, which the secret scan below reads too: -v=6 is
  // the most verbose level Pulumi keeps free of secret values (from -v=7 on it prints provider
  // config and resource inputs with them).
  const started = Date.now();
  await p.ok(['up', '--yes', '-v=6', '--logtostderr', '--logflow']);
  const first = checkRelease('v9.2.4-1');
  const names = [...first.keys()].sort();
  assert.ok(names.includes('qemu-aarch64-static') && names.includes('aarch64_qemu-riscv64-static.tar.gz'), names.join(' '));
  const published = github.log.findIndex((l) => l.event === 'publish');
  assert.ok(published > 0);
  assert.equal(assetWrites(0), names.length, 'each file written once');
  assert.equal(assetWrites(published), 0, 'no asset write after publishing');
  assert.equal(github.releases()[0]!.immutable, true);
  t.diagnostic(`first publish of ${names.length} files: ${github.log.length} requests (${github.log.filter((l) => l.method !== 'GET').length} writes), up took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const outputs = parseJson<{ releaseLocation: string; releaseDigests: Record<string, string> }>((await p.ok(['stack', 'output', '--json'])).stdout);
  assert.equal(outputs.releaseLocation, `${new URL(github.url).origin}/${github.owner}/${github.repo}/releases/tag/v9.2.4-1`);
  assert.deepEqual(Object.keys(outputs.releaseDigests).sort(), names);

  await p.ok(['up', '--yes', '--expect-no-changes']);
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // A Fedora rebuild pinned without a new release number: its files would change the published
  // v9.2.4-1. Preview says so in one line naming the tag and the way out; up writes nothing.
  await p.setConfig('polyarch:lockFile', rebuilt.file);
  const refusal = /release v9\.2\.4-1 is published, and a published release's files never change, but this update would change SHA256SUMS, aarch64_qemu-riscv64-static\.tar\.gz, qemu-riscv64-static and 3 more; publish the new files under a new tag instead: raise "releaseNumber" in the lockfile \(the n of v<qemu>-<n>\) and run again/;
  const preview = await p.pulumi(['preview']);
  assert.notEqual(preview.code, 0);
  assert.match(preview.stdout + preview.stderr, refusal);
  const before = github.log.length;
  const refused = await p.pulumi(['up', '--yes']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stdout + refused.stderr, refusal);
  assert.deepEqual(github.log.slice(before).filter((l) => l.method !== 'GET'), [], 'nothing written to GitHub');
  assert.deepEqual(checkRelease('v9.2.4-1'), first);
  assert.equal(github.releases().find((r) => r.tag === 'v9.2.4-1')!.body.includes(renumbered.lock.qemu.release), false, 'the notes are as they were');

  // The same rebuild as `polyarch lock` pins it: release 2, a new tag; preview shows it.
  assert.equal(renumbered.lock.releaseNumber, 2);
  await p.setConfig('polyarch:lockFile', renumbered.file);
  const diff = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  const moved = diff.steps.filter((s) => s.op !== 'same');
  assert.ok(moved.every((s) => [RELEASE, ASSET, PUBLICATION, SIGNATURE].includes(urnType(s.urn))), 'only the release and its signatures move');
  assert.ok(moved.every((s) => s.op !== 'delete' && s.op !== 'delete-replaced'), `nothing published is deleted: ${changes(moved).join(', ')}`);
  assert.deepEqual([...new Set(moved.filter((s) => urnType(s.urn) === ASSET).map((s) => urnName(s.urn)))].sort(), names.map((n) => `release-${n}`));
  assert.match(JSON.stringify(moved.find((s) => urnType(s.urn) === RELEASE)), /"tag":"v9\.2\.4-2"/);
  await p.ok(['up', '--yes']);
  const second = checkRelease('v9.2.4-2');
  assert.deepEqual([...second.keys()].sort(), names);
  assert.notDeepEqual(second.get('qemu-riscv64-static'), first.get('qemu-riscv64-static'));
  assert.deepEqual(checkRelease('v9.2.4-1'), first, 'the first release byte for byte as it was');
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // A QEMU bump cut off by SIGKILL half-way through its uploads: nothing public.
  await p.setConfig('polyarch:lockFile', bumped.file);
  const mark = github.log.length;
  const killed = p.start(['up', '--yes']);
  const end = Date.now() + 5 * 60_000;
  while (assetWrites(mark) < 4) {
    assert.ok(Date.now() < end, 'no upload started');
    await sleep(50);
  }
  process.kill(-killed.child.pid!, 'SIGKILL');
  await killed.done;
  const draft = github.releases().filter((r) => r.tag === 'v9.2.5-1');
  assert.deepEqual(draft.map((r) => r.draft), [true], 'one draft, not public');
  const partial = github.assets(draft[0]!.id).length;
  assert.ok(partial >= 4 && partial < names.length, `cut half-way: ${partial} of ${names.length} files`);
  // What the README tells a maintainer to run after a killed update, then up: one release, whole.
  p.removeTornSidecars();
  await p.ok(['cancel', '--yes']);
  await p.ok(['refresh', '--clear-pending-creates', '--yes']);
  await p.ok(['up', '--yes']);
  assert.deepEqual([...checkRelease('v9.2.5-1').keys()].sort(), names);
  assert.equal(github.releases().filter((r) => r.tag === 'v9.2.5-1').length, 1, 'the draft was adopted, not doubled');
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // GitHub's primary rate limit: named as a limit with its reset time, not as a permission problem.
  const resetAt = Math.floor(Date.now() / 1000) + 1800;
  github.limitRequests({ remaining: 0, resetAt });
  const limited = await p.pulumi(['refresh', '--yes']);
  github.limitRequests(undefined);
  assert.notEqual(limited.code, 0);
  const said = limited.stdout + limited.stderr;
  assert.ok(said.includes(`GitHub's API rate limit for this token is used up until ${new Date(resetAt * 1000).toISOString().replace(/\.000Z$/, 'Z')}; run again after that`), said.slice(-2000));
  assert.doesNotMatch(said, /may not write/);

  // Destroy forgets the releases and leaves them published, every byte.
  await p.ok(['destroy', '--yes']);
  assert.deepEqual(checkRelease('v9.2.4-1'), first);
  assert.deepEqual(checkRelease('v9.2.4-2'), second);
  assert.deepEqual([...checkRelease('v9.2.5-1').keys()].sort(), names);

  // The token was only ever in the encrypted stack config and the providers' memory.
  const exported = (await p.ok(['stack', 'export'])).stdout;
  const history = (await p.ok(['stack', 'history', '--json'])).stdout;
  const stackFile = fs.readFileSync(path.join(p.dir, 'Pulumi.github.yaml'), 'utf8');
  const keyBody = keys.privateKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('').slice(0, 40);
  for (const [what, text] of [['stack export', exported], ['stack history', history], ['the stack file', stackFile], ['command output and engine logs', p.transcript.join('\n')]] as const) {
    for (const [secret, name] of [[github.token, 'the token'], [keyBody, 'the signing key'], [KEY_PASSWORD, 'the key password']] as const) {
      const at = text.indexOf(secret);
      assert.ok(at < 0, `${name} in ${what}: …${text.slice(Math.max(0, at - 300), at + 40)}`);
    }
  }
  assert.ok(p.transcript.join('\n').length > 100_000, 'the verbose logs were captured');
});
