// One GitHub release asset as a Pulumi resource (a dynamic provider over lib/github-release).
// Diffs are digest-based: new bytes update the asset in place, a new name or release replaces
// it, the same bytes change nothing. The asset names its release by tag, known at preview: the
// release's numeric id is not while the release itself updates (the engine makes a dynamic
// resource's outputs unknown then), and an unknown input would replace every asset. The id is
// looked up at run time and kept as an output. The token is read at run time from the stack's
// secret config (polyarch:githubToken, or GITHUB_TOKEN): it is never an input, so never in
// state, and the serialized provider captures no secret.
import * as pulumi from '@pulumi/pulumi';
import type * as GitHubRelease from '../lib/github-release.ts';
import { diffKeys, githubToken, loadProjectModule } from './providerRuntime.ts';

/** The asset's inputs, as the provider receives them. */
export interface ReleaseAssetInputs {
  /** GitHub REST API root. */
  apiUrl: string;
  owner: string;
  repo: string;
  /** The release's tag; the provider finds the release by it. */
  tag: string;
  /** Asset name on the release. */
  name: string;
  /** The bytes to publish: a path relative to the project folder, or absolute. */
  file: string;
  /** Hex sha256 of the bytes; the diff compares this. */
  sha256: string;
  size: number;
  contentType: string;
}

export interface ReleaseAssetOutputs extends ReleaseAssetInputs {
  /** Id of the release `tag` named at the last create or update; read and delete look it up by tag when absent. */
  releaseId?: number;
  assetId: number;
  downloadUrl: string;
}

export type ReleaseAssetArgs = { [K in keyof ReleaseAssetInputs]: pulumi.Input<ReleaseAssetInputs[K]> };

const LIB = 'lib/github-release.ts';
const REPLACE_KEYS = ['apiUrl', 'owner', 'repo', 'tag', 'name'] as const;
const UPDATE_KEYS = ['sha256', 'contentType'] as const;
/** The inputs the diff compares: where the bytes sit locally (`file`) is not among them. */
export const DIFFED_KEYS: readonly string[] = [...REPLACE_KEYS, ...UPDATE_KEYS];

interface Provider extends pulumi.dynamic.ResourceProvider<ReleaseAssetInputs, ReleaseAssetOutputs> {
  /** Set by configure; lives only in the provider host's memory. */
  token?: string;
}

type Lib = typeof GitHubRelease;
type Client = ReturnType<Lib['githubClient']>;

// Helpers the provider methods capture; like them, they run in the dynamic-provider host.

/** The release holding the asset's tag now; undefined when there is none. */
async function releaseByTag(gh: Lib, client: Client, p: ReleaseAssetInputs): Promise<GitHubRelease.ReleaseRef | undefined> {
  const found = await gh.findRelease(client, p, p.tag);
  return found && { owner: p.owner, repo: p.repo, releaseId: found.id };
}

/** For create and update, which need the release: looked up by tag every time (it may have been published again under a new id). */
async function requireRelease(gh: Lib, client: Client, p: ReleaseAssetInputs): Promise<GitHubRelease.ReleaseRef> {
  const r = await releaseByTag(gh, client, p);
  if (!r) throw new Error(`${p.owner}/${p.repo} has no release ${p.tag}; publish it before its assets (the program's GitHubRelease does)`);
  return r;
}

/** For read and delete: the release the outputs recorded, else the one holding the tag now. */
async function recordedRelease(gh: Lib, client: Client, p: ReleaseAssetOutputs): Promise<GitHubRelease.ReleaseRef | undefined> {
  return p.releaseId === undefined ? releaseByTag(gh, client, p) : { owner: p.owner, repo: p.repo, releaseId: p.releaseId };
}

// Method bodies run in the dynamic-provider host; see components/providerRuntime.ts.
const provider: Provider = {
  async configure(req) {
    this.token = githubToken(req.config);
  },

  async diff(_id, olds, news) {
    return diffKeys({ ...olds }, { ...news }, REPLACE_KEYS, UPDATE_KEYS);
  },

  async create(inputs) {
    const gh = await loadProjectModule<Lib>(LIB);
    const { readFile } = process.getBuiltinModule('node:fs/promises');
    const { resolve } = process.getBuiltinModule('node:path');
    const client = gh.githubClient({ token: this.token ?? '', apiUrl: inputs.apiUrl });
    const release = await requireRelease(gh, client, inputs);
    const data = await readFile(resolve(inputs.file));
    const asset = await gh.putAsset(client, release, { name: inputs.name, data, sha256: inputs.sha256, contentType: inputs.contentType });
    return { id: String(asset.id), outs: { ...inputs, releaseId: release.releaseId, assetId: asset.id, downloadUrl: asset.downloadUrl } };
  },

  async update(id, olds, news) {
    const gh = await loadProjectModule<Lib>(LIB);
    const { readFile } = process.getBuiltinModule('node:fs/promises');
    const { resolve } = process.getBuiltinModule('node:path');
    const client = gh.githubClient({ token: this.token ?? '', apiUrl: news.apiUrl });
    const release = await requireRelease(gh, client, news);
    const data = await readFile(resolve(news.file));
    const asset = await gh.replaceAsset(client, release, olds.assetId ?? Number(id), { name: news.name, data, sha256: news.sha256, contentType: news.contentType });
    return { outs: { ...news, releaseId: release.releaseId, assetId: asset.id, downloadUrl: asset.downloadUrl } };
  },

  // The engine keeps the first id across updates, while an update uploads a new asset: read
  // and delete follow the outputs' assetId.
  async read(id, props) {
    if (!props) return { id, props };
    const gh = await loadProjectModule<Lib>(LIB);
    const client = gh.githubClient({ token: this.token ?? '', apiUrl: props.apiUrl });
    const release = await recordedRelease(gh, client, props);
    const asset = release && (await gh.getAsset(client, release, props.assetId ?? Number(id)));
    // An empty id tells the engine the asset is gone (so is one whose release is gone).
    if (!release || !asset) return { id: '', props: {} as ReleaseAssetOutputs };
    return {
      id,
      props: { ...props, releaseId: release.releaseId, assetId: asset.id, name: asset.name, size: asset.size, sha256: asset.sha256 ?? props.sha256, downloadUrl: asset.downloadUrl },
    };
  },

  async delete(id, props) {
    const gh = await loadProjectModule<Lib>(LIB);
    const client = gh.githubClient({ token: this.token ?? '', apiUrl: props.apiUrl });
    const release = await recordedRelease(gh, client, props);
    // No release, nothing to delete: GitHub deletes a release's assets with it.
    if (release) await gh.deleteAsset(client, release, props.assetId ?? Number(id));
  },
};

/** One file on a GitHub release: uploaded, replaced in place when its digest changes, deleted when its resource is (ReleaseAssets retains published ones). */
export class ReleaseAsset extends pulumi.dynamic.Resource {
  declare public readonly name: pulumi.Output<string>;
  declare public readonly sha256: pulumi.Output<string>;
  declare public readonly assetId: pulumi.Output<number>;
  declare public readonly downloadUrl: pulumi.Output<string>;

  constructor(name: string, args: ReleaseAssetArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, assetId: undefined, downloadUrl: undefined }, opts, 'polyarch', 'ReleaseAsset');
  }
}
