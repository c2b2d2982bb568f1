// Release assets on GitHub: lib/github-release against a local server that speaks GitHub's
// REST endpoints (upload included) and keeps its rules, with realistic failures; then the
// ReleaseAsset provider exactly as the program serialized it under mocks, run by Pulumi's own
// dynamic-provider host in a plain node process, through create, diff, update, read and
// delete. Assets upload to drafts; a published release's files are never written.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { deleteAsset, getAsset, githubClient, listAssets, putAsset, replaceAsset, type AssetContent } from '../../lib/github-release.ts';
import { startFakeGitHub, type FakeGitHub } from '../fixtures/github.ts';
import { checkGitHubToken, startGitHubHost } from '../helpers/dynamic-host.ts';
import { declareGitHubRelease, type Declared } from '../helpers/program.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const content = (name: string, text: string): AssetContent => {
  const data = Buffer.from(text);
  return { name, data, sha256: sha256(data), contentType: 'application/gzip' };
};

let fake: FakeGitHub;
before(async () => {
  fake = await startFakeGitHub();
});
after(() => fake.close());

// Backoff and retry-after shrink to milliseconds; everything else is as in production.
const client = (token = fake.token) => githubClient({ token, apiUrl: fake.url, retryAfterBaseValue: 5 });
/** A draft release of its own, as GitHubRelease makes it. */
const release = () => {
  const tag = `v9.2.4-${Math.random()}`;
  return { owner: fake.owner, repo: fake.repo, tag, releaseId: fake.createRelease(tag, { draft: true }) };
};
const named = (r: { releaseId: number }, name: string) => fake.assets(r.releaseId).filter((a) => a.name === name);

test('upload, read, list across pages, delete (twice is fine)', async () => {
  const r = release();
  const c = content('qemu-arm-static.tar.gz', 'one');
  const a = await putAsset(client(), r, c);
  assert.equal(a.name, c.name);
  assert.equal(a.sha256, c.sha256);
  assert.equal(a.state, 'uploaded');
  assert.deepEqual(named(r, c.name).map((x) => x.data.toString()), ['one']);
  assert.deepEqual(await getAsset(client(), r, a.id), a);
  for (let i = 0; i < 104; i++) fake.seedAsset(r.releaseId, `extra-${i}`, Buffer.from('x'));
  assert.equal((await listAssets(client(), r)).length, 105);
  await deleteAsset(client(), r, a.id, c.name);
  await deleteAsset(client(), r, a.id, c.name);
  assert.equal(await getAsset(client(), r, a.id), undefined);
  assert.deepEqual(named(r, c.name), []);
});

test('a same-named asset left by a failed run: other bytes (uploaded or half-uploaded) are replaced, the same bytes kept; never two', async () => {
  for (const state of ['uploaded', 'starter'] as const) {
    const r = release();
    fake.seedAsset(r.releaseId, 'SHA256SUMS', Buffer.from('stale'), state);
    const before = fake.log.length;
    await putAsset(client(), r, content('SHA256SUMS', 'fresh'));
    assert.deepEqual(named(r, 'SHA256SUMS').map((x) => [x.state, x.data.toString()]), [['uploaded', 'fresh']]);
    assert.deepEqual(fake.log.slice(before).map((l) => `${l.method} ${l.status}`), ['GET 200', 'POST 422', 'GET 200', 'DELETE 204', 'POST 201']);
  }
  // A run cut off after the upload but before recording it: the same bytes are adopted, not sent again.
  const r = release();
  const left = fake.seedAsset(r.releaseId, 'SHA256SUMS', Buffer.from('fresh'));
  const before = fake.log.length;
  assert.equal((await putAsset(client(), r, content('SHA256SUMS', 'fresh'))).id, left.id);
  assert.deepEqual(fake.log.slice(before).map((l) => `${l.method} ${l.status}`), ['GET 200', 'POST 422', 'GET 200']);
});

test('a published release\'s files never change: a new file, new bytes or a delete is refused in one line naming the tag and the way out; the same bytes are adopted', async () => {
  const r = release();
  const kept = await putAsset(client(), r, content('qemu-arm-static', 'published bytes'));
  fake.publish(r.releaseId);
  const refused = (what: string) => new RegExp(`^Error: polyarch/qemu-user-static release ${r.tag.replace(/\./g, '\\.')} is published, and a published release's files never change, but ${what}; publish the new files under a new tag instead: raise "releaseNumber" in the lockfile \\(the n of v<qemu>-<n>\\) and run again$`);
  const before = fake.log.length;
  await assert.rejects(putAsset(client(), r, content('qemu-new-static', 'x')), refused('qemu-new-static would be added'));
  await assert.rejects(replaceAsset(client(), r, kept.id, content('qemu-arm-static', 'other bytes')), refused('qemu-arm-static would get new bytes \\(sha256 [0-9a-f]{64}\\)'));
  await assert.rejects(deleteAsset(client(), r, kept.id, 'qemu-arm-static'), refused('qemu-arm-static would be deleted'));
  assert.equal((await putAsset(client(), r, content('qemu-arm-static', 'published bytes'))).id, kept.id);
  assert.deepEqual(fake.log.slice(before).filter((l) => l.method !== 'GET'), [], 'nothing was written to the published release');
  assert.deepEqual(fake.assets(r.releaseId).map((a) => [a.name, a.data.toString()]), [['qemu-arm-static', 'published bytes']]);
});

test('5xx answers are retried with backoff, then succeed; an interrupted upload is cleaned up', async () => {
  const r = release();
  fake.fail({ method: 'POST', path: /\/assets$/, status: 502, times: 2 });
  const before = fake.log.length;
  await putAsset(client(), r, content('a.tar.gz', 'a'));
  assert.deepEqual(fake.log.slice(before).map((l) => `${l.method} ${l.status}`), ['GET 200', 'POST 502', 'POST 502', 'POST 201']);
  // The server kept half an upload before failing: the retry meets it as a duplicate name.
  fake.fail({ method: 'POST', path: /\/assets$/, status: 500, leaveStarter: true });
  await putAsset(client(), r, content('b.tar.gz', 'b'));
  assert.deepEqual(named(r, 'b.tar.gz').map((x) => [x.state, x.data.toString()]), [['uploaded', 'b']]);
  fake.fail({ method: 'GET', status: 503, times: 1 });
  assert.equal((await listAssets(client(), r)).length, 2);
});

test('5xx that never ends: a clear error after the retries', async () => {
  const r = release();
  fake.fail({ method: 'POST', path: /\/assets$/, status: 503, times: 100 });
  const before = fake.log.length;
  await assert.rejects(putAsset(client(), r, content('c.tar.gz', 'c')).finally(() => fake.clearFailures()), /^Error: upload c\.tar\.gz to polyarch\/qemu-user-static release \d+ \(v9\.2\.4-[\d.]+, a draft\): 503 Server Error \(GitHub kept failing after retries\)$/);
  assert.equal(fake.log.slice(before).filter((l) => l.method === 'POST').length, 5, 'one try and four retries');
  fake.clearFailures();
});

test('secondary rate limits wait for retry-after, then go on', async () => {
  const r = release();
  fake.secondaryRateLimit(2, 1);
  const before = fake.log.length;
  await putAsset(client(), r, content('d.tar.gz', 'd'));
  assert.deepEqual(fake.log.slice(before).map((l) => `${l.method} ${l.status}`), ['GET 403', 'GET 403', 'GET 200', 'POST 201']);
});

test('401, 403, 404 and 422 are clear one-line errors that never show the token', async () => {
  const r = release();
  const bad = 'ghp_thisIsNotTheRightToken0123456789';
  const expectations: [() => Promise<unknown>, RegExp][] = [
    [() => putAsset(client(bad), r, content('e', 'e')), /^read polyarch\/qemu-user-static release \d+: 401 Bad credentials \(GitHub rejected the token; check polyarch:githubToken\)$/],
    [() => deleteAsset(client(bad), r, 1, 'e'), /^read polyarch\/qemu-user-static release \d+: 401 Bad credentials/],
    [() => putAsset(client(), { ...r, releaseId: 1 }, content('e', 'e')), /^polyarch\/qemu-user-static release 1 is not there \(deleted on GitHub, or the token cannot see the repository\); run `pulumi refresh`, then `pulumi up` makes it again$/],
    [() => listAssets(client(), { ...r, repo: 'elsewhere' }), /^list the assets of polyarch\/elsewhere release \d+: 404 Not Found/],
  ];
  for (const [f, message] of expectations) {
    await assert.rejects(f(), (e: Error) => {
      assert.match(e.message, message);
      assert.ok(!e.message.includes(bad) && !e.message.includes(fake.token));
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  }
  fake.fail({ method: 'POST', path: /\/assets$/, status: 403, body: { message: 'Resource not accessible by integration' } });
  await assert.rejects(putAsset(client(), r, content('f', 'f')), /: 403 Resource not accessible by integration \(the token may not write to this repository \(it needs contents: write\)\)$/);
  fake.fail({ method: 'POST', path: /\/assets$/, status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'ReleaseAsset', code: 'custom', field: 'name', message: 'name is too long' }] } });
  await assert.rejects(putAsset(client(), r, content('g', 'g')), /: 422 Validation Failed: name is too long \(GitHub refused the request\)$/);
  assert.throws(() => githubClient({ token: '' }), /^Error: no GitHub token: set the secret polyarch:githubToken/);
});

test('replacing an asset of a draft: new bytes under the same name, one asset', async () => {
  const r = release();
  const first = await putAsset(client(), r, content('qemu-s390x-static', 'v1'));
  const second = await replaceAsset(client(), r, first.id, content('qemu-s390x-static', 'v2'));
  assert.notEqual(second.id, first.id);
  assert.deepEqual(fake.assets(r.releaseId).map((a) => [a.name, a.data.toString()]), [['qemu-s390x-static', 'v2']]);
  await assert.rejects(putAsset(client(), r, { ...content('h', 'h'), sha256: '0'.repeat(64) }), /the bytes to upload do not hash to 0{64}/);
});

/** The program under mocks with a GitHub release pointing at the fake server. */
async function programAssets(): Promise<Declared[]> {
  return (await declareGitHubRelease(fake)).filter((r) => r.type === 'pulumi-nodejs:dynamic/polyarch:ReleaseAsset');
}

test("the provider as serialized under mocks runs in Pulumi's dynamic-provider host (plain node): create, diff, update, read, delete", async () => {
  const assets = await programAssets();
  const declared = assets.find((r) => r.name === 'release-qemu-s390x-static.tar.gz')!;
  assert.equal(typeof declared.wire.__provider, 'string');
  const r = release();
  // This test's own release in place of the program's v9.2.4-1, as GitHubRelease would pass it.
  const news: Record<string, unknown> = { ...declared.wire, tag: r.tag, releaseId: r.releaseId };
  const urn = `urn:pulumi:dev::qemu-user-static::pulumi-nodejs:dynamic/polyarch:ReleaseAsset::${declared.name}`;
  fake.seedAsset(r.releaseId, 'qemu-s390x-static.tar.gz', Buffer.from('left by a failed run'));

  const host = await startGitHubHost(fake.token);
  try {
    const inputs = await host.check(urn, {}, news);
    const created = await host.create(urn, inputs);
    const bytes = fs.readFileSync(path.resolve(String(news.file)));
    assert.deepEqual(named(r, 'qemu-s390x-static.tar.gz').map((a) => [String(a.id), sha256(a.data)]), [[created.id, news.sha256]]);
    assert.equal(sha256(bytes), news.sha256);
    assert.equal(created.props.assetId, Number(created.id));
    assert.equal(created.props.releaseId, r.releaseId);
    assert.equal(created.props.downloadUrl, `${fake.url}/${fake.owner}/${fake.repo}/releases/download/${r.tag}/qemu-s390x-static.tar.gz`, 'the URL it has once published, not the draft\'s');
    assert.equal(created.props.__provider, news.__provider);

    assert.deepEqual(await host.diff(urn, created.id, created.props, inputs), { changes: 'none', replaces: [] });
    // A file elsewhere with the same bytes is no change: the diff is by digest.
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, file: path.resolve(String(inputs.file)) }), { changes: 'none', replaces: [] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, name: 'other.tar.gz' }), { changes: 'some', replaces: ['name'] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, tag: 'v9.2.5-1' }), { changes: 'some', replaces: ['tag'] });

    // New bytes (a new QEMU build): an update in place, the same name, one asset.
    const next = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-next-')), 'next.tar.gz');
    fs.writeFileSync(next, Buffer.concat([bytes, Buffer.from('next')]));
    const changed = { ...inputs, file: next, sha256: sha256(fs.readFileSync(next)), size: bytes.length + 4 };
    assert.deepEqual(await host.diff(urn, created.id, created.props, changed), { changes: 'some', replaces: [] });
    const updated = await host.update(urn, created.id, created.props, changed);
    assert.notEqual(updated.assetId, created.props.assetId);
    assert.deepEqual(named(r, 'qemu-s390x-static.tar.gz').map((a) => sha256(a.data)), [changed.sha256]);
    assert.equal(fake.assets(r.releaseId).length, 1);

    const read = await host.read(urn, String(updated.assetId), updated);
    assert.equal(read.id, String(updated.assetId));
    assert.equal(read.props.sha256, changed.sha256);

    await host.delete(urn, String(updated.assetId), updated);
    assert.deepEqual(fake.assets(r.releaseId), []);
    assert.equal((await host.read(urn, String(updated.assetId), updated)).id, '', 'a deleted asset reads as gone');
    await host.delete(urn, String(updated.assetId), updated);

    for (const props of [created.props, updated, read.props]) assert.ok(!JSON.stringify(props).includes(fake.token), 'no token in state');
    assert.ok(!host.stderr().includes(fake.token));
  } finally {
    await host.close();
  }

  // A bad token fails as GitHub's 401, named clearly; with none in config, GITHUB_TOKEN is read.
  await checkGitHubToken(urn, () => news, /401 Bad credentials \(GitHub rejected the token; check polyarch:githubToken\)/, fake.token, (id) =>
    assert.deepEqual(named(r, 'qemu-s390x-static.tar.gz').map((a) => String(a.id)), [id]),
  );
});

test('after an update in place the engine keeps the first id: read and delete follow the outputs\' assetId', async () => {
  const declared = (await programAssets()).find((r) => r.name === 'release-SHA256SUMS')!;
  const r = release();
  const news: Record<string, unknown> = { ...declared.wire, tag: r.tag, releaseId: r.releaseId };
  const urn = `urn:pulumi:dev::qemu-user-static::pulumi-nodejs:dynamic/polyarch:ReleaseAsset::${declared.name}`;
  const host = await startGitHubHost(fake.token);
  try {
    const created = await host.create(urn, await host.check(urn, {}, news));
    const next = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-next-')), 'SHA256SUMS');
    fs.writeFileSync(next, 'new sums\n');
    const updated = await host.update(urn, created.id, created.props, { ...created.props, file: next, sha256: sha256(fs.readFileSync(next)), size: 9 });
    // The first asset is gone; the id the engine holds names it still.
    assert.deepEqual(fake.assets(r.releaseId).map((a) => a.id), [updated.assetId]);
    assert.notEqual(String(updated.assetId), created.id);

    const read = await host.read(urn, created.id, updated);
    assert.equal(read.id, created.id, 'the new asset is found, under the id the engine knows');
    assert.deepEqual([read.props.assetId, read.props.sha256], [updated.assetId, updated.sha256]);
    await host.delete(urn, created.id, updated);
    assert.deepEqual(fake.assets(r.releaseId), [], 'delete removed the new asset');
  } finally {
    await host.close();
  }
});

test('an asset is given its release id; without one the tag finds the draft; a missing release is an error to create, gone to read, nothing to delete', async () => {
  const declared = (await programAssets()).find((r) => r.name === 'release-qemu-arm-static')!;
  const urn = `urn:pulumi:dev::qemu-user-static::pulumi-nodejs:dynamic/polyarch:ReleaseAsset::${declared.name}`;
  const other = release();
  const r = release();
  // Inputs and outputs without a release id (the struct the host reads cannot hold undefined).
  const untold = ({ releaseId: _releaseId, ...props }: Record<string, unknown>) => props;
  const news = untold({ ...declared.wire, tag: r.tag });
  const lookups = (since: number) => fake.log.slice(since).filter((l) => /\/releases(\/tags\/.*)?$/.test(l.path) && l.method === 'GET').length;
  const host = await startGitHubHost(fake.token);
  try {
    const inputs = await host.check(urn, {}, news);
    // The draft is invisible to GitHub's lookup by tag: found by listing.
    let since = fake.log.length;
    const created = await host.create(urn, inputs);
    assert.deepEqual(fake.assets(r.releaseId).map((a) => String(a.id)), [created.id], 'on the draft holding the tag');
    assert.deepEqual(fake.assets(other.releaseId), []);
    assert.deepEqual([created.props.tag, created.props.releaseId, lookups(since)], [r.tag, r.releaseId, 2]);

    // A new tag is a new release (a QEMU bump): replace. New bytes: update in place. The id is
    // not compared: unknown at preview whenever the release's notes change.
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, tag: other.tag }), { changes: 'some', replaces: ['tag'] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, sha256: 'f'.repeat(64) }), { changes: 'some', replaces: [] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, releaseId: other.releaseId }), { changes: 'none', replaces: [] });

    // Read and delete use the recorded release id without a lookup.
    since = fake.log.length;
    assert.equal((await host.read(urn, created.id, created.props)).id, created.id);
    assert.equal(lookups(since), 0, 'no lookup by tag when the outputs hold the release id');
    await host.delete(urn, created.id, untold(created.props));
    assert.deepEqual(fake.assets(r.releaseId), []);

    // No release with the tag: create and update fail with one line naming repository and tag.
    const missing = { ...inputs, tag: 'v0.0.0-none' };
    const noRelease = /^Error: polyarch\/qemu-user-static has no release v0\.0\.0-none; make it before its assets \(the program's GitHubRelease does\)$/;
    await assert.rejects(host.create(urn, missing), noRelease);
    await assert.rejects(host.update(urn, created.id, created.props, missing), noRelease);
    assert.deepEqual(fake.assets(other.releaseId), [], 'nothing uploaded anywhere else');

    // Once published, the provider's delete (a dropped target) is refused: the file stays.
    const again = await host.create(urn, { ...inputs, releaseId: r.releaseId });
    fake.publish(r.releaseId);
    await assert.rejects(host.delete(urn, again.id, again.props), /release .* is published, and a published release's files never change, but qemu-arm-static would be deleted; publish the new files under a new tag/);
    assert.deepEqual(fake.assets(r.releaseId).map((a) => String(a.id)), [again.id]);

    // The release deleted by hand: the asset reads as gone, recorded release id or not, and
    // deleting it is nothing to do.
    fake.deleteRelease(r.releaseId);
    for (const props of [again.props, untold(again.props)]) {
      assert.equal((await host.read(urn, again.id, props)).id, '', 'an asset whose release is gone reads as gone');
      await host.delete(urn, again.id, props);
    }
  } finally {
    await host.close();
  }
});
