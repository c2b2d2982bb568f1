// The builder `npm run up:dev` builds on (lib/dev-builder.ts): the choice for every situation
// from a probe, then the whole probe-choose-run loop against the fake docker CLI, whose calls
// log holds the exact buildx arguments. The root buildkitd itself is started for real in
// test/engine/dev.test.ts; here scripts/buildkit.sh runs without buildkitd on PATH and stops.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, test } from 'node:test';
import { BUILDKIT_SCRIPT, buildkitdEndpoint, chooseDevBuilder, DEV_BUILDER, ensureDevBuilder, parseInspect, probeDevBuilder, type BuilderProbe } from '../../lib/dev-builder.ts';
import { UserError } from '../../lib/user-error.ts';
import { fakeDocker } from '../fixtures/docker.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const OURS = 'unix:///home/u/.cache/polyarch/buildkit/buildkitd.sock';
const CAPS = 'Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown';
const probe = (p: Partial<BuilderProbe> = {}): BuilderProbe => ({
  name: DEV_BUILDER,
  dockerEngine: true,
  buildx: { command: ['docker', 'buildx'], version: 'v0.23.0' },
  buildkitdEndpoint: OURS,
  ...p,
});

test('no builder yet: a docker-container builder on the host network, created then started', () => {
  assert.deepEqual(chooseDevBuilder(probe()), {
    kind: 'docker-container',
    name: 'polyarch-dev',
    reason: 'no builder polyarch-dev yet: making a docker-container builder on the host\'s network (buildx v0.23.0)',
    commands: [
      ['docker', 'buildx', 'create', '--name', 'polyarch-dev', '--driver', 'docker-container', '--driver-opt', 'network=host'],
      ['docker', 'buildx', 'inspect', 'polyarch-dev', '--bootstrap'],
    ],
  });
  // A standalone buildx (scripts/engine.sh builds one) and a BuildKit image of the user's choosing.
  const c = chooseDevBuilder(probe({ name: 'mine', buildx: { command: ['buildx'], version: 'v0.0.0+unknown' }, buildkitImage: 'mirror.example/moby/buildkit:v0.23.2' }));
  assert.equal(c.kind, 'docker-container');
  assert.deepEqual(c.kind === 'docker-container' && c.commands, [
    ['buildx', 'create', '--name', 'mine', '--driver', 'docker-container', '--driver-opt', 'network=host', '--driver-opt', 'image=mirror.example/moby/buildkit:v0.23.2'],
    ['buildx', 'inspect', 'mine', '--bootstrap'],
  ]);
});

test('a builder that answers is used as it is, whatever its driver', () => {
  for (const driver of ['docker-container', 'remote', 'kubernetes']) {
    assert.deepEqual(chooseDevBuilder(probe({ name: 'mine', existing: { driver, endpoint: 'tcp://10.0.0.5:1234', answers: true } })), {
      kind: 'existing',
      name: 'mine',
      reason: `builder mine (${driver}) answers`,
      commands: [],
    });
  }
});

test('a docker-container builder that cannot start gives way to the root buildkitd, removed first only when it was made', () => {
  assert.deepEqual(chooseDevBuilder(probe({ containerRefused: { error: CAPS, builderLeft: true } })), {
    kind: 'buildkitd',
    name: 'polyarch-dev',
    reason: `a docker-container builder cannot start here (${CAPS}); using a buildkitd on this host, run as root`,
    commands: [['docker', 'buildx', 'rm', 'polyarch-dev'], ['bash', BUILDKIT_SCRIPT, 'polyarch-dev']],
  });
  const c = chooseDevBuilder(probe({ containerRefused: { error: 'unknown flag: --driver-opt', builderLeft: false } }));
  assert.deepEqual(c.kind === 'buildkitd' && c.commands, [['bash', BUILDKIT_SCRIPT, 'polyarch-dev']]);
});

test('this host\'s buildkitd gone (a reboot) is started again; someone else\'s builder that does not answer is left alone', () => {
  const ours = chooseDevBuilder(probe({ existing: { driver: 'remote', endpoint: OURS, answers: false, error: 'connection refused' } }));
  assert.deepEqual(ours.kind === 'buildkitd' && ours.commands, [['bash', BUILDKIT_SCRIPT, 'polyarch-dev']]);
  for (const existing of [{ driver: 'remote', endpoint: 'tcp://10.0.0.5:1234' }, { driver: 'docker-container', endpoint: 'unix:///var/run/docker.sock' }]) {
    const c = chooseDevBuilder(probe({ existing: { ...existing, answers: false, error: 'ERROR: connection refused' } }));
    assert.deepEqual(c, {
      kind: 'error',
      message: `builder polyarch-dev (${existing.driver}) does not answer (ERROR: connection refused): start it, remove it (docker buildx rm polyarch-dev) so that up:dev makes one, or name another in polyarch:builder`,
    });
  }
});

test('no Docker engine, or no buildx at all: one line saying what to start or install', () => {
  assert.deepEqual(chooseDevBuilder(probe({ dockerEngine: false })), { kind: 'error', message: 'no Docker engine answers: start one (sudo systemctl start docker, or sudo dockerd &) and run this again' });
  const c = chooseDevBuilder(probe({ buildx: undefined }));
  assert.match(c.kind === 'error' ? c.message : '', /^no buildx: install Docker's buildx plugin/);
});

test('buildx inspect output: driver and the first node\'s endpoint', () => {
  const text = 'Name:          polyarch-dev\nDriver:        remote\nLast Activity: 2026-12-02 08:15:01 +0000 UTC\n\nNodes:\nName:                  polyarch-dev0\nEndpoint:              unix:///root/.cache/polyarch/buildkit/buildkitd.sock\nStatus:                inactive\n';
  assert.deepEqual(parseInspect(text), { driver: 'remote', endpoint: 'unix:///root/.cache/polyarch/buildkit/buildkitd.sock' });
  assert.equal(buildkitdEndpoint({ HOME: '/home/u' }), OURS);
  assert.equal(buildkitdEndpoint({ HOME: '/home/u', XDG_CACHE_HOME: '/c' }), 'unix:///c/polyarch/buildkit/buildkitd.sock');
  assert.equal(buildkitdEndpoint({ HOME: '/home/u', POLYARCH_BUILDKIT_DIR: '/s' }), 'unix:///s/buildkitd.sock');
});

// The whole loop against the fake docker: no standalone buildx or buildkitd on this PATH.
const docker = fakeDocker();
const state = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-buildkit-state-'));
after(() => {
  docker.remove();
  fs.rmSync(state, { recursive: true, force: true });
});
const env = { PATH: `${docker.dir}:/usr/bin:/bin`, HOME: os.homedir(), POLYARCH_BUILDKIT_DIR: state };
const ensure = (name = DEV_BUILDER, extra: NodeJS.ProcessEnv = {}) => {
  const lines: string[] = [];
  try {
    return { choice: ensureDevBuilder(name, { env: { ...env, ...extra }, log: (l) => lines.push(l) }), lines };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    return { error: e.message, lines };
  }
};
beforeEach(() => {
  for (const b of docker.builders()) spawnSync('docker', ['buildx', 'rm', b], { env });
  for (const f of ['no-engine', 'no-buildx', 'container-refused'] as const) docker.set(f, false);
  docker.clearCalls();
});

test('Docker alone (the buildx plugin): the first run makes polyarch-dev on the host network, the next reuses it', () => {
  const first = ensure();
  assert.equal(first.choice?.kind, 'docker-container');
  assert.deepEqual(docker.calls(), [
    'info --format {{.ServerVersion}}',
    'buildx version',
    'buildx inspect polyarch-dev',
    'buildx create --name polyarch-dev --driver docker-container --driver-opt network=host',
    'buildx inspect polyarch-dev --bootstrap',
  ]);
  assert.deepEqual(docker.builders(), ['polyarch-dev']);
  docker.clearCalls();
  const second = ensure();
  assert.equal(second.choice?.kind, 'existing');
  assert.deepEqual(docker.calls(), ['info --format {{.ServerVersion}}', 'buildx version', 'buildx inspect polyarch-dev', 'buildx inspect polyarch-dev --bootstrap']);
});

test('a builder the user named that answers is used untouched', () => {
  docker.seedBuilder({ name: 'team-builder', driver: 'remote', endpoint: 'tcp://buildkit.example:1234' });
  assert.equal(ensure('team-builder').choice?.kind, 'existing');
  assert.ok(!docker.calls().some((c) => /buildx (create|rm)/.test(c)), docker.calls().join('\n'));
  assert.deepEqual(docker.builders(), ['team-builder']);
});

test('POLYARCH_BUILDKIT_IMAGE picks the BuildKit image of the container builder', () => {
  ensure(DEV_BUILDER, { POLYARCH_BUILDKIT_IMAGE: 'mirror.example/moby/buildkit:v0.23.2' });
  assert.ok(docker.calls().includes('buildx create --name polyarch-dev --driver docker-container --driver-opt network=host --driver-opt image=mirror.example/moby/buildkit:v0.23.2'), docker.calls().join('\n'));
});

test('container builders refused (this sandbox): the half-made builder is removed and scripts/buildkit.sh runs', () => {
  docker.set('container-refused', true);
  const r = ensure();
  assert.deepEqual(docker.calls().slice(3), [
    'buildx create --name polyarch-dev --driver docker-container --driver-opt network=host',
    'buildx inspect polyarch-dev --bootstrap',
    'buildx rm polyarch-dev',
  ]);
  assert.deepEqual(docker.builders(), [], 'no builder left behind');
  assert.ok(r.lines.includes(`a docker-container builder cannot start here (${CAPS}); using a buildkitd on this host, run as root`), r.lines.join('\n'));
  assert.ok(r.lines.includes(`$ bash ${BUILDKIT_SCRIPT} polyarch-dev`), r.lines.join('\n'));
  // The script ran with the name and stopped at what this PATH lacks.
  assert.match(r.error ?? '', /^no builder polyarch-dev: no buildkitd on PATH/);
});

test('this host\'s buildkitd stopped: the script starts it again; someone else\'s dead builder stays', () => {
  docker.seedBuilder({ name: DEV_BUILDER, driver: 'remote', endpoint: `unix://${state}/buildkitd.sock`, down: 'connection refused' });
  const ours = ensure();
  assert.ok(ours.lines.includes('builder polyarch-dev is this host\'s buildkitd, which is not running'), ours.lines.join('\n'));
  assert.match(ours.error ?? '', /no buildkitd on PATH/);
  docker.seedBuilder({ name: 'team-builder', driver: 'docker-container', endpoint: 'unix:///var/run/docker.sock', down: 'Error response from daemon: No such image' });
  docker.clearCalls();
  const theirs = ensure('team-builder');
  assert.equal(theirs.error, 'builder team-builder (docker-container) does not answer (ERROR: Error response from daemon: No such image): start it, remove it (docker buildx rm team-builder) so that up:dev makes one, or name another in polyarch:builder');
  assert.ok(!docker.calls().some((c) => /buildx (create|rm)/.test(c)), docker.calls().join('\n'));
});

test('no engine, or neither the buildx plugin nor a standalone buildx: one line, nothing made', () => {
  docker.set('no-engine', true);
  assert.match(ensure().error ?? '', /^no Docker engine answers/);
  docker.set('no-engine', false);
  docker.set('no-buildx', true);
  assert.equal(probeDevBuilder(DEV_BUILDER, { env }).buildx, undefined);
  assert.match(ensure().error ?? '', /^no buildx: install Docker's buildx plugin/);
  assert.deepEqual(docker.builders(), []);
});

test('scripts/dev-builder.ts reads the builder from the dev stack\'s config; without one it says why the dev stack needs it', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-dev-builder-'));
  try {
    const script = (projectDir: string) => spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/dev-builder.ts'), projectDir], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
    const ok = script(ROOT);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /^builder: no builder polyarch-dev yet: making a docker-container builder/m);
    assert.deepEqual(docker.builders(), ['polyarch-dev']);
    fs.copyFileSync(path.join(ROOT, 'Pulumi.yaml'), path.join(work, 'Pulumi.yaml'));
    fs.writeFileSync(path.join(work, 'Pulumi.dev.yaml'), 'config:\n  polyarch:hosts: [x86_64]\n');
    const none = script(work);
    assert.equal(none.status, 1);
    assert.equal(none.stderr, `error: ${path.join(work, 'Pulumi.dev.yaml')} names no polyarch:builder: the dev stack needs a builder on the host's network (polyarch-dev, which up:dev makes, or your own)\n`);
    // A bad builder name is the stack config's one line, as the program would say it.
    fs.writeFileSync(path.join(work, 'Pulumi.dev.yaml'), 'config:\n  polyarch:builder: "no spaces allowed"\n');
    const bad = script(work);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^error: invalid stack config: polyarch:builder: must be a buildx builder name/);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
