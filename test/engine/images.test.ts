// The images through the real engine and the real docker-build plugin: BuildKit is a
// buildkitd of the test's own (built from Go modules by scripts/engine.sh) registered as a
// buildx `remote` builder, the registry is Debian's docker-registry with htpasswd on TLS
// (test/helpers/registry.ts says why TLS). Two hosts, so per-host images, multi-platform
// images and indexes all get pushed; then the registry itself is read with skopeo.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { startBuildKit, type BuildKit } from '../helpers/buildkit.ts';
import { busyboxRoot } from '../helpers/debian.ts';
import { changes, engineBin, engineProject, hasEngine, parseJson, type Step } from '../helpers/engine.ts';
import { fixtureLock } from '../helpers/program.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

const REPOSITORY = 'polyarch/qemu-user-static';

let lock: { file: string; cacheDir: string };
let rebuilt: { file: string; cacheDir: string };
before(async () => {
  lock = await fixtureLock(['x86_64', 'aarch64']);
  rebuilt = await fixtureLock(['x86_64', 'aarch64'], undefined, { alter: 'riscv64' });
});

/** skopeo against the test registry: TLS checked against the CA in certDir, credentials from an auth file (never argv). */
function skopeo(certDir: string, command: string, ...args: string[]): string {
  return execFileSync('skopeo', [command, '--cert-dir', certDir, '--authfile', path.join(certDir, 'auth.json'), ...args], { encoding: 'utf8' });
}

/** os/arch of every manifest an index lists, sorted; undefined for a single manifest. */
function platforms(raw: string): string[] | undefined {
  const doc = JSON.parse(raw) as { manifests?: { platform?: { os: string; architecture: string } }[] };
  return doc.manifests?.filter((m) => m.platform && m.platform.architecture !== 'unknown').map((m) => `${m.platform!.os}/${m.platform!.architecture}`).sort();
}

/** A busybox base for amd64 and arm64, pushed as one index with buildx; returns it pinned by digest. */
function pushBase(bk: BuildKit, registry: Registry, work: string): string {
  const ctx = path.join(work, 'base');
  fs.mkdirSync(ctx, { recursive: true });
  for (const arch of ['amd64', 'arm64']) fs.renameSync(busyboxRoot(work, arch), path.join(ctx, arch));
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}/ /\n');
  const metadata = path.join(work, 'base.json');
  const ref = `${registry.address}/polyarch-test/busybox`;
  execFileSync(path.join(engineBin(), 'buildx'), ['build', '--builder', bk.builder, '--platform', 'linux/amd64,linux/arm64', '--push', '-t', `${ref}:base`, '--metadata-file', metadata, ctx], {
    env: { ...process.env, DOCKER_CONFIG: bk.dockerConfig },
    stdio: 'pipe',
    timeout: 5 * 60_000,
  });
  const digest = (JSON.parse(fs.readFileSync(metadata, 'utf8')) as Record<string, string>)['containerimage.digest'];
  assert.match(String(digest), /^sha256:[0-9a-f]{64}$/);
  return `${ref}@${digest}`;
}

test('images on the real engine: built with BuildKit, pushed with indexes, no-change, a rebuilt emulator rebuilds exactly its images, a wrong password', { timeout: 20 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasCommand('openssl'), hasCommand('docker-registry'))) return;
  const registry = await startRegistry(t, { tls: true });
  const bk = await startBuildKit(t, [{ address: registry.address, caFile: registry.caFile! }]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-images-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const certDir = path.join(work, 'certs');
  fs.mkdirSync(certDir);
  fs.copyFileSync(registry.caFile!, path.join(certDir, 'ca.crt'));
  // buildx and skopeo read registry credentials from an auth file, as `docker login` writes it.
  const auth = Buffer.from(`${registry.user}:${registry.password}`).toString('base64');
  fs.writeFileSync(path.join(certDir, 'auth.json'), JSON.stringify({ auths: { [registry.address]: { auth } } }));
  fs.writeFileSync(path.join(bk.dockerConfig, 'config.json'), JSON.stringify({ auths: { [registry.address]: { auth } } }));
  const baseImage = pushBase(bk, registry, work);
  // The program's pushes must use the stack's secret, not the docker config's login.
  fs.writeFileSync(path.join(bk.dockerConfig, 'config.json'), JSON.stringify({ auths: {} }));

  const p = await engineProject(t, 'images', {
    config: {
      'polyarch:lockFile': lock.file,
      'polyarch:cacheDir': lock.cacheDir,
      'polyarch:hosts': ['x86_64', 'aarch64'],
      'polyarch:targets': ['aarch64', 'riscv64', 'x86_64'],
      'polyarch:release': false,
      'polyarch:registry': { server: registry.address, repository: REPOSITORY, username: registry.user, push: true },
      'polyarch:baseImage': baseImage,
      'polyarch:builder': bk.builder,
    },
    secrets: { 'polyarch:registryPassword': registry.password },
    // The plugin reads the index back over HTTPS with Go's TLS: it must trust the test CA.
    env: { DOCKER_CONFIG: bk.dockerConfig, SSL_CERT_FILE: registry.bundleFile },
  });

  await p.ok(['up', '--yes']);
  const repo = `${registry.address}/${REPOSITORY}`;
  const tags = (parseJson<{ imageTags: string[] }>((await p.ok(['stack', 'output', '--json'])).stdout)).imageTags;
  const listed = JSON.parse(skopeo(certDir, 'list-tags', `docker://${repo}`)) as { Tags: string[] };
  assert.deepEqual(listed.Tags.sort(), tags.map((tag) => tag.slice(repo.length + 1)).sort(), 'the registry holds exactly the planned tags');
  const raw = (tag: string) => skopeo(certDir, 'inspect', '--raw', `docker://${repo}:${tag}`);
  assert.deepEqual(platforms(raw('latest')), ['linux/amd64', 'linux/arm64'], ':latest has one platform per host');
  assert.deepEqual(platforms(raw('register')), ['linux/amd64', 'linux/arm64']);
  // Each :<target> lists exactly the hosts that have a <host>-<target> image; a target only one
  // host publishes is no index but that host's image itself (one manifest, its architecture).
  const short = tags.map((tag) => tag.slice(repo.length + 1));
  const PLATFORM: Record<string, string> = { x86_64: 'linux/amd64', aarch64: 'linux/arm64' };
  for (const target of ['aarch64', 'riscv64', 'x86_64']) {
    const hosts = Object.keys(PLATFORM).filter((h) => short.includes(`${h}-${target}`));
    assert.ok(hosts.length > 0, target);
    if (hosts.length > 1) {
      assert.deepEqual(platforms(raw(target)), hosts.map((h) => PLATFORM[h]).sort(), `:${target}`);
      continue;
    }
    const one = JSON.parse(skopeo(certDir, 'inspect', `docker://${repo}:${target}`)) as { Os: string; Architecture: string };
    assert.equal(platforms(raw(target)), undefined, `:${target} is a single manifest`);
    assert.equal(`${one.Os}/${one.Architecture}`, PLATFORM[hosts[0]!], `:${target}`);
    assert.equal(raw(target), raw(`${hosts[0]}-${target}`), `:${target} is the ${hosts[0]} image`);
  }
  assert.deepEqual(platforms(raw('riscv64')), ['linux/amd64', 'linux/arm64'], ':riscv64 indexes both hosts');
  assert.equal(raw('riscv64-9.2.4-1'), raw('riscv64'), 'the versioned index is the rolling one');
  // A per-host image is FROM scratch with the one emulator, byte for byte the extracted one.
  const layers = JSON.parse(skopeo(certDir, 'inspect', `docker://${repo}:aarch64-riscv64`)) as { Architecture: string; Layers: string[] };
  assert.equal(layers.Architecture, 'arm64');
  assert.equal(layers.Layers.length, 1);

  const digests = () => Object.fromEntries(tags.map((tag) => tag.slice(repo.length + 1)).map((tag) => [tag, skopeo(certDir, 'inspect', '--format', '{{.Digest}}', `docker://${repo}:${tag}`).trim()]));
  const before = digests();
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // One rebuilt emulator: exactly the images that hold it build again, and their indexes.
  await p.setConfig('polyarch:lockFile', rebuilt.file);
  const diff = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  assert.deepEqual(changes(diff.steps), [
    'update images-aarch64-riscv64',
    'update images-emulators',
    'update images-riscv64',
    'update images-riscv64-9.2.4-1',
    'update images-x86_64-riscv64',
  ].sort());
  await p.ok(['up', '--yes']);
  const after = digests();
  for (const tag of Object.keys(before)) {
    const moved = /riscv64|^latest$|^9\.2\.4-1$/.test(tag);
    assert.equal(after[tag] !== before[tag], moved, `${tag}: ${moved ? 'rebuilt' : 'untouched'}`);
  }

  // A wrong password: the push fails, the error names the registry, the password shows nowhere.
  const wrong = 'not-the-registry-password-8271';
  await p.setConfig('polyarch:registryPassword', wrong, true);
  await p.setConfig('polyarch:lockFile', lock.file);
  const refused = await p.pulumi(['up', '--yes']);
  assert.notEqual(refused.code, 0);
  const out = refused.stdout + refused.stderr;
  assert.match(out, new RegExp(`${registry.address.replace(/[.]/g, '\\.')}.*(401|[Uu]nauthorized|authoriz)`));
  for (const secret of [wrong, registry.password]) assert.ok(!p.transcript.join('\n').includes(secret), 'a password in the output');
  const state = spawnSync('pulumi', ['stack', 'export', '--stack', 'images'], { cwd: p.dir, env: p.env, encoding: 'utf8' }).stdout;
  for (const secret of [wrong, registry.password]) assert.ok(!state.includes(secret), 'a password in the state');
});
