// GitHub releases: lib/github-release's release operations against a local server that speaks
// GitHub's REST endpoints and keeps its rules (drafts, immutable releases, rate limits): draft,
// adopt, publish only when whole, never rewrite, wait out or report the limits. Then the
// GitHubRelease provider exactly as the program serialized it under mocks, run by Pulumi's own
// dynamic-provider host in a plain node process: create, adopt, update in place, read, gone,
// never deleted, and a bad token's error.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRelease, findRelease, getRelease, githubClient, publishRelease, putAsset, updateRelease, type ExpectedFiles } from '../../lib/github-release.ts';
import { sha256 } from '../../lib/digest.ts';
import { startFakeGitHub, type FakeGitHub } from '../fixtures/github.ts';
import { checkGitHubToken, startGitHubHost } from '../helpers/dynamic-host.ts';
import { declareGitHubRelease, type Declared } from '../helpers/program.ts';

const RELEASE = 'pulumi-nodejs:dynamic/polyarch:GitHubRelease';

let fake: FakeGitHub;
before(async () => {
  fake = await startFakeGitHub();
});
after(() => fake.close());

const client = (token = fake.token, apiUrl = fake.url) => githubClient({ token, apiUrl, retryAfterBaseValue: 5 });
const repo = () => ({ owner: fake.owner, repo: fake.repo });
let tags = 0;
const freshTag = () => `v9.2.${++tags}-1`;
const withTag = (tag: string) => fake.releases().filter((r) => r.tag === tag);
const since = (n: number) => fake.log.slice(n).map((l) => `${l.method} ${l.status}`);

test('create makes a draft; find (a draft by listing: the lookup by tag does not see it), read and update it; 404 means none or gone', async () => {
  const tag = freshTag();
  assert.equal(await findRelease(client(), repo(), tag), undefined);
  const r = await createRelease(client(), repo(), { tag, name: tag, body: 'notes' });
  assert.deepEqual(withTag(tag).map((x) => [x.id, x.name, x.body, x.draft, x.prerelease]), [[r.id, tag, 'notes', true, false]]);
  assert.equal(r.draft, true);
  const n = fake.log.length;
  assert.deepEqual(await findRelease(client(), repo(), tag), r);
  assert.deepEqual(since(n), ['GET 404', 'GET 200']);
  assert.deepEqual(await getRelease(client(), { ...repo(), releaseId: r.id }), r);
  const updated = await updateRelease(client(), { ...repo(), releaseId: r.id }, { name: 'title', body: 'new notes' });
  assert.deepEqual(updated, { ...r, name: 'title', body: 'new notes' });
  fake.deleteRelease(r.id);
  assert.equal(await getRelease(client(), { ...repo(), releaseId: r.id }), undefined);
  assert.equal(await updateRelease(client(), { ...repo(), releaseId: r.id }, { name: 'x', body: 'y' }), undefined);
});

test('create adopts a release that already has the tag (a dead run, or made by hand): one release, the new notes', async () => {
  const tag = freshTag();
  const id = fake.createRelease(tag, { name: 'by hand', body: 'old notes' });
  let n = fake.log.length;
  const r = await createRelease(client(), repo(), { tag, name: tag, body: 'notes' });
  assert.equal(r.id, id);
  assert.deepEqual(since(n), ['GET 200', 'PATCH 200']);
  assert.deepEqual(withTag(tag).map((x) => [x.id, x.name, x.body]), [[id, tag, 'notes']]);
  // Already saying the right thing: nothing written.
  n = fake.log.length;
  assert.equal((await createRelease(client(), repo(), { tag, name: tag, body: 'notes' })).id, id);
  assert.deepEqual(since(n), ['GET 200']);
  // Published by someone else between the lookup and the create: GitHub's 422, then adopted.
  fake.fail({ method: 'GET', path: /\/releases\/tags\//, status: 404, body: { message: 'Not Found' } });
  n = fake.log.length;
  assert.equal((await createRelease(client(), repo(), { tag, name: tag, body: 'raced' })).id, id);
  assert.deepEqual(since(n), ['GET 404', 'GET 200', 'POST 422', 'GET 200', 'PATCH 200']);
  assert.deepEqual(withTag(tag).map((x) => x.body), ['raced']);
  // A draft left by a run that stopped before publishing (the oldest, if two): adopted, not doubled.
  const draftTag = freshTag();
  const left = fake.createRelease(draftTag, { draft: true, body: 'left' });
  fake.createRelease(draftTag, { draft: true, body: 'left too' });
  n = fake.log.length;
  assert.equal((await createRelease(client(), repo(), { tag: draftTag, name: draftTag, body: 'notes' })).id, left);
  assert.deepEqual(since(n), ['GET 404', 'GET 200', 'PATCH 200']);
  assert.equal(withTag(draftTag).length, 2, 'no third');
});

test('release errors are one line, name the action, never show the token; 5xx are retried', async () => {
  const bad = 'ghp_thisIsNotTheRightToken0123456789';
  const tag = freshTag();
  const id = fake.createRelease(tag);
  const expectations: [() => Promise<unknown>, RegExp][] = [
    [() => createRelease(client(bad), repo(), { tag: 'v1', name: 'v1', body: '' }), /^find release v1 of polyarch\/qemu-user-static: 401 Bad credentials \(GitHub rejected the token; check polyarch:githubToken\)$/],
    [() => getRelease(client(bad), { ...repo(), releaseId: id }), /^read polyarch\/qemu-user-static release \d+: 401 Bad credentials/],
    [() => updateRelease(client(bad), { ...repo(), releaseId: id }, { name: 'a', body: 'b' }), /^update polyarch\/qemu-user-static release \d+: 401 Bad credentials/],
  ];
  fake.fail({ method: 'POST', path: /\/releases$/, status: 403, body: { message: 'Resource not accessible by integration' } });
  expectations.push([() => createRelease(client(), repo(), { tag: freshTag(), name: 'x', body: '' }), /^create release v9\.2\.\d+-1 of polyarch\/qemu-user-static: 403 Resource not accessible by integration \(the token may not write/]);
  for (const [f, message] of expectations) {
    await assert.rejects(f(), (e: Error) => {
      assert.match(e.message, message);
      assert.ok(!e.message.includes(bad) && !e.message.includes(fake.token) && !e.message.includes('\n'), e.message);
      return true;
    });
  }
  fake.fail({ method: 'PATCH', status: 502, times: 2 });
  assert.equal((await updateRelease(client(), { ...repo(), releaseId: id }, { name: 'a', body: 'after 5xx' }))?.body, 'after 5xx');
});

const file = (name: string, text = name) => {
  const data = Buffer.from(text);
  return { name, data, sha256: sha256(data), contentType: 'application/octet-stream' };
};
const expect = (...files: ReturnType<typeof file>[]): ExpectedFiles => Object.fromEntries(files.map((f) => [f.name, { sha256: f.sha256, size: f.data.length }]));

test('publish: a draft goes public only when its listing matches the digests; strays go first; short of that it stays a draft and says why', async () => {
  const tag = freshTag();
  const r = { ...repo(), releaseId: (await createRelease(client(), repo(), { tag, name: tag, body: '' })).id };
  const [a, b, c] = [file('a.tar.gz'), file('b.tar.gz'), file('SHA256SUMS')];
  await putAsset(client(), r, a);
  await putAsset(client(), r, b);
  // Left by a failed run: a half upload and a file this stack no longer publishes.
  fake.seedAsset(r.releaseId, 'SHA256SUMS', Buffer.from('half'), 'starter');
  fake.seedAsset(r.releaseId, 'dropped.tar.gz', Buffer.from('old'));
  await assert.rejects(publishRelease(client(), r, expect(a, b, c)), new RegExp(`^Error: polyarch/qemu-user-static release ${r.releaseId} \\(${tag}\\) stays a draft: SHA256SUMS missing; run \`pulumi up\` again to upload them$`));
  assert.deepEqual([withTag(tag)[0]!.draft, fake.assets(r.releaseId).map((x) => x.name)], [true, ['a.tar.gz', 'b.tar.gz']], 'strays deleted, still a draft');
  await putAsset(client(), r, c);
  const n = fake.log.length;
  const published = await publishRelease(client(), r, expect(a, b, c));
  assert.equal(published.draft, false);
  assert.deepEqual(since(n), ['GET 200', 'GET 200', 'PATCH 200']);
  assert.deepEqual(fake.log.at(-1)?.event, 'publish');
  // Already published and whole: nothing written. Published but not what this stack publishes: refused.
  const m = fake.log.length;
  await publishRelease(client(), r, expect(a, b, c));
  assert.deepEqual(since(m), ['GET 200', 'GET 200']);
  await assert.rejects(publishRelease(client(), r, expect(a, b, c, file('new.tar.gz'))), /is published, and a published release's files never change, but it holds other files than this stack publishes: new\.tar\.gz missing; publish the new files under a new tag instead/);
  await assert.rejects(publishRelease(client(), r, expect(a, b, file('SHA256SUMS', 'other'))), /but it holds other files than this stack publishes: SHA256SUMS holds sha256 [0-9a-f]{64}, 10 bytes, not [0-9a-f]{64}; publish/);
});

test('immutable releases: the first publish writes no asset after publishing, GitHub itself then refuses writes, and a deleted release\'s tag is never taken again', async () => {
  const gh = await startFakeGitHub({ immutable: true });
  try {
    const c = githubClient({ token: gh.token, apiUrl: gh.url, retryAfterBaseValue: 5 });
    const where = { owner: gh.owner, repo: gh.repo };
    const r = { ...where, releaseId: (await createRelease(c, where, { tag: 'v9.2.4-1', name: 'v9.2.4-1', body: '' })).id };
    const files = [file('qemu-aarch64-static'), file('qemu-aarch64-static.tar.gz'), file('SHA256SUMS')];
    for (const f of files) await putAsset(c, r, f);
    await publishRelease(c, r, expect(...files));
    const published = gh.log.findIndex((l) => l.event === 'publish');
    assert.ok(published > 0, 'published');
    assert.equal(gh.log.filter((l) => l.event === 'asset write').length, 3);
    assert.deepEqual(gh.log.slice(published + 1).filter((l) => l.event === 'asset write'), [], 'no asset write after publishing');
    assert.equal(gh.releases()[0]!.immutable, true);
    // GitHub's own lock, under this project's refusal: a raw upload gets 422.
    const raw = await c.request({ method: 'POST', url: `${gh.url}/uploads/repos/${gh.owner}/${gh.repo}/releases/${r.releaseId}/assets?name=x`, data: Buffer.from('x'), headers: { 'content-type': 'text/plain' } }).catch((e: { status: number }) => e);
    assert.equal((raw as { status: number }).status, 422);
    // Deleted by hand: the tag is burned for good; the error names it and the way out.
    gh.deleteRelease(r.releaseId);
    await assert.rejects(createRelease(c, where, { tag: 'v9.2.4-1', name: 'v9.2.4-1', body: '' }), /^Error: create release v9\.2\.4-1 of polyarch\/qemu-user-static: GitHub will never take this tag again \(an immutable release held it and was deleted\); publish the new files under a new tag instead: raise "releaseNumber" in the lockfile/);
  } finally {
    await gh.close();
  }
});

test('rate limits: a sliding window of writes is waited out by retry-after and every file lands once; a limit past the bound, or the primary limit, stops with its reset time, and the next run goes on', async () => {
  const gh = await startFakeGitHub();
  try {
    // Real seconds here: GitHub's retry-after is honoured as given.
    const c = githubClient({ token: gh.token, apiUrl: gh.url, retryAfterBaseValue: 1000, maxWait: 60 });
    const where = { owner: gh.owner, repo: gh.repo };
    const r = { ...where, releaseId: gh.createRelease('v9.2.4-1', { draft: true }) };
    gh.limitWrites({ writes: 2, windowMs: 3000 });
    const files = ['a', 'b', 'c', 'd', 'e'].map((n) => file(n));
    for (const f of files) await putAsset(c, r, f);
    assert.ok(gh.log.some((l) => l.status === 403), 'the window was hit');
    assert.deepEqual(gh.assets(r.releaseId).map((a) => a.name), ['a', 'b', 'c', 'd', 'e'], 'each file once');

    // A window that would take an hour to clear: stopped with the time, not waited for.
    gh.limitWrites({ writes: 1, windowMs: 3_600_000 });
    await putAsset(c, r, file('f'));
    const secondary = await putAsset(c, r, file('g')).catch((e: Error) => e);
    assert.match(String(secondary), /^Error: upload g to polyarch\/qemu-user-static release \d+ \(v9\.2\.4-1, a draft\): 403 GitHub's secondary rate limit on content-creating requests did not lift in time \(GitHub asked for 3[56]\d\ds more, until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); run again later \(the draft and the files uploaded so far are kept, and the next `pulumi up` goes on from there\)$/);
    gh.limitWrites(undefined);

    // The primary limit: a limit with its reset time, not a permission problem.
    const resetAt = Math.floor(Date.now() / 1000) + 1800;
    gh.limitRequests({ remaining: 0, resetAt });
    const primary = await putAsset(c, r, file('g')).catch((e: Error) => e);
    assert.equal(String(primary), `Error: read polyarch/qemu-user-static release ${r.releaseId}: 403 GitHub's API rate limit for this token is used up until ${new Date(resetAt * 1000).toISOString().replace(/\.000Z$/, 'Z')}; run again after that (the draft and the files uploaded so far are kept, and the next \`pulumi up\` goes on from there)`);
    assert.ok(!String(primary).includes(gh.token));
    // Lifted: the rest goes on, nothing twice.
    gh.limitRequests(undefined);
    await putAsset(c, r, file('g'));
    assert.deepEqual(gh.assets(r.releaseId).map((a) => a.name), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  } finally {
    await gh.close();
  }
});

test('GitHub Enterprise: the API root is used as given, never with api/v3 added again', async () => {
  const ghes = githubClient({ token: 't', apiUrl: 'https://ghe.example.com/api/v3/' });
  assert.equal(ghes.rest.repos.getReleaseByTag.endpoint({ owner: 'o', repo: 'r', tag: 'v1' }).url, 'https://ghe.example.com/api/v3/repos/o/r/releases/tags/v1');
  assert.equal(githubClient({ token: 't' }).rest.repos.getRelease.endpoint({ owner: 'o', repo: 'r', release_id: 1 }).url, 'https://api.github.com/repos/o/r/releases/1');
  // A server that answers only under /api/v3, as GHES does: release and upload both work.
  const enterprise = await startFakeGitHub({ apiPrefix: '/api/v3' });
  try {
    const gh = githubClient({ token: enterprise.token, apiUrl: `${enterprise.url}/api/v3`, retryAfterBaseValue: 5 });
    const r = await createRelease(gh, { owner: enterprise.owner, repo: enterprise.repo }, { tag: 'v1', name: 'v1', body: '' });
    const data = Buffer.from('bytes');
    await putAsset(gh, { owner: enterprise.owner, repo: enterprise.repo, releaseId: r.id }, { name: 'SHA256SUMS', data, sha256: sha256(data), contentType: 'text/plain' });
    assert.deepEqual(enterprise.assets(r.id).map((a) => a.name), ['SHA256SUMS']);
    assert.ok(enterprise.log.every((l) => l.path.startsWith('/api/v3/') || l.path.startsWith('/uploads/')), enterprise.log.map((l) => l.path).join(' '));
  } finally {
    await enterprise.close();
  }
});

/** The program under mocks with a GitHub release pointing at the fake server. */
async function programRelease(): Promise<Declared> {
  return (await declareGitHubRelease(fake)).find((r) => r.type === RELEASE)!;
}

test("the provider as serialized under mocks runs in Pulumi's dynamic-provider host (plain node): create, adopt, update, read, gone, kept", async () => {
  const declared = await programRelease();
  assert.equal(typeof declared.wire.__provider, 'string');
  assert.ok(!String(declared.wire.__provider).includes(fake.token));
  const urn = `urn:pulumi:dev::qemu-user-static::${RELEASE}::${declared.name}`;
  const tag = freshTag();
  const news: Record<string, unknown> = { ...declared.wire, tag, name: tag };

  const host = await startGitHubHost(fake.token);
  try {
    const inputs = await host.check(urn, {}, news);
    const created = await host.create(urn, inputs);
    const [remote] = withTag(tag);
    assert.deepEqual([created.id, remote?.body, remote?.draft], [String(remote?.id), news.body, true]);
    assert.equal(created.props.releaseId, remote!.id);
    assert.equal(created.props.htmlUrl, `${fake.url}/${fake.owner}/${fake.repo}/releases/tag/${tag}`, 'the page it will have once published');
    assert.equal(created.props.__provider, news.__provider);

    // New notes update in place; a new tag (a QEMU bump) or repository replaces.
    assert.deepEqual(await host.diff(urn, created.id, created.props, inputs), { changes: 'none', replaces: [] });
    const edited = { ...inputs, body: `${inputs.body}\nedited` };
    assert.deepEqual(await host.diff(urn, created.id, created.props, edited), { changes: 'some', replaces: [] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, tag: 'v9.9.9-1' }), { changes: 'some', replaces: ['tag'] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, repo: 'other' }), { changes: 'some', replaces: ['repo'] });

    const updated = await host.update(urn, created.id, created.props, edited);
    assert.equal(updated.releaseId, remote!.id);
    assert.deepEqual(withTag(tag).map((r) => r.body), [edited.body]);
    const read = await host.read(urn, created.id, updated);
    assert.deepEqual([read.id, read.props.body, read.props.releaseId], [created.id, edited.body, remote!.id]);

    // Deleted by hand: the next update makes it again under a new id, and read (given the
    // engine's first id, which never changes) follows the outputs' releaseId to it.
    fake.deleteRelease(remote!.id);
    const again = await host.update(urn, created.id, updated, { ...edited, body: 'again' });
    const [republished] = withTag(tag);
    assert.notEqual(republished!.id, remote!.id);
    assert.equal(again.releaseId, republished!.id);
    assert.equal((await host.read(urn, created.id, again)).props.body, 'again');

    // Never deleted (the download URLs are published); gone when deleted by hand.
    await host.delete(urn, created.id, again);
    assert.deepEqual(withTag(tag).map((r) => r.id), [republished!.id]);
    fake.deleteRelease(republished!.id);
    assert.equal((await host.read(urn, created.id, again)).id, '', 'a deleted release reads as gone');

    // A release already holding the tag is adopted, not duplicated.
    const adoptTag = freshTag();
    const handMade = fake.createRelease(adoptTag, { body: 'made by hand' });
    const adopted = await host.create(urn, { ...inputs, tag: adoptTag });
    assert.equal(adopted.id, String(handMade));
    assert.deepEqual(withTag(adoptTag).map((r) => r.body), [inputs.body]);

    // Other files under the same tag: an update while a draft; refused at the diff (so at
    // preview, before the notes or anything else is written) once published.
    const files = inputs.files as Record<string, { sha256: string; size: number }>;
    const rebuilt = { ...adopted.props, files: { ...files, 'qemu-riscv64-static': { sha256: 'e'.repeat(64), size: 1 } } };
    const draftTag = freshTag();
    const draft = await host.create(urn, { ...inputs, tag: draftTag });
    assert.deepEqual(await host.diff(urn, draft.id, draft.props, { ...rebuilt, tag: draftTag }), { changes: 'some', replaces: [] });
    fake.publish(Number(draft.id));
    await assert.rejects(
      host.diff(urn, draft.id, draft.props, { ...rebuilt, tag: draftTag }),
      new RegExp(`^Error: polyarch/qemu-user-static release ${draftTag.replace(/\./g, '\\.')} is published, and a published release's files never change, but this update would change qemu-riscv64-static; publish the new files under a new tag instead`),
    );
    assert.deepEqual(await host.diff(urn, draft.id, draft.props, { ...rebuilt, tag: 'v9.9.9-1' }), { changes: 'some', replaces: ['tag'] }, 'a new tag is the way out');

    for (const props of [created.props, updated, read.props, again, adopted.props]) assert.ok(!JSON.stringify(props).includes(fake.token), 'no token in state');
    assert.ok(!host.stderr().includes(fake.token));
  } finally {
    await host.close();
  }

  // A bad token fails as one line naming the action; with none in config, GITHUB_TOKEN is read.
  let envTag = '';
  await checkGitHubToken(
    urn,
    () => ({ ...news, tag: (envTag = freshTag()) }),
    /^find release v9\.2\.\d+-1 of polyarch\/qemu-user-static: 401 Bad credentials \(GitHub rejected the token; check polyarch:githubToken\)$/,
    fake.token,
    (id) => assert.deepEqual(withTag(envTag).map((x) => String(x.id)), [id]),
  );
});
