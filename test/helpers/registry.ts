// Registries for the image tests: mocks that answer like the docker-build provider, and a
// real registry (Debian's docker-registry, distribution 2.8) with htpasswd (bcrypt) auth on
// a loopback port, its storage in a test-owned folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type * as pulumi from '@pulumi/pulumi';

const fakeDigest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/**
 * Mocks where a pushed docker-build Image or Index reports `ref` (its first tag plus the
 * manifest digest) and `digest`, as the provider does after a push.
 */
export const imageMocks: pulumi.runtime.Mocks = {
  newResource: (a) => {
    const state: Record<string, unknown> = { ...a.inputs };
    const tag = a.type === 'docker-build:index:Image' ? (a.inputs.tags as string[] | undefined)?.[0] : a.type === 'docker-build:index:Index' ? (a.inputs.tag as string) : undefined;
    if (tag !== undefined) {
      const pushed = a.inputs.push !== false;
      state.digest = fakeDigest(a.name);
      state.ref = pushed ? `${tag}@${state.digest}` : tag;
    }
    return { id: `${a.name}-id`, state };
  },
  call: (a) => a.inputs,
};

export interface Registry {
  /** host:port on 127.0.0.1 */
  address: string;
  user: string;
  password: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<number | undefined> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).status;
  } catch {
    return undefined;
  }
}

/** Starts an authenticated registry; it is stopped and its storage removed when the test ends. */
export async function startRegistry(t: TestContext): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-registry-'));
  const user = 'polyarch-ci';
  const password = randomBytes(12).toString('hex');
  // bcrypt, password on stdin (never on a command line).
  const h = spawnSync('htpasswd', ['-iBc', path.join(dir, 'htpasswd'), user], { input: password, encoding: 'utf8' });
  if (h.status !== 0) throw new Error(`htpasswd failed: ${h.stderr}`);
  let child: ChildProcess | undefined;
  t.after(() => {
    child?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // The port is picked free and then handed over, so another process may take it first: retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      'auth:',
      '  htpasswd:',
      '    realm: polyarch-test',
      `    path: ${path.join(dir, 'htpasswd')}`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'config.yml'), config);
    // The registry reads REGISTRY_* variables as configuration: give it none of ours.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
    // Its log goes to a file, not a pipe: tests block in spawnSync for minutes, and a registry
    // whose pipe fills up stalls every client.
    const log = path.join(dir, `registry-${attempt}.log`);
    const fd = fs.openSync(log, 'w');
    const proc = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { env, stdio: ['ignore', 'ignore', fd] });
    fs.closeSync(fd);
    child = proc;
    const stderr = () => fs.readFileSync(log, 'utf8');
    let exited = false;
    proc.once('exit', () => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      // Unauthenticated /v2/ answers 401 once the registry serves with auth.
      if ((await answers(`http://127.0.0.1:${port}/v2/`)) === 401) return { address: `127.0.0.1:${port}`, user, password };
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill();
    if (!/address already in use/.test(stderr())) throw new Error(`docker-registry did not start: ${stderr().trim().split('\n').slice(-3).join(' | ')}`);
  }
  throw new Error('docker-registry found no free port in 5 attempts');
}
