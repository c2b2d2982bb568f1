// The SPDX validator the SBOM tests use (test/helpers/spdx.ts): it accepts a small SPDX 2.3
// document shaped like a release's SBOM (a binary with its SHA1 and SHA256, generated from a
// source RPM the document names with filesAnalyzed false) and rejects each of the mistakes an
// SBOM writer is likely to make, naming it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { hasSpdxTools, validateSpdx } from '../helpers/spdx.ts';
import { requireSystem } from '../helpers/system.ts';

type Doc = Record<string, unknown> & {
  creationInfo: { created: string; creators: string[] };
  packages: Record<string, unknown>[];
  files: Record<string, unknown>[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
};

const FILE = 'SPDXRef-File-qemu-aarch64-static';
const RPM = 'SPDXRef-Package-qemu-user-static-aarch64';

function sbom(): Doc {
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: 'qemu-user-static v9.2.4-1',
    documentNamespace: 'https://github.com/polyarch/qemu-user-static/releases/v9.2.4-1/spdx',
    creationInfo: { created: '2025-06-01T12:00:00Z', creators: ['Tool: polyarch-0.1.0'] },
    packages: [
      {
        SPDXID: RPM,
        name: 'qemu-user-static-aarch64',
        versionInfo: '9.2.4-1.fc42',
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        checksums: [{ algorithm: 'SHA256', checksumValue: 'b'.repeat(64) }],
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'GPL-2.0-only AND LGPL-2.1-or-later',
        copyrightText: 'NOASSERTION',
      },
    ],
    files: [
      {
        SPDXID: FILE,
        fileName: './qemu-aarch64-static',
        checksums: [
          { algorithm: 'SHA1', checksumValue: 'a'.repeat(40) },
          { algorithm: 'SHA256', checksumValue: 'c'.repeat(64) },
        ],
      },
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: FILE },
      { spdxElementId: FILE, relationshipType: 'GENERATED_FROM', relatedSpdxElement: RPM },
    ],
  };
}

function write(t: TestContext, doc: Doc): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-spdx-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sbom.spdx.json');
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

test('a minimal SPDX 2.3 document of one binary from one RPM is valid', async (t) => {
  if (!requireSystem(t, hasSpdxTools)) return;
  await validateSpdx(write(t, sbom()));
  // A LicenseRef- is fine once the document defines it.
  const doc = sbom();
  doc.packages[0]!.licenseDeclared = 'LicenseRef-qemu-user-static AND GPL-2.0-or-later';
  doc.hasExtractedLicensingInfos = [{ licenseId: 'LicenseRef-qemu-user-static', name: 'qemu-user-static', extractedText: 'See the COPYING files of QEMU.' }];
  await validateSpdx(write(t, doc));
});

const mistakes: [string, (d: Doc) => void, RegExp][] = [
  ['a file without its SHA1', (d) => (d.files[0]!.checksums = [{ algorithm: 'SHA256', checksumValue: 'c'.repeat(64) }]), /checksums must contain a SHA1 algorithm checksum/],
  ['an SPDXID with an underscore', (d) => (d.packages[0]!.SPDXID = 'SPDXRef-qemu_user_static'), /spdx_id must only contain letters, numbers, "\." and "-" and must begin with "SPDXRef-", but is: SPDXRef-qemu_user_static/],
  ['an upper-case checksum', (d) => (d.files[0]!.checksums = [{ algorithm: 'SHA1', checksumValue: 'A'.repeat(40) }]), /must consist of 40 lowercase hexadecimal digits/],
  ['a package of filesAnalyzed false that CONTAINS a file', (d) => d.relationships.push({ spdxElementId: RPM, relationshipType: 'CONTAINS', relatedSpdxElement: FILE }), /package must contain no elements if files_analyzed is False/],
  ['a LicenseRef- the document does not define', (d) => (d.packages[0]!.licenseDeclared = 'LicenseRef-qemu'), /Unrecognized license reference: LicenseRef-qemu/],
  ['a license id not on the list', (d) => (d.packages[0]!.licenseDeclared = 'GPL-2-only'), /Unrecognized license reference: GPL-2-only/],
  ['created with milliseconds (Date.toISOString)', (d) => (d.creationInfo.created = new Date(Date.UTC(2025, 5, 1)).toISOString()), /does not match format '%Y-%m-%dT%H:%M:%SZ'/],
  ['an absolute file name', (d) => (d.files[0]!.fileName = '/usr/bin/qemu-aarch64-static'), /file name must not be an absolute path/],
  ['no DESCRIBES', (d) => d.relationships.shift(), /there must be at least one relationship "SPDXRef-DOCUMENT DESCRIBES \.\.\."/],
];

for (const [what, spoil, says] of mistakes) {
  test(`rejected, saying why: ${what}`, async (t) => {
    if (!requireSystem(t, hasSpdxTools)) return;
    const doc = sbom();
    spoil(doc);
    await assert.rejects(validateSpdx(write(t, doc)), (e: Error) => {
      assert.match(e.message, /^pyspdxtools finds .*sbom\.spdx\.json invalid \(exit 1\):\n/);
      assert.match(e.message, says);
      return true;
    });
  });
}
