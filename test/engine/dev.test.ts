// The dev stack end to end: the real engine, the real docker-build plugin on the builder
// up:dev's builder step makes (lib/dev-builder.ts: a docker-container builder on the host
// network, which this sandbox refuses, then the root buildkitd of scripts/buildkit.sh), and
// Debian's dockerd, which runs the stack's own registry container. Then
// the seed's promises with real Docker: `docker run --privileged …:latest --reset -p yes`
// registers and an arm64 busybox container prints aarch64; `:register` leaves entries without
// F; `COPY --from=…:aarch64` builds an image whose emulator runs. binfmt_misc is restored.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import YAML from 'yaml';
import { BINFMT, guardBinfmt, hasBinfmtMisc } from '../helpers/binfmt.ts';
import { ensureDevBuilder } from '../../lib/dev-builder.ts';
import { buildkitImage } from '../helpers/buildkit.ts';
import { debianPackage } from '../helpers/debian.ts';
import { busyboxImage, docker, ensureDockerd, privilegedFlags, registryImage } from '../helpers/docker.ts';
import { engineBin, engineProject, hasEngine, parseJson } from '../helpers/engine.ts';
import { fixtureLock } from '../helpers/program.ts';
import { startRegistry } from '../helpers/registry.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PORT = 5391;

let lock: { file: string; cacheDir: string };
before(async () => {
  lock = await fixtureLock(['x86_64']);
});

/** Stops a daemon this test did not spawn itself (the script's nohup'd buildkitd). */
async function stopPid(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
}

const binfmtFlags = (entry: string) => /^flags: ?(.*)$/m.exec(fs.readFileSync(path.join(BINFMT, entry), 'utf8'))?.[1] ?? '';

test('the dev stack on the real engine with real Docker, then the seed end to end', { timeout: 20 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('dockerd'), hasCommand('docker'), hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasCommand('docker-registry'), hasBinfmtMisc)) return;
  // After-hooks run in the order they are added: these clean up before a dockerd started here stops.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-dev-'));
  const quietly = (...args: string[]) => spawnSync('docker', args, { stdio: 'ignore' });
  // The stack's registry container and volume on the test's own port: none before, none after.
  const removeRegistry = () => {
    quietly('rm', '-f', `polyarch-registry-${PORT}`);
    quietly('volume', 'rm', `polyarch-registry-${PORT}`);
  };
  // The builder step's state: its buildkitd, its builder (in a docker config of its own) and
  // whatever a docker-container builder of that name left, all named after this test's builder.
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-dev-buildkit-'));
  const bk = { builder: `polyarch-test-dev-${path.basename(state).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`, dockerConfig: path.join(state, 'docker') };
  const buildkit = 'polyarch-test/buildkit:local';
  const builderEnv = { ...process.env, PATH: `${engineBin()}:${process.env.PATH}`, DOCKER_CONFIG: bk.dockerConfig, POLYARCH_BUILDKIT_DIR: state, POLYARCH_BUILDKIT_IMAGE: buildkit };
  t.after(async () => {
    removeRegistry();
    quietly('image', 'rm', '-f', 'polyarch-test/registry:2.8', 'polyarch-test/busybox:amd64', 'polyarch-test/busybox:arm64', buildkit);
    fs.rmSync(work, { recursive: true, force: true });
    const pidFile = path.join(state, 'buildkitd.pid');
    if (fs.existsSync(pidFile)) await stopPid(Number(fs.readFileSync(pidFile, 'utf8')));
    spawnSync(path.join(engineBin(), 'buildx'), ['rm', bk.builder], { env: builderEnv, stdio: 'ignore' });
    quietly('rm', '-f', `buildx_buildkit_${bk.builder}0`);
    quietly('volume', 'rm', `buildx_buildkit_${bk.builder}0_state`);
    // Snapshots are overlay mounts under root/; they are gone once the daemon exits.
    fs.rmSync(state, { recursive: true, force: true });
  });
  await ensureDockerd(t);
  removeRegistry();
  const dockerConfig = path.join(work, 'docker');
  const env = { DOCKER_CONFIG: dockerConfig };

  // Images that would be pulled elsewhere: the registry and the busybox base, made from
  // Debian packages and pushed to a side registry so that they are pinned by digest.
  const side = await startRegistry(t);
  docker(['login', '--password-stdin', '-u', side.user, side.address], { env, input: side.password });
  const pinned = (local: string, repo: string) => {
    docker(['tag', local, `${side.address}/${repo}`]);
    docker(['push', `${side.address}/${repo}`], { env });
    return docker(['inspect', '--format', '{{index .RepoDigests 0}}', `${side.address}/${repo}`]).trim();
  };
  registryImage(work, 'polyarch-test/registry:2.8');
  busyboxImage(work, 'amd64', 'polyarch-test/busybox:amd64');
  busyboxImage(work, 'arm64', 'polyarch-test/busybox:arm64');
  const registryRef = pinned('polyarch-test/registry:2.8', 'polyarch-test/registry:2.8');
  const baseRef = pinned('polyarch-test/busybox:amd64', 'polyarch-test/busybox:amd64');

  // up:dev's builder step, for real. No BuildKit image can be pulled here, so the container
  // builder gets one made from the engine's buildkitd: this sandbox refuses its privileged
  // container before anything in it runs, and the root buildkitd takes over.
  buildkitImage(work, buildkit);
  const said: string[] = [];
  const choice = ensureDevBuilder(bk.builder, { env: builderEnv, log: (l) => { said.push(l); t.diagnostic(`builder: ${l}`); } });
  assert.ok(said.some((l) => l.startsWith(`$ buildx create --name ${bk.builder} --driver docker-container --driver-opt network=host --driver-opt image=${buildkit}`)), said.join('\n'));
  if (said.some((l) => /unable to apply caps/.test(l))) {
    assert.equal(choice.kind, 'buildkitd');
    assert.equal(docker(['ps', '-a', '--filter', `name=^buildx_buildkit_${bk.builder}0$`, '--format', '{{.Names}}']).trim(), '', 'the refused builder\'s container is removed');
  }
  // BuildKit pulls the base with the login the provider finds in the docker config.
  fs.copyFileSync(path.join(dockerConfig, 'config.json'), path.join(bk.dockerConfig, 'config.json'));
  const folder = path.join(work, 'release');
  const dev = (YAML.parse(fs.readFileSync(path.join(ROOT, 'Pulumi.dev.yaml'), 'utf8')) as { config: Record<string, unknown> }).config;
  const p = await engineProject(t, 'dev', {
    from: 'dev',
    config: {
      'polyarch:lockFile': lock.file,
      'polyarch:cacheDir': lock.cacheDir,
      'polyarch:localRegistry': { ...(dev['polyarch:localRegistry'] as object), port: PORT, image: registryRef },
      'polyarch:baseImage': baseRef,
      'polyarch:builder': bk.builder,
      'polyarch:release': { folder },
    },
    env: { DOCKER_CONFIG: bk.dockerConfig },
  });

  // Wall times for the record (not asserted): the first up builds every image (emulators
  // already extracted by the fixture lock), the second finds nothing to do.
  let start = performance.now();
  const first = await p.ok(['up', '--yes']);
  t.diagnostic(`dev: first up ${((performance.now() - start) / 1000).toFixed(1)} s`);
  // No key and no identity on a fresh machine: unsigned, said once, and no bundle published.
  assert.match(first.stdout, /warning: polyarch:signing is none: the release and images are published unsigned/, 'the dev stack says that it publishes unsigned');
  const repo = `localhost:${PORT}/polyarch/qemu-user-static`;
  const outputs = parseJson<{ imageTags: string[]; releaseLocation: string }>((await p.ok(['stack', 'output', '--json'])).stdout);
  const listed = JSON.parse(execFileSync('skopeo', ['list-tags', '--tls-verify=false', `docker://${repo}`], { encoding: 'utf8' })) as { Tags: string[] };
  assert.deepEqual(listed.Tags.sort(), outputs.imageTags.map((tag) => tag.slice(repo.length + 1)).sort(), 'the dev registry holds exactly the planned tags');
  execFileSync('sha256sum', ['--strict', '--quiet', '-c', 'SHA256SUMS'], { cwd: outputs.releaseLocation });
  assert.ok(!fs.readdirSync(outputs.releaseLocation).some((f) => f.endsWith('.cosign.bundle')), 'an unsigned release holds no bundle');
  assert.match(docker(['ps', '--filter', `name=^polyarch-registry-${PORT}$`, '--format', '{{.Image}} {{.Ports}}']), new RegExp(`127\\.0\\.0\\.1:${PORT}->5000`));
  start = performance.now();
  await p.ok(['up', '--yes', '--expect-no-changes']);
  t.diagnostic(`dev: no-change up ${((performance.now() - start) / 1000).toFixed(1)} s`);

  // The seed, with real Docker: register everything, then a foreign container runs.
  guardBinfmt(t);
  // The seed's `--privileged`, or its nearest equivalent where this sandbox refuses one capability.
  const privileged = privilegedFlags('polyarch-test/busybox:amd64');
  docker(['run', '--rm', ...privileged, `${repo}:latest`, '--reset', '-p', 'yes']);
  assert.equal(binfmtFlags('qemu-aarch64').includes('F'), true, '-p yes sets F');
  assert.equal(docker(['run', '--rm', 'polyarch-test/busybox:arm64', 'uname', '-m']).trim(), 'aarch64');

  // :register registers the host's own emulators (Debian's, in /usr/bin): no F, nothing copied.
  docker(['run', '--rm', ...privileged, `${repo}:register`, '--reset']);
  const interpreter = /^interpreter (.*)$/m.exec(fs.readFileSync(path.join(BINFMT, 'qemu-aarch64'), 'utf8'))?.[1];
  assert.equal(interpreter, '/usr/bin/qemu-aarch64-static');
  assert.equal(binfmtFlags('qemu-aarch64').includes('F'), false, ':register leaves F off');

  // COPY --from the :aarch64 tag into an image of one's own; its emulator runs an arm64 program.
  const ctx = path.join(work, 'copy');
  fs.mkdirSync(ctx);
  fs.copyFileSync(path.join(debianPackage('busybox-static', 'arm64'), 'bin/busybox'), path.join(ctx, 'busybox-arm64'));
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${baseRef}\nCOPY --from=${repo}:aarch64 /usr/bin/qemu-aarch64-static /usr/bin/\nCOPY busybox-arm64 /opt/\n`);
  execFileSync(path.join(engineBin(), 'buildx'), ['build', '--builder', bk.builder, '--push', '-t', `localhost:${PORT}/polyarch-test/copy:1`, ctx], { env: { ...process.env, DOCKER_CONFIG: bk.dockerConfig }, stdio: 'pipe' });
  assert.equal(docker(['run', '--rm', `localhost:${PORT}/polyarch-test/copy:1`, '/usr/bin/qemu-aarch64-static', '/opt/busybox-arm64', 'uname', '-m']).trim(), 'aarch64');

  // Destroy removes the registry container; its volume (the images) stays for the next up.
  await p.ok(['destroy', '--yes']);
  assert.equal(docker(['ps', '-a', '--filter', `name=^polyarch-registry-${PORT}$`, '--format', '{{.Names}}']).trim(), '');
  assert.match(docker(['volume', 'ls', '--format', '{{.Name}}']), new RegExp(`^polyarch-registry-${PORT}$`, 'm'));
});
