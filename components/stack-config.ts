// Reads this stack's `polyarch:*` config from Pulumi and validates it once with lib/config.
// Secret values stay in Pulumi: only whether they are set is passed on.
import fs from 'node:fs';
import * as pulumi from '@pulumi/pulumi';
import { CONFIG_PREFIX, parseStackConfig, type SECRET_KEYS, type StackConfig } from '../lib/config.ts';
import { missingIdentity } from '../lib/cosign.ts';
import { HOST_ARCHES } from '../lib/cpus.ts';
import { readLock, type Lock } from '../lib/lock.ts';
import { UserError } from '../lib/user-error.ts';

// Present in the SDK's runtime but missing from its type declarations.
const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret(key: string): boolean }).isConfigSecret;

export function loadStackConfig(): StackConfig {
  const raw: Record<string, string> = {};
  const secretsSet = new Set<string>();
  for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!key.startsWith(CONFIG_PREFIX)) continue;
    const name = key.slice(CONFIG_PREFIX.length);
    if (isConfigSecret(key)) secretsSet.add(name);
    else raw[name] = value;
  }
  // The release providers fall back to GITHUB_TOKEN (CI runners have one) when the stack
  // holds no token of its own; the engine hands them the same environment as the program.
  if (process.env.GITHUB_TOKEN) secretsSet.add('githubToken');
  return parseStackConfig(raw, secretsSet);
}

/** A secret config value as a Pulumi secret Output (never a plain string). */
export function secretConfig(name: (typeof SECRET_KEYS)[number]): pulumi.Output<string> {
  return new pulumi.Config('polyarch').requireSecret(name);
}

/** How to pin a first build: the update-qemu workflow's own command, for every host any stack may publish. */
export const lockCommand = (file: string) => `npx polyarch lock --latest --hosts ${HOST_ARCHES.join(',')} --out ${file}`;

/**
 * The stack's lockfile. Without one (a new repository, before its first pinned build) the
 * program stops (through evaluate) with one line saying how to make it.
 */
export async function readStackLock(file: string): Promise<Lock> {
  if (!fs.existsSync(file)) {
    throw new UserError(
      `${file} is missing: no QEMU build is pinned yet. Pin one by running the update-qemu workflow by hand (Actions, update-qemu, Run workflow) and merging its pull request, or run \`${lockCommand(file)}\` and commit the file`,
    );
  }
  return readLock(file);
}

/**
 * `work` done at program evaluation. A UserError from lib/ (stack config, lockfile, koji, disk)
 * stops the program as a pulumi.RunError, which the engine prints as its message alone: one
 * line, no stack trace. Any other error is a bug and keeps its trace.
 */
export async function evaluate<T>(work: () => T | Promise<T>): Promise<T> {
  // An error made while the module's first synchronous run is on the stack has the SDK's frames
  // in it, and the SDK maps them through source maps when it logs the error: 25 s and more
  // before the line shows. After this await the stack holds only the program's own frames.
  await Promise.resolve();
  try {
    return await work();
  } catch (e) {
    throw e instanceof UserError ? new pulumi.RunError(e.message.replace(/\s*\n\s*/g, ' ')) : e;
  }
}

/**
 * How this run signs (lib/cosign.ts), or undefined to publish unsigned, which it says in one
 * line. Keyless signing needs the job's OIDC identity: an update without one (a fork's job
 * without `id-token: write`, a laptop) publishes unsigned, never half-signed; a preview plans
 * the signatures all the same, as the update on main will make them.
 */
export function signingMode(config: StackConfig, env: NodeJS.ProcessEnv = process.env): 'key' | 'keyless' | undefined {
  const publishes = Boolean(config.release) || Boolean(config.registry?.push) || Boolean(config.localRegistry);
  const unsigned = (why: string) => {
    if (publishes) void pulumi.log.warn(`${why}: the release and images are published unsigned`);
    return undefined;
  };
  if (config.signing === 'none') return unsigned('polyarch:signing is none');
  const missing = config.signing === 'keyless' && !pulumi.runtime.isDryRun() ? missingIdentity(env) : undefined;
  if (missing) return unsigned(`polyarch:signing is keyless, but ${missing}`);
  return config.signing;
}
