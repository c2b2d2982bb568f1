// GitHub releases and their assets over Octokit, the operations behind the GitHubRelease,
// ReleaseAsset and ReleasePublication resources. A release is public only when whole: it is
// made (or a dead run's is adopted) as a draft, its assets upload to the draft, and
// `publishRelease` checks the listing against the digests before it makes it public. A
// published release's files never change: every asset write to one is refused here with the
// way out (a new tag), whether or not the repository has GitHub's immutable releases on.
// 5xx answers are retried with backoff (plugin-retry); rate limits are waited out as GitHub
// says (plugin-throttling, which also spaces writes a second apart) up to a bound, then end in
// a one-line error that says which limit and until when. 401, 403, 404 and 422 become one-line
// errors that name the action and never the token. Every request is bounded by the download
// stall timeout and total (timedFetch), so a GitHub that stops answering fails, not hangs.
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import { sha256 } from './digest.ts';
import { timedFetch } from './fetch.ts';

export const DEFAULT_API_URL = 'https://api.github.com';
/** The way out whenever published files would have to change. */
export const NEW_TAG_HINT = 'publish the new files under a new tag instead: raise "releaseNumber" in the lockfile (the n of v<qemu>-<n>) and run again';
/** How long a rate limit may be waited out, in seconds, before the run stops and says until when ($POLYARCH_GITHUB_MAX_WAIT). */
export const DEFAULT_MAX_WAIT = 900;

export interface ClientOptions {
  token: string;
  /** REST API root, e.g. https://api.github.com or https://ghe.example.com/api/v3. */
  apiUrl?: string;
  /** Retries for 5xx answers. */
  retries?: number;
  /** Milliseconds per second of backoff and of GitHub's retry-after; tests shrink it. */
  retryAfterBaseValue?: number;
  /** Longest rate-limit wait in seconds that is waited out; a longer one stops the run. */
  maxWait?: number;
  /** Per-request bounds in ms; default as for downloads ($POLYARCH_STALL_TIMEOUT, $POLYARCH_FETCH_TIMEOUT). */
  stallTimeout?: number;
  timeout?: number;
}

const Client = Octokit.plugin(retry, throttling);
export type GitHub = InstanceType<typeof Client>;

const envSeconds = (v: string | undefined) => (v && /^\d+$/.test(v) ? Number(v) : undefined);

export function githubClient(o: ClientOptions): GitHub {
  if (!o.token) throw new Error('no GitHub token: set the secret polyarch:githubToken (or GITHUB_TOKEN)');
  const retries = o.retries ?? 4;
  const base = o.retryAfterBaseValue ?? 1000;
  const maxWait = o.maxWait ?? envSeconds(process.env.POLYARCH_GITHUB_MAX_WAIT) ?? DEFAULT_MAX_WAIT;
  // A sliding window can answer "wait" several times in a row; each wait is bounded by maxWait.
  const waitOut = (kind: string) => (after: number, req: { method: string; url: string }, _o: unknown, count: number) => {
    if (after > maxWait || count >= 10) return false;
    console.warn(`GitHub ${kind} on ${req.method} ${req.url}: waiting ${after}s as GitHub asks`);
    return true;
  };
  return new Client({
    auth: o.token,
    baseUrl: (o.apiUrl ?? DEFAULT_API_URL).replace(/\/+$/, ''),
    userAgent: 'polyarch-qemu-user-static',
    request: { fetch: timedFetch({ stallTimeout: o.stallTimeout, timeout: o.timeout }) },
    // 429 is a rate limit: the throttling plugin waits it out by GitHub's headers, not by backoff.
    retry: { retries, retryAfterBaseValue: base, doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451] },
    throttle: { retryAfterBaseValue: base, onSecondaryRateLimit: waitOut('secondary rate limit'), onRateLimit: waitOut('rate limit') },
    log: { debug: () => {}, info: () => {}, warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) },
  });
}

/** GitHub's web root for a REST API root: github.com for api.github.com, else the server's own (GitHub Enterprise Server). */
export function webRoot(apiUrl: string): string {
  const u = new URL(apiUrl);
  return u.hostname === 'api.github.com' ? 'https://github.com' : u.origin;
}

/** Where a published release's page is. A draft's own page URL is a temporary `untagged-` one. */
export const releasePage = (apiUrl: string, repository: string, tag: string) => `${webRoot(apiUrl)}/${repository}/releases/tag/${tag}`;

/** Where a published release's files download from: `<this>/<asset name>`. */
export const downloadBase = (apiUrl: string, repository: string, tag: string) => `${webRoot(apiUrl)}/${repository}/releases/download/${tag}`;

/** One repository. */
export interface RepoRef {
  owner: string;
  repo: string;
}

/** One release of one repository. */
export interface ReleaseRef extends RepoRef {
  releaseId: number;
}

/** An asset as GitHub holds it. */
export interface RemoteAsset {
  id: number;
  name: string;
  size: number;
  /** `uploaded`, or `starter` for an upload that never finished. */
  state: string;
  /** Hex sha256 from GitHub's `digest` field, where the server reports one. */
  sha256?: string;
}

/** Bytes to publish under one name. */
export interface AssetContent {
  name: string;
  data: Buffer;
  sha256: string;
  contentType: string;
}

/** What a release must hold, by asset name, before it may be published. */
export type ExpectedFiles = Readonly<Record<string, { sha256: string; size: number }>>;

interface ApiAsset {
  id: number;
  name: string;
  size: number;
  state: string;
  digest?: string | null;
}

const toRemote = (a: ApiAsset): RemoteAsset => ({
  id: a.id,
  name: a.name,
  size: a.size,
  state: a.state,
  ...(a.digest?.startsWith('sha256:') && { sha256: a.digest.slice('sha256:'.length) }),
});

interface HttpError {
  status: number;
  response?: { data?: unknown; headers?: Record<string, string | undefined> };
}

const isHttpError = (e: unknown): e is HttpError => typeof e === 'object' && e !== null && typeof (e as HttpError).status === 'number';

function apiMessage(e: HttpError): string {
  const data = e.response?.data as { message?: string; errors?: { code?: string; field?: string; message?: string }[] } | undefined;
  const details = (data?.errors ?? []).map((x) => x.message ?? [x.field, x.code].filter(Boolean).join(' ')).filter(Boolean);
  return [data?.message, ...details].filter(Boolean).join(': ') || 'no message';
}

/** GitHub's 422 for a name (asset) or tag (release) that is taken. */
const isAlreadyExists = (e: unknown) =>
  isHttpError(e) && e.status === 422 && ((e.response?.data as { errors?: { code?: string }[] } | undefined)?.errors ?? []).some((x) => x.code === 'already_exists');

/** GitHub's 422 for a tag that an immutable release once held: it can never be used again. */
const isBurnedTag = (e: unknown) => isHttpError(e) && e.status === 422 && /used by an immutable release/i.test(apiMessage(e));

const utc = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const RESUME = 'the draft and the files uploaded so far are kept, and the next `pulumi up` goes on from there';

/** Which rate limit stopped a request, and until when, or undefined when it was not one. */
function rateLimitStop(e: HttpError): string | undefined {
  if (e.status !== 403 && e.status !== 429) return undefined;
  const h = e.response?.headers ?? {};
  if (h['x-ratelimit-remaining'] === '0') {
    const reset = Number(h['x-ratelimit-reset']);
    return `GitHub's API rate limit for this token is used up until ${reset > 0 ? utc(reset) : 'its reset time'}; run again after that (${RESUME})`;
  }
  if (e.status === 429 || /secondary rate limit/i.test(apiMessage(e))) {
    const after = Number(h['retry-after']);
    const until = after > 0 ? ` (GitHub asked for ${after}s more, until ${utc(Math.ceil(Date.now() / 1000) + after)})` : '';
    return `GitHub's secondary rate limit on content-creating requests did not lift in time${until}; run again later (${RESUME})`;
  }
  return undefined;
}

/**
 * A one-line error for a failed GitHub call, naming the action and what to check. Built from
 * the status, GitHub's message and its rate-limit headers only: never from request headers,
 * so never with the token.
 */
export function githubError(action: string, e: unknown): Error {
  // No response at all (a stall, a refused connection): Octokit calls it a 500; say what it was.
  if (!isHttpError(e) || e.status === 0 || (e.status === 500 && !e.response)) return new Error(`${action}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  const limited = rateLimitStop(e);
  if (limited) return new Error(`${action}: ${e.status} ${limited}`);
  const msg = apiMessage(e);
  const hint: Record<number, string> = {
    401: 'GitHub rejected the token; check polyarch:githubToken',
    403: 'the token may not write to this repository (it needs contents: write)',
    404: 'not found, or the token cannot see the repository',
    422: 'GitHub refused the request',
  };
  const why = hint[e.status] ?? (e.status >= 500 ? 'GitHub kept failing after retries' : 'unexpected answer');
  return new Error(`${action}: ${e.status} ${msg} (${why})`);
}

async function call<T>(action: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw githubError(action, e);
  }
}

const where = (r: ReleaseRef) => `${r.owner}/${r.repo} release ${r.releaseId}`;

/** The one-line refusal for any change to a published release's files. */
export const publishedError = (r: RepoRef, tag: string, what: string) =>
  new Error(`${r.owner}/${r.repo} release ${tag} is published, and a published release's files never change, but ${what}; ${NEW_TAG_HINT}`);

/** What a release should say: its tag, title and notes. */
export interface ReleaseSpec {
  tag: string;
  name: string;
  body: string;
}

/** A release as GitHub holds it. */
export interface RemoteRelease extends ReleaseSpec {
  id: number;
  /** Not yet public: invisible to downloads and to the lookup by tag. */
  draft: boolean;
  /** Published while the repository had immutable releases on: GitHub itself refuses asset writes. */
  immutable: boolean;
  uploadUrl: string;
}

interface ApiRelease {
  id: number;
  tag_name: string;
  name?: string | null;
  body?: string | null;
  draft?: boolean;
  immutable?: boolean;
  upload_url: string;
}

const toRelease = (r: ApiRelease): RemoteRelease => ({
  id: r.id,
  tag: r.tag_name,
  name: r.name ?? '',
  body: r.body ?? '',
  draft: r.draft ?? false,
  immutable: r.immutable ?? false,
  uploadUrl: r.upload_url,
});
const is404 = (e: unknown) => isHttpError(e) && e.status === 404;

/**
 * The release with this tag: the published one, else the oldest draft that carries it (left by
 * a run that stopped before publishing). GitHub's lookup by tag does not see drafts, so they
 * are found by listing. Undefined when there is neither.
 */
export async function findRelease(gh: GitHub, r: RepoRef, tag: string): Promise<RemoteRelease | undefined> {
  try {
    const { data } = await gh.rest.repos.getReleaseByTag({ owner: r.owner, repo: r.repo, tag });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (!is404(e)) throw githubError(`find release ${tag} of ${r.owner}/${r.repo}`, e);
  }
  const all = await call(`list the releases of ${r.owner}/${r.repo}`, () => gh.paginate(gh.rest.repos.listReleases, { owner: r.owner, repo: r.repo, per_page: 100 }));
  const drafts = (all as ApiRelease[]).filter((x) => x.draft && x.tag_name === tag).sort((a, b) => a.id - b.id);
  return drafts[0] && toRelease(drafts[0]);
}

/** The release with this id, or undefined when it is gone. */
export async function getRelease(gh: GitHub, r: ReleaseRef): Promise<RemoteRelease | undefined> {
  try {
    const { data } = await gh.rest.repos.getRelease({ owner: r.owner, repo: r.repo, release_id: r.releaseId });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (is404(e)) return undefined;
    throw githubError(`read ${where(r)}`, e);
  }
}

async function requireRelease(gh: GitHub, r: ReleaseRef): Promise<RemoteRelease> {
  const found = await getRelease(gh, r);
  if (!found) throw new Error(`${where(r)} is not there (deleted on GitHub, or the token cannot see the repository); run \`pulumi refresh\`, then \`pulumi up\` makes it again`);
  return found;
}

/** Sets the release's title and notes (GitHub lets both change after publishing); undefined when the release is gone. */
export async function updateRelease(gh: GitHub, r: ReleaseRef, s: Pick<ReleaseSpec, 'name' | 'body'>): Promise<RemoteRelease | undefined> {
  try {
    const { data } = await gh.rest.repos.updateRelease({ owner: r.owner, repo: r.repo, release_id: r.releaseId, name: s.name, body: s.body });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (is404(e)) return undefined;
    throw githubError(`update ${where(r)}`, e);
  }
}

/** Gives an existing release the spec's title and notes, writing only when they differ. */
async function adopt(gh: GitHub, r: RepoRef, found: RemoteRelease, s: ReleaseSpec): Promise<RemoteRelease> {
  if (found.name === s.name && found.body === s.body) return found;
  const updated = await updateRelease(gh, { ...r, releaseId: found.id }, s);
  if (!updated) throw new Error(`${where({ ...r, releaseId: found.id })} (${s.tag}) vanished while being adopted; run again`);
  return updated;
}

/**
 * Makes release `s.tag` as a draft, for its assets to upload to before `publishRelease`. A
 * release that already has the tag, published or a draft (left by a run that died before
 * recording it, or made by hand), is adopted and given the spec's title and notes, so a rerun
 * never fails on it and never makes a second one.
 */
export async function createRelease(gh: GitHub, r: RepoRef, s: ReleaseSpec): Promise<RemoteRelease> {
  const found = await findRelease(gh, r, s.tag);
  if (found) return adopt(gh, r, found, s);
  const action = `create release ${s.tag} of ${r.owner}/${r.repo}`;
  try {
    const { data } = await gh.rest.repos.createRelease({ owner: r.owner, repo: r.repo, tag_name: s.tag, name: s.name, body: s.body, draft: true, prerelease: false });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (isBurnedTag(e)) throw new Error(`${action}: GitHub will never take this tag again (an immutable release held it and was deleted); ${NEW_TAG_HINT}`);
    if (!isAlreadyExists(e)) throw githubError(action, e);
  }
  // Someone published the tag between the lookup and the create.
  const raced = await findRelease(gh, r, s.tag);
  if (!raced) throw new Error(`${action}: GitHub says it exists but cannot find it`);
  return adopt(gh, r, raced, s);
}

/** Every asset of the release, across pages. */
export async function listAssets(gh: GitHub, r: ReleaseRef): Promise<RemoteAsset[]> {
  const all = await call(`list the assets of ${where(r)}`, () =>
    gh.paginate(gh.rest.repos.listReleaseAssets, { owner: r.owner, repo: r.repo, release_id: r.releaseId, per_page: 100 }),
  );
  return (all as ApiAsset[]).map(toRemote);
}

/** The asset with this id, or undefined when it is gone. */
export async function getAsset(gh: GitHub, r: ReleaseRef, id: number): Promise<RemoteAsset | undefined> {
  try {
    const { data } = await gh.rest.repos.getReleaseAsset({ owner: r.owner, repo: r.repo, asset_id: id });
    return toRemote(data as ApiAsset);
  } catch (e) {
    if (is404(e)) return undefined;
    throw githubError(`read asset ${id} of ${where(r)}`, e);
  }
}

/** Deletes an asset of a draft; one that is already gone counts as deleted. */
async function removeAsset(gh: GitHub, r: ReleaseRef, id: number): Promise<void> {
  try {
    await gh.rest.repos.deleteReleaseAsset({ owner: r.owner, repo: r.repo, asset_id: id });
  } catch (e) {
    if (!is404(e)) throw githubError(`delete asset ${id} of ${where(r)}`, e);
  }
}

/** Deletes an asset of a draft. One that is gone, or whose release is, counts as deleted; one of a published release is refused. */
export async function deleteAsset(gh: GitHub, r: ReleaseRef, id: number, name: string): Promise<void> {
  const release = await getRelease(gh, r);
  if (!release) return;
  if (!release.draft) throw publishedError(r, release.tag, `${name} would be deleted`);
  await removeAsset(gh, r, id);
}

/** Whether GitHub holds exactly these bytes under the name, uploaded in full. */
const holds = (a: RemoteAsset, sha: string, size: number) => a.state === 'uploaded' && a.size === size && (a.sha256 === undefined || a.sha256 === sha);

/** Checks that GitHub stored what was sent: its name, size and (where reported) digest. */
function checkStored(a: RemoteAsset, c: AssetContent, r: ReleaseRef): RemoteAsset {
  if (a.name !== c.name) throw new Error(`${where(r)}: GitHub stored ${c.name} as ${a.name}; use only letters, digits, '.', '-' and '_' in asset names`);
  if (!holds(a, c.sha256, c.data.length)) {
    throw new Error(`${where(r)}: ${c.name} arrived as ${a.size} bytes, sha256 ${a.sha256 ?? '(not reported)'}; sent ${c.data.length} bytes, sha256 ${c.sha256}`);
  }
  return a;
}

async function upload(gh: GitHub, release: RemoteRelease, c: AssetContent): Promise<RemoteAsset> {
  const { data } = await gh.request({ method: 'POST', url: release.uploadUrl, name: c.name, data: c.data, headers: { 'content-type': c.contentType, 'content-length': c.data.length } });
  return toRemote(data as ApiAsset);
}

/**
 * Puts `c` on the release. On a draft: uploads it, and an asset of that name already there
 * (left by a failed run, or an upload GitHub never finished) is kept when it holds these
 * bytes, else deleted and the upload made again, so the release never holds two. On a
 * published release: an asset with these bytes is adopted; anything else is refused.
 */
export async function putAsset(gh: GitHub, r: ReleaseRef, c: AssetContent): Promise<RemoteAsset> {
  if (sha256(c.data) !== c.sha256) throw new Error(`${c.name}: the bytes to upload do not hash to ${c.sha256}`);
  const release = await requireRelease(gh, r);
  const holders = async () => (await listAssets(gh, r)).filter((a) => a.name === c.name);
  if (!release.draft) {
    const same = (await holders()).find((a) => holds(a, c.sha256, c.data.length));
    if (same) return same;
    throw publishedError(r, release.tag, `${c.name} would be added`);
  }
  const action = `upload ${c.name} to ${where(r)} (${release.tag}, a draft)`;
  try {
    return checkStored(await upload(gh, release, c), c, r);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e instanceof Error && !isHttpError(e) ? e : githubError(action, e);
  }
  const old = await holders();
  const same = old.find((a) => holds(a, c.sha256, c.data.length));
  if (same) return same;
  for (const a of old) await removeAsset(gh, r, a.id);
  return checkStored(await call(action, () => upload(gh, release, c)), c, r);
}

/**
 * Gives the asset `oldId` (or whatever holds `c.name`) new bytes. Only a draft's: it is not
 * public, so the old asset is deleted before the new one uploads. A published release's is refused.
 */
export async function replaceAsset(gh: GitHub, r: ReleaseRef, oldId: number | undefined, c: AssetContent): Promise<RemoteAsset> {
  const release = await requireRelease(gh, r);
  if (!release.draft) throw publishedError(r, release.tag, `${c.name} would get new bytes (sha256 ${c.sha256})`);
  for (const old of (await listAssets(gh, r)).filter((a) => a.name === c.name || a.id === oldId)) await removeAsset(gh, r, old.id);
  return putAsset(gh, r, c);
}

/** How a release's files differ from what it should hold, one phrase per name, sorted. */
export function listingProblems(held: readonly RemoteAsset[], expected: ExpectedFiles): string[] {
  const problems: string[] = [];
  const byName = new Map(held.map((a) => [a.name, a]));
  for (const [name, want] of Object.entries(expected)) {
    const a = byName.get(name);
    if (!a) problems.push(`${name} missing`);
    else if (a.state !== 'uploaded') problems.push(`${name} not uploaded in full`);
    else if (!holds(a, want.sha256, want.size)) problems.push(`${name} holds sha256 ${a.sha256 ?? '(not reported)'}, ${a.size} bytes, not ${want.sha256}`);
  }
  for (const a of held) if (!(a.name in expected)) problems.push(`${a.name} not among the files`);
  return problems.sort();
}

const summary = (problems: readonly string[]) => problems.slice(0, 3).join(', ') + (problems.length > 3 ? ` and ${problems.length - 3} more` : '');

/**
 * Makes the draft public once its listing matches `expected` name for name and digest for
 * digest; a stray file on the draft (an unfinished upload, a file no longer published) is
 * deleted first. A release that is already published must match as it is. Either way, a
 * release that does not hold exactly these files is never published, and the error says why.
 */
export async function publishRelease(gh: GitHub, r: ReleaseRef, expected: ExpectedFiles): Promise<RemoteRelease> {
  const release = await requireRelease(gh, r);
  let held = await listAssets(gh, r);
  if (release.draft) {
    const strays = held.filter((a) => !(a.name in expected) || a.state !== 'uploaded');
    for (const a of strays) await removeAsset(gh, r, a.id);
    held = held.filter((a) => !strays.includes(a));
  }
  const problems = listingProblems(held, expected);
  if (problems.length > 0) {
    if (!release.draft) throw publishedError(r, release.tag, `it holds other files than this stack publishes: ${summary(problems)}`);
    throw new Error(`${where(r)} (${release.tag}) stays a draft: ${summary(problems)}; run \`pulumi up\` again to upload them`);
  }
  if (!release.draft) return release;
  const { data } = await call(`publish ${where(r)} (${release.tag})`, () => gh.rest.repos.updateRelease({ owner: r.owner, repo: r.repo, release_id: r.releaseId, draft: false }));
  const published = toRelease(data as ApiRelease);
  if (published.draft) throw new Error(`publish ${where(r)} (${release.tag}): GitHub kept it a draft`);
  return published;
}
