// The ways a stack can fail at program evaluation that its user fixes (issue 26): bad stack
// config, a damaged lockfile, a lockfile without a host the stack publishes, koji unreachable
// with a cold cache, no lockfile at all. Each must stop the program with one line naming the
// key, file or URL. The program test runs them under mocks, test/engine/evaluation-errors.test.ts
// on the real engine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureLock } from './program.ts';
import { closedPort } from './ports.ts';

export interface EvaluationError {
  name: string;
  /** Plain stack config (namespaced keys, values as in the stack file). */
  config: Record<string, unknown>;
  /** The one line the program must stop with. */
  message: RegExp;
  /** A value that must appear nowhere in the output (a token written as plain text). */
  hidden?: string;
}


/** Secret config every case runs with (set with --secret): build hosts need a key to get that far. */
export const SECRETS = { 'polyarch:sshPrivateKey': 'not-a-key-evaluation-fails-first' };

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The cases, with the lockfiles and caches they need made in a temp folder. */
export async function evaluationErrors(): Promise<EvaluationError[]> {
  const { file: lockFile, lock, cacheDir } = await fixtureLock(['x86_64']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-evalerr-'));
  const good = { 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:release': false };

  const truncated = path.join(dir, 'truncated.lock.json');
  const text = fs.readFileSync(lockFile, 'utf8');
  fs.writeFileSync(truncated, text.slice(0, text.length >> 1));

  // The same pins, served by a koji that is gone; the cache is empty, so every RPM must be fetched.
  const unreachable = path.join(dir, 'unreachable.lock.json');
  const koji = `http://127.0.0.1:${await closedPort()}`;
  const moved = JSON.parse(text.replaceAll(lock.koji, koji)) as typeof lock;
  fs.writeFileSync(unreachable, JSON.stringify(moved, null, 2));
  const rpmUrls = lock.hosts.x86_64!.map((r) => r.url.replace(lock.koji, koji));

  const token = 'ghp_plainTextToken7392';
  return [
    { name: 'an unknown host arch', config: { ...good, 'polyarch:hosts': ['sparc'] }, message: /^invalid stack config: polyarch:hosts\.0: unknown host arch "sparc" \(valid: x86_64, aarch64, ppc64le, s390x\)$/ },
    { name: 'an unknown target CPU', config: { ...good, 'polyarch:targets': ['armv9'] }, message: /^invalid stack config: polyarch:targets\.0: unknown CPU "armv9" \(valid: all, aarch64, .*\)$/ },
    { name: 'empty targets', config: { ...good, 'polyarch:targets': [] }, message: /^invalid stack config: polyarch:targets: is empty: list the target CPUs to publish, or \[all\]$/ },
    {
      name: 'odd characters in a repository name',
      config: { ...good, 'polyarch:registry': { server: 'ghcr.io', repository: 'Polyarch/QEMU user!' } },
      message: /^invalid stack config: polyarch:registry\.repository: must be a lowercase repository path$/,
    },
    {
      name: 'a token written as plain text',
      config: { ...good, 'polyarch:githubToken': token },
      message: /^invalid stack config: polyarch:githubToken: must be set with `pulumi config set --secret`, not as plain text$/,
      hidden: token,
    },
    { name: 'no lockfile', config: { ...good, 'polyarch:lockFile': path.join(dir, 'none.lock.json') }, message: new RegExp(`^${escape(path.join(dir, 'none.lock.json'))} is missing: no QEMU build is pinned yet\\. `) },
    { name: 'a truncated lockfile', config: { ...good, 'polyarch:lockFile': truncated }, message: new RegExp(`^${escape(truncated)}: .*JSON`) },
    {
      name: 'a lockfile without a host the stack publishes',
      config: { ...good, 'polyarch:hosts': ['x86_64', 's390x'] },
      message: new RegExp(`^${escape(lockFile)} pins no RPMs for host\\(s\\) s390x; run polyarch lock with --hosts x86_64,s390x$`),
    },
    {
      name: 'a build host targeting a CPU it runs natively',
      config: { ...good, 'polyarch:buildHosts': [{ name: 'builder-1', address: '127.0.0.1', user: 'root', targets: ['x86_64'] }] },
      message: /^build host "builder-1" \(x86_64\) runs x86_64 natively; leave them out of its targets$/,
    },
    {
      name: 'images of a host whose targets are all its own family',
      config: { ...good, 'polyarch:targets': ['x86_64'], 'polyarch:registry': { server: 'ghcr.io', repository: 'polyarch/qemu-user-static' } },
      message: /^host x86_64: the :latest image would register nothing \(it ships only emulators of the host's own family\)$/,
    },
    {
      name: 'koji unreachable with a cold cache',
      config: { ...good, 'polyarch:lockFile': unreachable, 'polyarch:cacheDir': path.join(dir, 'cold-cache') },
      message: new RegExp(`^(${rpmUrls.map(escape).join('|')}): connect ECONNREFUSED`),
    },
  ];
}
