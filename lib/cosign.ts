// Signing with cosign (Sigstore): SHA256SUMS and the SBOM into bundles published beside them,
// and every pushed image and index by digest. Two ways to sign:
// - keyless: the CI job's OIDC identity gets a short-lived certificate from Fulcio and the
//   signature is logged in Rekor, so no long-lived key exists; users verify the identity (the
//   workflow that ran) and the issuer;
// - key: a cosign key pair, the private half a stack secret; signed without a transparency-log
//   upload, verified with the public key alone (the tests sign this way, offline).
// cosign is a program, not a library: it gets the key and its password in its environment
// (`--key env://…`, COSIGN_PASSWORD) and registry credentials in a docker config of its own,
// never on its command line, and nothing it prints that could hold them is passed on.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from './user-error.ts';

export const SIGNING_MODES = ['none', 'key', 'keyless'] as const;
export type SigningMode = (typeof SIGNING_MODES)[number];

/** How one run signs: the mode, and for `key` the private key (cosign's PEM) and its password. */
export interface Signer {
  mode: 'key' | 'keyless';
  key?: string;
  password?: string;
}

/** Registry credentials for pushing signatures next to an image. */
export interface RegistryLogin {
  server: string;
  username?: string;
  password?: string;
}

/** The release file holding a signed file's cosign bundle: signature, and certificate and log entry when keyless. */
export const bundleName = (file: string) => `${file}.cosign.bundle`;

/** Where keyless signing takes its identity from, as cosign looks for it; undefined when this run has one. */
export function missingIdentity(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.SIGSTORE_ID_TOKEN) return undefined;
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) return undefined;
  return 'this run has no OIDC identity (GitHub Actions gives one to a job with `permissions: id-token: write`; SIGSTORE_ID_TOKEN passes one by hand)';
}

const KEY_ENV = 'POLYARCH_COSIGN_KEY';
/** A signing run on a network that does not answer stops here rather than hang the update. */
const COSIGN_TIMEOUT_MS = 5 * 60_000;

/** The flags and environment every cosign signing command takes for `signer`. */
function signerArgs(signer: Signer): { args: string[]; env: NodeJS.ProcessEnv } {
  if (signer.mode === 'keyless') return { args: ['--yes'], env: {} };
  if (!signer.key) throw new UserError('signing with a key needs the secret polyarch:signingKey');
  // No transparency log: a key's signature is checked against its public key, and the log's
  // public instance is not reachable from every machine that signs.
  return { args: ['--yes', '--key', `env://${KEY_ENV}`, '--tlog-upload=false'], env: { [KEY_ENV]: signer.key, COSIGN_PASSWORD: signer.password ?? '' } };
}

/**
 * Runs cosign; a failure is one line naming `what` and cosign's own last complaint, with every
 * secret in `secrets` cut out of it.
 */
async function cosign(what: string, args: readonly string[], env: NodeJS.ProcessEnv, secrets: readonly (string | undefined)[]): Promise<string> {
  const child = spawn('cosign', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: COSIGN_TIMEOUT_MS });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new UserError(`${what}: cosign is not on PATH (scripts/engine.sh builds it; in GitHub Actions, sigstore/cosign-installer installs it)`) : e));
    child.on('close', resolve);
  });
  if (code === 0) return stdout;
  let said = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^WARNING|^Using payload|^tlog entry/i.test(l)).pop() ?? `exited ${code ?? 'on a signal (timed out?)'}`;
  for (const s of secrets) if (s) said = said.split(s).join('***');
  throw new Error(`${what}: cosign failed: ${said.replace(/^Error:\s*/, '')}`);
}

/** A private temp folder, removed after `work`. */
async function withTemp<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'polyarch-cosign-'));
  try {
    return await work(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Signs `file` and returns cosign's bundle for it (JSON text): what `cosign verify-blob --bundle` checks. */
export async function signBlob(file: string, signer: Signer): Promise<string> {
  const { args, env } = signerArgs(signer);
  return withTemp(async (dir) => {
    const bundle = path.join(dir, 'bundle.json');
    await cosign(`signing ${path.basename(file)}`, ['sign-blob', ...args, '--bundle', bundle, '--output-signature', path.join(dir, 'sig'), file], env, [signer.key, signer.password]);
    return fs.readFile(bundle, 'utf8');
  });
}

/** A docker config holding only `login`, for cosign to push signatures with. */
async function dockerConfig(dir: string, login?: RegistryLogin): Promise<NodeJS.ProcessEnv> {
  if (!login?.username || !login.password) return {};
  const auth = Buffer.from(`${login.username}:${login.password}`).toString('base64');
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ auths: { [login.server]: { auth } } }), { mode: 0o600 });
  return { DOCKER_CONFIG: dir };
}

/**
 * Signs the pushed image or index `ref` (`name@sha256:…`: by digest, never a tag that can move),
 * and attaches `sbom` (a file) to it as a signed SPDX attestation when given. The signature and
 * attestation are pushed to the image's repository, as cosign lays them out.
 */
export async function signImage(ref: string, signer: Signer, o: { login?: RegistryLogin; sbom?: string } = {}): Promise<void> {
  if (!/@sha256:[0-9a-f]{64}$/.test(ref)) throw new Error(`${ref}: an image is signed by digest (name@sha256:…), not by tag`);
  const { args, env } = signerArgs(signer);
  const secrets = [signer.key, signer.password, o.login?.password];
  await withTemp(async (dir) => {
    const auth = await dockerConfig(dir, o.login);
    await cosign(`signing ${ref}`, ['sign', ...args, ref], { ...env, ...auth }, secrets);
    if (o.sbom) await cosign(`attaching the SBOM to ${ref}`, ['attest', ...args, '--type', 'spdxjson', '--predicate', o.sbom, ref], { ...env, ...auth }, secrets);
  });
}
