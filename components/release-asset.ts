// One GitHub release asset as a Pulumi resource (a dynamic provider over lib/github-release).
// It uploads to the release's draft; once the release is published (ReleasePublication) its
// bytes never change, and lib/github-release refuses any write to it. Diffs are digest-based:
// new bytes update the asset in place (on a draft only), a new name or tag replaces it, the
// same bytes change nothing. The diff keys on the tag, known at preview, and not on the
// release's numeric id, which the engine makes unknown whenever the release's notes change;
// the id is an input only to spare every upload a lookup. The token is read at run time from
// the stack's secret config (polyarch:githubToken, or GITHUB_TOKEN): it is never an input, so
// never in state, and the serialized provider captures no secret.
import * as pulumi from '@pulumi/pulumi';
import type * as GitHubRelease from '../lib/github-release.ts';
import { configureGitHub, gitHub, keyedDiff, type GitHubProvider } from './provider-runtime.ts';

/** The asset's inputs, as the provider receives them. */
export interface ReleaseAssetInputs {
  /** GitHub REST API root. */
  apiUrl: string;
  owner: string;
  repo: string;
  /** The release's tag: what the diff compares. */
  tag: string;
  /** The release's id, from GitHubRelease; not compared (see above). Looked up by tag when absent. */
  releaseId?: number;
  /** Asset name on the release. */
  name: string;
  /** The bytes to publish: a path relative to the project folder, or absolute. Exactly one of `file` and `text`. */
  file?: string;
  /** The bytes to publish, given whole (a signature bundle, made during the update). */
  text?: string;
  /** Hex sha256 of the bytes; the diff compares this. */
  sha256: string;
  size: number;
  contentType: string;
}

export interface ReleaseAssetOutputs extends ReleaseAssetInputs {
  assetId: number;
  /** Where the file downloads from once the release is published. */
  downloadUrl: string;
}

export type ReleaseAssetArgs = { [K in keyof ReleaseAssetInputs]: pulumi.Input<ReleaseAssetInputs[K]> };

const REPLACE_KEYS = ['apiUrl', 'owner', 'repo', 'tag', 'name'] as const;
const UPDATE_KEYS = ['sha256', 'contentType'] as const;
/** The inputs the diff compares: where the bytes sit locally (`file`) is not among them. */
export const DIFFED_KEYS: readonly string[] = [...REPLACE_KEYS, ...UPDATE_KEYS];

type Lib = typeof GitHubRelease;
type Client = ReturnType<Lib['githubClient']>;

// Helpers the provider methods capture; like them, they run in the dynamic-provider host.

/** The release the asset belongs to: the id it was given, else the release (published or a draft) holding its tag now. */
async function release(gh: Lib, client: Client, p: ReleaseAssetInputs): Promise<GitHubRelease.ReleaseRef | undefined> {
  if (p.releaseId !== undefined) return { owner: p.owner, repo: p.repo, releaseId: p.releaseId };
  const found = await gh.findRelease(client, p, p.tag);
  return found && { owner: p.owner, repo: p.repo, releaseId: found.id };
}

/** For create and update, which need the release. */
async function requireRelease(gh: Lib, client: Client, p: ReleaseAssetInputs): Promise<GitHubRelease.ReleaseRef> {
  const r = await release(gh, client, p);
  if (!r) throw new Error(`${p.owner}/${p.repo} has no release ${p.tag}; make it before its assets (the program's GitHubRelease does)`);
  return r;
}

const downloadUrl = (gh: Lib, p: ReleaseAssetInputs) => `${gh.downloadBase(p.apiUrl, `${p.owner}/${p.repo}`, p.tag)}/${p.name}`;

/** The bytes to publish: the asset's text, or its file (relative to the project folder, the host's working folder). */
async function content(p: ReleaseAssetInputs): Promise<GitHubRelease.AssetContent> {
  const { readFile } = process.getBuiltinModule('node:fs/promises');
  const { resolve } = process.getBuiltinModule('node:path');
  const data = p.text !== undefined ? Buffer.from(p.text) : await readFile(resolve(p.file ?? ''));
  return { name: p.name, data, sha256: p.sha256, contentType: p.contentType };
}

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: GitHubProvider<ReleaseAssetInputs, ReleaseAssetOutputs> = {
  configure: configureGitHub,
  diff: keyedDiff(REPLACE_KEYS, UPDATE_KEYS),

  async create(inputs) {
    const { gh, client } = await gitHub(this.token, inputs.apiUrl);
    const target = await requireRelease(gh, client, inputs);
    const asset = await gh.putAsset(client, target, await content(inputs));
    return { id: String(asset.id), outs: { ...inputs, releaseId: target.releaseId, assetId: asset.id, downloadUrl: downloadUrl(gh, inputs) } };
  },

  async update(id, olds, news) {
    const { gh, client } = await gitHub(this.token, news.apiUrl);
    const target = await requireRelease(gh, client, news);
    const asset = await gh.replaceAsset(client, target, olds.assetId ?? Number(id), await content(news));
    return { outs: { ...news, releaseId: target.releaseId, assetId: asset.id, downloadUrl: downloadUrl(gh, news) } };
  },

  // The engine keeps the first id across updates, while an update uploads a new asset: read
  // and delete follow the outputs' assetId.
  async read(id, props) {
    if (!props) return { id, props };
    const { gh, client } = await gitHub(this.token, props.apiUrl);
    const target = await release(gh, client, props);
    const asset = target && (await gh.getAsset(client, target, props.assetId ?? Number(id)));
    // An empty id tells the engine the asset is gone (so is one whose release is gone).
    if (!target || !asset) return { id: '', props: {} as ReleaseAssetOutputs };
    return {
      id,
      props: { ...props, releaseId: target.releaseId, assetId: asset.id, name: asset.name, size: asset.size, sha256: asset.sha256 ?? props.sha256, downloadUrl: downloadUrl(gh, props) },
    };
  },

  async delete(id, props) {
    const { gh, client } = await gitHub(this.token, props.apiUrl);
    const target = await release(gh, client, props);
    // No release, nothing to delete: GitHub deletes a release's assets with it. A published
    // release's file is refused (a dropped target needs a new tag); a bump's old release is
    // never asked, as its files go with it (deletedWith) and it is retained.
    if (target) await gh.deleteAsset(client, target, props.assetId ?? Number(id), props.name);
  },
};

/** One file on a GitHub release: uploaded to its draft, replaced in place while a draft, never changed once published. */
export class ReleaseAsset extends pulumi.dynamic.Resource {
  declare public readonly name: pulumi.Output<string>;
  declare public readonly sha256: pulumi.Output<string>;
  declare public readonly assetId: pulumi.Output<number>;
  declare public readonly downloadUrl: pulumi.Output<string>;

  constructor(name: string, args: ReleaseAssetArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, assetId: undefined, downloadUrl: undefined }, opts, 'polyarch', 'ReleaseAsset');
  }
}
