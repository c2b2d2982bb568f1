// The program under mocks, release side: a GitHubRelease plus one ReleaseAsset per file with
// the right names and digests, on the release by its tag, both kept on delete, and no token in
// any input; the dev stack's local folder with one FolderAsset per file, whose serialized
// provider then really writes the folder in Pulumi's plain-node dynamic-provider host,
// digest-diffed.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { startDynamicHost } from '../helpers/dynamic-host.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';
import { deletedWith, retainedOnDelete } from '../helpers/resource-options.ts';

const TOKEN = 'ghp_programTestToken0123456789abcdef';
const RELEASE = 'pulumi-nodejs:dynamic/polyarch:GitHubRelease';
const ASSET = 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset';
const PUBLICATION = 'pulumi-nodejs:dynamic/polyarch:ReleasePublication';
const FOLDER_ASSET = 'pulumi-nodejs:dynamic/polyarch:FolderAsset';
const X86_TARGETS = ['aarch64', 'aarch64_be', 'arm', 'armeb', 'ppc64le', 'riscv64', 's390x'];
const ARM_TARGETS = ['aarch64_be', 'armeb', 'i386', 'ppc64le', 'riscv64', 's390x', 'x86_64'];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let lockFile = '';
let cacheDir = '';
before(async () => {
  ({ file: lockFile, cacheDir } = await fixtureLock(['x86_64', 'aarch64']));
});

const base = (hosts: string[]) => ({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': JSON.stringify(hosts) });
const github = { 'polyarch:release': JSON.stringify({ repository: 'polyarch/qemu-user-static' }) };
const expectedNames = [
  'SHA256SUMS',
  'sbom.spdx.json',
  ...X86_TARGETS.flatMap((t) => [`qemu-${t}-static`, `qemu-${t}-static.tar.gz`, `x86_64_qemu-${t}-static.tar.gz`]),
  ...ARM_TARGETS.map((t) => `aarch64_qemu-${t}-static.tar.gz`),
].sort();

/** Every asset's digest and size match its file, and SHA256SUMS lists every other asset. */
function checkFiles(assets: Declared[]) {
  const sumsAsset = assets.find((a) => a.inputs.name === 'SHA256SUMS')!;
  const sums = fs.readFileSync(path.resolve(String(sumsAsset.inputs.file)), 'utf8');
  for (const a of assets) {
    const bytes = fs.readFileSync(path.resolve(String(a.inputs.file)));
    assert.equal(sha256(bytes), a.inputs.sha256, `${a.name} digest`);
    assert.equal(bytes.length, a.inputs.size, `${a.name} size`);
    if (a !== sumsAsset) assert.ok(sums.includes(`${a.inputs.sha256}  ${a.inputs.name}\n`), `${a.name} in SHA256SUMS`);
  }
  assert.equal(sums.trimEnd().split('\n').length, assets.length - 1);
}

test('GitHub release: the release and one asset per file with names and digests, kept on delete; no token in any input', async () => {
  const { outputs, resources } = await loadProgram({ ...base(['x86_64', 'aarch64']), ...github }, { 'polyarch:githubToken': TOKEN });
  assert.equal(resources.filter((r) => r.type === 'polyarch:index:ReleaseAssets').length, 1);
  assert.ok(!resources.some((r) => r.type.startsWith('github:') || r.type === 'pulumi:providers:github'), 'no @pulumi/github resource or provider');

  const releases = resources.filter((r) => r.type === RELEASE);
  assert.equal(releases.length, 1);
  const release = releases[0]!;
  assert.equal(release.name, 'release');
  assert.equal(release.parent, 'urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets::release');
  assert.deepEqual([release.inputs.apiUrl, release.inputs.owner, release.inputs.repo, release.inputs.tag, release.inputs.name], ['https://api.github.com', 'polyarch', 'qemu-user-static', 'v9.2.4-1', 'v9.2.4-1']);
  assert.equal(typeof release.inputs.__provider, 'string');
  assert.ok(!String(release.inputs.__provider).includes(TOKEN));
  // Published releases and files stay through replacement and destroy (download URLs).
  assert.ok(retainedOnDelete(release), 'the release is retained on delete');
  const body = String(release.inputs.body);
  assert.match(body, /\| x86_64 \| aarch64, aarch64_be, arm, armeb, ppc64le, riscv64, s390x \|/);
  assert.match(body, /\| aarch64 \| aarch64_be, armeb, i386, ppc64le, riscv64, s390x, x86_64 \|/);
  assert.match(body, /## Usage/);

  const assets = resources.filter((r) => r.type === ASSET);
  const releaseUrn = `urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets$${RELEASE}::release`;
  assert.deepEqual(assets.map((a) => a.inputs.name).sort(), expectedNames);
  for (const a of assets) {
    assert.equal(a.name, `release-${a.inputs.name}`);
    assert.equal(a.parent, 'urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets::release');
    assert.deepEqual([a.inputs.owner, a.inputs.repo, a.inputs.apiUrl], ['polyarch', 'qemu-user-static', 'https://api.github.com']);
    // The release by its tag (known at preview); its id comes from the release, which it waits for.
    assert.equal(a.inputs.tag, 'v9.2.4-1');
    assert.ok(a.dependencies.includes(releaseUrn), `${a.name} waits for the release`);
    assert.ok(!path.isAbsolute(String(a.inputs.file)), `${a.name}: a project-relative path, not a machine's`);
    assert.equal(typeof a.inputs.__provider, 'string');
    assert.ok(!String(a.inputs.__provider).includes(TOKEN));
    // Deleted only with the release (which is retained): a file the stack drops leaves the release.
    assert.ok(!retainedOnDelete(a) && deletedWith(a) === releaseUrn, `${a.name} goes only with its release`);
    if (a.inputs.name !== 'SHA256SUMS') assert.ok(body.includes(`${a.inputs.sha256}  ${a.inputs.name}`), `${a.name} in the body`);
  }
  checkFiles(assets);
  // The release knows every file (once published they never change), and one publication makes
  // it public after every file uploaded, checking the same listing; it is never undone.
  const listing = Object.fromEntries(assets.map((a) => [a.inputs.name, { sha256: a.inputs.sha256, size: a.inputs.size }]));
  assert.deepEqual(release.inputs.files, listing);
  const publications = resources.filter((r) => r.type === PUBLICATION);
  assert.deepEqual(publications.map((p) => p.name), ['release-publish']);
  const publication = publications[0]!;
  assert.deepEqual(publication.inputs.files, listing);
  assert.deepEqual([publication.inputs.tag, publication.inputs.owner, publication.inputs.repo], ['v9.2.4-1', 'polyarch', 'qemu-user-static']);
  for (const a of assets) assert.ok(publication.dependencies.includes(`urn:pulumi:dev::qemu-user-static::polyarch:index:ReleaseAssets$${ASSET}::${a.name}`), `published after ${a.name}`);
  assert.ok(retainedOnDelete(publication));
  const byName = new Map(assets.map((a) => [a.inputs.name, a]));
  for (const t of X86_TARGETS) assert.equal(byName.get(`qemu-${t}-static.tar.gz`)!.inputs.sha256, byName.get(`x86_64_qemu-${t}-static.tar.gz`)!.inputs.sha256);

  // No input anywhere holds the token, in plain or as a secret: the release and asset providers
  // read it from secret config at run time.
  for (const r of resources) assert.ok(!plainText(r.wire).includes(TOKEN), `${r.type} ${r.name} holds the token in plain`);
  for (const r of resources) assert.ok(!JSON.stringify(r.inputs).includes(TOKEN), `${r.type} ${r.name} holds the token`);
  assert.equal(outputs.releaseLocation, 'https://github.com/polyarch/qemu-user-static/releases/tag/v9.2.4-1');
  assert.deepEqual(Object.keys(outputs.releaseDigests as object).sort(), expectedNames);
});

test('GitHub Enterprise Server: the API root reaches the release and assets as given; the location is the server\'s web root', async () => {
  const ghes = { 'polyarch:release': JSON.stringify({ repository: 'polyarch/qemu-user-static', apiUrl: 'https://ghe.example.com/api/v3' }) };
  const { outputs, resources } = await loadProgram({ ...base(['x86_64']), ...ghes }, { 'polyarch:githubToken': TOKEN });
  const github = resources.filter((r) => r.type === RELEASE || r.type === ASSET);
  assert.ok(github.length > 1);
  for (const r of github) assert.equal(r.inputs.apiUrl, 'https://ghe.example.com/api/v3', `${r.type} ${r.name}`);
  assert.equal(outputs.releaseLocation, 'https://ghe.example.com/polyarch/qemu-user-static/releases/tag/v9.2.4-1');
});

test('a GitHub release without the token secret is refused before anything is declared', async () => {
  await assert.rejects(loadProgram({ ...base(['x86_64']), ...github }), /polyarch:release: publishing to polyarch\/qemu-user-static needs the secret polyarch:githubToken/);
});

test("dev stack: a local folder, one FolderAsset per file, written for real by the provider in Pulumi's plain-node host", async () => {
  const { outputs, resources } = await loadProgram(base(['x86_64', 'aarch64']));
  assert.ok(!resources.some((r) => r.type.startsWith('github:') || r.type === RELEASE || r.type === ASSET));
  const files = resources.filter((r) => r.type === FOLDER_ASSET);
  assert.deepEqual(files.map((a) => a.inputs.name).sort(), expectedNames);
  // A dev folder is scratch: destroy removes it.
  for (const f of files) assert.ok(!retainedOnDelete(f), `${f.name} is removed on destroy`);
  for (const f of files) assert.equal(f.inputs.dir, path.join('out/release', 'v9.2.4-1'));
  checkFiles(files);
  assert.equal(outputs.releaseLocation, path.resolve('out/release/v9.2.4-1'));

  // One host fewer: the x86_64 files keep their inputs, SHA256SUMS and the SBOM (which lists
  // aarch64's RPMs and files) change, aarch64's go away.
  const { resources: fewer } = await loadProgram(base(['x86_64']));
  const smaller = new Map(fewer.filter((r) => r.type === FOLDER_ASSET).map((r) => [r.inputs.name, r]));
  assert.equal(smaller.size, X86_TARGETS.length * 3 + 2);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-folder-'));
  const host = await startDynamicHost();
  try {
    const created = new Map<string, { id: string; props: Record<string, unknown> }>();
    for (const f of files) {
      const urn = `urn:pulumi:dev::qemu-user-static::${FOLDER_ASSET}::${f.name}`;
      created.set(String(f.inputs.name), await host.create(urn, await host.check(urn, {}, { ...f.wire, dir })));
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), expectedNames);
    execFileSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: dir });
    execFileSync('gzip', ['-t', ...expectedNames.filter((n) => n.endsWith('.tar.gz'))], { cwd: dir });
    assert.equal(fs.statSync(path.join(dir, 'qemu-arm-static')).mode & 0o777, 0o755);

    // Digest-diffed: unchanged files show no change, new bytes are an update, gone files delete.
    for (const [name, c] of created) {
      const urn = `urn:pulumi:dev::qemu-user-static::${FOLDER_ASSET}::release-${name}`;
      const next = smaller.get(name);
      if (!next) {
        await host.delete(urn, c.id, c.props);
        continue;
      }
      const news = { ...next.wire, dir };
      const d = await host.diff(urn, c.id, c.props, news);
      if (name === 'SHA256SUMS' || name === 'sbom.spdx.json') {
        assert.deepEqual(d, { changes: 'some', replaces: [] });
        await host.update(urn, c.id, c.props, news);
      } else assert.deepEqual(d, { changes: 'none', replaces: [] }, name);
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), [...smaller.keys()].sort());
    execFileSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: dir });
    assert.equal(sha256(fs.readFileSync(path.join(dir, 'SHA256SUMS'))), smaller.get('SHA256SUMS')!.inputs.sha256);
  } finally {
    await host.close();
  }
});

test('a GitHub release without the stack secret needs GITHUB_TOKEN in the environment, which the providers then read', async () => {
  const saved = process.env.GITHUB_TOKEN;
  try {
    delete process.env.GITHUB_TOKEN;
    await assert.rejects(loadProgram({ ...base(['x86_64']), ...github }), /needs the secret polyarch:githubToken/);
    process.env.GITHUB_TOKEN = TOKEN;
    const { resources } = await loadProgram({ ...base(['x86_64']), ...github });
    assert.equal(resources.filter((r) => r.type === RELEASE).length, 1);
    for (const r of resources) assert.ok(!JSON.stringify(r.wire).includes(TOKEN), `${r.name}: the token is no input`);
  } finally {
    if (saved === undefined) delete process.env.GITHUB_TOKEN;
    else process.env.GITHUB_TOKEN = saved;
  }
});

test('dev stack: a FolderAsset write sweeps the temps killed runs left in the release folder and keeps a live run\'s', async () => {
  const { resources } = await loadProgram(base(['x86_64']));
  const byName = new Map(resources.filter((r) => r.type === FOLDER_ASSET).map((r) => [String(r.inputs.name), r]));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-sweep-'));
  const hostTag = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
  const gonePid = () => spawnSync('true').pid!;
  const temp = (name: string, tag: string, pid: number, rand: string) => {
    const f = path.join(dir, `.${name}.polyarch-tmp-${tag}-${pid}-${rand}`);
    fs.writeFileSync(f, 'half a file');
    return path.basename(f);
  };
  const host = await startDynamicHost();
  try {
    const killed = temp('qemu-arm-static', hostTag, gonePid(), '0123abcd');
    // Another host's temp cannot be judged by its pid: kept while fresh, swept once a day old.
    const elsewhere = temp('qemu-arm-static.tar.gz', 'ffffffff', 1, '89abcdef');
    const old = temp('SHA256SUMS', 'ffffffff', 1, '4567cdef');
    fs.utimesSync(path.join(dir, old), new Date(Date.now() - 2 * 86400_000), new Date(Date.now() - 2 * 86400_000));
    // A run still going on this host (this test's process): its temp stays.
    const live = temp('qemu-aarch64-static', hostTag, process.pid, '76543210');

    const sums = byName.get('SHA256SUMS')!;
    const urn = (n: string) => `urn:pulumi:dev::qemu-user-static::${FOLDER_ASSET}::release-${n}`;
    const created = await host.create(urn('SHA256SUMS'), await host.check(urn('SHA256SUMS'), {}, { ...sums.wire, dir }));
    assert.deepEqual(fs.readdirSync(dir).sort(), [elsewhere, live, 'SHA256SUMS'].sort());
    assert.equal(sha256(fs.readFileSync(path.join(dir, 'SHA256SUMS'))), sums.inputs.sha256);
    assert.ok(!fs.readdirSync(dir).includes(killed));

    // An update sweeps too: a temp of a run killed since, beside the file being rewritten.
    const killedAgain = temp('SHA256SUMS', hostTag, gonePid(), 'fedcba98');
    fs.writeFileSync(path.join(dir, 'SHA256SUMS'), 'changed by hand');
    await host.update(urn('SHA256SUMS'), created.id, created.props, { ...sums.wire, dir });
    assert.deepEqual(fs.readdirSync(dir).sort(), [elsewhere, live, 'SHA256SUMS'].sort());
    assert.ok(!fs.readdirSync(dir).includes(killedAgain));
    assert.equal(sha256(fs.readFileSync(path.join(dir, 'SHA256SUMS'))), sums.inputs.sha256);
    assert.equal(fs.readFileSync(path.join(dir, live), 'utf8'), 'half a file');
  } finally {
    await host.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
