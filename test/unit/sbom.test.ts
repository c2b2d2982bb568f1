// The release's SBOM (lib/sbom.ts, written by buildAssets): an SPDX 2.3 document that SPDX's own
// validator accepts, built from the fixture RPMs of two hosts as a lockfile pins them. Its
// checksums are the files' own, its relationships say which RPM and which tarball hold each
// emulator, and it is byte-reproducible: the same inputs give the same bytes and namespace,
// other pins another namespace.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { buildAssets, hostTarballName, SBOM_FILE, SUMS_FILE, tarballName, type BuiltAssets } from '../../lib/assets.ts';
import { prepareEmulators, type HostEmulators } from '../../lib/emulators.ts';
import { releaseTag, type Lock } from '../../lib/lock.ts';
import { KNOWN_LICENSE_IDS, licenseExpressionRefs, SBOM_RECIPE } from '../../lib/sbom.ts';
import { readRpm } from '../../lib/rpm.ts';
import { buildFixtureRpms } from '../fixtures/rpms.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasSpdxTools, validateSpdx } from '../helpers/spdx.ts';
import { requireSystem } from '../helpers/system.ts';

const HOSTS = ['x86_64', 'aarch64'] as const;
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `polyarch-sbom-${tag}-`));
const hash = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');

interface Checksum { algorithm: string; checksumValue: string }
interface SpdxFile { SPDXID: string; fileName: string; fileTypes: string[]; checksums: Checksum[]; comment: string }
interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo: string;
  packageFileName?: string;
  supplier?: string;
  downloadLocation: string;
  filesAnalyzed: boolean;
  checksums?: Checksum[];
  licenseDeclared: string;
  builtDate?: string;
  externalRefs?: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
  comment: string;
}
interface Doc {
  spdxVersion: string;
  dataLicense: string;
  SPDXID: string;
  name: string;
  documentNamespace: string;
  comment: string;
  creationInfo: { created: string; creators: string[] };
  packages: SpdxPackage[];
  files: SpdxFile[];
  hasExtractedLicensingInfos?: { licenseId: string; extractedText: string; name: string; comment: string }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

let lock: Lock;
let cacheDir = '';
let emulatorsDir = '';
let hosts: HostEmulators[] = [];
let built: BuiltAssets;
let assetCache = '';
let sbomFile = '';
let doc: Doc;

const sbomOf = (b: BuiltAssets) => b.assets.find((a) => a.name === SBOM_FILE) ?? assert.fail('no SBOM among the assets');
const read = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Doc;
const contains = (d: Doc, from: string) => d.relationships.filter((r) => r.spdxElementId === from && r.relationshipType === 'CONTAINS').map((r) => r.relatedSpdxElement);
const containers = (d: Doc, to: string) => d.relationships.filter((r) => r.relatedSpdxElement === to && r.relationshipType === 'CONTAINS').map((r) => r.spdxElementId);
const checksum = (sums: Checksum[] | undefined, algorithm: string) => sums?.find((c) => c.algorithm === algorithm)?.checksumValue;

before(async () => {
  ({ lock, cacheDir } = await fixtureLock(HOSTS));
  emulatorsDir = tmp('emulators');
  hosts = await Promise.all(HOSTS.map((h) => prepareEmulators(lock, h, { cacheDir, emulatorsDir, targets: 'all' })));
  assetCache = tmp('cache');
  built = await buildAssets(hosts, { cacheDir: assetCache, releaseTag: releaseTag(lock) });
  sbomFile = sbomOf(built).file;
  doc = read(sbomFile);
});

test('the SBOM is an SPDX 2.3 document that SPDX\'s validator accepts, in a fixed layout', async (t) => {
  const text = fs.readFileSync(sbomFile, 'utf8');
  assert.equal(text, `${JSON.stringify(JSON.parse(text), null, 2)}\n`, '2-space JSON and a final newline');
  assert.deepEqual(Object.keys(doc), ['spdxVersion', 'dataLicense', 'SPDXID', 'name', 'documentNamespace', 'comment', 'creationInfo', 'packages', 'files', 'relationships'], 'keys in a fixed order');
  assert.equal(doc.spdxVersion, 'SPDX-2.3', 'SPDX version');
  assert.equal(doc.dataLicense, 'CC0-1.0', 'data license');
  assert.equal(doc.name, 'qemu-user-static-v9.2.4-1', 'named for the release tag');
  // The recipe, not the package's version: a version bump must not change a published release's SBOM.
  assert.deepEqual(doc.creationInfo.creators, [`Tool: ${SBOM_RECIPE}`], 'the creator is the SBOM recipe');
  assert.match(doc.documentNamespace, /^https:\/\/spdx\.org\/spdxdocs\/polyarch-qemu-user-static-v9\.2\.4-1-[0-9a-f]{64}$/, 'namespace');
  assert.match(doc.comment, /except SHA256SUMS \(it lists this document's sha256/, 'the comment says why SHA256SUMS is not listed');
  // Never the time of the run: the newest pinned RPM's BuildTime.
  const newest = Math.max(...hosts.flatMap((h) => h.rpms.map((r) => r.buildTime ?? 0)));
  assert.equal(doc.creationInfo.created, new Date(newest * 1000).toISOString().replace(/\.000Z$/, 'Z'), 'created is the newest BuildTime');
  assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'created without milliseconds');
  if (!requireSystem(t, hasSpdxTools)) return;
  await validateSpdx(sbomFile);
});

test('every published file but SHA256SUMS and the SBOM is a file element whose SHA1 and SHA256 are its bytes\'', () => {
  const published = built.assets.filter((a) => a.name !== SUMS_FILE && a.name !== SBOM_FILE);
  const release = doc.packages[0]!;
  assert.equal(release.SPDXID, 'SPDXRef-Release-qemu-user-static-v9.2.4-1', 'the release package comes first');
  assert.deepEqual({ name: release.name, versionInfo: release.versionInfo }, { name: 'qemu-user-static', versionInfo: 'v9.2.4-1' }, 'the release package');
  assert.deepEqual(doc.relationships.filter((r) => r.spdxElementId === 'SPDXRef-DOCUMENT'), [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: release.SPDXID }], 'the document describes the release');
  const byId = new Map(doc.files.map((f) => [f.SPDXID, f]));
  const inRelease = contains(doc, release.SPDXID).map((id) => byId.get(id) ?? assert.fail(`${id} is not a file element`));
  assert.deepEqual(inRelease.map((f) => f.fileName).sort(), published.map((a) => `./${a.name}`).sort(), 'the release contains exactly the published files');
  for (const f of inRelease) {
    const a = published.find((p) => `./${p.name}` === f.fileName)!;
    const bytes = fs.readFileSync(a.file);
    assert.equal(checksum(f.checksums, 'SHA256'), hash('sha256', bytes), `${a.name}: SHA256`);
    assert.equal(checksum(f.checksums, 'SHA1'), hash('sha1', bytes), `${a.name}: SHA1`);
    assert.deepEqual(f.fileTypes, [a.kind === 'emulator' ? 'BINARY' : 'ARCHIVE'], `${a.name}: file type`);
  }
  for (const name of [SUMS_FILE, SBOM_FILE]) assert.ok(!doc.files.some((f) => f.fileName === `./${name}`), `${name} is not in the SBOM`);
  // Beside them, only the emulators no raw file publishes (every host's but x86_64's).
  const others = hosts.filter((h) => h.host !== 'x86_64').reduce((n, h) => n + h.emulators.length, 0);
  assert.equal(doc.files.length, published.length + others, 'file elements: the published files and the other hosts\' emulators');
  // SPDX's package verification code over the published files, naming the two it leaves out.
  const code = hash('sha1', Buffer.from(inRelease.map((f) => checksum(f.checksums, 'SHA1')!).sort().join('')));
  assert.deepEqual((release as unknown as { packageVerificationCode: unknown }).packageVerificationCode, { packageVerificationCodeValue: code, packageVerificationCodeExcludedFiles: ['./SHA256SUMS', './sbom.spdx.json'] }, 'verification code');
});

test('each host\'s emulator is one element: its RPM and its tarballs CONTAIN it, and x86_64\'s is the raw file', () => {
  const byId = new Map(doc.files.map((f) => [f.SPDXID, f]));
  const rpms = new Map(doc.packages.slice(1).map((p) => [p.SPDXID, p]));
  // A published file by its name: among the release's elements (another host's emulator has the
  // same file name, qemu-T-static, as it has in its tarball).
  const published = new Set(contains(doc, doc.packages[0]!.SPDXID));
  const file = (name: string) => doc.files.find((f) => f.fileName === `./${name}` && published.has(f.SPDXID)) ?? assert.fail(`no published file element for ${name}`);
  for (const h of hosts) {
    for (const e of h.emulators) {
      const what = `${h.host}'s qemu-${e.cpu}-static`;
      const tarball = file(hostTarballName(h.host, e.cpu));
      const inside = contains(doc, tarball.SPDXID);
      assert.equal(inside.length, 1, `${hostTarballName(h.host, e.cpu)} holds one file`);
      const element = byId.get(inside[0]!) ?? assert.fail(`${what}: not a file element`);
      const bytes = fs.readFileSync(path.join(h.dir, e.file));
      assert.equal(checksum(element.checksums, 'SHA256'), e.sha256, `${what}: SHA256`);
      assert.equal(checksum(element.checksums, 'SHA1'), hash('sha1', bytes), `${what}: SHA1`);
      assert.equal(element.fileName, `./qemu-${e.cpu}-static`, `${what}: its file name`);
      // The RPM the lockfile pins it in, for this host, and no other.
      const pin = lock.hosts[h.host]!.find((p) => p.emulators.includes(e.cpu))!;
      const from = containers(doc, element.SPDXID).map((id) => rpms.get(id)).filter((p) => p !== undefined);
      assert.deepEqual(from.map((p) => [p.name, checksum(p.checksums, 'SHA256')]), [[pin.name, pin.sha256]], `${what}: one RPM contains it, the pinned one`);
      assert.match(from[0]!.packageFileName!, new RegExp(`\\.${h.host}\\.rpm$`), `${what}: from the ${h.host} RPM`);
      const release = contains(doc, doc.packages[0]!.SPDXID);
      if (h.host === 'x86_64') {
        assert.equal(file(`qemu-${e.cpu}-static`).SPDXID, element.SPDXID, `${what}: the raw file is the same element`);
        assert.ok(release.includes(element.SPDXID), `${what}: published raw`);
        assert.deepEqual(contains(doc, file(tarballName(e.cpu)).SPDXID), [element.SPDXID], `${what}: the unprefixed tarball holds it too`);
      } else {
        assert.ok(!release.includes(element.SPDXID), `${what}: not published raw`);
      }
    }
  }
});

test('one package per pinned RPM: name, epoch-version-release, arch, the header\'s License, the koji URL and sha256', async (t) => {
  const rpmPackages = doc.packages.slice(1);
  const pins = HOSTS.flatMap((h) => lock.hosts[h]!.map((p) => ({ host: h, ...p })));
  assert.equal(rpmPackages.length, pins.length, 'one package per pin');
  // The fixture spec's License tag, read from the RPM header.
  const [fixture] = buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' }).filter((f) => /qemu-user-static-arm-/.test(f));
  const header = readRpm(fs.readFileSync(fixture!), fixture!);
  assert.deepEqual({ license: header.license, epoch: header.epoch }, { license: 'GPL-2.0-or-later', epoch: undefined }, 'the fixture header');
  assert.ok(Number.isInteger(header.buildTime), 'the fixture header has a BuildTime');
  for (const pin of pins) {
    const p = rpmPackages.find((x) => checksum(x.checksums, 'SHA256') === pin.sha256) ?? assert.fail(`${pin.name} (${pin.host}): no package`);
    assert.equal(p.name, pin.name, 'name');
    assert.equal(p.versionInfo, '9.2.4-1.fc42', `${pin.name}: version-release, no epoch`);
    assert.equal(p.packageFileName, `${pin.name}-9.2.4-1.fc42.${pin.host}.rpm`, `${pin.name}: file name`);
    assert.equal(p.licenseDeclared, header.license, `${pin.name}: the License tag`);
    assert.equal(p.supplier, 'Organization: Fedora Project', `${pin.name}: supplier`);
    assert.equal(p.filesAnalyzed, true, `${pin.name}: files analyzed (it CONTAINS its emulators)`);
    assert.deepEqual(p.externalRefs, [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:rpm/fedora/${pin.name}@9.2.4-1.fc42?arch=${pin.host}` }], `${pin.name}: purl`);
    assert.match(p.builtDate ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, `${pin.name}: built date`);
    // The fixture koji listens on loopback: not a download location SPDX's validator takes, so
    // NOASSERTION, and the URL in the comment.
    assert.equal(p.downloadLocation, 'NOASSERTION', `${pin.name}: a loopback URL`);
    assert.ok(p.comment.includes(`downloaded from ${pin.url}`), `${pin.name}: the URL in the comment`);
  }

  // The same RPMs pinned at a koji with a domain name (as Fedora's is): that URL is the download
  // location, the extraction is reused, and the document changes with it (another namespace).
  const mirror: Lock = { ...lock, hosts: Object.fromEntries(HOSTS.map((h) => [h, lock.hosts[h]!.map((p) => ({ ...p, url: p.url.replace(/^http:\/\/[^/]+/, 'https://koji.example.org') }))])) };
  const moved = await Promise.all(HOSTS.map((h) => prepareEmulators(mirror, h, { cacheDir, emulatorsDir, targets: 'all' })));
  const movedBuilt = await buildAssets(moved, { cacheDir: assetCache, releaseTag: releaseTag(mirror) });
  assert.equal(movedBuilt.compressed, 0, 'nothing compressed again');
  const movedDoc = read(sbomOf(movedBuilt).file);
  for (const pin of pins) {
    const p = movedDoc.packages.find((x) => checksum(x.checksums, 'SHA256') === pin.sha256)!;
    assert.equal(p.downloadLocation, pin.url.replace(/^http:\/\/[^/]+/, 'https://koji.example.org'), `${pin.name}: the koji URL`);
  }
  assert.notEqual(movedDoc.documentNamespace, doc.documentNamespace, 'another download location, another namespace');
  if (!requireSystem(t, hasSpdxTools)) return;
  await validateSpdx(sbomOf(movedBuilt).file);
});

test('byte-reproducible: a cold build elsewhere, a warm build and another host order give the same bytes; SHA256SUMS lists it', async () => {
  const bytes = fs.readFileSync(sbomFile);
  const cold = await buildAssets(hosts, { cacheDir: tmp('cold'), releaseTag: releaseTag(lock) });
  const warm = await buildAssets([...hosts].reverse(), { cacheDir: assetCache, releaseTag: releaseTag(lock) });
  assert.equal(warm.compressed, 0, 'the warm build compressed nothing');
  for (const [what, b] of [['cold', cold], ['warm, hosts reversed', warm]] as const) {
    assert.ok(fs.readFileSync(sbomOf(b).file).equals(bytes), `${what}: the same SBOM bytes`);
    assert.equal(sbomOf(b).sha256, hash('sha256', bytes), `${what}: the same digest`);
  }
  const sums = fs.readFileSync(built.assets.find((a) => a.name === SUMS_FILE)!.file, 'utf8');
  assert.ok(sums.includes(`${hash('sha256', bytes)}  ${SBOM_FILE}\n`), 'SHA256SUMS lists the SBOM');
});

test('other pins (a rebuilt emulator) give another namespace; another release tag too', async () => {
  const rebuilt = await fixtureLock(['x86_64'], undefined, { alter: 'riscv64' });
  const mine = await buildAssets([hosts[0]!], { cacheDir: assetCache, releaseTag: releaseTag(lock) });
  const other = await prepareEmulators(rebuilt.lock, 'x86_64', { cacheDir: rebuilt.cacheDir, emulatorsDir, targets: 'all' });
  const theirs = await buildAssets([other], { cacheDir: assetCache, releaseTag: releaseTag(rebuilt.lock) });
  const [a, b] = [read(sbomOf(mine).file), read(sbomOf(theirs).file)];
  assert.equal(releaseTag(rebuilt.lock), releaseTag(lock), 'the same tag (a lockfile made afresh), yet');
  assert.notEqual(a.documentNamespace, b.documentNamespace, 'other pins, another namespace');
  const retagged = read(sbomOf(await buildAssets([hosts[0]!], { cacheDir: assetCache, releaseTag: 'v9.2.4-2' })).file);
  assert.notEqual(retagged.documentNamespace, a.documentNamespace, 'another tag, another namespace');
  assert.equal(retagged.packages[0]!.versionInfo, 'v9.2.4-2', 'the release package carries the tag');
  // The same inputs again: the same namespace.
  assert.equal(read(sbomOf(await buildAssets([hosts[0]!], { cacheDir: assetCache, releaseTag: releaseTag(lock) })).file).documentNamespace, a.documentNamespace, 'same inputs, same namespace');
});

test('License tags: an SPDX expression is kept, anything else becomes a LicenseRef holding it verbatim; an Epoch shows in the version and purl; the document still validates', async (t) => {
  const known = `(${KNOWN_LICENSE_IDS.licenses.join(' OR ')}) AND ${KNOWN_LICENSE_IDS.exceptions.map((e) => `GPL-2.0-or-later WITH ${e}`).join(' AND ')}`;
  const tags = [
    // Fedora's qemu License since the SPDX migration, with a Fedora LicenseRef.
    'Apache-2.0 AND BSD-2-Clause AND BSD-3-Clause AND FSFAP AND GPL-1.0-or-later AND GPL-2.0-only AND GPL-2.0-or-later AND GPL-2.0-or-later WITH GCC-exception-2.0 AND LGPL-2.0-only AND LGPL-2.0-or-later AND LGPL-2.1-only AND LGPL-2.1-or-later AND MIT AND LicenseRef-Fedora-Public-Domain AND CC-BY-3.0',
    // Fedora 35 and older: free text.
    'GPLv2 and BSD and MIT and CC-BY',
    'GPL (v2)',
    'MIT and Apache-2.0',
    'GPL-2.0-or-later WITH MIT',
    '(MIT',
    'GPL-2.0-only "quoted" \\ back\nslash',
    known,
  ];
  let i = 0;
  const odd = hosts.map((h) => ({ ...h, rpms: h.rpms.map((r) => ({ ...r, license: tags[i++ % tags.length]!, ...(r.name.endsWith('-arm') && { epoch: 2 }) })) }));
  const b = await buildAssets(odd, { cacheDir: assetCache, releaseTag: releaseTag(lock) });
  const d = read(sbomOf(b).file);
  const refs = new Map((d.hasExtractedLicensingInfos ?? []).map((x) => [x.licenseId, x]));
  for (const h of odd) {
    for (const r of h.rpms) {
      const p = d.packages.find((x) => checksum(x.checksums, 'SHA256') === r.sha256)!;
      if (licenseExpressionRefs(r.license) !== undefined) {
        assert.equal(p.licenseDeclared, r.license, `${r.license}: kept as the expression it is`);
      } else {
        assert.match(p.licenseDeclared, /^LicenseRef-RPM-License-[0-9a-f]{16}$/, `${r.license}: a LicenseRef`);
        assert.equal(refs.get(p.licenseDeclared)?.extractedText, r.license, `${r.license}: its text verbatim`);
      }
      if (r.epoch !== undefined) {
        assert.equal(p.versionInfo, '2:9.2.4-1.fc42', `${r.name}: epoch:version-release`);
        assert.equal(p.externalRefs![0]!.referenceLocator, `pkg:rpm/fedora/${r.name}@9.2.4-1.fc42?arch=${h.host}&epoch=2`, `${r.name}: purl with its epoch`);
      }
    }
  }
  assert.ok(refs.has('LicenseRef-Fedora-Public-Domain'), 'a LicenseRef an expression names is defined');
  for (const [tag, valid] of [[tags[0]!, true], [known, true], ['GPLv2 and BSD and MIT and CC-BY', false], ['MIT and Apache-2.0', false], ['GPL-2.0-or-later WITH MIT', false], ['(MIT', false], ['MIT AND', false], ['GPL-2-only', false]] as const) {
    assert.equal(licenseExpressionRefs(tag) !== undefined, valid, `${tag}: ${valid ? 'an expression' : 'not one'}`);
  }
  if (!requireSystem(t, hasSpdxTools)) return;
  await validateSpdx(sbomOf(b).file);
});
