// The release: a GitHub release `v<qemu>-<n>` whose body lists hosts, targets, usage and
// checksums, made as a draft, one ReleaseAsset per file, and a ReleasePublication that makes
// it public once every file is there; or, on the dev stack, the same files written into a
// local folder, one FolderAsset per file. The files themselves are built beforehand
// (lib/assets, at program evaluation), so previews show each asset's digest; a signed stack
// adds a BlobSignature for SHA256SUMS and the SBOM, whose bundles are files of the release too
// (made during the update, so their digests show only then).
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { assetMode, type Asset, type AssetKind } from '../lib/assets.ts';
import { bundleName } from '../lib/cosign.ts';
import { releaseNotes } from '../lib/release-notes.ts';
import type { HostEmulators } from '../lib/emulators.ts';
import { DEFAULT_API_URL, downloadBase, releasePage } from '../lib/github-release.ts';
import { FolderAsset } from './folder-asset.ts';
import { GitHubRelease } from './github-release.ts';
import { BlobSignature } from './blob-signature.ts';
import { ReleaseAsset } from './release-asset.ts';
import { ReleasePublication } from './release-publication.ts';

export interface GitHubReleaseTarget {
  /** `owner/name` of the repository that gets the release. */
  repository: string;
  /** REST API root as is, e.g. https://ghe.example.com/api/v3 for GitHub Enterprise Server; api.github.com when unset. */
  apiUrl?: string;
}

export interface ReleaseAssetsArgs {
  /** Release tag and title, e.g. v9.2.4-1. */
  tag: string;
  /** The QEMU build the emulators come from, for the release body. */
  qemu: { version: string; release: string };
  /** Each host's emulators (lib/emulators), for the body's table of hosts and targets. */
  hosts: readonly HostEmulators[];
  /** Every file to publish, SHA256SUMS included (lib/assets `buildAssets`). */
  assets: readonly Asset[];
  /** Publish as a GitHub release. Exactly one of `github` and `folder`. */
  github?: GitHubReleaseTarget;
  /** Write the files into `<folder>/<tag>/` instead (the dev stack). */
  folder?: string;
  /** Sign SHA256SUMS and the SBOM, each bundle a file of the release (lib/cosign.ts); unset: unsigned. */
  signing?: 'key' | 'keyless';
}

/** The files whose signatures are published: SHA256SUMS vouches for every other file's bytes, the SBOM for where they came from. */
const SIGNED_KINDS: ReadonlySet<AssetKind> = new Set(['checksums', 'sbom']);

/** A file of the release as its resource takes it: bytes from a built file, or text made during the update (a signature bundle). */
interface Published {
  name: string;
  file?: string;
  text?: pulumi.Input<string>;
  sha256: pulumi.Input<string>;
  size: pulumi.Input<number>;
  contentType: string;
  mode: number;
}

/** A path the provider host (working folder: the project) resolves the same way: relative when inside the project. */
const portable = (file: string) => {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
};

export class ReleaseAssets extends pulumi.ComponentResource {
  /** The release tag. */
  public readonly tag: pulumi.Output<string>;
  /** Where the files are: the release's web page, or the local folder. */
  public readonly location: pulumi.Output<string>;
  /** Asset name -> sha256, as the asset resources hold them. */
  public readonly digests: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ReleaseAssetsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('polyarch:index:ReleaseAssets', name, {}, opts);
    if (!args.github === !args.folder) throw new Error(`ReleaseAssets ${name}: give exactly one of github and folder`);

    // Signatures first: each is a file of the release like the one it signs.
    const bundles: Published[] = args.signing
      ? args.assets.filter((a) => SIGNED_KINDS.has(a.kind)).map((a) => {
          const sig = new BlobSignature(`${name}-sign-${a.name}`, { file: portable(a.file), sha256: a.sha256, mode: args.signing! }, { parent: this });
          return { name: bundleName(a.name), text: sig.bundle, sha256: sig.bundleSha256, size: sig.bundleSize, contentType: 'application/json', mode: 0o644 };
        })
      : [];
    const published: Published[] = [...args.assets.map((a) => ({ ...a, file: portable(a.file), mode: assetMode(a) })), ...bundles];

    let files: (ReleaseAsset | FolderAsset)[];
    if (args.github) {
      const [owner, repo] = args.github.repository.split('/') as [string, string];
      const apiUrl = args.github.apiUrl ?? DEFAULT_API_URL;
      // Published download URLs must keep working: a QEMU bump's new tag replaces the release
      // and its assets, and neither that nor `pulumi destroy` may delete the old ones. So the
      // release is retained, and its files go only with it (deletedWith): a file the stack no
      // longer publishes (a target dropped) still leaves the current release.
      const body = releaseNotes({ ...args, downloadBase: downloadBase(apiUrl, args.github.repository, args.tag) });
      // Every built file by name: a published release's listing never changes, which the
      // release's diff checks at preview. (A signature follows from the file it signs.)
      const expected = Object.fromEntries(args.assets.map((a) => [a.name, { sha256: a.sha256, size: a.size }]));
      const release = new GitHubRelease(name, { apiUrl, owner, repo, tag: args.tag, name: args.tag, body, files: expected }, { parent: this, retainOnDelete: true });
      // Each asset's diff compares the tag, known at preview; the release's id, which the
      // engine makes unknown whenever the notes change, is passed along but not compared.
      files = published.map(
        (a) =>
          new ReleaseAsset(
            `${name}-${a.name}`,
            { apiUrl, owner, repo, tag: args.tag, releaseId: release.releaseId, name: a.name, ...(a.file !== undefined ? { file: a.file } : { text: a.text }), sha256: a.sha256, size: a.size, contentType: a.contentType },
            { parent: this, deletedWith: release },
          ),
      );
      // Public only once every file, signatures included, is there: the release's listing must match this.
      const listing = pulumi.all(published.map((a) => pulumi.all([a.sha256, a.size]).apply(([sha256, size]) => [a.name, { sha256, size }] as const))).apply((e) => Object.fromEntries(e));
      new ReleasePublication(`${name}-publish`, { apiUrl, owner, repo, tag: args.tag, releaseId: release.releaseId, files: listing }, { parent: this, dependsOn: files, retainOnDelete: true });
      // Known at preview (the resources' own URLs are not): GitHub's web root, or a GHES host's.
      this.location = pulumi.output(releasePage(apiUrl, args.github.repository, args.tag));
    } else {
      const dir = path.join(args.folder!, args.tag);
      files = published.map(
        (a) => new FolderAsset(`${name}-${a.name}`, { dir, name: a.name, ...(a.file !== undefined ? { file: a.file } : { text: a.text }), sha256: a.sha256, size: a.size, mode: a.mode }, { parent: this }),
      );
      this.location = pulumi.output(path.resolve(dir));
    }

    this.tag = pulumi.output(args.tag);
    this.digests = pulumi.all(files.map((f) => f.sha256)).apply((shas) => Object.fromEntries(published.map((a, i) => [a.name, shas[i]!])));
    this.registerOutputs({ tag: this.tag, location: this.location, digests: this.digests, files: files.map((f) => f.urn) });
  }
}
