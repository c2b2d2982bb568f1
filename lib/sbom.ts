// The release's SBOM: one SPDX 2.3 JSON document (sbom.spdx.json) saying which Fedora RPM
// each emulator came from and which tarball holds it, with every published file's checksums.
// Built from facts alone (the lockfile's pins, the RPM headers recorded at extraction, the
// assets' digests), so the same inputs give the same bytes, like the tarballs.
//
// Not in the document: SHA256SUMS, which lists this document's sha256 and so cannot be listed
// in it, and the document itself.
import { createHash } from 'node:crypto';
import type { HostArch } from './cpus.ts';
import { sha256 } from './digest.ts';
import { emulatorFile, nevra, type RpmFacts } from './extract.ts';

export const SBOM_FILE = 'sbom.spdx.json';

/** One emulator of a host, as extracted: its digests and the RPM (name-version-release.arch) that holds it. */
export interface SbomEmulator {
  cpu: string;
  sha256: string;
  sha1: string;
  rpm: string;
}

export interface SbomHost {
  host: HostArch;
  /** The published emulators. */
  emulators: readonly SbomEmulator[];
  /** Every RPM the lockfile pins for the host (or that was given for it). */
  rpms: readonly RpmFacts[];
}

/** One published file: a raw emulator or a tarball of one. */
export interface SbomFile {
  name: string;
  kind: 'emulator' | 'tarball';
  host: HostArch;
  target: string;
  sha256: string;
  sha1: string;
}

export interface SbomInput {
  /** The release tag, e.g. v9.2.4-1. */
  releaseTag: string;
  hosts: readonly SbomHost[];
  /** Every published file but SHA256SUMS and the SBOM. */
  files: readonly SbomFile[];
  /** The creator tool, `<name>-<version>`; SBOM_RECIPE by default. */
  tool?: string;
}

/** What the release is called in the document, as a package. */
export const RELEASE_PACKAGE = 'qemu-user-static';
const SUPPLIER = 'Organization: Fedora Project';
/** Where documents are named: a URI that need not resolve, unique per document by its content digest. */
const NAMESPACE_BASE = 'https://spdx.org/spdxdocs/polyarch-';

/**
 * The document's recipe, named as its creator tool. Not the package's version: a release's
 * files never change once published, so a version bump of this project must not change the
 * SBOM of an unchanged lockfile. Raise it with any change to the document's layout; that, like
 * a new tarball recipe, is a change to published files (a new releaseNumber).
 */
export const SBOM_RECIPE = 'polyarch-sbom-1';

/** An SPDXID from a name: letters, digits, '.' and '-' are kept, anything else becomes '-'. */
export const spdxId = (kind: string, name: string) => `SPDXRef-${kind}-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`;

/** A BuildTime as SPDX dates are written: `YYYY-MM-DDThh:mm:ssZ`. */
export const spdxDate = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The package URL of an RPM: pkg:rpm/fedora/<name>@<version>-<release>?arch=<arch>, and
 * &epoch=<n> when the header has an Epoch (qualifiers in key order, as the purl spec has them).
 */
export function rpmPurl(r: Pick<RpmFacts, 'name' | 'epoch' | 'version' | 'release' | 'arch'>): string {
  const enc = (s: string) => encodeURIComponent(s);
  return `pkg:rpm/fedora/${enc(r.name)}@${enc(`${r.version}-${r.release}`)}?arch=${enc(r.arch)}${r.epoch !== undefined ? `&epoch=${r.epoch}` : ''}`;
}

/**
 * Where an RPM downloads from, as SPDX writes it. A URL whose host is not a domain name (an IP
 * address or a single label such as localhost: a private or loopback mirror) is NOASSERTION,
 * with the URL in the package's comment: SPDX's validator (pyspdxtools) accepts only hosts
 * with a top-level domain as download locations. A local file given by path is NOASSERTION.
 */
export function downloadLocation(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'NOASSERTION';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'NOASSERTION';
  return /^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$/i.test(u.hostname) ? url : 'NOASSERTION';
}

// SPDX license list identifiers this document passes through as they are; an RPM License that
// names anything else (or is not an expression at all) is kept verbatim as a LicenseRef. Only
// identifiers checked against SPDX's validator (test/unit/sbom.test.ts) belong here: a false
// "known" would make the document invalid, a missing one only costs a LicenseRef.
const LICENSES = new Set([
  '0BSD', 'AFL-2.1', 'Apache-2.0', 'Artistic-2.0', 'BSD-2-Clause', 'BSD-3-Clause', 'BSD-4-Clause', 'BSL-1.0',
  'CC-BY-3.0', 'CC-BY-4.0', 'CC-BY-SA-3.0', 'CC-BY-SA-4.0', 'CC0-1.0', 'FSFAP', 'FSFUL', 'FSFULLR',
  'GFDL-1.3-or-later', 'GPL-1.0-only', 'GPL-1.0-or-later', 'GPL-2.0-only', 'GPL-2.0-or-later', 'GPL-3.0-only', 'GPL-3.0-or-later',
  'ISC', 'LGPL-2.0-only', 'LGPL-2.0-or-later', 'LGPL-2.1-only', 'LGPL-2.1-or-later', 'LGPL-3.0-only', 'LGPL-3.0-or-later',
  'MIT', 'MPL-2.0', 'OFL-1.1', 'Unlicense', 'X11', 'Zlib',
]);
const EXCEPTIONS = new Set(['Autoconf-exception-2.0', 'Autoconf-exception-3.0', 'Bison-exception-2.2', 'Classpath-exception-2.0', 'GCC-exception-2.0', 'GCC-exception-3.1', 'Linux-syscall-note', 'LLVM-exception']);
/** Every identifier the check above accepts, for the test that holds them to the validator. */
export const KNOWN_LICENSE_IDS = { licenses: [...LICENSES], exceptions: [...EXCEPTIONS] };

const LICENSE_REF = /^LicenseRef-[A-Za-z0-9.-]+$/;

/**
 * The LicenseRefs a License tag names when it is an SPDX expression this module can vouch for
 * (known identifiers, LicenseRefs, AND, OR, WITH and parentheses, operators in upper case), or
 * undefined when it is not one.
 */
export function licenseExpressionRefs(text: string): string[] | undefined {
  const tokens = text.match(/\(|\)|[^\s()]+/g) ?? [];
  if (tokens.join('') !== text.replace(/\s+/g, '')) return undefined;
  const refs = new Set<string>();
  let at = 0;
  const peek = () => tokens[at];
  // compound := term (('AND' | 'OR') term)*; term := '(' compound ')' | license ('WITH' exception)?
  const term = (): boolean => {
    const t = tokens[at++];
    if (t === '(') return compound() && tokens[at++] === ')';
    if (t === undefined) return false;
    if (LICENSE_REF.test(t)) refs.add(t);
    else if (!LICENSES.has(t)) return false;
    if (peek() === 'WITH') {
      at++;
      const e = tokens[at++];
      return e !== undefined && EXCEPTIONS.has(e);
    }
    return true;
  };
  const compound = (): boolean => {
    if (!term()) return false;
    while (peek() === 'AND' || peek() === 'OR') {
      at++;
      if (!term()) return false;
    }
    return true;
  };
  return compound() && at === tokens.length ? [...refs].sort() : undefined;
}

interface LicensingInfo {
  licenseId: string;
  extractedText: string;
  name: string;
  comment: string;
}

type Json = string | number | boolean | Json[] | { [key: string]: Json };

/** `list` sorted by `key`, in byte order (never the locale's). */
const sortedBy = <T>(list: readonly T[], key: (x: T) => string): T[] => [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

/** The SBOM of one release, as the bytes published (2-space JSON, keys in a fixed order, a final newline). */
export function spdxSbom(input: SbomInput): string {
  const licensing = new Map<string, LicensingInfo>();
  /** licenseDeclared for a License tag: the tag itself when it is a sound expression, else a LicenseRef holding it. */
  const declared = (license: string | undefined, rpm: string): string => {
    if (license === undefined || license.trim() === '') return 'NOASSERTION';
    const refs = licenseExpressionRefs(license);
    if (refs) {
      for (const ref of refs) {
        if (!licensing.has(ref)) {
          licensing.set(ref, {
            licenseId: ref,
            extractedText: `${ref}, as the License tag of the RPM names it; the RPM carries no license text for it.`,
            name: ref.slice('LicenseRef-'.length),
            comment: 'Named by an RPM License tag (Fedora license identifiers are defined by Fedora\'s license data).',
          });
        }
      }
      return license;
    }
    const id = `LicenseRef-RPM-License-${sha256(license).slice(0, 16)}`;
    const known = licensing.get(id);
    if (known) known.comment = `${known.comment.replace(/\.$/, '')}, ${rpm}.`;
    else licensing.set(id, { licenseId: id, extractedText: license, name: license.length > 100 ? `${license.slice(0, 97)}...` : license, comment: `The License tag, verbatim (not an SPDX license expression), of ${rpm}.` });
    return id;
  };

  const release = spdxId('Release', `${RELEASE_PACKAGE}-${input.releaseTag}`);
  const packages: Record<string, Json>[] = [];
  const files = new Map<string, Record<string, Json>>();
  const relationships = new Map<string, Record<string, Json>>();
  const relate = (from: string, type: string, to: string) => relationships.set(`${from} ${type} ${to}`, { spdxElementId: from, relationshipType: type, relatedSpdxElement: to });
  const addFile = (id: string, file: Record<string, Json>) => {
    if (files.has(id)) throw new Error(`SBOM: two files would be ${id}`);
    files.set(id, file);
  };
  const checksums = (f: { sha1: string; sha256: string }) => [
    { algorithm: 'SHA1', checksumValue: f.sha1 },
    { algorithm: 'SHA256', checksumValue: f.sha256 },
  ];

  // Published files first: a raw emulator is the very element its host's emulator is.
  const emulatorIds = new Map<string, string>();
  const published = sortedBy(input.files, (f) => f.name);
  for (const f of published) {
    const id = spdxId('File', f.name);
    const what = `${emulatorFile(f.target)} for ${f.host} hosts`;
    addFile(id, { SPDXID: id, fileName: `./${f.name}`, fileTypes: [f.kind === 'emulator' ? 'BINARY' : 'ARCHIVE'], checksums: checksums(f), comment: f.kind === 'emulator' ? what : `${what}, in a reproducible tarball` });
    relate(release, 'CONTAINS', id);
    if (f.kind === 'emulator') emulatorIds.set(`${f.host} ${f.target}`, id);
  }

  let newest: number | undefined;
  for (const h of input.hosts) {
    const rpmIds = new Map<string, string>();
    for (const r of h.rpms) {
      const name = nevra(r);
      const id = spdxId('RPM', name);
      if (packages.some((p) => p.SPDXID === id)) throw new Error(`SBOM: ${name} is pinned for two hosts`);
      rpmIds.set(name, id);
      if (r.buildTime !== undefined) newest = Math.max(newest ?? 0, r.buildTime);
      const location = downloadLocation(r.url);
      const where = location === 'NOASSERTION' && /^https?:\/\//.test(r.url) ? `; downloaded from ${r.url}` : '';
      packages.push({
        SPDXID: id,
        name: r.name,
        versionInfo: `${r.epoch !== undefined ? `${r.epoch}:` : ''}${r.version}-${r.release}`,
        packageFileName: `${name}.rpm`,
        supplier: SUPPLIER,
        downloadLocation: location,
        // The content was analyzed (its emulators extracted and hashed), though only the
        // emulators are listed: SPDX lets a package CONTAIN files only when filesAnalyzed is true.
        filesAnalyzed: true,
        checksums: [{ algorithm: 'SHA256', checksumValue: r.sha256 }],
        licenseDeclared: declared(r.license, name),
        ...(r.buildTime !== undefined && { builtDate: spdxDate(r.buildTime) }),
        externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: rpmPurl(r) }],
        comment: `The ${r.arch} RPM pinned for ${h.host} hosts (${r.size} bytes)${where}.`,
      });
    }
    for (const e of h.emulators) {
      const rpm = rpmIds.get(e.rpm);
      if (!rpm) throw new Error(`SBOM: ${emulatorFile(e.cpu)} for ${h.host} comes from ${e.rpm}, which is not among the host's RPMs`);
      let id = emulatorIds.get(`${h.host} ${e.cpu}`);
      if (id) {
        const f = published.find((p) => spdxId('File', p.name) === id)!;
        if (f.sha256 !== e.sha256) throw new Error(`SBOM: ${f.name} is not the ${h.host} host's ${emulatorFile(e.cpu)}`);
      } else {
        id = spdxId('File', `${h.host}_${emulatorFile(e.cpu)}`);
        emulatorIds.set(`${h.host} ${e.cpu}`, id);
        addFile(id, { SPDXID: id, fileName: `./${emulatorFile(e.cpu)}`, fileTypes: ['BINARY'], checksums: checksums(e), comment: `${emulatorFile(e.cpu)} for ${h.host} hosts` });
      }
      relate(rpm, 'CONTAINS', id);
    }
  }
  for (const f of published) {
    if (f.kind !== 'tarball') continue;
    const emulator = emulatorIds.get(`${f.host} ${f.target}`);
    if (!emulator) throw new Error(`SBOM: ${f.name} holds an emulator the ${f.host} host does not publish`);
    relate(spdxId('File', f.name), 'CONTAINS', emulator);
  }
  relate('SPDXRef-DOCUMENT', 'DESCRIBES', release);

  // Every published file's SHA1, sorted and joined, hashed (SPDX's package verification code);
  // the two files the document cannot list are named as excluded.
  const verification = createHash('sha1').update(published.map((f) => f.sha1).sort().join('')).digest('hex');
  const releasePackage: Record<string, Json> = {
    SPDXID: release,
    name: RELEASE_PACKAGE,
    versionInfo: input.releaseTag,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: true,
    packageVerificationCode: { packageVerificationCodeValue: verification, packageVerificationCodeExcludedFiles: ['./SHA256SUMS', `./${SBOM_FILE}`] },
    licenseDeclared: 'NOASSERTION',
    comment: `Release ${input.releaseTag}: QEMU user-mode static emulators from Fedora's qemu-user-static RPMs, raw and in reproducible tarballs.`,
  };

  const document = (namespace: string): Record<string, Json> => ({
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${RELEASE_PACKAGE}-${input.releaseTag}`,
    documentNamespace: namespace,
    comment:
      `Every file of release ${input.releaseTag} with its checksums, except SHA256SUMS (it lists this document's sha256, so it cannot be listed here) and this document itself; ` +
      'the Fedora RPMs the emulators were extracted from, as the lockfile pins them, and which RPM and which tarball hold each emulator.',
    creationInfo: {
      // The newest RPM's build time: the same inputs give the same document.
      created: spdxDate(newest ?? 0),
      creators: [`Tool: ${input.tool ?? SBOM_RECIPE}`],
    },
    packages: [releasePackage, ...sortedBy(packages, (p) => p.SPDXID as string)],
    files: [...files.keys()].sort().map((id) => files.get(id)!),
    ...(licensing.size > 0 && { hasExtractedLicensingInfos: [...licensing.keys()].sort().map((id) => ({ ...licensing.get(id)! })) }),
    relationships: [...relationships.keys()].sort().map((k) => relationships.get(k)!),
  });
  const text = (d: Record<string, Json>) => `${JSON.stringify(d, null, 2)}\n`;
  // Named by the digest of everything else it says: one name per distinct document.
  const facts = sha256(text(document('')));
  return text(document(`${NAMESPACE_BASE}${RELEASE_PACKAGE}-${input.releaseTag}-${facts}`));
}
