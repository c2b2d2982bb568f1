// Every GitHub call is bounded: a server that never answers, stalls mid-body or trickles forever
// fails in the stall timeout or the total, retried by Octokit's retry plugin and reported in
// one line naming what happened; so does an upload the server reads whole and never answers,
// named by its asset. (That a slow reader is not cut is test/unit/bounded-waits.test.ts's.)
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { findRelease, githubClient } from '../../lib/github-release.ts';

type Mode = 'silent' | 'half-body' | 'trickle';
let mode: Mode = 'silent';
let requests = 0;
let server: http.Server;
let url = '';

before(async () => {
  server = http.createServer((req, res) => {
    requests++;
    // Every byte sent is read; what differs is the answer.
    req.resume();
    req.on('end', () => {
      if (mode === 'silent') return; // never answers
      if (mode === 'half-body') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"id": 1, "tag_name": "v1"'); // then nothing more
        return;
      }
      // trickle
      res.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(t));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const client = () => githubClient({ token: 'ghp_test', apiUrl: url, retries: 1, retryAfterBaseValue: 1, stallTimeout: 200, timeout: 1500 });
const repo = { owner: 'polyarch', repo: 'qemu-user-static' };
const releaseUrl = () => `GET ${url}/repos/polyarch/qemu-user-static/releases/tags/v1`;

async function fails(m: Mode, message: string): Promise<number> {
  mode = m;
  requests = 0;
  const t0 = performance.now();
  await assert.rejects(findRelease(client(), repo, 'v1'), { message: `find release v1 of polyarch/qemu-user-static: ${message}` });
  assert.equal(requests, 2, 'one attempt and one retry');
  return performance.now() - t0;
}

test('a GitHub API that never answers fails after the stall timeout, retried once', async () => {
  const ms = await fails('silent', `${releaseUrl()}: no data for 0.2 s (no response); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`);
  assert.ok(ms < 3000, `${ms} ms`);
});

test('a body that stops half-way fails (never read as a complete answer)', async () => {
  await fails('half-body', `${releaseUrl()}: no data for 0.2 s (stalled after 26 bytes); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`);
});

test('a steady trickle that never ends is cut by the total', async () => {
  const ms = await fails('trickle', `${releaseUrl()}: not done after 1.5 s; set --fetch-timeout or POLYARCH_FETCH_TIMEOUT to wait longer`);
  assert.ok(ms < 6000, `${ms} ms`);
});

test('an upload read whole and never answered fails after the stall timeout, naming the asset', async () => {
  mode = 'silent';
  requests = 0;
  const data = Buffer.alloc(1 << 20, 1);
  const upload = client().request({ method: 'POST', url: `${url}/uploads/repos/polyarch/qemu-user-static/releases/1/assets{?name}`, name: 'qemu-riscv64-static', data, headers: { 'content-type': 'application/octet-stream' } });
  await assert.rejects(upload, (e: Error) => {
    assert.match(e.message, /uploads\/repos\/polyarch\/qemu-user-static\/releases\/1\/assets\?name=qemu-riscv64-static: no data for 0\.2 s \(no response to the 1\.0 MB sent\)/);
    return true;
  });
  assert.equal(requests, 2, 'one attempt and one retry');
});
