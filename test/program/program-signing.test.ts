// The program under mocks with polyarch:signing: what it signs (SHA256SUMS, the SBOM, every
// pushed image and index), how the bundles join the release, that the key never becomes an
// input, and that keyless signing without an identity publishes unsigned, said in one line,
// never half-signed (test/engine/signing.test.ts signs for real).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { fixtureLock, loadProgram, type Declared } from '../helpers/program.ts';
import { imageMocks } from '../helpers/registry.ts';

const BLOB = 'pulumi-nodejs:dynamic/polyarch:BlobSignature';
const IMAGE_SIG = 'pulumi-nodejs:dynamic/polyarch:ImageSignature';
const FOLDER = 'pulumi-nodejs:dynamic/polyarch:FolderAsset';
const RELEASE_ASSET = 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset';
const PUBLICATION = 'pulumi-nodejs:dynamic/polyarch:ReleasePublication';
const KEY = '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90LWEtcmVhbC1rZXktYnV0LWEtc2VjcmV0\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n';

let lockFile = '';
let cacheDir = '';
before(async () => {
  ({ file: lockFile, cacheDir } = await fixtureLock(['x86_64', 'aarch64']));
});

const base = () => ({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64","aarch64"]' });
const of = (resources: readonly Declared[], type: string) => resources.filter((r) => r.type === type);
const preview = (dryRun: boolean) => pulumi.runtime.setMocks(imageMocks, 'qemu-user-static', 'dev', dryRun);

test('signing none: nothing signed, no bundle published', async () => {
  preview(true);
  const { resources } = await loadProgram({ ...base(), 'polyarch:release': JSON.stringify({ folder: 'out/release' }) });
  assert.equal(of(resources, BLOB).length, 0);
  assert.ok(!of(resources, FOLDER).some((r) => String(r.inputs.name).endsWith('.cosign.bundle')), 'no bundle');
});

test('signing with a key: SHA256SUMS and the SBOM signed, each bundle a release file; the key is no input of anything', async () => {
  preview(true);
  const { resources } = await loadProgram(
    { ...base(), 'polyarch:release': JSON.stringify({ folder: 'out/release' }), 'polyarch:signing': 'key' },
    { 'polyarch:signingKey': KEY, 'polyarch:signingPassword': 'key-password-1234' },
  );
  const signed = of(resources, BLOB).map((r) => ({ name: r.name, sha256: r.inputs.sha256, mode: r.inputs.mode }));
  const files = Object.fromEntries(of(resources, FOLDER).map((r) => [r.inputs.name as string, r]));
  assert.deepEqual(signed.map((s) => s.name).sort(), ['release-sign-SHA256SUMS', 'release-sign-sbom.spdx.json']);
  for (const s of signed) {
    const file = s.name.replace('release-sign-', '');
    assert.equal(s.sha256, files[file]?.inputs.sha256, `${file}: the signature is of the published bytes`);
    assert.equal(s.mode, 'key');
    assert.ok(files[`${file}.cosign.bundle`], `${file}.cosign.bundle is a release file`);
  }
  for (const r of resources) {
    const text = JSON.stringify(r.wire);
    assert.ok(!text.includes('bm90LWEtcmVhbC1rZXk') && !text.includes('key-password-1234'), `${r.type} ${r.name}: the signing key or its password is an input`);
  }
});

test('a GitHub release waits for its bundles: the publication lists them', async () => {
  preview(true);
  const { resources } = await loadProgram(
    { ...base(), 'polyarch:release': JSON.stringify({ repository: 'polyarch/qemu-user-static', apiUrl: 'http://127.0.0.1:9/api' }), 'polyarch:signing': 'keyless' },
    { 'polyarch:githubToken': 'token-for-the-mocks' },
  );
  const bundles = of(resources, RELEASE_ASSET).filter((r) => String(r.inputs.name).endsWith('.cosign.bundle'));
  assert.deepEqual(bundles.map((r) => r.inputs.name).sort(), ['SHA256SUMS.cosign.bundle', 'sbom.spdx.json.cosign.bundle']);
  const publication = of(resources, PUBLICATION)[0]!;
  for (const b of bundles) assert.ok(publication.dependencies.some((d) => d.endsWith(`::${b.name}`)), `the publication waits for ${b.inputs.name}`);
});

test('keyless images: every pushed image and index signed by its digest, with the SBOM attached', async () => {
  preview(true);
  const { resources } = await loadProgram(
    { ...base(), 'polyarch:release': 'false', 'polyarch:signing': 'keyless', 'polyarch:registry': JSON.stringify({ server: 'ghcr.io', repository: 'polyarch/qemu-user-static', username: 'ci-bot', push: true }) },
    { 'polyarch:registryPassword': 'registry-password-77' },
  );
  const pushed = resources.filter((r) => r.type === 'docker-build:index:Image' || r.type === 'docker-build:index:Index').map((r) => r.name.replace(/^images-/, ''));
  const signatures = of(resources, IMAGE_SIG);
  assert.deepEqual(signatures.map((r) => r.name.replace(/^images-sign-/, '')).sort(), pushed.sort(), 'one signature per image and index');
  for (const s of signatures) {
    assert.match(String(s.inputs.ref), /@sha256:[0-9a-f]{64}$/, `${s.name} signs a digest`);
    assert.equal(s.inputs.mode, 'keyless');
    assert.match(String(s.inputs.sbomFile), /\.json$|sbom/, `${s.name} attaches the SBOM`);
    assert.match(String(s.inputs.sbomSha256), /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(s.wire).includes('registry-password-77'), 'the registry password is no input of a signature');
  }
});

test('keyless without an OIDC identity: an update publishes unsigned (said in one line), never half-signed; a preview plans the signatures', async (t) => {
  const saved = { url: process.env.ACTIONS_ID_TOKEN_REQUEST_URL, token: process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN, sigstore: process.env.SIGSTORE_ID_TOKEN };
  delete process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  delete process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  delete process.env.SIGSTORE_ID_TOKEN;
  t.after(() => {
    for (const [k, v] of [['ACTIONS_ID_TOKEN_REQUEST_URL', saved.url], ['ACTIONS_ID_TOKEN_REQUEST_TOKEN', saved.token], ['SIGSTORE_ID_TOKEN', saved.sigstore]] as const) if (v !== undefined) process.env[k] = v;
    preview(true);
  });
  const warnings: string[] = [];
  t.mock.method(pulumi.log, 'warn', async (message: string) => void warnings.push(message));
  const config = { ...base(), 'polyarch:release': JSON.stringify({ folder: 'out/release' }), 'polyarch:signing': 'keyless', 'polyarch:registry': JSON.stringify({ server: 'ghcr.io', repository: 'polyarch/qemu-user-static', username: 'ci-bot', push: true }) };
  const secrets = { 'polyarch:registryPassword': 'registry-password-77' };
  preview(false);
  const unsigned = (await loadProgram(config, secrets)).resources;
  assert.equal(of(unsigned, BLOB).length + of(unsigned, IMAGE_SIG).length, 0, 'nothing signed');
  assert.ok(!of(unsigned, FOLDER).some((r) => String(r.inputs.name).endsWith('.cosign.bundle')), 'no bundle');
  assert.deepEqual(warnings, [
    'polyarch:signing is keyless, but this run has no OIDC identity (GitHub Actions gives one to a job with `permissions: id-token: write`; SIGSTORE_ID_TOKEN passes one by hand): the release and images are published unsigned',
  ]);

  // The same stack in a job with an identity signs everything.
  process.env.ACTIONS_ID_TOKEN_REQUEST_URL = 'http://127.0.0.1:9/token';
  process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'request-token';
  const signed = (await loadProgram(config, secrets)).resources;
  assert.equal(of(signed, BLOB).length, 2);
  assert.ok(of(signed, IMAGE_SIG).length > 0);
  delete process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  delete process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;

  // A pull request's preview has no identity either: it plans the signatures all the same.
  preview(true);
  assert.equal(of((await loadProgram(config, secrets)).resources, BLOB).length, 2);
  assert.equal(warnings.length, 1, 'only the update without an identity warned');
});
