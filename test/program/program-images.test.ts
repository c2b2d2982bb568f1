// The program under mocks, for two hosts and every target: which images and indexes it
// declares, with which tags and platforms, and that the registry password stays a secret.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { extractionKey } from '../../lib/emulators.ts';
import type { Lock } from '../../lib/lock.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';
import { imageMocks } from '../helpers/registry.ts';

let lock: Lock;
let lockFile = '';
let cacheDir = '';
before(async () => {
  ({ file: lockFile, cacheDir, lock } = await fixtureLock(['x86_64', 'aarch64']));
  // The docker-build provider answers a push with the first tag plus the manifest digest.
  pulumi.runtime.setMocks(imageMocks, 'qemu-user-static', 'dev', true);
});

const PASSWORD = 'pa55-w0rd-that-must-not-leak';
const REPO = 'ghcr.io/polyarch/qemu-user-static';
const V = '9.2.4-1';
const IMAGE = 'docker-build:index:Image';
const INDEX = 'docker-build:index:Index';
const REGISTRY = 'pulumi-nodejs:dynamic/polyarch:RegistryContainer';

const base = () => ({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64","aarch64"]' });
const stack = (more: Record<string, string> = {}) => ({
  ...base(),
  'polyarch:registry': JSON.stringify({ server: 'ghcr.io', repository: 'polyarch/qemu-user-static', username: 'ci-bot', push: true }),
  ...more,
});

// What the fixture RPMs hold, per host, minus the host's own family.
const X86_TARGETS = ['aarch64', 'aarch64_be', 'arm', 'armeb', 'ppc64le', 'riscv64', 's390x'];
const ARM_TARGETS = ['aarch64_be', 'armeb', 'i386', 'ppc64le', 'riscv64', 's390x', 'x86_64'];
// Targets only one host publishes: :T and :T-<version> are tags on that host's image, not an index.
const ONE_HOST = new Set([...X86_TARGETS, ...ARM_TARGETS].filter((t) => !X86_TARGETS.includes(t) || !ARM_TARGETS.includes(t)));
const SHARED = X86_TARGETS.filter((t) => ARM_TARGETS.includes(t));
const AMD64 = 'linux/amd64';
const ARM64 = 'linux/arm64';

const byName = (rs: Declared[], type: string) => new Map(rs.filter((r) => r.type === type).map((r) => [r.name, r]));

test('two hosts, every target: the exact tags of every image and the platforms of every index', async () => {
  const { resources, outputs } = await loadProgram(stack(), { 'polyarch:registryPassword': PASSWORD });
  const images = byName(resources, IMAGE);

  const perHost = (host: string, platform: string) => (t: string): [string, { tags: string[]; platforms: string[] }] => [
    `images-${host}-${t}`,
    { tags: [`${REPO}:${host}-${t}`, `${REPO}:${host}-${t}-${V}`, ...(ONE_HOST.has(t) ? [`${REPO}:${t}`, `${REPO}:${t}-${V}`] : [])], platforms: [platform] },
  ];
  const expected = new Map<string, { tags: string[]; platforms: string[] }>([
    ['images-emulators', { tags: [`${REPO}:latest`, `${REPO}:${V}`], platforms: [AMD64, ARM64] }],
    ['images-register', { tags: [`${REPO}:register`], platforms: [AMD64, ARM64] }],
    ...X86_TARGETS.map(perHost('x86_64', AMD64)),
    ...ARM_TARGETS.map(perHost('aarch64', ARM64)),
  ]);
  assert.deepEqual([...ONE_HOST].sort(), ['aarch64', 'arm', 'i386', 'x86_64']);
  assert.deepEqual([...images.keys()].sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) {
    const r = images.get(name)!;
    assert.deepEqual({ tags: r.inputs.tags, platforms: r.inputs.platforms }, want, name);
    assert.equal(r.inputs.push, true, name);
    const ctx = (r.inputs.context as { location: string }).location;
    assert.equal((r.inputs.dockerfile as { location: string }).location, path.join(ctx, 'Dockerfile'));
    assert.ok(fs.existsSync(path.join(ctx, 'Dockerfile')), `${name}: context ${ctx} was written`);
  }

  // Each index (only targets both hosts publish): its tag, and the platforms of the images it lists.
  const platformOfRef = new Map<string, string[]>();
  for (const r of images.values()) platformOfRef.set((r.inputs.tags as string[])[0] as string, r.inputs.platforms as string[]);
  const indexes = byName(resources, INDEX);
  assert.deepEqual(SHARED, ['aarch64_be', 'armeb', 'ppc64le', 'riscv64', 's390x']);
  const wantIndexes = SHARED.flatMap((t) => [t, `${t}-${V}`]);
  assert.deepEqual([...indexes.keys()].sort(), wantIndexes.map((t) => `images-${t}`).sort());
  for (const t of wantIndexes) {
    const r = indexes.get(`images-${t}`)!;
    assert.equal(r.inputs.tag, `${REPO}:${t}`);
    const sources = r.inputs.sources as string[];
    // Sources are pushed refs (tag@digest), so an index follows every rebuild of its images.
    for (const s of sources) assert.match(s, /^ghcr\.io\/polyarch\/qemu-user-static:[a-z0-9_]+-[a-z0-9_]+@sha256:[0-9a-f]{64}$/);
    const platforms = sources.map((s) => platformOfRef.get(s.split('@')[0] as string) ?? assert.fail(`${t}: unknown source ${s}`)).flat();
    assert.deepEqual(platforms, [AMD64, ARM64], t);
  }

  // Every tag once: each image's own, plus one :T and :T-<version> per target (an image's or an index's).
  const imageTags = outputs.imageTags as string[];
  assert.equal(imageTags.length, 2 + 1 + 2 * 14 + 2 * (ONE_HOST.size + SHARED.length));
  assert.equal(new Set(imageTags).size, imageTags.length);
  assert.match((outputs.imageRefs as Record<string, string>)['x86_64-aarch64']!, /:x86_64-aarch64@sha256:/);
});

test('the registry password is a secret everywhere: on the wire, in every image and index', async () => {
  const { resources } = await loadProgram(stack(), { 'polyarch:registryPassword': PASSWORD });
  const pushing = resources.filter((r) => r.type === IMAGE || r.type === INDEX);
  assert.ok(pushing.length > 20);
  for (const r of pushing) {
    const plain = plainText(r.wire);
    assert.ok(!plain.includes(PASSWORD), `${r.name} carries the password in plain`);
    const creds = r.type === IMAGE ? (r.inputs.registries as Record<string, string>[])[0] : (r.inputs.registry as Record<string, string>);
    // The provider does get the password, and the username and address in the clear.
    assert.deepEqual(creds, { address: 'ghcr.io', username: 'ci-bot', password: PASSWORD }, r.name);
    assert.match(plain, /"password":"\[secret\]"/, r.name);
  }
  for (const r of resources) assert.ok(!plainText(r.wire).includes(PASSWORD), `${r.type} ${r.name}`);
});

test('an unchanged stack keeps every context; a changed target list changes only what it touches', async () => {
  const contexts = async (targets: string) => {
    const { resources } = await loadProgram(stack({ 'polyarch:targets': targets }), { 'polyarch:registryPassword': PASSWORD });
    return new Map([...byName(resources, IMAGE)].map(([n, r]) => [n, (r.inputs.context as { location: string }).location]));
  };
  const a = await contexts('["all"]');
  const b = await contexts('["all"]');
  assert.deepEqual(b, a);
  // Named targets are published as named, even a host's own CPU (lib/cpus.ts targetsFor).
  const c = await contexts('["aarch64","s390x","x86_64"]');
  assert.equal(c.get('images-x86_64-aarch64'), a.get('images-x86_64-aarch64'));
  assert.equal(c.get('images-aarch64-x86_64'), a.get('images-aarch64-x86_64'));
  assert.notEqual(c.get('images-emulators'), a.get('images-emulators'));
  assert.equal(c.get('images-register'), a.get('images-register'));
  assert.deepEqual([...c.keys()].sort(), [
    'images-aarch64-aarch64',
    'images-aarch64-s390x',
    'images-aarch64-x86_64',
    'images-emulators',
    'images-register',
    'images-x86_64-aarch64',
    'images-x86_64-s390x',
    'images-x86_64-x86_64',
  ]);
});

test('a new release number (the lockfile\'s) changes every tag set and context but no resource name of an image', async () => {
  const renumbered = path.join(path.dirname(lockFile), 'renumbered.lock.json');
  fs.writeFileSync(renumbered, JSON.stringify({ ...JSON.parse(fs.readFileSync(lockFile, 'utf8')), releaseNumber: 2 }));
  const { resources } = await loadProgram(stack({ 'polyarch:lockFile': renumbered }), { 'polyarch:registryPassword': PASSWORD });
  const r = byName(resources, IMAGE).get('images-x86_64-s390x')!;
  assert.deepEqual(r.inputs.tags, [`${REPO}:x86_64-s390x`, `${REPO}:x86_64-s390x-9.2.4-2`]);
  assert.ok(byName(resources, INDEX).has('images-s390x-9.2.4-2'));
  const dockerfile = fs.readFileSync((r.inputs.dockerfile as { location: string }).location, 'utf8');
  assert.match(dockerfile, /org\.opencontainers\.image\.version="9\.2\.4-2"/);
});

test('build only (push: false): images without credentials and no indexes', async () => {
  const { resources, outputs } = await loadProgram(
    stack({ 'polyarch:registry': JSON.stringify({ server: 'quay.io', repository: 'polyarch/qemu-user-static' }) }),
  );
  const images = [...byName(resources, IMAGE).values()];
  assert.equal(images.length, 16);
  for (const r of images) {
    assert.equal(r.inputs.push, false);
    assert.deepEqual(r.inputs.registries, []);
  }
  assert.equal(byName(resources, INDEX).size, 0);
  assert.ok((outputs.imageTags as string[]).includes('quay.io/polyarch/qemu-user-static:latest'));
});

test('the dev stack starts its own registry on loopback and pushes there without credentials', async () => {
  const { resources } = await loadProgram({ ...base(), 'polyarch:hosts': '["x86_64"]', 'polyarch:localRegistry': '{"port":5123}' });
  // No @pulumi/docker resource: its plugin cannot be built everywhere the dev stack runs.
  assert.deepEqual(resources.filter((r) => r.type.startsWith('docker:')), []);
  const containers = resources.filter((r) => r.type === REGISTRY);
  assert.equal(containers.length, 1, 'one registry container');
  const container = containers[0]!;
  assert.equal(typeof container.wire.__provider, 'string');
  assert.deepEqual(
    { port: container.inputs.port, name: container.inputs.name, volume: container.inputs.volume },
    { port: 5123, name: 'polyarch-registry-5123', volume: 'polyarch-registry-5123' },
  );
  assert.match(container.inputs.image as string, /^docker\.io\/library\/registry:2\.8\.3@sha256:[0-9a-f]{64}$/);
  const urn = `urn:pulumi:dev::qemu-user-static::polyarch:index:LocalRegistry$${REGISTRY}::registry`;
  const latest = byName(resources, IMAGE).get('images-emulators')!;
  assert.deepEqual(latest.inputs.tags, ['localhost:5123/polyarch/qemu-user-static:latest', `localhost:5123/polyarch/qemu-user-static:${V}`]);
  assert.deepEqual(latest.inputs.registries, []);
  // One host: no Index (lib/config.ts refuses a second host on a local registry).
  assert.equal(byName(resources, INDEX).size, 0);
  // Every push waits for the registry to answer.
  const pushing = resources.filter((r) => r.type === IMAGE || r.type === INDEX);
  assert.ok(pushing.length > 2 && pushing.every((r) => r.type === IMAGE));
  for (const r of pushing) assert.ok(r.dependencies.includes(urn), `${r.name} depends on the registry: ${r.dependencies.join(', ')}`);
});

test('one host on the local registry, as the dev stack: no Index at all, every :T on its one image', async () => {
  // An Index reads manifests back over HTTPS only, so the dev stack's plain-HTTP registry could not take one.
  const { resources, outputs } = await loadProgram({ ...base(), 'polyarch:hosts': '["x86_64"]', 'polyarch:localRegistry': '{"port":5123}' });
  assert.equal(byName(resources, INDEX).size, 0);
  const local = 'localhost:5123/polyarch/qemu-user-static';
  const images = byName(resources, IMAGE);
  assert.equal(images.size, 2 + X86_TARGETS.length);
  for (const t of X86_TARGETS) assert.deepEqual(images.get(`images-x86_64-${t}`)!.inputs.tags, [`${local}:x86_64-${t}`, `${local}:x86_64-${t}-${V}`, `${local}:${t}`, `${local}:${t}-${V}`], t);
  assert.equal((outputs.imageTags as string[]).length, 2 + 1 + 4 * X86_TARGETS.length);
});

test('a stack without a registry declares no images', async () => {
  const { resources, outputs } = await loadProgram({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64"]' });
  assert.equal(resources.filter((r) => r.type.startsWith('docker') || r.type === REGISTRY).length, 0);
  assert.deepEqual(outputs.imageTags, []);
});

test('the contexts the program declares are content-addressed by what they hold', async () => {
  const { resources } = await loadProgram(stack(), { 'polyarch:registryPassword': PASSWORD });
  const r = byName(resources, IMAGE).get('images-x86_64-riscv64')!;
  const dir = (r.inputs.context as { location: string }).location;
  const files = fs.readdirSync(dir).sort();
  assert.deepEqual(files, ['Dockerfile', 'qemu-riscv64-static']);
  const digest = createHash('sha256').update(fs.readFileSync(path.join(dir, 'qemu-riscv64-static'))).digest('hex');
  const manifest = JSON.parse(fs.readFileSync(path.join(cacheDir, 'emulators', extractionKey(lock, 'x86_64'), 'manifest.json'), 'utf8')) as { cpu: string; sha256: string }[];
  assert.equal(digest, manifest.find((m) => m.cpu === 'riscv64')?.sha256);
  assert.match(path.basename(dir), /^x86_64-riscv64-[0-9a-f]{16}$/);
});

test('a named builder builds every image; without one, no image names a builder', async () => {
  const registry = JSON.stringify({ server: 'quay.io', repository: 'polyarch/qemu-user-static' });
  const named = [...byName((await loadProgram(stack({ 'polyarch:registry': registry, 'polyarch:builder': 'polyarch-ci' }))).resources, IMAGE).values()];
  assert.ok(named.length > 0 && named.every((r) => JSON.stringify(r.inputs.builder) === '{"name":"polyarch-ci"}'));
  const unnamed = [...byName((await loadProgram(stack({ 'polyarch:registry': registry }))).resources, IMAGE).values()];
  assert.ok(unnamed.every((r) => r.inputs.builder === undefined));
});
