// The images the program declares, built and pushed for real: every docker-build Image and
// Index the program declared under mocks (context, Dockerfile, platforms, tags, sources) is
// executed with podman against Debian's docker-registry with htpasswd (bcrypt) auth on
// loopback, on a busybox base made from Debian's busybox-static for amd64 and arm64. Then the
// seed's promises, end to end, against the real kernel's binfmt_misc (restored afterwards).
//
// binfmt_misc is global: run this file under `flock /tmp/polyarch-binfmt.lock`.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { BINFMT, guardBinfmt, hasBinfmtMisc } from '../helpers/binfmt.ts';
import { busyboxRoot, debianPackage } from '../helpers/debian.ts';
import { Podman } from '../helpers/podman.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';
import { imageMocks, startRegistry } from '../helpers/registry.ts';
import { hasCommand, isRoot, requireSystem, type Probe } from '../helpers/system.ts';

const hasFile =
  (file: string): Probe =>
  () =>
    fs.existsSync(file) ? undefined : `needs ${file}`;

const REPOSITORY = 'polyarch/qemu-user-static';

interface ImageInputs {
  context: { location: string };
  dockerfile: { location: string };
  platforms: string[];
  tags: string[];
  push: boolean;
}

/** A rootfs tarball of Debian's static busybox (test/helpers/debian.ts busyboxRoot). */
function busyboxTar(dir: string, arch: string): string {
  const tar = path.join(dir, `busybox-${arch}.tar`);
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', busyboxRoot(dir, arch), '-cf', tar, '.']);
  return tar;
}

/** os/arch of every manifest an index lists, sorted. */
function listedPlatforms(raw: string): string[] {
  const doc = JSON.parse(raw) as { manifests?: { platform: { os: string; architecture: string } }[] };
  assert.ok(doc.manifests, 'an index / manifest list');
  return doc.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort();
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test('images: build and push what the program declared; indexes; then the seed end to end', { timeout: 15 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasCommand('podman'), hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasFile('/usr/bin/docker-registry'), hasBinfmtMisc)) return;
  const started = Date.now();
  const { file: lockFile, cacheDir } = await fixtureLock(['x86_64', 'aarch64']);
  const registry = await startRegistry(t);
  const podman = new Podman(t, [registry.address]);
  const work = path.join(podman.dir, 'work');
  fs.mkdirSync(work);
  const repo = `${registry.address}/${REPOSITORY}`;

  await t.test('the registry takes credentials, and refuses a push without them', () => {
    const wrong = podman.run('podman', ['login', '--password-stdin', '-u', registry.user, registry.address], 'not-the-password');
    assert.notEqual(wrong.code, 0);
    podman.ok(['login', '--password-stdin', '-u', registry.user, registry.address], registry.password);
    podman.ok(['import', '--arch', 'amd64', '--os', 'linux', busyboxTar(work, 'amd64'), 'localhost/polyarch-test/busybox:amd64']);
    podman.ok(['import', '--arch', 'arm64', '--os', 'linux', busyboxTar(work, 'arm64'), 'localhost/polyarch-test/busybox:arm64']);
    const anonymous = path.join(work, 'anonymous.json');
    fs.writeFileSync(anonymous, '{"auths":{}}\n');
    const refused = podman.run('podman', ['push', '--authfile', anonymous, 'localhost/polyarch-test/busybox:amd64', `docker://${repo}:anonymous`]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /unauthorized|authentication required/i);
    const inspect = podman.run('skopeo', ['inspect', '--raw', `docker://${repo}:anonymous`]);
    assert.notEqual(inspect.code, 0, 'the refused tag does not exist');
    assert.match(inspect.stderr, /manifest unknown|not found/i);
  });

  // The multi-arch base, pinned by digest: what a stack's polyarch:baseImage would name.
  const digestFile = path.join(work, 'base.digest');
  podman.ok(['manifest', 'create', 'localhost/polyarch-test/busybox:multi']);
  for (const arch of ['amd64', 'arm64']) podman.ok(['manifest', 'add', 'localhost/polyarch-test/busybox:multi', `containers-storage:localhost/polyarch-test/busybox:${arch}`]);
  podman.ok(['manifest', 'push', '--all', '--digestfile', digestFile, 'localhost/polyarch-test/busybox:multi', `docker://${registry.address}/polyarch-test/busybox:1`]);
  const baseImage = `${registry.address}/polyarch-test/busybox@${fs.readFileSync(digestFile, 'utf8').trim()}`;
  const baseList = JSON.parse(podman.skopeo(['inspect', '--raw', `docker://${baseImage}`])) as { manifests: { digest: string; platform: { architecture: string } }[] };
  const arm64Base = `${registry.address}/polyarch-test/busybox@${baseList.manifests.find((m) => m.platform.architecture === 'arm64')!.digest}`;

  pulumi.runtime.setMocks(imageMocks, 'qemu-user-static', 'dev', true);
  const { resources } = await loadProgram(
    {
      'polyarch:lockFile': lockFile,
      'polyarch:cacheDir': cacheDir,
      'polyarch:hosts': '["x86_64","aarch64"]',
      'polyarch:registry': JSON.stringify({ server: registry.address, repository: REPOSITORY, username: registry.user, push: true }),
      'polyarch:baseImage': baseImage,
    },
    { 'polyarch:registryPassword': registry.password },
  );
  for (const r of resources) assert.ok(!plainText(r.wire).includes(registry.password), `${r.name} holds the password in plain`);
  const images = resources.filter((r): r is Declared & { inputs: ImageInputs } => r.type === 'docker-build:index:Image');
  const indexes = resources.filter((r) => r.type === 'docker-build:index:Index');
  assert.equal(images.length, 16);
  // An Index only for the five targets both hosts publish; the others are tags on their one image.
  assert.equal(indexes.length, 10);

  await t.test('every declared image builds for its platforms and is pushed under its tags', () => {
    for (const { name, inputs: i } of images) {
      assert.equal(i.push, true);
      const build = ['build', '--identity-label=false', '--platform', i.platforms.join(','), '-f', i.dockerfile.location];
      if (i.platforms.length > 1) {
        podman.ok([...build, '--manifest', `localhost/polyarch-test/${name}`, i.context.location]);
        for (const tag of i.tags) podman.ok(['manifest', 'push', '--all', `localhost/polyarch-test/${name}`, `docker://${tag}`]);
      } else {
        podman.ok([...build, ...i.tags.flatMap((tag) => ['-t', tag]), i.context.location]);
        for (const tag of i.tags) podman.ok(['push', tag]);
      }
    }
  });

  await t.test('every declared index is made from the per-host images it names', () => {
    for (const { name, inputs } of indexes) {
      const list = `localhost/polyarch-test/index-${name}`;
      podman.ok(['manifest', 'create', list]);
      // A source is a pushed ref, tag@digest; under mocks the digest is made up, so go by tag.
      for (const source of inputs.sources as string[]) podman.ok(['manifest', 'add', list, `docker://${source.split('@')[0]}`]);
      podman.ok(['manifest', 'push', '--all', list, `docker://${inputs.tag as string}`]);
    }
    // Everything later comes from the registry, not from local storage.
    podman.ok(['rmi', '--all', '--force']);
  });

  await t.test('skopeo: every tag exists; each index lists exactly the platforms of its images', () => {
    const platformsByTag = new Map<string, string[]>();
    for (const { inputs: i } of images) for (const tag of i.tags) platformsByTag.set(tag, [...i.platforms].sort());
    for (const { inputs: i } of images) {
      for (const tag of i.tags) {
        const raw = podman.skopeo(['inspect', '--raw', `docker://${tag}`]);
        if (i.platforms.length > 1) {
          assert.deepEqual(listedPlatforms(raw), [...i.platforms].sort(), tag);
        } else {
          assert.equal((JSON.parse(raw) as { manifests?: unknown }).manifests, undefined, `${tag} is a single manifest`);
          const config = JSON.parse(podman.skopeo(['inspect', '--config', '--raw', `docker://${tag}`])) as { os: string; architecture: string };
          assert.equal(`${config.os}/${config.architecture}`, i.platforms[0], tag);
        }
      }
    }
    for (const { inputs } of indexes) {
      const want = (inputs.sources as string[]).flatMap((s) => platformsByTag.get(s.split('@')[0] as string) ?? assert.fail(`unknown source ${s}`)).sort();
      assert.deepEqual(listedPlatforms(podman.skopeo(['inspect', '--raw', `docker://${inputs.tag as string}`])), want, inputs.tag as string);
    }
    assert.deepEqual(listedPlatforms(podman.skopeo(['inspect', '--raw', `docker://${repo}:s390x`])), ['linux/amd64', 'linux/arm64']);
    // Only the x86_64 host publishes aarch64: :aarch64-9.2.4-1 is that image itself, one manifest.
    const digest = (tag: string) => podman.skopeo(['inspect', '--format', '{{.Digest}}', `docker://${repo}:${tag}`]).trim();
    assert.equal(digest('aarch64-9.2.4-1'), digest('x86_64-aarch64'));
    assert.equal((JSON.parse(podman.skopeo(['inspect', '--raw', `docker://${repo}:aarch64-9.2.4-1`])) as { manifests?: unknown }).manifests, undefined);
    const labels = (JSON.parse(podman.skopeo(['inspect', `docker://${repo}:x86_64-aarch64-9.2.4-1`])) as { Labels: Record<string, string> }).Labels;
    assert.deepEqual(labels, {
      'org.opencontainers.image.source': 'https://github.com/polyarch/qemu-user-static',
      'org.opencontainers.image.version': '9.2.4-1',
      'org.opencontainers.image.revision': '9.2.4-1.fc42',
    });
  });

  const arm64Busybox = path.join(debianPackage('busybox-static', 'arm64'), 'bin', 'busybox');
  const declaredEmulator = path.join(images.find((i) => i.name === 'images-x86_64-aarch64')!.inputs.context.location, 'qemu-aarch64-static');

  await t.test(':aarch64 and :x86_64-aarch64 hold a working /usr/bin/qemu-aarch64-static', () => {
    for (const tag of ['aarch64', 'x86_64-aarch64']) {
      const ref = `${repo}:${tag}`;
      podman.ok(['pull', '--platform', 'linux/amd64', ref]);
      const mount = podman.ok(['image', 'mount', ref]).trim();
      const copy = path.join(work, `qemu-aarch64-static.${tag}`);
      fs.copyFileSync(path.join(mount, 'usr/bin/qemu-aarch64-static'), copy);
      podman.ok(['image', 'unmount', ref]);
      assert.equal(sha256(copy), sha256(declaredEmulator), `${tag}: the emulator of the declared context`);
      fs.chmodSync(copy, 0o755);
      // Run directly (no binfmt_misc involved): the emulator runs Debian's arm64 busybox.
      const r = spawnSync(copy, [arm64Busybox, 'uname', '-m'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.stdout, 'aarch64\n', `${tag}: ${r.stderr}`);
    }
  });

  await t.test('the seed: :latest --reset -p yes, :register, COPY --from', (st) => {
    guardBinfmt(st);
    const entry = () => fs.readFileSync(path.join(BINFMT, 'qemu-aarch64'), 'utf8');
    const uname = () => podman.run('podman', ['run', '--rm', '--platform', 'linux/arm64', arm64Base, 'uname', '-m']);

    podman.ok(['run', '--rm', '--privileged', `${repo}:latest`, '--reset', '-p', 'yes']);
    assert.match(entry(), /^flags: F$/m);
    assert.match(entry(), /^interpreter \/usr\/bin\/qemu-aarch64-static$/m);
    const withF = uname();
    assert.equal(withF.stdout, 'aarch64\n', withF.stderr);

    // :register alone registers without F: the kernel looks for the emulator in the
    // container at exec time, and a bare arm64 busybox container has none.
    podman.ok(['run', '--rm', '--privileged', `${repo}:register`, '--reset']);
    assert.match(entry(), /^flags: $/m);
    assert.match(entry(), /^interpreter \/usr\/bin\/qemu-aarch64-static$/m);
    const without = uname();
    assert.notEqual(without.code, 0, 'no emulator inside the container, no F: the arm64 binary cannot run');
    assert.match(without.stderr, /no such file or directory|exec format error/i);

    // ...which is what COPY --from=<repo>:x86_64-aarch64 is for: an arm64 image that runs.
    const dir = path.join(work, 'seed');
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, 'Dockerfile'),
      [`FROM ${arm64Base}`, `COPY --from=${repo}:x86_64-aarch64 /usr/bin/qemu-aarch64-static /usr/bin/qemu-aarch64-static`, 'RUN uname -m > /built-on', 'CMD ["uname", "-m"]', ''].join('\n'),
    );
    podman.ok(['build', '--platform', 'linux/arm64', '-t', 'localhost/polyarch-test/seed:arm64', dir]);
    const ran = podman.run('podman', ['run', '--rm', 'localhost/polyarch-test/seed:arm64']);
    assert.equal(ran.stdout, 'aarch64\n', ran.stderr);
    const builtOn = podman.run('podman', ['run', '--rm', 'localhost/polyarch-test/seed:arm64', 'cat', '/built-on']);
    assert.equal(builtOn.stdout, 'aarch64\n', `the RUN step ran as arm64: ${builtOn.stderr}`);
    assert.equal(JSON.parse(podman.ok(['image', 'inspect', '--format', '{{json .Architecture}}', 'localhost/polyarch-test/seed:arm64'])), 'arm64');
  });

  t.diagnostic(`images system test: ${((Date.now() - started) / 1000).toFixed(1)} s on ${os.cpus().length} cores`);
});
