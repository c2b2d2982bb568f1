// The preview story, under mocks: what each committed stack declares, and what a pull request
// that only bumps the lockfile's QEMU version changes. Two fixture builds hold the same
// emulator bytes under 9.2.4-1.fc42 and 9.2.5-1.fc42, so anything that changes between the
// two programs changed because of the version, and nothing else may. The new version is a new
// release: every GitHub file is published again on it, and the old release keeps its files.
// A rebuilt emulator under the same tag changes only the files whose bytes changed, and only
// while the release is a draft: once it is published, the release's diff refuses at preview.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { unknownValue } from '@pulumi/pulumi/runtime/rpc.js';
import { DIFFED_KEYS } from '../../components/release-asset.ts';
import { SPLIT_BUILD } from '../fixtures/rpms.ts';
import { startFakeGitHub } from '../fixtures/github.ts';
import { startDynamicHost } from '../helpers/dynamic-host.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';
import { imageMocks } from '../helpers/registry.ts';
import { deletedWith, retainedOnDelete } from '../helpers/resource-options.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SECRETS = { 'polyarch:registryPassword': 'registry-pw-3141', 'polyarch:githubToken': 'ghp_previewStoryToken2718', 'polyarch:sshPrivateKey': '-----BEGIN OPENSSH PRIVATE KEY-----\nstory\n-----END OPENSSH PRIVATE KEY-----' };
const RELEASE = 'pulumi-nodejs:dynamic/polyarch:GitHubRelease';
const IMAGE = 'docker-build:index:Image';
const INDEX = 'docker-build:index:Index';
const ASSET = 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset';
const PUBLICATION = 'pulumi-nodejs:dynamic/polyarch:ReleasePublication';
const BLOB_SIGNATURE = 'pulumi-nodejs:dynamic/polyarch:BlobSignature';
const IMAGE_SIGNATURE = 'pulumi-nodejs:dynamic/polyarch:ImageSignature';
const DOCKERHUB = 'docker.io/polyarch/qemu-user-static';
// Of the fixture's emulators (all targets, two hosts): the targets both hosts publish get an
// Index per tag; the others (host, target) are :T and :T-<version> on their one image.
const SHARED = ['aarch64_be', 'armeb', 'ppc64le', 'riscv64', 's390x'];
const ONE_HOST = [['x86_64', 'aarch64'], ['x86_64', 'arm'], ['aarch64', 'i386'], ['aarch64', 'x86_64']] as const;
/** Files a QEMU bump with the same emulators still changes: the SBOM (new RPMs, new tag) and SHA256SUMS, which lists it. */
const NEW_BYTES = ['sbom.spdx.json', 'SHA256SUMS'];

let old: { file: string; cacheDir: string };
let bumped: { file: string; cacheDir: string };
let rebuilt: { file: string; cacheDir: string };
// As GitHub does: a new release (a new tag) gets a new id.
const releaseId = (tag: unknown) => Number(String(tag).replace(/\D/g, ''));
// What the engine's preview gives for a release that updates in place: unknown outputs (its
// dynamic-provider host reports none as stable).
let releaseUpdating = false;
const storyMocks: pulumi.runtime.Mocks = {
  ...imageMocks,
  newResource: (a) => {
    if (a.type !== RELEASE) return imageMocks.newResource(a);
    const outs = releaseUpdating
      ? { releaseId: unknownValue, htmlUrl: unknownValue }
      : { releaseId: releaseId(a.inputs.tag), htmlUrl: `https://github.com/${a.inputs.owner}/${a.inputs.repo}/releases/tag/${a.inputs.tag}` };
    return { id: String(releaseId(a.inputs.tag)), state: { ...a.inputs, ...outs } };
  },
};

before(async () => {
  pulumi.runtime.setMocks(storyMocks, 'qemu-user-static', 'dev', true);
  old = await fixtureLock(['x86_64', 'aarch64']);
  bumped = await fixtureLock(['x86_64', 'aarch64'], { version: '9.2.5', release: '1.fc42' });
  rebuilt = await fixtureLock(['x86_64', 'aarch64'], SPLIT_BUILD, { alter: 'riscv64' });
});

/** A committed stack file's config as Pulumi hands it to the program (objects as JSON text). */
function stackConfig(stack: string): Record<string, string> {
  const { config } = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

/** The fixture lockfile stands in for the committed one; the fixture builds x86_64 and aarch64. */
const onFixtures = (lock: { file: string; cacheDir: string }) => ({ 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir, 'polyarch:hosts': '["x86_64","aarch64"]' });
const types = (rs: Declared[]) => new Set(rs.map((r) => r.type));

describe('each committed stack', () => {
  test('dockerhub: the GitHub release and images pushed to docker.io', async () => {
    const { resources } = await loadProgram({ ...stackConfig('dockerhub'), ...onFixtures(old) }, SECRETS);
    assert.equal(resources.filter((r) => r.type === RELEASE).length, 1);
    const latest = resources.find((r) => r.type === IMAGE && r.name === 'images-emulators')!;
    assert.deepEqual(latest.inputs.tags, ['docker.io/polyarch/qemu-user-static:latest', 'docker.io/polyarch/qemu-user-static:9.2.4-1']);
    // plainText is JSON: compare with each secret as JSON spells it (the key has newlines).
    const spelled = Object.values(SECRETS).map((v) => JSON.stringify(v).slice(1, -1));
    assert.ok(resources.some((r) => JSON.stringify(r.inputs).includes(spelled[0]!)), 'the registry password reaches the images');
    // The GitHub providers read the token at run time: no resource holds it at all.
    assert.ok(!resources.some((r) => JSON.stringify(r.inputs).includes(spelled[1]!)), 'the GitHub token is in no input');
    for (const r of resources) for (const secret of spelled) assert.ok(!plainText(r.wire).includes(secret), `${r.type} ${r.name}: a secret in plain`);
  });
  for (const [stack, server] of [['ghcr', 'ghcr.io'], ['quay', 'quay.io']] as const) {
    test(`${stack}: images pushed to ${server}, no release`, async () => {
      const { resources, outputs } = await loadProgram({ ...stackConfig(stack), ...onFixtures(old) }, { 'polyarch:registryPassword': SECRETS['polyarch:registryPassword'] });
      assert.ok(!types(resources).has(RELEASE) && !types(resources).has(ASSET), 'only one stack publishes the release');
      assert.equal(outputs.releaseLocation, undefined);
      const tags = (outputs.imageTags as string[]);
      assert.ok(tags.length > 0 && tags.every((t) => t.startsWith(`${server}/polyarch/qemu-user-static:`)), tags.join(' '));
    });
  }
  test('dev: a local registry, the release in a local folder, no remote hosts, no secrets needed', async () => {
    const { resources, outputs } = await loadProgram({ ...stackConfig('dev'), ...onFixtures(old), 'polyarch:hosts': '["x86_64"]' });
    assert.ok(types(resources).has('pulumi-nodejs:dynamic/polyarch:RegistryContainer'));
    assert.ok(!types(resources).has(RELEASE));
    assert.ok(!types(resources).has('command:remote:Command'));
    assert.match(String(outputs.releaseLocation), /out\/release\/v9\.2\.4-1$/);
    assert.ok((outputs.imageTags as string[]).includes('localhost:5000/polyarch/qemu-user-static:latest'));
  });
});

/** The stack that publishes the GitHub release, with one build host, on a fixture lockfile. */
const config = (lock: typeof old) => ({
  ...stackConfig('dockerhub'),
  ...onFixtures(lock),
  'polyarch:buildHosts': JSON.stringify([{ name: 'builder-1', address: '192.0.2.10', user: 'root' }]),
});
// An asset's provider diffs only some inputs (not where the bytes sit locally).
const diffed = (r: Declared) => (r.type === ASSET ? Object.fromEntries(DIFFED_KEYS.map((k) => [k, r.inputs[k]])) : r.inputs);

describe('a pull request that only bumps QEMU', () => {
  const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  // What the engine compares: a file asset by its content, a context by the files in it.
  const stable = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(stable);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.__pulumiAsset && typeof o.path === 'string') return { asset: sha(o.path) };
      return Object.fromEntries(Object.entries(o).filter(([k]) => k !== '__provider' && k !== 'context' && k !== 'dockerfile').map(([k, x]) => [k, stable(x)]));
    }
    return typeof v === 'string' ? v.replace(/@sha256:[0-9a-f]{64}/g, '@<digest>') : v;
  };
  const unversioned = (v: unknown) => JSON.stringify(stable(v)).replaceAll('9.2.5', '9.2.4');

  let before_: Declared[];
  let after_: Declared[];
  let retainedBefore: Set<string>;
  let keptAfter: (r: Declared) => boolean;
  before(async () => {
    before_ = (await loadProgram(config(old), SECRETS)).resources;
    // Kept when the bump replaces them: the release retained, each file deleted only with it.
    const kept = (r: Declared) => retainedOnDelete(r) || (r.type === ASSET && deletedWith(r).endsWith(`${RELEASE}::release`));
    retainedBefore = new Set(before_.filter(kept).map((r) => `${r.type} ${r.name}`));
    keptAfter = (r) => kept(r);
    after_ = (await loadProgram(config(bumped), SECRETS)).resources;
  });
  // What an asset holds but for the release it is on.
  const content = (r: Declared) => ({ ...(diffed(r) as Record<string, unknown>), tag: undefined });
  const key = (r: Declared) => `${r.type} ${r.name.replace('9.2.5-1', '9.2.4-1')}`;
  const pairs = () => {
    const after = new Map(after_.map((r) => [key(r), r]));
    return before_.map((r) => [r, after.get(key(r))!] as const);
  };

  test('declares the same resources but for the versioned indexes of the targets both hosts publish, which are new', () => {
    assert.deepEqual(after_.map(key).sort(), before_.map(key).sort());
    const renamed = after_.filter((r) => r.name !== key(r).split(' ')[1]);
    assert.deepEqual(renamed.filter((r) => r.type === INDEX).map((r) => r.name).sort(), SHARED.map((t) => `images-${t}-9.2.5-1`).sort());
    // Each new index is signed by a signature of its own.
    assert.deepEqual(renamed.filter((r) => r.type !== INDEX).map((r) => `${r.type} ${r.name}`).sort(), SHARED.map((t) => `${IMAGE_SIGNATURE} images-sign-${t}-9.2.5-1`).sort());
  });

  test('a target one host publishes has no Index: its versioned tag moves on that host\'s image', () => {
    for (const [host, t] of ONE_HOST) {
      const name = `images-${host}-${t}`;
      const [a, b] = pairs().find(([x]) => x.type === IMAGE && x.name === name) ?? assert.fail(`no image ${name}`);
      assert.deepEqual(a.inputs.tags, [`${host}-${t}`, `${host}-${t}-9.2.4-1`, t, `${t}-9.2.4-1`].map((tag) => `${DOCKERHUB}:${tag}`), name);
      assert.deepEqual(b.inputs.tags, [`${host}-${t}`, `${host}-${t}-9.2.5-1`, t, `${t}-9.2.5-1`].map((tag) => `${DOCKERHUB}:${tag}`), name);
      assert.ok(!after_.some((r) => r.type === INDEX && (r.name === `images-${t}` || r.name.startsWith(`images-${t}-9.`))), `${t}: an Index`);
    }
  });

  test('changes exactly the release (its files move to the new one), the versioned tags and the version labels', () => {
    const changed = pairs().filter(([a, b]) => JSON.stringify(stable(diffed(a))) !== JSON.stringify(stable(diffed(b))));
    // (Signatures follow what they sign: SHA256SUMS and the SBOM have new bytes, and every
    // image carries the new SBOM.)
    assert.deepEqual([...new Set(changed.map(([a]) => a.type))].sort(), [ASSET, BLOB_SIGNATURE, IMAGE, IMAGE_SIGNATURE, INDEX, PUBLICATION, RELEASE].sort());
    assert.deepEqual(changed.filter(([a]) => a.type === BLOB_SIGNATURE).map(([a]) => a.name).sort(), NEW_BYTES.map((f) => `release-sign-${f}`).sort());
    // (The publication names the new release by its id, which GitHub gives the new release.)
    const sameRelease = (r: Declared) => (r.type === PUBLICATION ? { ...r.inputs, releaseId: undefined } : r.inputs);
    // (The release and its publication list every file's digest: the SBOM's and SHA256SUMS's are new.)
    const newDigests = [...before_, ...after_].filter((r) => r.type === ASSET && NEW_BYTES.includes(String(r.inputs.name))).map((r) => String(r.inputs.sha256));
    const masked = (v: unknown) => newDigests.reduce((text, d) => text.replaceAll(d, '<new bytes>'), unversioned(v));
    for (const [a, b] of changed.filter(([x]) => x.type !== ASSET)) assert.equal(masked(sameRelease(b)), masked(sameRelease(a)), `${a.name}: changed by more than the version`);
    // Every file on the new release (by its tag), the same bytes but for the SBOM, which names
    // the new RPMs and tag, and SHA256SUMS, which lists the SBOM.
    for (const [a, b] of changed.filter(([x]) => x.type === ASSET)) {
      assert.deepEqual([a.inputs.tag, b.inputs.tag], ['v9.2.4-1', 'v9.2.5-1'], a.name);
      if (NEW_BYTES.includes(String(a.inputs.name))) assert.notEqual(b.inputs.sha256, a.inputs.sha256, `${a.name}: new bytes`);
      else assert.deepEqual(content(b), content(a), a.name);
    }
    assert.equal(changed.filter(([x]) => x.type === ASSET).length, before_.filter((r) => r.type === ASSET).length);
    const release = changed.find(([a]) => a.type === RELEASE)!;
    assert.deepEqual([release[0].inputs.tag, release[1].inputs.tag], ['v9.2.4-1', 'v9.2.5-1']);
    // Rolling tags stay; only their versioned twins move.
    for (const [a, b] of changed.filter(([x]) => x.type === IMAGE)) {
      const rolling = (tags: unknown) => (tags as string[]).filter((t) => !/9\.2\.[45]-1/.test(t));
      assert.deepEqual(rolling(b.inputs.tags), rolling(a.inputs.tags), a.name);
    }
  });

  test('emulators that did not change keep their digests: their assets the same bytes, build-host resources no change', () => {
    const hosts = pairs().filter(([a]) => a.type.startsWith('command:remote:'));
    assert.ok(hosts.length > 0);
    for (const [a, b] of hosts) assert.deepEqual(stable(diffed(b)), stable(diffed(a)), `${a.type} ${a.name}`);
    const assets = pairs().filter(([a]) => a.type === ASSET && !NEW_BYTES.includes(String(a.inputs.name)));
    assert.ok(assets.length > 20);
    for (const [a, b] of assets) assert.equal(b.inputs.sha256, a.inputs.sha256, a.name);
  });

  test("the new tag replaces the release and its files, and the old ones are kept (the providers' own diff)", async () => {
    const published = [...pairs()].filter(([a]) => a.type === RELEASE || a.type === ASSET || a.type === PUBLICATION);
    for (const [a, b] of published) {
      assert.ok(retainedBefore.has(`${a.type} ${a.name}`), `${a.name}: kept on delete before the bump`);
      assert.ok(keptAfter(b), `${b.name}: kept on delete after the bump`);
    }
    // What the engine asks each provider at preview: the state the old program left vs the new inputs.
    const host = await startDynamicHost();
    try {
      await host.configure({});
      for (const [a, b] of published) {
        const urn = `urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets$${a.type}::${a.name}`;
        const [id, outs] =
          a.type === ASSET
            ? ['1', { assetId: 1, releaseId: releaseId(a.inputs.tag) }]
            : [String(releaseId(a.inputs.tag)), { releaseId: releaseId(a.inputs.tag), htmlUrl: 'https://github.com/polyarch/qemu-user-static/releases/tag/v9.2.4-1' }];
        assert.deepEqual(await host.diff(urn, id, { ...a.wire, ...outs }, b.wire), { changes: 'some', replaces: ['tag'] }, a.name);
      }
    } finally {
      await host.close();
    }
  });

  test('an image context differs only in its version label', () => {
    for (const [a, b] of pairs().filter(([x]) => x.type === IMAGE)) {
      const dirA = (a.inputs.context as { location: string }).location;
      const dirB = (b.inputs.context as { location: string }).location;
      const files = (d: string) => (fs.readdirSync(d, { recursive: true, withFileTypes: true }) as fs.Dirent[]).filter((e) => e.isFile()).map((e) => path.relative(d, path.join(e.parentPath, e.name))).sort();
      assert.deepEqual(files(dirB), files(dirA), a.name);
      for (const f of files(dirA)) {
        if (f === 'Dockerfile') assert.equal(fs.readFileSync(path.join(dirB, f), 'utf8').replaceAll('9.2.5', '9.2.4'), fs.readFileSync(path.join(dirA, f), 'utf8'), a.name);
        else assert.equal(sha(path.join(dirB, f)), sha(path.join(dirA, f)), `${a.name}: ${f}`);
      }
    }
  });
});

describe('a rebuilt emulator under the same tag: its files update while the release is a draft; once published, the preview stops', () => {
  // Fixture riscv64 differs by trailing bytes: its four files, the SBOM and SHA256SUMS change, and with it
  // the notes, which list the checksums.
  const rebuiltFiles = ['SHA256SUMS', 'sbom.spdx.json', 'qemu-riscv64-static', 'qemu-riscv64-static.tar.gz', 'x86_64_qemu-riscv64-static.tar.gz', 'aarch64_qemu-riscv64-static.tar.gz'].sort();
  let before_: Declared[];
  let after_: Declared[];
  before(async () => {
    before_ = (await loadProgram(config(old), SECRETS)).resources;
    releaseUpdating = true;
    try {
      after_ = (await loadProgram(config(rebuilt), SECRETS)).resources;
    } finally {
      releaseUpdating = false;
    }
  });
  const github = (rs: Declared[]) => rs.filter((r) => r.type === RELEASE || r.type === ASSET || r.type === PUBLICATION);
  const pairs = () => {
    const after = new Map(github(after_).map((r) => [`${r.type} ${r.name}`, r]));
    return github(before_).map((r) => [r, after.get(`${r.type} ${r.name}`)!] as const);
  };

  test('the release keeps its tag; its assets name it by that tag, so none holds an unknown input', () => {
    const [release] = pairs().filter(([a]) => a.type === RELEASE);
    assert.equal(release![1].inputs.tag, release![0].inputs.tag);
    assert.notEqual(release![1].inputs.body, release![0].inputs.body);
    for (const [, b] of pairs().filter(([a]) => a.type === ASSET)) {
      for (const k of DIFFED_KEYS) assert.notEqual(b.wire[k], unknownValue, `${b.name}: ${k} unknown at preview`);
    }
  });

  test("the providers' own diff, asking GitHub: on a draft, only the changed files, the release and its publication update, none replaces; published, the release's diff refuses in one line", async () => {
    const changed = pairs().filter(([a, b]) => a.type === ASSET && b.inputs.sha256 !== a.inputs.sha256);
    assert.deepEqual(changed.map(([a]) => String(a.inputs.name)).sort(), rebuiltFiles);
    const gh = await startFakeGitHub();
    const host = await startDynamicHost();
    try {
      await host.configure({ 'polyarch:githubToken': gh.token }, ['polyarch:githubToken']);
      const id = gh.createRelease('v9.2.4-1', { draft: true });
      // What the engine asks each provider at preview: the state the last up left vs the new
      // inputs, on the loopback GitHub instead of api.github.com.
      const diff = (a: Declared, b: Declared) => {
        const urn = `urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets$${a.type}::${a.name}`;
        const outs = a.type === ASSET ? { assetId: 1, releaseId: id } : { releaseId: id, htmlUrl: `${gh.url}/polyarch/qemu-user-static/releases/tag/v9.2.4-1` };
        return host.diff(urn, a.type === ASSET ? '1' : String(id), { ...a.wire, ...outs, apiUrl: gh.url }, { ...b.wire, apiUrl: gh.url });
      };
      for (const [a, b] of pairs()) {
        const expected = a.type !== ASSET || rebuiltFiles.includes(String(a.inputs.name)) ? 'some' : 'none';
        assert.deepEqual(await diff(a, b), { changes: expected, replaces: [] }, a.name);
      }
      gh.publish(id);
      const [release] = pairs().filter(([a]) => a.type === RELEASE);
      await assert.rejects(diff(...release!), /^Error: polyarch\/qemu-user-static release v9\.2\.4-1 is published, and a published release's files never change, but this update would change SHA256SUMS, aarch64_qemu-riscv64-static\.tar\.gz, qemu-riscv64-static and 3 more; publish the new files under a new tag instead: raise "releaseNumber" in the lockfile \(the n of v<qemu>-<n>\) and run again$/);
      assert.ok(gh.log.every((l) => l.method === 'GET'), 'a diff only reads');
    } finally {
      await host.close();
      await gh.close();
    }
  });
});
