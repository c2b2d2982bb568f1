// Every wait is bounded (issue 26). An upload is timed like a download: a server that takes the
// bytes and never answers, or stops taking them, fails after the stall timeout with the URL
// (a release asset's carries ?name=<asset>), while one that takes them slowly, for longer than
// the stall timeout, is not cut. And a host whose first RPM cannot be had stops its other
// downloads, so the error is not held back by their retries.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FetchError, timedFetch } from '../../lib/fetch.ts';
import { extractLocked, type Lock } from '../../lib/lock.ts';

type Mode = 'read-never-answer' | 'never-read' | 'read-slowly' | 'rpms';
let mode: Mode = 'read-never-answer';
let received = 0;
let contentLength: string | undefined;
const rpmHits: string[] = [];
let server: http.Server;
let base = '';

before(async () => {
  server = http.createServer((req, res) => {
    received = 0;
    contentLength = req.headers['content-length'];
    if (mode === 'rpms') {
      // The first RPM is gone (404: no retry); the others answer 503, which is retried.
      rpmHits.push(req.url!);
      res.writeHead(req.url!.endsWith('/a.rpm') ? 404 : 503).end();
      return;
    }
    if (mode === 'never-read') {
      req.pause(); // takes the connection, then not one byte more than the socket buffers hold
      return;
    }
    req.on('data', (chunk: Buffer) => {
      received += chunk.byteLength;
      if (mode !== 'read-slowly') return;
      // About 6 MB/s: the socket buffers (a few MB) drain well inside the stall timeout.
      req.pause();
      setTimeout(() => req.resume(), 10);
    });
    req.on('end', () => {
      if (mode === 'read-slowly') res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ size: received }));
      // read-never-answer: every byte read, and no answer ever.
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const assetUrl = () => `${base}/repos/polyarch/qemu-user-static/releases/1/assets?name=qemu-aarch64-static`;
const upload = (data: Uint8Array<ArrayBuffer>, o: { stallTimeout: number; timeout: number }) =>
  timedFetch(o)(assetUrl(), { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream' } });

test('an upload the server reads whole and never answers fails after the stall timeout, naming the asset', async () => {
  mode = 'read-never-answer';
  const data = new Uint8Array(1 << 20).fill(1);
  const t0 = performance.now();
  await assert.rejects(upload(data, { stallTimeout: 300, timeout: 30_000 }), (e: unknown) => {
    assert.ok(e instanceof FetchError && e.slow, String(e));
    assert.equal(e.message, `POST ${assetUrl()}: no data for 0.3 s (no response to the 1.0 MB sent); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `cut by the stall timeout, not the total: ${ms} ms`);
  assert.equal(received, data.length, 'the server had read every byte');
  assert.equal(contentLength, String(data.length), 'sent with its length, not chunked');
});

test('an upload the server stops taking fails after the stall timeout, saying how far it got', async () => {
  mode = 'never-read';
  // More than loopback's socket buffers hold, so sending really stops.
  const data = new Uint8Array(32 << 20).fill(2);
  const t0 = performance.now();
  await assert.rejects(upload(data, { stallTimeout: 500, timeout: 30_000 }), (e: unknown) => {
    assert.ok(e instanceof FetchError, String(e));
    assert.match(e.message, new RegExp(`^POST ${assetUrl().replace(/[.?]/g, '\\$&')}: no data for 0\\.5 s \\(upload stalled after [\\d.]+ (kB|MB) of 33\\.6 MB\\); set --stall-timeout`));
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 8000, `${ms} ms`);
});

test('an upload the server takes slowly, for longer than the stall timeout, is not cut', async () => {
  mode = 'read-slowly';
  const data = new Uint8Array(24 << 20).fill(3);
  const stallTimeout = 2000;
  const t0 = performance.now();
  const res = await upload(data, { stallTimeout, timeout: 60_000 });
  const ms = performance.now() - t0;
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { size: data.length });
  // Else the stall timer was never put to the test.
  assert.ok(ms > stallTimeout, `the upload took ${ms} ms, not longer than the stall timeout`);
});

test('a small body is sent as it is, under the same stall timeout', async () => {
  mode = 'read-never-answer';
  const body = JSON.stringify({ tag_name: 'v1' });
  await assert.rejects(timedFetch({ stallTimeout: 200, timeout: 30_000 })(`${base}/repos/o/r/releases`, { method: 'POST', body }), {
    message: `POST ${base}/repos/o/r/releases: no data for 0.2 s (no response); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`,
  });
  assert.equal(received, body.length);
});

test('a host whose first RPM cannot be had stops its other downloads', async () => {
  mode = 'rpms';
  rpmHits.length = 0;
  const sha = (c: string) => c.repeat(64);
  const pins = ['a', 'b', 'c', 'd', 'e'].map((c) => ({ name: `qemu-user-static-${c}`, url: `${base}/rpms/${c}.rpm`, size: 100, sha256: sha(c), emulators: [`cpu_${c}`] }));
  // extractLocked reads the pins alone.
  const lock = { qemu: { version: '9.2.4', release: '1.fc42' }, koji: base, hosts: { x86_64: pins } } as Lock;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bounded-'));
  try {
    await assert.rejects(extractLocked(lock, 'x86_64', path.join(dir, 'cache'), path.join(dir, 'out'), { retries: 4, minTimeout: 300 }), { message: `${base}/rpms/a.rpm: HTTP 404 Not Found` });
    // Unstopped, each 503 would be asked again after 300 to 600 ms, and the queued fifth RPM started.
    await new Promise((r) => setTimeout(r, 1500));
    const asked = new Set(rpmHits);
    assert.equal(rpmHits.length, asked.size, `no download retried after the host failed: ${rpmHits.join(' ')}`);
    assert.ok(!asked.has('/rpms/e.rpm'), 'the queued download never started');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
