// What an engine test that pushes images needs around the engine: a TLS registry with a
// password, a BuildKit of the test's own that trusts it, a busybox base pushed there, and
// skopeo to read the registry back. Used by the images and the interrupted-update tests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { startBuildKit, type BuildKit } from './buildkit.ts';
import { busyboxRoot } from './debian.ts';
import { engineBin, type ProjectOptions } from './engine.ts';
import { startRegistry, type Registry } from './registry.ts';

export const REPOSITORY = 'polyarch/qemu-user-static';

export interface ImageWorld {
  registry: Registry;
  bk: BuildKit;
  /** CA and auth file for skopeo. */
  certDir: string;
  /** busybox for amd64 and arm64, pinned by digest. */
  baseImage: string;
  /** `<registry>/<repository>`: what every tag starts with. */
  repo: string;
  /** skopeo against the registry: TLS checked against the CA, credentials from an auth file (never argv). */
  skopeo(command: string, ...args: string[]): string;
  /** Every tag the repository holds, sorted. */
  tags(): string[];
  /** The engine project options that push to this registry with the password as a stack secret. */
  stack(config: Record<string, unknown>): ProjectOptions;
}

/** os/arch of every manifest an index lists, sorted; undefined for a single manifest. */
export function platforms(raw: string): string[] | undefined {
  const doc = JSON.parse(raw) as { manifests?: { platform?: { os: string; architecture: string } }[] };
  return doc.manifests?.filter((m) => m.platform && m.platform.architecture !== 'unknown').map((m) => `${m.platform!.os}/${m.platform!.architecture}`).sort();
}

/** A busybox base for amd64 and arm64, pushed as one index with buildx; returns it pinned by digest. */
function pushBase(bk: BuildKit, registry: Registry, work: string): string {
  const ctx = path.join(work, 'base');
  fs.mkdirSync(ctx, { recursive: true });
  for (const arch of ['amd64', 'arm64']) fs.renameSync(busyboxRoot(work, arch), path.join(ctx, arch));
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}/ /\n');
  const metadata = path.join(work, 'base.json');
  const ref = `${registry.address}/polyarch-test/busybox`;
  execFileSync(path.join(engineBin(), 'buildx'), ['build', '--builder', bk.builder, '--platform', 'linux/amd64,linux/arm64', '--push', '-t', `${ref}:base`, '--metadata-file', metadata, ctx], {
    env: { ...process.env, DOCKER_CONFIG: bk.dockerConfig },
    stdio: 'pipe',
    timeout: 5 * 60_000,
  });
  const digest = (JSON.parse(fs.readFileSync(metadata, 'utf8')) as Record<string, string>)['containerimage.digest'];
  assert.match(String(digest), /^sha256:[0-9a-f]{64}$/);
  return `${ref}@${digest}`;
}

export async function startImageWorld(t: TestContext): Promise<ImageWorld> {
  const registry = await startRegistry(t, { tls: true });
  const bk = await startBuildKit(t, [{ address: registry.address, caFile: registry.caFile! }]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-images-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const certDir = path.join(work, 'certs');
  fs.mkdirSync(certDir);
  fs.copyFileSync(registry.caFile!, path.join(certDir, 'ca.crt'));
  // buildx and skopeo read registry credentials from an auth file, as `docker login` writes it.
  const auth = Buffer.from(`${registry.user}:${registry.password}`).toString('base64');
  fs.writeFileSync(path.join(certDir, 'auth.json'), JSON.stringify({ auths: { [registry.address]: { auth } } }));
  fs.writeFileSync(path.join(bk.dockerConfig, 'config.json'), JSON.stringify({ auths: { [registry.address]: { auth } } }));
  const baseImage = pushBase(bk, registry, work);
  // The program's pushes must use the stack's secret, not the docker config's login.
  fs.writeFileSync(path.join(bk.dockerConfig, 'config.json'), JSON.stringify({ auths: {} }));

  const repo = `${registry.address}/${REPOSITORY}`;
  const skopeo = (command: string, ...args: string[]) =>
    execFileSync('skopeo', [command, '--cert-dir', certDir, '--authfile', path.join(certDir, 'auth.json'), ...args], { encoding: 'utf8' });
  return {
    registry,
    bk,
    certDir,
    baseImage,
    repo,
    skopeo,
    tags: () => (JSON.parse(skopeo('list-tags', `docker://${repo}`)) as { Tags: string[] }).Tags.sort(),
    stack: (config) => ({
      config: {
        'polyarch:registry': { server: registry.address, repository: REPOSITORY, username: registry.user, push: true },
        'polyarch:baseImage': baseImage,
        'polyarch:builder': bk.builder,
        ...config,
      },
      secrets: { 'polyarch:registryPassword': registry.password },
      // The plugin reads the index back over HTTPS with Go's TLS: it must trust the test CA.
      env: { DOCKER_CONFIG: bk.dockerConfig, SSL_CERT_FILE: registry.bundleFile },
    }),
  };
}
