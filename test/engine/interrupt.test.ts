// An update cut off in the middle, as a cancelled CI job cuts it: SIGINT to the whole process
// group (the CLI, the language host, the program and its plugins), then SIGKILL two seconds
// later. What a maintainer then runs, `pulumi refresh` and `pulumi up`, must bring the same
// world as an update that was never cut: every release file in the folder and nothing else,
// every planned tag in the registry, each resource once in the state, no pending operation.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, test } from 'node:test';
import { sha256 } from '../../lib/digest.ts';
import { engineProject, hasEngine, parseJson, stepResources, type Started, type Step } from '../helpers/engine.ts';
import { platforms, startImageWorld } from '../helpers/image-world.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

let lock: { file: string; cacheDir: string };
before(async () => {
  lock = await fixtureLock(['x86_64', 'aarch64']);
});

interface Deployment {
  resources?: { urn: string; type: string }[];
  pending_operations?: { resource: { urn: string }; type: string }[];
}

async function until(what: string, ms: number, cond: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`waited ${ms / 1000}s for ${what}`);
    await sleep(100);
  }
}

test('an up cut by SIGINT then SIGKILL: refresh and up converge to the whole world, nothing lost, nothing twice', { timeout: 25 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('sha256sum'), hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasCommand('openssl'), hasCommand('docker-registry'))) return;
  const world = await startImageWorld(t);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-'));
  t.after(() => fs.rmSync(folder, { recursive: true, force: true }));
  const p = await engineProject(t, 'interrupted', world.stack({
    'polyarch:lockFile': lock.file,
    'polyarch:cacheDir': lock.cacheDir,
    'polyarch:hosts': ['x86_64', 'aarch64'],
    'polyarch:targets': ['aarch64', 'riscv64', 'x86_64'],
    'polyarch:release': { folder },
  }));
  const planned = stepResources(parseJson<{ steps: Step[] }>((await p.ok(['preview', '--json'])).stdout).steps);

  const release = path.join(folder, 'v9.2.4-1');
  // The middle: some release files written and some images building.
  const middle = (run: Started) => until('release files and an image build', 10 * 60_000, () => fs.existsSync(release) && fs.readdirSync(release).length >= 3 && /docker-build:index:Image\s+images-\S+\s+creating/.test(run.output()));

  const deployment = async () => parseJson<{ deployment: Deployment }>((await p.ok(['stack', 'export'])).stdout).deployment;

  // Ctrl-C: the engine cancels what is in flight and ends on its own, leaving no operation pending.
  const first = p.start(['up', '--yes']);
  await middle(first);
  process.kill(-first.child.pid!, 'SIGINT');
  const cancelled = await first.done;
  assert.equal(cancelled.code, 1, 'a cancelled update fails');
  let state = await deployment();
  assert.ok(stepResources(state.resources ?? []).length < planned.length, 'SIGINT came after the update had finished');
  assert.deepEqual(state.pending_operations ?? [], []);

  // The next try is killed outright while image builds are pending in the state: nothing gets
  // to clean up, and the stack's lock stays behind.
  const second = p.start(['up', '--yes']);
  await middle(second);
  const end = Date.now() + 5 * 60_000;
  while (((await deployment()).pending_operations ?? []).length === 0) assert.ok(Date.now() < end, 'no operation was ever pending in the state');
  process.kill(-second.child.pid!, 'SIGKILL');
  assert.equal((await second.done).code, 137);
  // The README's step for a kill that tore the stack file's sidecar, before anything reads the state.
  p.removeTornSidecars();
  state = await deployment();
  assert.ok((state.pending_operations ?? []).length > 0);

  // What the README tells a maintainer to run: the lock first, then the pending creates (each
  // would be made again by the next up, which pushes the same tags), then up.
  const locked = await p.pulumi(['refresh', '--yes']);
  assert.notEqual(locked.code, 0);
  assert.match(locked.stderr + locked.stdout, /the stack is currently locked .* `pulumi cancel`/);
  await p.ok(['cancel', '--yes']);
  await p.ok(['refresh', '--clear-pending-creates', '--yes']);
  assert.deepEqual((await deployment()).pending_operations ?? [], []);
  await p.ok(['up', '--yes']);
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // The world: the release folder holds exactly what SHA256SUMS lists, and it checks.
  const files = fs.readdirSync(release).sort();
  execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: release });
  const outputs = parseJson<{ releaseDigests: Record<string, string>; imageTags: string[] }>((await p.ok(['stack', 'output', '--json'])).stdout);
  assert.deepEqual(files, Object.keys(outputs.releaseDigests).sort(), 'the folder holds exactly the release');
  for (const f of files) assert.equal(sha256(fs.readFileSync(path.join(release, f))), outputs.releaseDigests[f], f);
  // The registry: exactly the planned tags, the multi-platform ones with both hosts.
  assert.deepEqual(world.tags(), outputs.imageTags.map((tag) => tag.slice(world.repo.length + 1)).sort());
  assert.deepEqual(platforms(world.skopeo('inspect', '--raw', `docker://${world.repo}:latest`)), ['linux/amd64', 'linux/arm64']);
  // The state: every planned resource once, no operation left pending.
  const after = await deployment();
  assert.deepEqual(after.pending_operations ?? [], []);
  const urns = (after.resources ?? []).map((r) => r.urn);
  assert.equal(new Set(urns).size, urns.length, 'a resource twice in the state');
  assert.deepEqual(stepResources(after.resources ?? []), planned);
});
