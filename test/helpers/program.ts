// The Pulumi program under mocks, with what every resource was declared with. Inputs are
// kept twice: as the program sees them (secrets unwrapped) and as they crossed the wire to
// the engine (secrets still wrapped), so a test can prove a secret never travels in plain.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { MockMonitor } from '@pulumi/pulumi/runtime/mocks.js';
import { specialSecretSig, specialSigKey } from '@pulumi/pulumi/runtime/rpc.js';
import * as settings from '@pulumi/pulumi/runtime/settings.js';
import { createLock, writeLock, type Lock } from '../../lib/lock.ts';
import { kojiTree, startKoji } from '../fixtures/koji.ts';
import { createdState } from './mock-state.ts';
import { buildFixtureRpms, FIXTURE_ROOT, SPLIT_BUILD, type FixtureHost } from '../fixtures/rpms.ts';

export interface Declared {
  type: string;
  name: string;
  /** Inputs as the provider would get them, secrets unwrapped. */
  inputs: Record<string, unknown>;
  /** Inputs as sent to the engine: a secret is `{ [sig]: secretSig, value }`. */
  wire: Record<string, unknown>;
  /** Resource options that matter to tests. */
  parent?: string;
  /** URNs of the resources it waits for (dependsOn and inputs). */
  dependencies: string[];
}

const declared: Declared[] = [];

// Record the wire form before the mock monitor unwraps it.
type WireReq = { getType(): string; getName(): string; getObject(): { toJavaScript(): Record<string, unknown> }; getParent(): string; getDependenciesList(): string[] };
const proto = MockMonitor.prototype as unknown as { registerResource(req: WireReq, cb: unknown): Promise<void> };
const original = proto.registerResource;
proto.registerResource = function (this: unknown, req: WireReq, cb: unknown) {
  const wire = req.getObject().toJavaScript();
  declared.push({ type: req.getType(), name: req.getName(), inputs: unwrap(wire) as Record<string, unknown>, wire, parent: req.getParent() || undefined, dependencies: req.getDependenciesList() });
  return original.call(this, req, cb);
};

function isSecret(v: unknown): v is { value: unknown } {
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[specialSigKey] === specialSecretSig;
}

function unwrap(v: unknown): unknown {
  if (isSecret(v)) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
  return v;
}

/** The wire form as JSON with every secret replaced by "[secret]": what a plain-state reader sees. */
export function plainText(wire: unknown): string {
  const hide = (v: unknown): unknown => {
    if (isSecret(v)) return '[secret]';
    if (Array.isArray(v)) return v.map(hide);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hide(x)]));
    return v;
  };
  return JSON.stringify(hide(wire));
}

pulumi.runtime.setMocks(
  {
    newResource: (a) => ({ id: `${a.name}-id`, state: createdState(a) }),
    call: (a) => a.inputs,
  },
  'qemu-user-static',
  'dev',
  true,
);

let loads = 0;

/** Runs a fresh copy of index.ts with this stack config; resolves its exports and what it declared. */
export async function loadProgram(config: Record<string, string>, secrets: Record<string, string> = {}) {
  declared.length = 0;
  pulumi.runtime.setAllConfig({ ...config, ...secrets }, Object.keys(secrets));
  const exports = await import(`../../index.ts?load=${loads++}`);
  const outputs = await resolveOutputs(exports);
  // Resource registration is asynchronous (a resource waits for its inputs, e.g. a build
  // host's staged upload folder, which a cold cache under load takes seconds to copy): wait
  // until the SDK has no registration left in flight, as it does itself before it exits
  // (waitForRPCs: exported but @internal, so untyped; every registerResource holds its RPC
  // open from the constructor until registered, runtime/resource.js runAsyncResourceOp).
  await (settings as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  return { exports, outputs, resources: [...declared] };
}

async function resolveOutputs(mod: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mod)) {
    out[k] = await new Promise((resolve) => (pulumi.output(v) as pulumi.Output<unknown>).apply(resolve));
  }
  return out;
}

/**
 * A lockfile over fixture RPMs served by a loopback koji, plus an RPM cache that already
 * holds them, so the program can extract without the server staying up.
 */
export async function fixtureLock(
  hosts: readonly FixtureHost[] = ['x86_64', 'aarch64'],
  build: { version: string; release: string } = SPLIT_BUILD,
  o: { alter?: string; previous?: Lock } = {},
): Promise<{ file: string; lock: Lock; cacheDir: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-koji-'));
  for (const host of hosts) kojiTree(buildFixtureRpms({ host, layout: 'split', compression: 'zstd', build, alter: o.alter }), build, host, root);
  const koji = await startKoji(root);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-prog-'));
  const cacheDir = path.join(FIXTURE_ROOT, 'program-rpms');
  try {
    // `previous` numbers the release as `polyarch lock` does when it replaces that lockfile.
    const lock = await createLock({ ...build, hosts: [...hosts], koji: koji.url, cacheDir, previous: o.previous });
    const file = path.join(dir, 'qemu.lock.json');
    await writeLock(file, lock);
    return { file, lock, cacheDir };
  } finally {
    await koji.close();
    // The RPM cache holds every RPM now; the served tree was only copies.
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Every resource the program declares, under mocks, for an x86_64 release published to `github` (the loopback GitHub). */
export async function declareGitHubRelease(github: { owner: string; repo: string; url: string; token: string }): Promise<Declared[]> {
  const { file, cacheDir } = await fixtureLock(['x86_64']);
  const config = {
    'polyarch:lockFile': file,
    'polyarch:cacheDir': path.relative(process.cwd(), cacheDir),
    'polyarch:release': JSON.stringify({ repository: `${github.owner}/${github.repo}`, apiUrl: github.url }),
  };
  return (await loadProgram(config, { 'polyarch:githubToken': github.token })).resources;
}
