// The GitHub release through the real engine, against a local server speaking the GitHub
// REST endpoints (test/fixtures/github.ts): up, a no-change up, a rebuilt emulator updated in
// place, refresh, a QEMU bump that publishes a new release and keeps the old one, destroy
// that leaves published releases alone. After each step the test downloads what the server
// holds and checks it with sha256sum; the token never shows in state, output or engine logs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { changes, engineProject, hasEngine, parseJson, urnName, urnType, type Step } from '../helpers/engine.ts';
import { startFakeGitHub, type FakeGitHub } from '../fixtures/github.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

const RELEASE = 'pulumi-nodejs:dynamic/polyarch:GitHubRelease';
const ASSET = 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset';

let github: FakeGitHub;
let lock: { file: string; cacheDir: string };
let rebuilt: { file: string; cacheDir: string };
let bumped: { file: string; cacheDir: string };
before(async () => {
  github = await startFakeGitHub();
  lock = await fixtureLock(['x86_64', 'aarch64']);
  rebuilt = await fixtureLock(['x86_64', 'aarch64'], undefined, { alter: 'riscv64' });
  bumped = await fixtureLock(['x86_64', 'aarch64'], { version: '9.2.5', release: '1.fc42' }, { alter: 'riscv64' });
});
after(() => github?.close());

/** Downloads a release's assets as the server holds them and checks them against their own SHA256SUMS. */
function checkRelease(tag: string): string[] {
  const releases = github.releases().filter((r) => r.tag === tag);
  assert.equal(releases.length, 1, `one release ${tag}`);
  const assets = github.assets(releases[0]!.id);
  assert.ok(assets.every((a) => a.state === 'uploaded'), 'no unfinished upload');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-download-'));
  try {
    for (const a of assets) fs.writeFileSync(path.join(dir, a.name), a.data);
    const names = assets.map((a) => a.name).sort();
    assert.equal(new Set(names).size, names.length, 'no name twice');
    const ok = execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual([...ok.map((l) => l.replace(/: OK$/, '')), 'SHA256SUMS'].sort(), names, 'the release holds exactly what SHA256SUMS lists');
    return names;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}


test('a GitHub release on the real engine: published, updated in place, kept across a QEMU bump and a destroy, token never in the open', async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('sha256sum'))) return;
  const p = await engineProject(t, 'github', {
    config: {
      'polyarch:lockFile': lock.file,
      'polyarch:cacheDir': lock.cacheDir,
      'polyarch:hosts': ['x86_64', 'aarch64'],
      // A few targets keep the uploads (spaced a second apart, as GitHub asks) to a minute.
      'polyarch:targets': ['aarch64', 'riscv64', 's390x'],
      'polyarch:release': { repository: `${github.owner}/${github.repo}`, apiUrl: github.url },
    },
    secrets: { 'polyarch:githubToken': github.token },
  });

  // The first up with the engine's debug log, which the secret scan below reads too: -v=6 is the
  // most verbose level Pulumi keeps free of secret values (from -v=7 on it prints provider
  // config and resource inputs with them).
  await p.ok(['up', '--yes', '-v=6', '--logtostderr', '--logflow']);
  let names = checkRelease('v9.2.4-1');
  assert.ok(names.includes('qemu-aarch64-static') && names.includes('aarch64_qemu-riscv64-static.tar.gz'), names.join(' '));
  const outputs = parseJson<{ releaseLocation: string; releaseDigests: Record<string, string> }>((await p.ok(['stack', 'output', '--json'])).stdout);
  assert.equal(outputs.releaseLocation, `${new URL(github.url).origin}/${github.owner}/${github.repo}/releases/tag/v9.2.4-1`);
  assert.deepEqual(Object.keys(outputs.releaseDigests).sort(), names);

  await p.ok(['up', '--yes', '--expect-no-changes']);

  // A rebuilt emulator, same QEMU build: its files, SHA256SUMS and the notes (they list the
  // checksums) update in place on the same release.
  await p.setConfig('polyarch:lockFile', rebuilt.file);
  const diff = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  assert.deepEqual(changes(diff.steps), [
    'update release',
    'update release-SHA256SUMS',
    'update release-aarch64_qemu-riscv64-static.tar.gz',
    'update release-qemu-riscv64-static',
    'update release-qemu-riscv64-static.tar.gz',
    'update release-x86_64_qemu-riscv64-static.tar.gz',
  ]);
  await p.ok(['up', '--yes']);
  assert.deepEqual(checkRelease('v9.2.4-1'), names);
  assert.equal(github.releases().length, 1);
  // After in-place updates the assets have new ids; refresh still finds every one.
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // A target the stack stops publishing: its files leave the current release with it, so the
  // release keeps holding exactly what its SHA256SUMS lists.
  await p.setConfig('polyarch:targets', '["aarch64","riscv64"]');
  await p.ok(['up', '--yes']);
  const kept = checkRelease('v9.2.4-1');
  assert.deepEqual(kept, names.filter((n) => !n.includes('s390x')));
  names = kept;

  // A QEMU bump: a new release with every file; the published one and its files stay.
  await p.setConfig('polyarch:lockFile', bumped.file);
  const bump = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  const moved = bump.steps.filter((s) => s.op !== 'same');
  assert.ok(moved.every((s) => [RELEASE, ASSET].includes(urnType(s.urn))), 'only the release moves');
  // (The JSON preview shows a replacement as one step, so this only rules out plain deletes;
  // checkRelease on the old tag below is what proves its files stay.)
  assert.ok(moved.every((s) => s.op !== 'delete' && s.op !== 'delete-replaced'), `nothing published is deleted: ${changes(moved).join(', ')}`);
  assert.deepEqual([...new Set(moved.filter((s) => urnType(s.urn) === ASSET).map((s) => urnName(s.urn)))].sort(), names.map((n) => `release-${n}`));
  await p.ok(['up', '--yes']);
  assert.deepEqual(checkRelease('v9.2.5-1'), names);
  assert.deepEqual(checkRelease('v9.2.4-1'), names, 'the previous release keeps every file');
  await p.ok(['up', '--yes', '--expect-no-changes']);
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // Destroy forgets the releases and leaves them published.
  await p.ok(['destroy', '--yes']);
  assert.deepEqual(checkRelease('v9.2.4-1'), names);
  assert.deepEqual(checkRelease('v9.2.5-1'), names);

  // The token was only ever in the encrypted stack config and the provider's memory.
  const exported = (await p.ok(['stack', 'export'])).stdout;
  const history = (await p.ok(['stack', 'history', '--json'])).stdout;
  const stackFile = fs.readFileSync(path.join(p.dir, 'Pulumi.github.yaml'), 'utf8');
  for (const [what, text] of [['stack export', exported], ['stack history', history], ['the stack file', stackFile], ['command output and engine logs', p.transcript.join('\n')]] as const) {
    const at = text.indexOf(github.token);
    assert.ok(at < 0, `the token in ${what}: …${text.slice(Math.max(0, at - 300), at + 40)}`);
  }
  assert.ok(p.transcript.join('\n').length > 100_000, 'the verbose logs were captured');
});
