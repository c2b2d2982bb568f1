// The last step of a GitHub release: make the draft public once it holds every file, as a
// Pulumi resource (a dynamic provider over lib/github-release's publishRelease). It depends
// on every ReleaseAsset, so the engine runs it only after all of them uploaded; a run that
// stops earlier leaves a draft, which nobody downloads and the next run adopts. Its input is
// the whole listing (name -> sha256 and size): the release is published only when GitHub's
// listing matches it. (That a published release's listing never changes is GitHubRelease's
// diff to say, at preview: it comes first.)
import * as pulumi from '@pulumi/pulumi';
import type * as GitHub from '../lib/github-release.ts';
import { configureGitHub, gitHub, keyedDiff, type GitHubProvider } from './provider-runtime.ts';

/** The publication's inputs, as the provider receives them. */
export interface ReleasePublicationInputs {
  /** GitHub REST API root. */
  apiUrl: string;
  owner: string;
  repo: string;
  /** The release's tag. */
  tag: string;
  /** The release's id, from GitHubRelease (not compared: unknown at preview whenever the notes change). */
  releaseId: number;
  /** Every file the release must hold before it is published: name -> sha256 and size. */
  files: GitHub.ExpectedFiles;
}

export interface ReleasePublicationOutputs extends ReleasePublicationInputs {
  /** The published release's page. */
  htmlUrl: string;
}

export type ReleasePublicationArgs = { [K in keyof ReleasePublicationInputs]: pulumi.Input<ReleasePublicationInputs[K]> };

const REPLACE_KEYS = ['apiUrl', 'owner', 'repo', 'tag'] as const;
const UPDATE_KEYS = ['files'] as const;

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: GitHubProvider<ReleasePublicationInputs, ReleasePublicationOutputs> = {
  configure: configureGitHub,
  diff: keyedDiff(REPLACE_KEYS, UPDATE_KEYS),

  async create(inputs) {
    const { gh, client } = await gitHub(this.token, inputs.apiUrl);
    const r = await gh.publishRelease(client, inputs, inputs.files);
    return { id: String(r.id), outs: { ...inputs, htmlUrl: gh.releasePage(inputs.apiUrl, `${inputs.owner}/${inputs.repo}`, inputs.tag) } };
  },

  async update(_id, _olds, news) {
    const { gh, client } = await gitHub(this.token, news.apiUrl);
    await gh.publishRelease(client, news, news.files);
    return { outs: { ...news, htmlUrl: gh.releasePage(news.apiUrl, `${news.owner}/${news.repo}`, news.tag) } };
  },

  // A release that is gone, or a draft again, is not published: an empty id tells the engine,
  // and the next up publishes it again once its files are there.
  async read(id, props) {
    if (!props) return { id, props };
    const { gh, client } = await gitHub(this.token, props.apiUrl);
    const r = await gh.getRelease(client, props);
    if (!r || r.draft) return { id: '', props: {} as ReleasePublicationOutputs };
    return { id, props };
  },

  // A published release stays published: its download URLs are in use.
  async delete() {},
};

/** Makes a GitHub release public once GitHub holds exactly its files; never unpublishes it. */
export class ReleasePublication extends pulumi.dynamic.Resource {
  declare public readonly htmlUrl: pulumi.Output<string>;

  constructor(name: string, args: ReleasePublicationArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, htmlUrl: undefined }, opts, 'polyarch', 'ReleasePublication');
  }
}
