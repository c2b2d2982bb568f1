// Signing on the real engine, checked by the independent verifier users run: a folder release
// and images on the TLS registry of the image tests, signed with a cosign key pair the test
// makes (keyless signing needs the public Sigstore services, which tests cannot reach; the
// key path runs the same resources). After each step the test asks cosign and sha256sum, not
// the state: the bundles verify, a tampered SHA256SUMS, a swapped tarball and an image pushed
// over a tag are each rejected, a no-change up and a refresh sign nothing, a QEMU bump signs
// exactly the new files and images, the key appears nowhere in plain text, and destroy removes
// the folder's files while the images' signatures stay and verify.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import type { Lock } from '../../lib/lock.ts';
import { engineBin, engineProject, hasEngine, parseJson, urnName, urnType, type Step } from '../helpers/engine.ts';
import { startImageWorld } from '../helpers/image-world.ts';
import { fixtureLock } from '../helpers/program.ts';
import { validateSpdx } from '../helpers/spdx.ts';
import { hasCommand, isRoot, requireSystem, type Probe } from '../helpers/system.ts';

type Fixture = { file: string; cacheDir: string; lock: Lock };
let lock: Fixture;
let bumped: Fixture;
before(async () => {
  lock = await fixtureLock(['x86_64', 'aarch64']);
  bumped = await fixtureLock(['x86_64', 'aarch64'], { version: '9.2.5', release: '1.fc42' }, { previous: lock.lock });
});

const hasCosign: Probe = () => (fs.existsSync(path.join(engineBin(), 'cosign')) ? undefined : `needs cosign in ${engineBin()} (scripts/engine.sh builds it)`);

const BLOB_SIGNATURE = 'pulumi-nodejs:dynamic/polyarch:BlobSignature';
const IMAGE_SIGNATURE = 'pulumi-nodejs:dynamic/polyarch:ImageSignature';
const PASSWORD = 'signing-test-key-password-5523';

test('signed releases and images: verified by cosign, tampering rejected, nothing signed twice, a bump signs exactly what is new, no key in the state', { timeout: 25 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCosign, hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasCommand('openssl'), hasCommand('docker-registry'), hasCommand('sha256sum'))) return;
  const world = await startImageWorld(t);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-signing-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const cosignBin = path.join(engineBin(), 'cosign');
  // cosign reads registries with Go's TLS (the test CA) and the test's credentials, never the stack's.
  const dockerConfig = path.join(work, 'docker');
  fs.mkdirSync(dockerConfig);
  fs.copyFileSync(path.join(world.certDir, 'auth.json'), path.join(dockerConfig, 'config.json'));
  const cosign = (...args: string[]) =>
    spawnSync(cosignBin, args, { cwd: work, env: { ...process.env, COSIGN_PASSWORD: PASSWORD, SSL_CERT_FILE: world.registry.bundleFile, DOCKER_CONFIG: dockerConfig }, encoding: 'utf8', timeout: 120_000 });
  const made = cosign('generate-key-pair');
  assert.equal(made.status, 0, `cosign generate-key-pair: ${made.stderr}`);
  const privateKey = fs.readFileSync(path.join(work, 'cosign.key'), 'utf8');
  const publicKey = path.join(work, 'cosign.pub');

  const folder = path.join(work, 'release');
  const stack = world.stack({
    'polyarch:lockFile': lock.file,
    'polyarch:cacheDir': lock.cacheDir,
    'polyarch:hosts': ['x86_64', 'aarch64'],
    'polyarch:targets': ['aarch64', 'riscv64'],
    'polyarch:release': { folder },
    'polyarch:signing': 'key',
  });
  const p = await engineProject(t, 'signing', { ...stack, secrets: { ...stack.secrets, 'polyarch:signingKey': privateKey, 'polyarch:signingPassword': PASSWORD } });

  /** Every signed file of a release folder verifies against the public key, and every file against SHA256SUMS. */
  const verifyFolder = (dir: string) => {
    for (const signed of ['SHA256SUMS', 'sbom.spdx.json']) {
      const r = cosign('verify-blob', '--key', publicKey, '--insecure-ignore-tlog', '--bundle', path.join(dir, `${signed}.cosign.bundle`), path.join(dir, signed));
      assert.equal(r.status, 0, `cosign verify-blob ${signed}: ${r.stderr}`);
    }
    const sums = spawnSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' });
    assert.equal(sums.status, 0, `sha256sum -c: ${sums.stdout}${sums.stderr}`);
    assert.match(sums.stdout, /^sbom\.spdx\.json: OK$/m, 'SHA256SUMS lists the SBOM');
  };
  const tags = async () => parseJson<{ imageTags: string[] }>((await p.ok(['stack', 'output', '--json'])).stdout).imageTags;
  const verifyImage = (ref: string) => cosign('verify', '--key', publicKey, '--insecure-ignore-tlog', ref);
  const digest = (ref: string) => world.skopeo('inspect', '--format', '{{.Digest}}', `docker://${ref}`).trim();
  /** The images and indexes an update pushed (created or updated), by resource name. */
  const pushed = (steps: readonly Step[]) => [...new Set(steps.filter((s) => /^docker-build:index:(Image|Index)$/.test(urnType(s.urn)) && !/^(same|delete|delete-replaced|read)$/.test(s.op)).map((s) => urnName(s.urn)))].sort();
  const signatureOps = (steps: readonly Step[], type: string) => steps.filter((s) => urnType(s.urn) === type && s.op !== 'same').map((s) => `${s.op} ${urnName(s.urn)}`).sort();
  /** The signatures an update made (created or replaced; old ones dropped with a versioned index are not signing), by the name of what they sign. */
  const signed = (steps: readonly Step[]) => [...new Set(steps.filter((s) => urnType(s.urn) === IMAGE_SIGNATURE && /^(create|replace|create-replacement)$/.test(s.op)).map((s) => urnName(s.urn).replace(/^images-sign-/, '')))].sort();
  const pushedNames = (steps: readonly Step[]) => pushed(steps).map((n) => n.replace(/^images-/, ''));

  // 1. preview plans, up makes: both files signed, every pushed image and index signed with the SBOM attached.
  const first = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--json'])).stdout);
  await p.ok(['up', '--yes']);
  assert.deepEqual(signatureOps(first.steps, BLOB_SIGNATURE), ['create release-sign-SHA256SUMS', 'create release-sign-sbom.spdx.json']);
  const v1 = path.join(folder, 'v9.2.4-1');
  verifyFolder(v1);
  await validateSpdx(path.join(v1, 'sbom.spdx.json'));
  const published = await tags();
  assert.ok(published.some((tag) => tag.endsWith(':riscv64')) && published.some((tag) => tag.endsWith(':latest')), `images and an index were pushed: ${published.join(' ')}`);
  assert.deepEqual(signed(first.steps), pushedNames(first.steps), 'one signature per pushed image and index');
  assert.ok(signed(first.steps).includes('riscv64'), 'an index was signed');
  for (const tag of published) {
    const r = verifyImage(tag);
    assert.equal(r.status, 0, `cosign verify ${tag}: ${r.stderr}`);
  }
  const attested = cosign('verify-attestation', '--key', publicKey, '--insecure-ignore-tlog', '--type', 'spdxjson', published.find((tag) => tag.endsWith(':latest'))!);
  assert.equal(attested.status, 0, `cosign verify-attestation: ${attested.stderr}`);

  // 2. Tampering is rejected by the same tools.
  const tampered = path.join(work, 'tampered');
  fs.cpSync(v1, tampered, { recursive: true });
  const sums = fs.readFileSync(path.join(tampered, 'SHA256SUMS'), 'utf8');
  fs.writeFileSync(path.join(tampered, 'SHA256SUMS'), sums.replace(/^([0-9a-f])/, (c) => (c === '0' ? '1' : '0')));
  const forged = cosign('verify-blob', '--key', publicKey, '--insecure-ignore-tlog', '--bundle', path.join(tampered, 'SHA256SUMS.cosign.bundle'), path.join(tampered, 'SHA256SUMS'));
  assert.notEqual(forged.status, 0, 'a changed SHA256SUMS must not verify');
  assert.match(forged.stderr, /invalid signature|verification failed|error/i);
  fs.copyFileSync(path.join(v1, 'SHA256SUMS'), path.join(tampered, 'SHA256SUMS'));
  fs.copyFileSync(path.join(v1, 'aarch64_qemu-riscv64-static.tar.gz'), path.join(tampered, 'x86_64_qemu-riscv64-static.tar.gz'));
  const swapped = spawnSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: tampered, encoding: 'utf8' });
  assert.notEqual(swapped.status, 0, 'a swapped tarball must fail the signed checksums');
  assert.match(swapped.stdout, /x86_64_qemu-riscv64-static\.tar\.gz: FAILED/);

  // 3. A no-change up signs nothing: the bundles are the ones made first.
  const bundles = () => ['SHA256SUMS', 'sbom.spdx.json'].map((f) => fs.readFileSync(path.join(v1, `${f}.cosign.bundle`), 'utf8'));
  const before = bundles();
  await p.ok(['up', '--yes', '--expect-no-changes']);
  // Refresh reads the bundles back from the folder and the signatures from the state: no drift.
  await p.ok(['refresh', '--yes', '--expect-no-changes']);
  assert.deepEqual(bundles(), before, 'a refresh changed a bundle');
  assert.deepEqual(bundles(), before, 'a no-change up signed again');

  // 4. An image pushed over a tag without signing fails verification.
  const over = published.find((tag) => tag.endsWith(':x86_64-aarch64'))!;
  execFileSync('skopeo', ['copy', '--all', '--src-cert-dir', world.certDir, '--dest-cert-dir', world.certDir, '--authfile', path.join(world.certDir, 'auth.json'), `docker://${world.baseImage}`, `docker://${over}`], { stdio: 'pipe' });
  const unsigned = verifyImage(over);
  assert.notEqual(unsigned.status, 0, `${over} pushed over without a signature must not verify`);
  assert.match(unsigned.stderr, /no signatures found|no matching signatures/i);

  // 5. A QEMU bump: exactly the new files and every image with a new digest are signed.
  const digests = Object.fromEntries(published.map((tag) => [tag, digest(tag)]));
  await p.setConfig('polyarch:lockFile', bumped.file);
  const bump = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--json'])).stdout);
  await p.ok(['up', '--yes']);
  assert.deepEqual(signatureOps(bump.steps, BLOB_SIGNATURE), ['replace release-sign-SHA256SUMS', 'replace release-sign-sbom.spdx.json']);
  verifyFolder(path.join(folder, 'v9.2.5-1'));
  const now = await tags();
  for (const tag of now) assert.equal(verifyImage(tag).status, 0, `cosign verify ${tag} after the bump`);
  // Every image's labels name the QEMU version, so every image and index is new, and each is signed anew.
  assert.ok(now.every((tag) => digests[tag] === undefined || digest(tag) !== digests[tag]), 'every tag moved to a new manifest');
  assert.deepEqual(signed(bump.steps), pushedNames(bump.steps), 'one new signature per new manifest');

  // 6. The key, its password and the registry password: nowhere in plain text.
  const keyBody = privateKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const state = spawnSync('pulumi', ['stack', 'export', '--stack', 'signing'], { cwd: p.dir, env: p.env, encoding: 'utf8' }).stdout;
  const history = spawnSync('pulumi', ['stack', 'history', '--stack', 'signing', '--json'], { cwd: p.dir, env: p.env, encoding: 'utf8' }).stdout;
  assert.match(state, /BlobSignature/, 'the state was read');
  for (const [where, text] of [['state', state], ['history', history], ['output', p.transcript.join('\n')]] as const) {
    for (const secret of [keyBody.slice(0, 40), PASSWORD, world.registry.password]) assert.ok(!text.includes(secret), `a secret in the ${where}`);
  }

  // 7. Destroy removes the folder's files, bundles included; the images and their signatures,
  // which users pin, stay published and still verify.
  await p.ok(['destroy', '--yes']);
  assert.deepEqual(fs.readdirSync(path.join(folder, 'v9.2.5-1')), [], 'destroy left files in the release folder');
  const kept = now.find((tag) => tag.endsWith(':latest'))!;
  const still = verifyImage(kept);
  assert.equal(still.status, 0, `cosign verify ${kept} after destroy: ${still.stderr}`);
});
