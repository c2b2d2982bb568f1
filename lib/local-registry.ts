// The dev stack's registry container, driven through the `docker` CLI: started (or adopted)
// on a loopback port with its storage in a named volume, waited for until its API answers,
// inspected, and removed. The CLI rather than an SDK or the @pulumi/docker plugin, because
// the CLI is what every Docker install has and the plugin cannot be built everywhere.
// Arguments always go as arrays (execFile), never through a shell. Every error is one line.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** What the registry container should be. */
export interface RegistrySpec {
  /** Loopback port the registry is published on (127.0.0.1:<port> -> 5000). */
  port: number;
  /** The registry image, ideally pinned by digest. */
  image: string;
  /** Container name (default polyarch-registry-<port>). */
  name?: string;
  /** Named volume holding the registry's storage (default polyarch-registry-<port>). */
  volume?: string;
}

/** What `docker inspect` says about the container. */
export interface RegistryState {
  /** Docker's container id. */
  id: string;
  name: string;
  running: boolean;
  /** The image reference the container was started from. */
  image: string;
  /** The id of the image it runs (sha256:…). */
  imageId: string;
  /** The host port publishing the registry's 5000/tcp, if any. */
  port?: number;
  /** Every host address publishing 5000/tcp, e.g. 127.0.0.1:5000. */
  published: string[];
}

export interface WaitOptions {
  /** How long the registry may take to answer (default 60 s). */
  timeoutMs?: number;
  /** Pause between tries (default 500 ms). */
  intervalMs?: number;
}

const REGISTRY_PORT = '5000/tcp';
const REGISTRY_DATA = '/var/lib/registry';
const CALL_TIMEOUT_MS = 60_000;
// A pull of the registry image is a few MB, but a slow link must not fail the deployment.
const PULL_TIMEOUT_MS = 15 * 60_000;
const START_DOCKERD = 'start dockerd (sudo systemctl start docker, or `dockerd &`)';

/** The spec with its defaults filled in; a port outside 1..65535 is refused. */
export function resolveRegistry(spec: RegistrySpec): Required<RegistrySpec> {
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new Error(`registry port must be an integer in 1..65535, got ${spec.port}`);
  const fallback = `polyarch-registry-${spec.port}`;
  return { port: spec.port, image: spec.image, name: spec.name || fallback, volume: spec.volume || fallback };
}

interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the docker CLI. Problems with the CLI or the engine itself throw (nothing else can
 * work then); any other failure is returned for the caller to explain.
 */
async function docker(args: readonly string[], timeoutMs = CALL_TIMEOUT_MS): Promise<DockerResult> {
  try {
    const { stdout, stderr } = await execFileAsync('docker', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean };
    if (err.code === 'ENOENT') throw new Error(`the docker CLI is not on PATH: install Docker (e.g. apt-get install docker.io), then ${START_DOCKERD}`);
    const stderr = err.stderr ?? '';
    const engine = engineProblem(stderr);
    if (engine) throw new Error(engine);
    if (err.killed) throw new Error(`docker ${args[0]} did not finish within ${Math.round(timeoutMs / 1000)} s`);
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr };
  }
}

/** The engine could not be reached at all: which address, and what to do. */
function engineProblem(stderr: string): string | undefined {
  // Docker 28 and earlier, then Docker 29's wording.
  const denied = /permission denied while trying to connect to the (?:Docker daemon socket|docker API) at (\S+?)[:;]?(?:\s|$)/i.exec(stderr);
  if (denied) return `the Docker engine at ${denied[1]} refused this user (permission denied): run as root or join the docker group`;
  const down = /(?:Cannot connect to the Docker daemon|failed to connect to the docker API) at (\S+?)[.;]?(?:\s|$)/i.exec(stderr);
  const refused = /error during connect:.*?"?([a-z]+:\/\/[^/"\s]+)/i.exec(stderr);
  const at = down?.[1] ?? refused?.[1];
  if (at) return `no Docker engine answers at ${at}: ${START_DOCKERD}`;
  return undefined;
}

/** Docker's own explanation, as one line (its usage hints dropped). */
function reason(r: DockerResult): string {
  const lines = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^Run '.*--help' for more information/.test(l) && !/^Unable to find image/.test(l));
  return (lines.at(-1) ?? `exit code ${r.code}`).replace(/^docker: /, '');
}

const isMissing = (r: DockerResult) => /No such (container|object)/i.test(r.stderr);

interface InspectJson {
  Id: string;
  Name: string;
  Image: string;
  State?: { Running?: boolean };
  Config?: { Image?: string };
  HostConfig?: { PortBindings?: Record<string, { HostIp?: string; HostPort?: string }[] | null> | null };
}

/** The container's state, or undefined when no container has that name. */
export async function inspectRegistry(name: string): Promise<RegistryState | undefined> {
  const r = await docker(['container', 'inspect', name]);
  if (r.code !== 0) {
    if (isMissing(r)) return undefined;
    throw new Error(`could not inspect container ${name}: ${reason(r)}`);
  }
  const [c] = JSON.parse(r.stdout) as InspectJson[];
  if (!c) return undefined;
  const bindings = c.HostConfig?.PortBindings?.[REGISTRY_PORT] ?? [];
  const port = Number(bindings[0]?.HostPort);
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    running: c.State?.Running === true,
    image: c.Config?.Image ?? '',
    imageId: c.Image,
    ...(Number.isInteger(port) && port > 0 ? { port } : {}),
    // An empty HostIp is Docker's way of saying every interface.
    published: bindings.map((b) => `${b.HostIp || '0.0.0.0'}:${b.HostPort ?? ''}`),
  };
}

/** The local id of an image, or undefined when the engine does not hold it. */
async function localImageId(image: string): Promise<string | undefined> {
  const r = await docker(['image', 'inspect', '--format', '{{.Id}}', image]);
  return r.code === 0 ? r.stdout.trim() || undefined : undefined;
}

/**
 * How an existing container differs from the spec (one phrase per difference), or an empty
 * list when it can serve as the registry. The image matches by reference or, when the
 * reference was spelled differently, by the id of the image it resolves to.
 */
export async function registryDifferences(spec: RegistrySpec, state: RegistryState): Promise<string[]> {
  const want = resolveRegistry(spec);
  const out: string[] = [];
  if (state.image !== want.image && state.imageId !== (await localImageId(want.image))) out.push(`runs ${state.image || state.imageId}, not ${want.image}`);
  const address = `127.0.0.1:${want.port}`;
  if (!state.published.includes(address)) out.push(`publishes ${state.published.join(', ') || 'no port'}, not ${address}`);
  return out;
}

/** Makes sure the image is in the engine, pulling it when it is not. */
async function ensureImage(image: string): Promise<void> {
  if (await localImageId(image)) return;
  const r = await docker(['pull', image], PULL_TIMEOUT_MS);
  if (r.code !== 0) throw new Error(`image ${image} is not present locally and could not be pulled (${reason(r)}): pull it where a registry is reachable, or \`docker load\` it`);
}

/**
 * Ensures the registry container exists and runs, then waits until its API answers.
 * An existing container of that name is adopted (and started if stopped) when it runs the
 * same image on the same port; any other is refused rather than replaced, since it may be
 * someone else's.
 */
export async function ensureRegistry(spec: RegistrySpec, wait: WaitOptions = {}): Promise<RegistryState> {
  const want = resolveRegistry(spec);
  const existing = await inspectRegistry(want.name);
  if (existing) {
    const diffs = await registryDifferences(want, existing);
    if (diffs.length > 0) throw new Error(`container ${want.name} already exists but ${diffs.join(' and ')}: remove it (docker rm -f ${want.name}) or choose another port`);
    if (!existing.running) {
      const r = await docker(['start', want.name]);
      if (r.code !== 0) throw new Error(`could not start container ${want.name}: ${reason(r)}`);
    }
  } else {
    await ensureImage(want.image);
    const v = await docker(['volume', 'create', want.volume]);
    if (v.code !== 0) throw new Error(`could not create volume ${want.volume}: ${reason(v)}`);
    const args = ['run', '-d', '--name', want.name, '--restart', 'unless-stopped', '-p', `127.0.0.1:${want.port}:5000`, '-v', `${want.volume}:${REGISTRY_DATA}`, want.image];
    const r = await docker(args);
    if (r.code !== 0) {
      // `docker run` can create the container and then fail to start it (a taken port):
      // leave nothing behind that the next run would adopt.
      await docker(['rm', '-f', want.name]);
      throw new Error(`could not start registry container ${want.name}: ${reason(r)}`);
    }
  }
  await waitForRegistry(want.port, want.name, wait);
  const state = await inspectRegistry(want.name);
  if (!state) throw new Error(`container ${want.name} vanished right after it started`);
  return state;
}

/** True once something answers the registry API at this URL (401 counts: it is a registry with auth). */
async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok || res.status === 401;
  } catch {
    return false;
  }
}

/** Waits until http://127.0.0.1:<port>/v2/ answers; on timeout, names the port and the container's last log lines. */
export async function waitForRegistry(port: number, name: string, opts: WaitOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 500;
  const url = `http://127.0.0.1:${port}/v2/`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await answers(url)) return;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
  const logs = await docker(['logs', '--tail', '5', name]);
  const lines = `${logs.stdout}\n${logs.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-5);
  const seconds = Math.round(timeoutMs / 100) / 10;
  throw new Error(`registry container ${name} did not answer at ${url} within ${seconds} s; ${lines.length > 0 ? `its last log lines: ${lines.join(' | ')}` : 'it logged nothing'}`);
}

/** Removes the container; its volume stays, so pushed images outlive it. Gone already is fine. */
export async function removeRegistry(name: string): Promise<void> {
  const r = await docker(['rm', '-f', name]);
  if (r.code !== 0 && !isMissing(r)) throw new Error(`could not remove container ${name}: ${reason(r)}`);
}
