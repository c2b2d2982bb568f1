// podman (and skopeo) with test-owned configuration and storage: nothing the test builds or
// pulls lands in the machine's own container storage, and everything goes when the test ends.
// runc instead of crun, cgroupfs, no default ulimits and no container network, because that
// is what works on these VMs; registries on loopback are plain HTTP, listed as insecure.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class Podman {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Credentials file used by podman, buildah and skopeo (REGISTRY_AUTH_FILE). */
  readonly authFile: string;

  /** `insecure`: registries (host:port) reached over plain HTTP. */
  constructor(t: TestContext, insecure: readonly string[] = []) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-podman-'));
    const at = (p: string) => path.join(this.dir, p);
    fs.writeFileSync(
      at('containers.conf'),
      [
        '[containers]',
        'default_ulimits = []',
        'netns = "none"',
        '[engine]',
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${at('events.log')}"`,
        `tmp_dir = "${at('tmp')}"`,
        '',
      ].join('\n'),
    );
    fs.writeFileSync(at('storage.conf'), ['[storage]', 'driver = "overlay"', `graphroot = "${at('root')}"`, `runroot = "${at('run')}"`, ''].join('\n'));
    fs.writeFileSync(
      at('registries.conf'),
      ['unqualified-search-registries = []', ...insecure.flatMap((r) => ['[[registry]]', `location = "${r}"`, 'insecure = true'])].join('\n') + '\n',
    );
    this.authFile = at('auth.json');
    fs.writeFileSync(this.authFile, '{"auths":{}}\n', { mode: 0o600 });
    this.env = {
      ...process.env,
      CONTAINERS_CONF: at('containers.conf'),
      CONTAINERS_STORAGE_CONF: at('storage.conf'),
      CONTAINERS_REGISTRIES_CONF: at('registries.conf'),
      REGISTRY_AUTH_FILE: this.authFile,
      TMPDIR: at('tmp'),
    };
    fs.mkdirSync(at('tmp'));
    t.after(() => this.cleanup());
  }

  run(cmd: 'podman' | 'skopeo', args: readonly string[], input?: string): Run {
    // skopeo 1.9 ignores registries.conf's `insecure`; the test's registries are all plain HTTP.
    if (cmd === 'skopeo') args = [args[0] ?? '', '--tls-verify=false', ...args.slice(1)];
    const r = spawnSync(cmd, args, { env: this.env, input, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** podman ARGS, which must succeed; returns stdout. */
  ok(args: readonly string[], input?: string): string {
    const r = this.run('podman', args, input);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return r.stdout;
  }

  /** skopeo ARGS against the test's registries (plain HTTP); must succeed. */
  skopeo(args: readonly string[]): string {
    const r = this.run('skopeo', args);
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  private cleanup(): void {
    this.run('podman', ['rm', '--all', '--force', '--time', '0']);
    this.run('podman', ['rmi', '--all', '--force']);
    // Whatever is still mounted under our storage (a crashed container) goes before the files.
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => m !== undefined && m.startsWith(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
