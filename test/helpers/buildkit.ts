// A BuildKit daemon of the test's own (buildkitd from scripts/engine.sh, OCI worker on runc),
// registered as a buildx `remote` builder in a private docker config folder: what the
// docker-build provider builds with here, where no BuildKit image can be pulled.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { importRoot } from './docker.ts';
import { engineBin } from './engine.ts';
import { stopDaemon } from './system.ts';

export interface BuildKit {
  /** The buildx builder's name (stack config polyarch:builder). */
  builder: string;
  /** DOCKER_CONFIG holding the builder; the engine's environment needs it. */
  dockerConfig: string;
}

/** Registries the daemon reaches over TLS, with the CA that signed their certificates. */
export interface TrustedRegistry {
  address: string;
  caFile: string;
}

export async function startBuildKit(t: TestContext, registries: readonly TrustedRegistry[] = []): Promise<BuildKit> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-buildkit-'));
  const socket = path.join(dir, 'buildkitd.sock');
  const runc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
  const toml = [
    `root = "${path.join(dir, 'root')}"`,
    '[grpc]',
    `  address = ["unix://${socket}"]`,
    '[worker.oci]',
    '  enabled = true',
    `  binary = "${runc}"`,
    '[worker.containerd]',
    '  enabled = false',
    ...registries.flatMap((r) => [`[registry."${r.address}"]`, `  ca = ["${r.caFile}"]`]),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'buildkitd.toml'), toml);
  const bin = engineBin();
  const log = fs.openSync(path.join(dir, 'buildkitd.log'), 'w');
  const daemon = spawn(path.join(bin, 'buildkitd'), ['--config', path.join(dir, 'buildkitd.toml')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  // A failed hook must not leave the test process waiting on a daemon it can no longer stop.
  daemon.unref();
  t.after(async () => {
    await stopDaemon(daemon);
    // Snapshots are overlay mounts under root/; they are gone once the daemon exits.
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 100 && !fs.existsSync(socket); i++) {
    if (daemon.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!fs.existsSync(socket)) throw new Error(`buildkitd did not start: ${fs.readFileSync(path.join(dir, 'buildkitd.log'), 'utf8').trim().split('\n').slice(-3).join(' | ')}`);

  const dockerConfig = path.join(dir, 'docker');
  const builder = `polyarch-test-${path.basename(dir).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`;
  const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
  execFileSync(path.join(bin, 'buildx'), ['create', '--name', builder, '--driver', 'remote', `unix://${socket}`], { env, stdio: 'pipe' });
  execFileSync(path.join(bin, 'buildx'), ['inspect', builder, '--bootstrap'], { env, stdio: 'pipe', timeout: 60_000 });
  return { builder, dockerConfig };
}

/**
 * An image of the engine's own buildkitd and the libraries it links (none can be pulled here),
 * for a buildx docker-container builder: `--driver-opt image=<ref>` (POLYARCH_BUILDKIT_IMAGE).
 * Where privileged containers are refused it shows the refusal a real BuildKit image meets.
 */
export function buildkitImage(work: string, ref: string): void {
  const root = path.join(work, 'buildkit-root');
  const put = (from: string, to = from) => {
    fs.mkdirSync(path.join(root, path.dirname(to)), { recursive: true });
    fs.copyFileSync(from, path.join(root, to));
  };
  const buildkitd = path.join(engineBin(), 'buildkitd');
  put(buildkitd, '/usr/bin/buildkitd');
  fs.chmodSync(path.join(root, 'usr/bin/buildkitd'), 0o755);
  const libs = execFileSync('ldd', [buildkitd], { encoding: 'utf8' }).match(/\/\S+\.so[.\d]*/g) ?? [];
  for (const lib of libs) put(fs.realpathSync(lib), lib);
  importRoot(root, ref, 'linux/amd64', ['ENTRYPOINT ["/usr/bin/buildkitd"]']);
}
