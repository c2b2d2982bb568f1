// GitHub releases: lib/github-release's release operations against a local server that speaks
// GitHub's REST endpoints; then the GitHubRelease provider exactly as the program serialized
// it under mocks, run by Pulumi's own dynamic-provider host in a plain node process: create,
// adopt, update in place, read, gone, never deleted, and a bad token's error.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createRelease, findRelease, getRelease, githubClient, putAsset, updateRelease } from '../lib/github-release.ts';
import { sha256 } from '../lib/digest.ts';
import { startFakeGitHub, type FakeGitHub } from './fixtures/github.ts';
import { checkGitHubToken, startDynamicHost } from './helpers/dynamic-host.ts';
import { fixtureLock, loadProgram, type Declared } from './helpers/program.ts';

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

test('create publishes a release; find, read and update it; 404 means none or gone', async () => {
  const tag = freshTag();
  assert.equal(await findRelease(client(), repo(), tag), undefined);
  const r = await createRelease(client(), repo(), { tag, name: tag, body: 'notes' });
  assert.deepEqual(withTag(tag).map((x) => [x.id, x.name, x.body, x.draft, x.prerelease]), [[r.id, tag, 'notes', false, false]]);
  assert.equal(r.htmlUrl, `${fake.url}/${fake.owner}/${fake.repo}/releases/tag/${tag}`);
  assert.deepEqual(await findRelease(client(), repo(), tag), r);
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
  assert.deepEqual(since(n), ['GET 404', 'POST 422', 'GET 200', 'PATCH 200']);
  assert.deepEqual(withTag(tag).map((x) => x.body), ['raced']);
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
  const { file, cacheDir } = await fixtureLock(['x86_64']);
  const config = {
    'polyarch:lockFile': file,
    'polyarch:cacheDir': path.relative(process.cwd(), cacheDir),
    'polyarch:release': JSON.stringify({ repository: `${fake.owner}/${fake.repo}`, apiUrl: fake.url }),
  };
  const { resources } = await loadProgram(config, { 'polyarch:githubToken': fake.token });
  return resources.find((r) => r.type === RELEASE)!;
}

test("the provider as serialized under mocks runs in Pulumi's dynamic-provider host (plain node): create, adopt, update, read, gone, kept", async () => {
  const declared = await programRelease();
  assert.equal(typeof declared.wire.__provider, 'string');
  assert.ok(!String(declared.wire.__provider).includes(fake.token));
  const urn = `urn:pulumi:dev::qemu-user-static::${RELEASE}::${declared.name}`;
  const tag = freshTag();
  const news: Record<string, unknown> = { ...declared.wire, tag, name: tag };

  const host = await startDynamicHost();
  try {
    assert.ok(!host.process.spawnargs.some((a) => /tsx/.test(a)), `plain node: ${host.process.spawnargs.join(' ')}`);
    await host.configure({ 'polyarch:githubToken': fake.token }, ['polyarch:githubToken']);
    const inputs = await host.check(urn, {}, news);
    const created = await host.create(urn, inputs);
    const [remote] = withTag(tag);
    assert.deepEqual([created.id, remote?.body, remote?.draft], [String(remote?.id), news.body, false]);
    assert.equal(created.props.releaseId, remote!.id);
    assert.equal(created.props.htmlUrl, `${fake.url}/${fake.owner}/${fake.repo}/releases/tag/${tag}`);
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

    // Deleted by hand: the next update publishes it again under a new id, and read (given the
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
