// One GitHub release as a Pulumi resource (a dynamic provider over lib/github-release), in
// place of @pulumi/github's, whose plugin cannot be built here. It is made as a draft (or a
// dead run's draft, or the published release, is adopted): its assets upload to it, and
// ReleasePublication makes it public once they all have. A new tag (or repository) replaces
// it; new title or notes update it in place, which GitHub allows even once published. The token is read at run time from the
// stack's secret config (polyarch:githubToken, or GITHUB_TOKEN), like ReleaseAsset's: never an
// input, so never in state, and the serialized provider captures no secret.
import * as pulumi from '@pulumi/pulumi';
import type * as GitHub from '../lib/github-release.ts';
import { configureGitHub, diffKeys, gitHub, type GitHubProvider } from './provider-runtime.ts';

/** The release's inputs, as the provider receives them. */
export interface GitHubReleaseInputs {
  /** GitHub REST API root, as Octokit's baseUrl (for GitHub Enterprise Server: https://<host>/api/v3). */
  apiUrl: string;
  owner: string;
  repo: string;
  tag: string;
  /** The release's title. */
  name: string;
  /** The release notes (Markdown). */
  body: string;
  /** Every file the release holds, name -> sha256 and size: once published, they never change. */
  files: GitHub.ExpectedFiles;
}

export interface GitHubReleaseOutputs extends GitHubReleaseInputs {
  releaseId: number;
  /** The page the release has once published (a draft's own is a temporary `untagged-` one). */
  htmlUrl: string;
}

export type GitHubReleaseArgs = { [K in keyof GitHubReleaseInputs]: pulumi.Input<GitHubReleaseInputs[K]> };

const REPLACE_KEYS = ['apiUrl', 'owner', 'repo', 'tag'] as const;
const UPDATE_KEYS = ['name', 'body', 'files'] as const;

/** The names whose entry differs between two listings, for the refusal's message. */
function changedFiles(olds: GitHub.ExpectedFiles, news: GitHub.ExpectedFiles): string[] {
  const names = [...new Set([...Object.keys(olds), ...Object.keys(news)])].sort();
  return names.filter((n) => JSON.stringify(olds[n]) !== JSON.stringify(news[n]));
}

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: GitHubProvider<GitHubReleaseInputs, GitHubReleaseOutputs> = {
  configure: configureGitHub,

  async diff(_id, olds, news) {
    const d = diffKeys({ ...olds }, { ...news }, REPLACE_KEYS, UPDATE_KEYS);
    // Same tag, other files: fine while the release is a draft; once it is published, refused
    // here, at preview, before anything (its notes included) is written.
    // (State from before the listing was recorded has none to compare: the asset writes' own refusal stands then.)
    const changed = d.replaces.length === 0 && olds.files !== undefined ? changedFiles(olds.files, news.files ?? {}) : [];
    if (changed.length > 0 && olds.releaseId !== undefined) {
      const { gh, client } = await gitHub(this.token, olds.apiUrl);
      const r = await gh.getRelease(client, { owner: olds.owner, repo: olds.repo, releaseId: olds.releaseId });
      if (r && !r.draft) throw gh.publishedError(olds, olds.tag, `this update would change ${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ` and ${changed.length - 3} more` : ''}`);
    }
    return d;
  },

  async create(inputs) {
    const { gh, client } = await gitHub(this.token, inputs.apiUrl);
    const r = await gh.createRelease(client, inputs, inputs);
    return { id: String(r.id), outs: { ...inputs, releaseId: r.id, htmlUrl: gh.releasePage(inputs.apiUrl, `${inputs.owner}/${inputs.repo}`, inputs.tag) } };
  },

  async update(id, olds, news) {
    const { gh, client } = await gitHub(this.token, news.apiUrl);
    // A release deleted by hand since the last run is made again (or adopted by tag), so the
    // release id can change here; read() follows the outputs, not the engine's id.
    const r = (await gh.updateRelease(client, { ...news, releaseId: olds.releaseId ?? Number(id) }, news)) ?? (await gh.createRelease(client, news, news));
    return { outs: { ...news, releaseId: r.id, htmlUrl: gh.releasePage(news.apiUrl, `${news.owner}/${news.repo}`, news.tag) } };
  },

  async read(id, props) {
    if (!props) return { id, props };
    const { gh, client } = await gitHub(this.token, props.apiUrl);
    const r = await gh.getRelease(client, { ...props, releaseId: props.releaseId ?? Number(id) });
    // An empty id tells the engine the release is gone.
    if (!r) return { id: '', props: {} as GitHubReleaseOutputs };
    return { id, props: { ...props, tag: r.tag, name: r.name, body: r.body, releaseId: r.id, htmlUrl: gh.releasePage(props.apiUrl, `${props.owner}/${props.repo}`, r.tag) } };
  },

  // Published releases are never deleted: their download URLs are in use. Dropping the
  // resource only forgets it (ReleaseAssets also sets retainOnDelete, so the engine agrees).
  async delete() {},
};

/** A GitHub release: made as a draft or adopted by tag, its notes kept up to date, never deleted. */
export class GitHubRelease extends pulumi.dynamic.Resource {
  declare public readonly tag: pulumi.Output<string>;
  declare public readonly releaseId: pulumi.Output<number>;
  declare public readonly htmlUrl: pulumi.Output<string>;

  constructor(name: string, args: GitHubReleaseArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, releaseId: undefined, htmlUrl: undefined }, opts, 'polyarch', 'GitHubRelease');
  }
}
