// Downloads that stall or crawl, against a loopback server that misbehaves on purpose: a stall
// is cut after the stall timeout with an error that says so, a slow but steady body is not,
// the total timeout still bounds an attempt; and the CLI's flags, variables and progress lines.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { sha256 } from '../../lib/digest.ts';
import { fetchText, RpmCache, type FetchProgress } from '../../lib/fetch.ts';
import { buildFixtureRpms } from '../fixtures/rpms.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-fetch-'));

/** Bytes the stalling routes send before they go quiet. */
const PREFIX = 1500;
const TRICKLE = Buffer.from('slow but steady '.repeat(40));

let server: http.Server;
let base = '';
const hits = new Map<string, number>();
let rpm: Buffer;

/** Sends `data` in parts of `part` bytes, one every 40 ms, then ends. */
function trickle(res: http.ServerResponse, data: Buffer, part: number): void {
  res.writeHead(200, { 'content-length': data.length });
  let at = 0;
  const tick = setInterval(() => {
    res.write(data.subarray(at, at + part));
    at += part;
    if (at >= data.length) {
      clearInterval(tick);
      res.end();
    }
  }, 40);
  res.on('close', () => clearInterval(tick));
}

before(async () => {
  const file = buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' }).find((f) => path.basename(f).startsWith('qemu-user-static-s390x-'))!;
  rpm = fs.readFileSync(file);
  server = http.createServer((req, res) => {
    const route = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(route, (hits.get(route) ?? 0) + 1);
    if (route === '/silent') return; // accepts, never answers
    if (route === '/stall') {
      res.writeHead(200, { 'content-length': 1_000_000 });
      res.write(Buffer.alloc(PREFIX, 1)); // then nothing, connection held open
      return;
    }
    if (route === '/trickle') {
      // 16 bytes every 40 ms: about 1.6 s in all, never quiet for long.
      trickle(res, TRICKLE, 16);
      return;
    }
    if (route === '/slow.rpm') {
      // A real RPM in 40 parts over about 1.6 s.
      trickle(res, rpm, Math.ceil(rpm.length / 40));
      return;
    }
    if (route === '/stall.rpm') {
      res.writeHead(200, { 'content-length': rpm.length });
      res.write(rpm.subarray(0, PREFIX));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

describe('stall and total timeouts', () => {
  test('headers, then nothing: cut after the stall timeout, retried once, the error names the url and the stall', async () => {
    const cache = tmp();
    const url = `${base}/stall`;
    const before = hits.get('/stall') ?? 0;
    const start = performance.now();
    await assert.rejects(new RpmCache(cache).get(url, undefined, { stallTimeout: 200, retries: 4, minTimeout: 10 }), {
      message: `${url}: no data for 0.2 s (stalled after 1.5 kB); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`,
    });
    const took = performance.now() - start;
    assert.equal((hits.get('/stall') ?? 0) - before, 2, 'a stall is retried once, not four times');
    assert.ok(took >= 400 && took < 3000, `took ${took} ms`);
    assert.deepEqual(fs.readdirSync(cache).filter((f) => !f.startsWith('.tmp')), []);
  });

  test('no answer at all: the stall timeout covers waiting for the response too', async () => {
    const url = `${base}/silent`;
    await assert.rejects(fetchText(url, { stallTimeout: 150, retries: 0 }), {
      message: `${url}: no data for 0.15 s (no response); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`,
    });
  });

  test('a slow but steady body outlasts the stall timeout many times over and is not cut', async () => {
    const seen: FetchProgress[] = [];
    const start = performance.now();
    const { buf } = await new RpmCache(tmp()).get(`${base}/trickle`, undefined, { stallTimeout: 300, retries: 0, onProgress: (p) => seen.push(p) });
    assert.ok(performance.now() - start > 1000);
    assert.ok(buf.equals(TRICKLE));
    assert.ok(seen.length > 10);
    assert.deepEqual(seen.at(-1), { url: `${base}/trickle`, attempt: 1, received: TRICKLE.length, total: TRICKLE.length, done: true });
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.received >= seen[i - 1]!.received);
  });

  test('the total timeout still bounds an attempt that keeps trickling', async () => {
    const url = `${base}/trickle`;
    await assert.rejects(fetchText(url, { stallTimeout: 300, timeout: 400, retries: 0 }), (e: Error) => {
      assert.match(e.message, new RegExp(`^${url}: not done after 0\\.4 s \\(\\d+ bytes of ${TRICKLE.length} bytes received\\); set --fetch-timeout or POLYARCH_FETCH_TIMEOUT to wait longer$`));
      return true;
    });
  });

  test('POLYARCH_STALL_TIMEOUT sets the default; a malformed value is an error naming it', async (t) => {
    const saved = process.env.POLYARCH_STALL_TIMEOUT;
    t.after(() => {
      if (saved === undefined) delete process.env.POLYARCH_STALL_TIMEOUT;
      else process.env.POLYARCH_STALL_TIMEOUT = saved;
    });
    process.env.POLYARCH_STALL_TIMEOUT = '0.1';
    await assert.rejects(fetchText(`${base}/silent`, { retries: 0 }), /: no data for 0\.1 s \(no response\)/);
    process.env.POLYARCH_STALL_TIMEOUT = 'soon';
    await assert.rejects(fetchText(`${base}/silent`, { retries: 0 }), { message: 'POLYARCH_STALL_TIMEOUT must be a number of seconds above 0 and at most 86400, not "soon"' });
  });
});

describe('polyarch CLI', () => {
  const polyarch = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), ...args], { cwd: ROOT, env: { ...process.env, POLYARCH_STALL_TIMEOUT: '', POLYARCH_FETCH_TIMEOUT: '', ...env }, maxBuffer: 16 << 20 });
  const fails = async (args: string[], env: Record<string, string> = {}) => {
    const e = await polyarch(args, env).then(
      () => assert.fail('expected a failure'),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.equal(e.code, 1);
    assert.equal(e.stdout, '');
    return e.stderr.split('\n').slice(0, -1);
  };

  test('extract from a stalling URL: a retry notice, then one error line; by flag or by variable', async () => {
    const url = `${base}/stall.rpm`;
    const error = `error: ${url}: no data for 0.3 s (stalled after 1.5 kB); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer`;
    for (const [args, env] of [
      [['--stall-timeout', '0.3'], {}],
      [[], { POLYARCH_STALL_TIMEOUT: '0.3' }],
    ] as const) {
      const out = tmp();
      const lines = await fails(['extract', '--out', path.join(out, 'out'), '--cache', path.join(out, 'cache'), ...args, url], env);
      assert.deepEqual(lines, [`polyarch: ${url}: no data for 0.3 s (stalled after 1.5 kB); set --stall-timeout or POLYARCH_STALL_TIMEOUT to wait longer; retrying`, error]);
      assert.ok(!fs.existsSync(path.join(out, 'out')));
    }
  });

  test('a slow download prints progress on stderr and is not cut by the stall timeout', async () => {
    const out = tmp();
    const url = `${base}/slow.rpm`;
    const r = await polyarch(['extract', '--out', path.join(out, 'out'), '--cache', path.join(out, 'cache'), '--stall-timeout', '0.5', url]);
    const manifest = JSON.parse(r.stdout) as { cpu: string; sha256: string; file: string }[];
    assert.deepEqual(manifest.map((m) => m.cpu), ['s390x']);
    assert.equal(sha256(fs.readFileSync(path.join(out, 'out', manifest[0]!.file))), manifest[0]!.sha256);
    const lines = r.stderr.split('\n').slice(0, -1);
    const mb = (rpm.length / 1e6).toFixed(1);
    assert.ok(lines.length >= 2, r.stderr);
    for (const l of lines.slice(0, -1)) assert.match(l, new RegExp(`^polyarch: ${url}: \\d+\\.\\d MB of ${mb} MB \\(\\d+%\\)$`));
    assert.match(lines.at(-1)!, new RegExp(`^polyarch: ${url}: ${mb} MB in \\d+\\.\\d s$`));
  });

  test('malformed timeouts are one error line naming the flag or variable', async () => {
    const out = tmp();
    const args = ['lock', '--qemu', '9.2.4', '--release', '1.fc42', '--koji', base, '--out', path.join(out, 'l.json'), '--cache', path.join(out, 'c')];
    assert.deepEqual(await fails([...args, '--stall-timeout', '0']), ['error: --stall-timeout must be a number of seconds above 0 and at most 86400, not "0"']);
    assert.deepEqual(await fails([...args, '--fetch-timeout', 'ten']), ['error: --fetch-timeout must be a number of seconds above 0 and at most 86400, not "ten"']);
    assert.deepEqual(await fails(args, { POLYARCH_FETCH_TIMEOUT: '-1' }), ['error: POLYARCH_FETCH_TIMEOUT must be a number of seconds above 0 and at most 86400, not "-1"']);
    for (const cmd of [['extract', '--out', path.join(out, 'x'), `${base}/x.rpm`], ['assets', '--out', path.join(out, 'x'), '--host', 'x86_64', `${base}/x.rpm`], ['plan'], ['contexts', '--out', path.join(out, 'x')]]) {
      assert.deepEqual(await fails([...cmd, '--stall-timeout', 'x']), ['error: --stall-timeout must be a number of seconds above 0 and at most 86400, not "x"'], cmd[0]);
    }
  });
});
