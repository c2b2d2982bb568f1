// GitHub releases and their assets over Octokit: find, create (or adopt), update and read a
// release, the operations behind the GitHubRelease resource; upload, replace, read and delete
// one asset, those behind ReleaseAsset. 5xx answers are retried with backoff
// (plugin-retry); primary and secondary rate limits wait as GitHub says (plugin-throttling),
// which also spaces writes a second apart as GitHub asks. 401, 403, 404 and 422 become one-line
// errors that name the action and never the token. Every request is bounded by the download
// stall timeout and total (timedFetch), so a GitHub that stops answering fails, not hangs.
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import { sha256 } from './digest.ts';
import { timedFetch } from './fetch.ts';

export const DEFAULT_API_URL = 'https://api.github.com';
/** Suffix of an asset's staging name while its replacement uploads. */
export const STAGING_SUFFIX = '.partial';

export interface ClientOptions {
  token: string;
  /** REST API root, e.g. https://api.github.com or https://ghe.example.com/api/v3. */
  apiUrl?: string;
  /** Retries for 5xx answers and for rate limits. */
  retries?: number;
  /** Milliseconds per second of backoff and of GitHub's retry-after; tests shrink it. */
  retryAfterBaseValue?: number;
  /** Per-request bounds in ms; default as for downloads ($POLYARCH_STALL_TIMEOUT, $POLYARCH_FETCH_TIMEOUT). */
  stallTimeout?: number;
  timeout?: number;
}

const Client = Octokit.plugin(retry, throttling);
export type GitHub = InstanceType<typeof Client>;

export function githubClient(o: ClientOptions): GitHub {
  if (!o.token) throw new Error('no GitHub token: set the secret polyarch:githubToken (or GITHUB_TOKEN)');
  const retries = o.retries ?? 4;
  const base = o.retryAfterBaseValue ?? 1000;
  return new Client({
    auth: o.token,
    baseUrl: (o.apiUrl ?? DEFAULT_API_URL).replace(/\/+$/, ''),
    userAgent: 'polyarch-qemu-user-static',
    request: { fetch: timedFetch({ stallTimeout: o.stallTimeout, timeout: o.timeout }) },
    retry: { retries, retryAfterBaseValue: base },
    throttle: {
      retryAfterBaseValue: base,
      onSecondaryRateLimit: (after: number, req: { method: string; url: string }, _o: unknown, count: number) => {
        if (count >= retries) return false;
        console.warn(`GitHub secondary rate limit on ${req.method} ${req.url}: retrying in ${after}s`);
        return true;
      },
      // The primary limit resets within the hour; wait for a short reset only.
      onRateLimit: (after: number, _r: unknown, _o: unknown, count: number) => count < 1 && after <= 60,
    },
    log: { debug: () => {}, info: () => {}, warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) },
  });
}

/** One release of one repository. */
export interface ReleaseRef {
  owner: string;
  repo: string;
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
  downloadUrl: string;
}

/** Bytes to publish under one name. */
export interface AssetContent {
  name: string;
  data: Buffer;
  sha256: string;
  contentType: string;
}

interface ApiAsset {
  id: number;
  name: string;
  size: number;
  state: string;
  digest?: string | null;
  browser_download_url: string;
}


const toRemote = (a: ApiAsset): RemoteAsset => ({
  id: a.id,
  name: a.name,
  size: a.size,
  state: a.state,
  ...(a.digest?.startsWith('sha256:') && { sha256: a.digest.slice('sha256:'.length) }),
  downloadUrl: a.browser_download_url,
});

interface HttpError {
  status: number;
  response?: { data?: unknown };
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

/**
 * A one-line error for a failed GitHub call, naming the action and what to check. Built from
 * the status and GitHub's message only: never from request headers, so never with the token.
 */
export function githubError(action: string, e: unknown): Error {
  // No response at all (a stall, a refused connection): Octokit calls it a 500; say what it was.
  if (!isHttpError(e) || e.status === 0 || (e.status === 500 && !e.response)) return new Error(`${action}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
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

/** One repository. */
export interface RepoRef {
  owner: string;
  repo: string;
}

/** What a release should say: its tag, title and notes. */
export interface ReleaseSpec {
  tag: string;
  name: string;
  body: string;
}

/** A release as GitHub holds it. */
export interface RemoteRelease extends ReleaseSpec {
  id: number;
  htmlUrl: string;
}

interface ApiRelease {
  id: number;
  tag_name: string;
  name?: string | null;
  body?: string | null;
  html_url: string;
}

const toRelease = (r: ApiRelease): RemoteRelease => ({ id: r.id, tag: r.tag_name, name: r.name ?? '', body: r.body ?? '', htmlUrl: r.html_url });
const is404 = (e: unknown) => isHttpError(e) && e.status === 404;

/** The published release with this tag, or undefined when there is none. */
export async function findRelease(gh: GitHub, r: RepoRef, tag: string): Promise<RemoteRelease | undefined> {
  try {
    const { data } = await gh.rest.repos.getReleaseByTag({ owner: r.owner, repo: r.repo, tag });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (is404(e)) return undefined;
    throw githubError(`find release ${tag} of ${r.owner}/${r.repo}`, e);
  }
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

/** Sets the release's title and notes; undefined when the release is gone. */
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
 * Publishes release `s.tag`. A release that already has the tag (left by a run that died
 * before recording it, or made by hand) is adopted and given the spec's title and notes, so
 * a rerun never fails on it and never makes a second one.
 */
export async function createRelease(gh: GitHub, r: RepoRef, s: ReleaseSpec): Promise<RemoteRelease> {
  const found = await findRelease(gh, r, s.tag);
  if (found) return adopt(gh, r, found, s);
  try {
    const { data } = await gh.rest.repos.createRelease({ owner: r.owner, repo: r.repo, tag_name: s.tag, name: s.name, body: s.body, draft: false, prerelease: false });
    return toRelease(data as ApiRelease);
  } catch (e) {
    if (!isAlreadyExists(e)) throw githubError(`create release ${s.tag} of ${r.owner}/${r.repo}`, e);
  }
  // Someone published the tag between the lookup and the create.
  const raced = await findRelease(gh, r, s.tag);
  if (!raced) throw new Error(`create release ${s.tag} of ${r.owner}/${r.repo}: GitHub says it exists but cannot find it`);
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
    if (isHttpError(e) && e.status === 404) return undefined;
    throw githubError(`read asset ${id} of ${where(r)}`, e);
  }
}

/** Deletes the asset; one that is already gone counts as deleted. */
export async function deleteAsset(gh: GitHub, r: ReleaseRef, id: number): Promise<void> {
  try {
    await gh.rest.repos.deleteReleaseAsset({ owner: r.owner, repo: r.repo, asset_id: id });
  } catch (e) {
    if (isHttpError(e) && e.status === 404) return;
    throw githubError(`delete asset ${id} of ${where(r)}`, e);
  }
}

async function uploadUrl(gh: GitHub, r: ReleaseRef): Promise<string> {
  const { data } = await call(`read ${where(r)}`, () => gh.rest.repos.getRelease({ owner: r.owner, repo: r.repo, release_id: r.releaseId }));
  return data.upload_url;
}

/** Checks that GitHub stored what was sent: its name, size and (where reported) digest. */
function checkStored(a: RemoteAsset, c: AssetContent, name: string, r: ReleaseRef): RemoteAsset {
  if (a.name !== name) throw new Error(`${where(r)}: GitHub stored ${name} as ${a.name}; use only letters, digits, '.', '-' and '_' in asset names`);
  if (a.size !== c.data.length || (a.sha256 !== undefined && a.sha256 !== c.sha256)) {
    throw new Error(`${where(r)}: ${name} arrived as ${a.size} bytes, sha256 ${a.sha256 ?? '(not reported)'}; sent ${c.data.length} bytes, sha256 ${c.sha256}`);
  }
  return a;
}

async function upload(gh: GitHub, r: ReleaseRef, url: string, name: string, c: AssetContent): Promise<RemoteAsset> {
  const { data } = await gh.request({ method: 'POST', url, name, data: c.data, headers: { 'content-type': c.contentType, 'content-length': c.data.length } });
  return toRemote(data as ApiAsset);
}

/**
 * Uploads `c` as `name` (default `c.name`). An asset of that name already on the release (left
 * by a failed run, or an upload GitHub never finished) is deleted and the upload made again, so
 * the release never holds two.
 */
export async function putAsset(gh: GitHub, r: ReleaseRef, c: AssetContent, name = c.name): Promise<RemoteAsset> {
  if (sha256(c.data) !== c.sha256) throw new Error(`${name}: the bytes to upload do not hash to ${c.sha256}`);
  const url = await uploadUrl(gh, r);
  const action = `upload ${name} to ${where(r)}`;
  try {
    return checkStored(await upload(gh, r, url, name, c), c, name, r);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e instanceof Error && !isHttpError(e) ? e : githubError(action, e);
  }
  for (const old of (await listAssets(gh, r)).filter((a) => a.name === name)) await deleteAsset(gh, r, old.id);
  return checkStored(await call(action, () => upload(gh, r, url, name, c)), c, name, r);
}

/**
 * Replaces the asset `oldId` (or whatever holds `c.name`) with new bytes, keeping the name
 * available for downloads all along but for a moment: the new bytes upload under a staging
 * name, then the old asset is deleted and the new one renamed.
 */
export async function replaceAsset(gh: GitHub, r: ReleaseRef, oldId: number | undefined, c: AssetContent): Promise<RemoteAsset> {
  const staged = await putAsset(gh, r, c, `${c.name}${STAGING_SUFFIX}`);
  const holders = (await listAssets(gh, r)).filter((a) => a.name === c.name || a.id === oldId);
  for (const old of holders) await deleteAsset(gh, r, old.id);
  const { data } = await call(`rename ${staged.name} to ${c.name} on ${where(r)}`, () =>
    gh.rest.repos.updateReleaseAsset({ owner: r.owner, repo: r.repo, asset_id: staged.id, name: c.name }),
  );
  return checkStored(toRemote(data as ApiAsset), c, c.name, r);
}
