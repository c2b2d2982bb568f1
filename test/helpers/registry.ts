// Registries for the image tests: mocks that answer like the docker-build provider, and a
// real registry (Debian's docker-registry, distribution 2.8) with htpasswd (bcrypt) auth on
// a loopback port, its storage in a test-owned folder.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type * as pulumi from '@pulumi/pulumi';
import { createdState } from './mock-state.ts';

const fakeDigest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/**
 * Mocks where a pushed docker-build Image or Index reports `ref` (its first tag plus the
 * manifest digest) and `digest`, as the provider does after a push.
 */
export const imageMocks: pulumi.runtime.Mocks = {
  newResource: (a) => {
    const state: Record<string, unknown> = createdState(a);
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
  /** host:port on 127.0.0.1 (with TLS: this machine's host name, which resolves to loopback) */
  address: string;
  user: string;
  password: string;
  /** With TLS: the CA that signed the registry's certificate, and the system CAs plus it (for SSL_CERT_FILE). */
  caFile?: string;
  bundleFile?: string;
}

function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function answers(url: string, ca?: string): Promise<number | undefined> {
  if (!ca) {
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(1000) })).status;
    } catch {
      return undefined;
    }
  }
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * A CA and a server certificate for `host` (and localhost, 127.0.0.1), made with openssl.
 * BuildKit talks plain HTTP to localhost and IP addresses, and the docker-build provider's
 * index reads always use HTTPS, so a registry that both must reach goes by a host name, on TLS.
 */
function makeCertificates(dir: string, host: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=polyarch test CA', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${host}`, '-keyout', f('server.key'), '-out', f('server.csr')]);
  fs.writeFileSync(f('san.ext'), `subjectAltName=DNS:${host},DNS:localhost,IP:127.0.0.1\n`);
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('san.ext'), '-out', f('server.pem')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/**
 * This machine's host name, when it resolves to loopback (registries on TLS go by it), and the
 * address it resolves to: 127.0.0.1 on some machines, 127.0.1.1 on Debian's default, so the
 * registry listens there.
 */
async function loopbackHost(): Promise<{ host: string; address: string }> {
  const host = os.hostname();
  const { address } = await dns.lookup(host, { family: 4 });
  if (!address.startsWith('127.')) throw new Error(`the host name ${host} resolves to ${address}, not to loopback: add "127.0.1.1 ${host}" to /etc/hosts`);
  return { host, address };
}

/**
 * Starts an authenticated registry; it is stopped and its storage removed when the test ends.
 * With `tls`, it serves HTTPS under this machine's host name.
 */
export async function startRegistry(t: TestContext, o: { tls?: boolean } = {}): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-registry-'));
  const { host, address } = o.tls ? await loopbackHost() : { host: '127.0.0.1', address: '127.0.0.1' };
  const tls = o.tls ? makeCertificates(dir, host) : undefined;
  let bundleFile: string | undefined;
  if (tls) {
    bundleFile = path.join(dir, 'bundle.pem');
    fs.writeFileSync(bundleFile, fs.readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8') + fs.readFileSync(tls.ca, 'utf8'));
  }
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
    const port = await freePort(address);
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
      `  addr: ${address}:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      ...(tls ? ['  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`] : []),
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
    // A failed hook must not leave the test process waiting on the registry.
    proc.unref();
    const stderr = () => fs.readFileSync(log, 'utf8');
    let exited = false;
    proc.once('exit', () => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      // Unauthenticated /v2/ answers 401 once the registry serves with auth.
      const url = `${tls ? 'https' : 'http'}://${host}:${port}/v2/`;
      if ((await answers(url, tls && fs.readFileSync(tls.ca, 'utf8'))) === 401) return { address: `${host}:${port}`, user, password, ...(tls && { caFile: tls.ca, bundleFile }) };
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill();
    if (!/address already in use/.test(stderr())) throw new Error(`docker-registry did not start: ${stderr().trim().split('\n').slice(-3).join(' | ')}`);
  }
  throw new Error('docker-registry found no free port in 5 attempts');
}
