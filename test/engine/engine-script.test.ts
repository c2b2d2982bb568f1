// scripts/engine.sh chooses the engine: a pulumi on PATH at or newer than @pulumi/pulumi is used
// as is (a user's or a runner's official install), an older one is not, and without Pulumi's
// sources for the language host it says in one line what to do. The "newer" Pulumi here is a
// wrapper around the built CLI that reports a later release, with the language host beside it
// as in Pulumi's distribution, and it runs a real preview. Beside the engine, cosign is built from
// engine/cosign/go.mod whenever Go is there; without Go, one line says it was not.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { engineBin, engineProject, hasEngine } from '../helpers/engine.ts';
import { fixtureLock } from '../helpers/program.ts';
import { requireSystem } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/engine.sh');
/** The cosign release engine/cosign/go.mod pins. */
const COSIGN = /^\s*github\.com\/sigstore\/cosign\/v2 (v\S+)/m.exec(fs.readFileSync(path.join(ROOT, 'engine/cosign/go.mod'), 'utf8'))![1]!;

/** A folder with `pulumi` reporting `version` and running the built CLI, and the language host beside it. */
function wrapper(t: TestContext, version: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-pulumi-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const built = engineBin();
  fs.writeFileSync(path.join(dir, 'pulumi'), `#!/bin/sh\n[ "$1" = version ] && { echo ${version}; exit 0; }\nexec ${built}/pulumi "$@"\n`, { mode: 0o755 });
  fs.symlinkSync(fs.realpathSync(path.join(built, 'pulumi-language-nodejs')), path.join(dir, 'pulumi-language-nodejs'));
  return dir;
}

function engineScript(env: NodeJS.ProcessEnv) {
  // The engine tests' PULUMI_HOME: a build installs its plugins there, never into ~/.pulumi.
  const home = path.join(ROOT, '.cache/pulumi-home');
  const r = spawnSync('bash', [SCRIPT], { env: { ...process.env, PULUMI_HOME: home, POLYARCH_BUILD_ENGINE: '', ...env }, encoding: 'utf8', timeout: 20 * 60_000 });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

test('a newer pulumi on PATH is used as is, and runs the program', { timeout: 20 * 60_000 }, async (t) => {
  if (!requireSystem(t, hasEngine)) return;
  const newer = wrapper(t, 'v3.270.0');
  const r = engineScript({ PATH: `${newer}:${process.env.PATH}` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`engine: using ${newer}/pulumi \\(v3\\.270\\.0\\)`));
  assert.equal(fs.readlinkSync(path.join(r.stdout, 'pulumi')), path.join(newer, 'pulumi'), 'the folder printed runs that pulumi');
  assert.ok(fs.existsSync(path.join(r.stdout, 'buildkitd')), 'BuildKit’s tools are still there for the dev stack');
  assert.ok(fs.lstatSync(path.join(r.stdout, 'cosign')).isFile(), 'and cosign, for signing');
  assert.ok(!fs.existsSync(path.join(r.stdout, 'pulumi-language-nodejs')), 'that pulumi brings its own language host');

  // That engine previews the dev stack: PATH is the folder printed, then the wrapper's own.
  const lock = await fixtureLock(['x86_64']);
  const release = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-newer-'));
  t.after(() => fs.rmSync(release, { recursive: true, force: true }));
  const config = { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir, 'polyarch:hosts': ['x86_64'], 'polyarch:release': { folder: release } };
  const p = await engineProject(t, 'newer', { config, env: { PATH: `${r.stdout}:${newer}:${process.env.PATH}` } });
  assert.equal((await p.ok(['version'])).stdout.trim(), 'v3.270.0');
  assert.match((await p.ok(['preview'])).stdout, /\+ \d+ to create/);
});

test('an older pulumi on PATH is passed over, naming both releases', { timeout: 20 * 60_000 }, (t) => {
  if (!requireSystem(t, hasEngine)) return;
  const older = wrapper(t, 'v3.200.0');
  const r = engineScript({ PATH: `${older}:${process.env.PATH}` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /engine: not using .*\/pulumi \(v3\.200\.0\): @pulumi\/pulumi 3\.248\.0 needs that release or a newer one/);
  assert.equal(r.stdout, engineBin(), 'the built engine instead');
  // Real files beside the CLI, where it looks for its plugins first (no "using ... from $PATH" warnings).
  for (const f of ['pulumi', 'pulumi-language-nodejs']) assert.ok(fs.lstatSync(path.join(r.stdout, f)).isFile(), `${f} is a file`);
});

test('without Pulumi’s sources and without a pulumi on PATH, one line says what to do', { timeout: 20 * 60_000 }, (t) => {
  if (!requireSystem(t, hasEngine)) return;
  const r = engineScript({ POLYARCH_BUILD_ENGINE: '1', POLYARCH_UPSTREAM: '/nonexistent/upstream', PATH: process.env.PATH!.split(':').filter((d) => !fs.existsSync(path.join(d, 'pulumi'))).join(':') });
  assert.equal(r.code, 1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.deepEqual(errors, [
    "error: Pulumi's Node.js language host v3.248.0 is not served by the Go module proxy: put its sources in /nonexistent/upstream/pulumi-language-nodejs-v3.248.0 (see shared/upstream/README.md), or put Pulumi v3.248.0 on PATH",
  ]);
  assert.equal(r.stdout, '', 'no folder printed');
});

test('cosign is built from engine/cosign/go.mod and reports that release', { timeout: 20 * 60_000 }, (t) => {
  if (!requireSystem(t, hasEngine)) return;
  assert.equal(COSIGN, 'v2.6.5');
  const r = spawnSync(path.join(engineBin(), 'cosign'), ['version', '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { gitVersion: string; goVersion: string };
  assert.equal(v.gitVersion, COSIGN);
  assert.match(v.goVersion, /^go\d/);
});

test('without Go, a pulumi on PATH is used and one line says cosign was not built', (t) => {
  // A stand-in pulumi that only reports a release: nothing is built, so no engine is needed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-nogo-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'pulumi'), '#!/bin/sh\n[ "$1" = version ] && { echo v3.270.0; exit 0; }\nexit 1\n', { mode: 0o755 });
  const noGo = process.env.PATH!.split(':').filter((d) => d && !fs.existsSync(path.join(d, 'go')));
  const r = engineScript({ PATH: [dir, ...noGo].join(':'), POLYARCH_ENGINE_CACHE: path.join(dir, 'cache') });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, dir, 'the folder of that pulumi');
  const lines = r.stderr.split('\n').filter((l) => /cosign/.test(l));
  assert.deepEqual(lines, [`engine: no Go: cosign ${COSIGN} not built (signing a stack then needs cosign on PATH, e.g. from the sigstore/cosign-installer action)`]);
});
