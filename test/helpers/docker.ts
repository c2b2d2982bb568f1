// A real Docker engine for tests: Debian's dockerd (started here when none answers, with the
// cgroupfs driver these machines need), and images made offline from Debian packages, since
// no image can be pulled here.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { busyboxRoot } from './debian.ts';
import { stopDaemon } from './system.ts';

const answers = () => spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Makes sure a Docker engine answers; one started here is stopped when the test ends. */
export async function ensureDockerd(t: TestContext): Promise<void> {
  if (answers()) return;
  const log = fs.openSync(path.join(os.tmpdir(), 'polyarch-dockerd.log'), 'w');
  const daemon = spawn('dockerd', ['--exec-opt', 'native.cgroupdriver=cgroupfs'], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  // A failed hook must not leave the test process waiting on a daemon it can no longer stop.
  daemon.unref();
  t.after(async () => {
    await stopDaemon(daemon);
  });
  for (let i = 0; i < 150 && daemon.exitCode === null; i++) {
    if (answers()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`dockerd did not start: ${fs.readFileSync(path.join(os.tmpdir(), 'polyarch-dockerd.log'), 'utf8').trim().split('\n').slice(-3).join(' | ')}`);
}

export function docker(args: readonly string[], o: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  return execFileSync('docker', args, { encoding: 'utf8', env: { ...process.env, ...o.env }, input: o.input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: 5 * 60_000 });
}

/** `docker import` of a root folder as one platform's image. */
export function importRoot(root: string, ref: string, platform: string, changes: readonly string[] = []): void {
  const tar = `${root}.tar`;
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
  docker(['import', '--platform', platform, ...changes.flatMap((c) => ['--change', c]), tar, ref]);
}

/** Debian's static busybox as an image of `arch` (amd64, arm64, …). */
export function busyboxImage(work: string, arch: string, ref: string): void {
  importRoot(busyboxRoot(work, arch), ref, `linux/${arch}`, ['CMD ["/bin/sh"]']);
}

/**
 * A registry image made from Debian's docker-registry (distribution 2.8) and the libraries it
 * links, serving HTTP on :5000 with its storage in /var/lib/registry, like the official one.
 */
export function registryImage(work: string, ref: string): void {
  const root = path.join(work, 'registry-root');
  const put = (from: string, to = from) => {
    fs.mkdirSync(path.join(root, path.dirname(to)), { recursive: true });
    fs.copyFileSync(from, path.join(root, to));
  };
  put('/usr/bin/docker-registry', '/bin/registry');
  fs.chmodSync(path.join(root, 'bin/registry'), 0o755);
  const libs = execFileSync('ldd', ['/usr/bin/docker-registry'], { encoding: 'utf8' }).match(/\/\S+\.so[.\d]*/g) ?? [];
  for (const lib of libs) put(fs.realpathSync(lib), lib);
  fs.mkdirSync(path.join(root, 'etc/docker/registry'), { recursive: true });
  fs.mkdirSync(path.join(root, 'var/lib/registry'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/docker/registry/config.yml'), 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n');
  importRoot(root, ref, 'linux/amd64', ['ENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]', 'EXPOSE 5000']);
}

/**
 * `docker run` flags for a privileged container: `--privileged` where the kernel grants every
 * capability; in sandboxes that refuse one (gVisor refuses CAP_SYS_RESOURCE), every capability
 * but that one, with seccomp, AppArmor and the masked /proc paths lifted as --privileged does.
 */
export function privilegedFlags(image: string): string[] {
  const probe = spawnSync('docker', ['run', '--rm', '--privileged', '--entrypoint', '/bin/true', image], { encoding: 'utf8' });
  if (probe.status === 0) return ['--privileged'];
  if (!/unable to apply caps/.test(probe.stderr)) throw new Error(`docker run --privileged failed: ${probe.stderr.trim().split('\n').pop()}`);
  return ['--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined'];
}
