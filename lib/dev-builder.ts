// The BuildKit builder `npm run up:dev` builds the dev stack's images on. The dev stack pushes
// to its own registry on localhost:<port>, so the builder must share the host's network. In
// order of preference:
//   1. the builder polyarch:builder names, when it exists and answers (a user's own, or one an
//      earlier run made);
//   2. a docker-container builder with host networking, made under that name: Docker alone
//      gives it (Docker Desktop included), no Go and no root beyond Docker's own;
//   3. a buildkitd on this host run as root (scripts/buildkit.sh), for machines whose Docker
//      cannot run that builder's privileged container (sandboxes: "unable to apply caps").
// chooseDevBuilder decides from what was probed and is pure; probeDevBuilder and
// ensureDevBuilder run the docker CLI (arguments as arrays, never through a shell).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { UserError } from './user-error.ts';

/** The builder Pulumi.dev.yaml names, which up:dev makes when no builder of that name exists. */
export const DEV_BUILDER = 'polyarch-dev';

/** A builder buildx already knows under the configured name. */
export interface ExistingBuilder {
  driver: string;
  /** The first node's endpoint (for `remote`, the buildkitd address). */
  endpoint?: string;
  /** `buildx inspect --bootstrap` succeeded: it builds now. */
  answers: boolean;
  /** Why it does not answer (last line of buildx's error). */
  error?: string;
}

/** What was found on this machine. */
export interface BuilderProbe {
  /** The builder polyarch:builder names. */
  name: string;
  /** A Docker engine answers `docker info`. */
  dockerEngine: boolean;
  /** The buildx CLI: Docker's plugin (`docker buildx`) or a standalone `buildx` on PATH. */
  buildx?: { command: readonly string[]; version: string };
  existing?: ExistingBuilder;
  /** The endpoint of the root buildkitd scripts/buildkit.sh runs (unix://<state>/buildkitd.sock). */
  buildkitdEndpoint: string;
  /** A docker-container builder was tried and did not start: buildx's error, and whether it was left registered. */
  containerRefused?: { error: string; builderLeft: boolean };
  /** BuildKit image for the docker-container builder (default: the one buildx picks). */
  buildkitImage?: string;
}

export type DevBuilderChoice =
  | { kind: 'existing'; name: string; reason: string; commands: [] }
  | { kind: 'docker-container'; name: string; reason: string; commands: string[][] }
  | { kind: 'buildkitd'; name: string; reason: string; commands: string[][] }
  | { kind: 'error'; message: string };

/** The script that starts the root buildkitd and registers it as a `remote` builder. */
export const BUILDKIT_SCRIPT = path.resolve(import.meta.dirname, '../scripts/buildkit.sh');

/** The exact `buildx create` arguments of the docker-container builder. */
export function containerBuilderArgs(name: string, buildkitImage?: string): string[] {
  return ['create', '--name', name, '--driver', 'docker-container', '--driver-opt', 'network=host', ...(buildkitImage ? ['--driver-opt', `image=${buildkitImage}`] : [])];
}

export function chooseDevBuilder(p: BuilderProbe): DevBuilderChoice {
  if (!p.dockerEngine) {
    return { kind: 'error', message: 'no Docker engine answers: start one (sudo systemctl start docker, or sudo dockerd &) and run this again' };
  }
  if (!p.buildx) {
    return { kind: 'error', message: "no buildx: install Docker's buildx plugin (docker-buildx-plugin from Docker's own repository, or a distribution's docker-buildx; Docker Desktop has it)" };
  }
  const buildx = [...p.buildx.command];
  const rootBuildkitd = (reason: string, first: string[][] = []): DevBuilderChoice => ({
    kind: 'buildkitd',
    name: p.name,
    reason,
    commands: [...first, ['bash', BUILDKIT_SCRIPT, p.name]],
  });
  const e = p.existing;
  if (e?.answers) return { kind: 'existing', name: p.name, reason: `builder ${p.name} (${e.driver}) answers`, commands: [] };
  if (e) {
    // Our own root buildkitd is gone (a reboot): the script starts it again.
    if (e.driver === 'remote' && e.endpoint === p.buildkitdEndpoint) return rootBuildkitd(`builder ${p.name} is this host's buildkitd, which is not running`);
    // Anything else of that name is someone's: not ours to replace.
    return {
      kind: 'error',
      message: `builder ${p.name} (${e.driver}) does not answer${e.error ? ` (${e.error})` : ''}: start it, remove it (${buildx.join(' ')} rm ${p.name}) so that up:dev makes one, or name another in polyarch:builder`,
    };
  }
  if (p.containerRefused) {
    // The half-made builder (and its container) goes first: the script registers its own under the same name.
    return rootBuildkitd(`a docker-container builder cannot start here (${p.containerRefused.error}); using a buildkitd on this host, run as root`, p.containerRefused.builderLeft ? [[...buildx, 'rm', p.name]] : []);
  }
  return {
    kind: 'docker-container',
    name: p.name,
    reason: `no builder ${p.name} yet: making a docker-container builder on the host's network (buildx ${p.buildx.version})`,
    // Created, then started apart, so that a refusal is told from a bad argument.
    commands: [
      [...buildx, ...containerBuilderArgs(p.name, p.buildkitImage)],
      [...buildx, 'inspect', p.name, '--bootstrap'],
    ],
  };
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}
export type Runner = (argv: readonly string[], timeoutMs?: number) => RunResult;

/** Runs commands in `env` (PATH decides which docker and buildx). */
export const runIn = (env: NodeJS.ProcessEnv): Runner => (argv, timeoutMs = 60_000) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env, timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
};

const lastLine = (text: string) => text.trim().split('\n').filter(Boolean).pop() ?? '';

/** Where scripts/buildkit.sh keeps its buildkitd (the same default as the script). */
export function buildkitdEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const state = env.POLYARCH_BUILDKIT_DIR || path.join(env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache'), 'polyarch', 'buildkit');
  return `unix://${path.join(state, 'buildkitd.sock')}`;
}

/** Parses `buildx inspect NAME` (text, the same in every buildx release). */
export function parseInspect(text: string): { driver?: string; endpoint?: string } {
  return {
    driver: /^Driver:\s+(\S+)/m.exec(text)?.[1],
    endpoint: /^Endpoint:\s+(\S+)/m.exec(text)?.[1],
  };
}

export function probeDevBuilder(name: string, o: { run?: Runner; env?: NodeJS.ProcessEnv } = {}): BuilderProbe {
  const env = o.env ?? process.env;
  const exec = o.run ?? runIn(env);
  const probe: BuilderProbe = { name, dockerEngine: exec(['docker', 'info', '--format', '{{.ServerVersion}}'], 30_000).status === 0, buildkitdEndpoint: buildkitdEndpoint(env) };
  if (env.POLYARCH_BUILDKIT_IMAGE) probe.buildkitImage = env.POLYARCH_BUILDKIT_IMAGE;
  // Docker's plugin first (what Docker installs carry), then a standalone buildx (scripts/engine.sh builds one).
  for (const command of [['docker', 'buildx'], ['buildx']]) {
    const v = exec([...command, 'version']);
    if (v.status === 0) {
      probe.buildx = { command, version: v.stdout.trim().split(/\s+/)[1] ?? v.stdout.trim() };
      break;
    }
  }
  if (!probe.dockerEngine || !probe.buildx) return probe;
  const inspect = exec([...probe.buildx.command, 'inspect', name]);
  if (inspect.status !== 0) return probe;
  const { driver, endpoint } = parseInspect(inspect.stdout);
  // Bootstrapping starts a stopped container builder: reuse, not a new one. A first start may pull BuildKit's image.
  const boot = exec([...probe.buildx.command, 'inspect', name, '--bootstrap'], 5 * 60_000);
  probe.existing = { driver: driver ?? 'unknown', endpoint, answers: boot.status === 0, ...(boot.status === 0 ? {} : { error: lastLine(boot.stderr) }) };
  return probe;
}

/**
 * Makes sure the builder `name` answers, probing, choosing and running the choice's commands;
 * a docker-container builder that does not start gives way to the root buildkitd. Progress and
 * the commands' own output go to `log`; throws a UserError naming what to do.
 */
export function ensureDevBuilder(name: string, o: { run?: Runner; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {}): DevBuilderChoice {
  const exec = o.run ?? runIn(o.env ?? process.env);
  const log = o.log ?? ((line: string) => process.stderr.write(`builder: ${line}\n`));
  const probe = probeDevBuilder(name, o);
  for (;;) {
    const choice = chooseDevBuilder(probe);
    if (choice.kind === 'error') throw new UserError(choice.message);
    log(choice.reason);
    let failed: string | undefined;
    let ran = 0;
    for (const argv of choice.commands) {
      log(`$ ${argv.join(' ')}`);
      // The script's own progress and errors are the user's to read; it may wait for a daemon.
      const r = argv[0] === 'bash' ? exec(argv, 10 * 60_000) : exec(argv, 5 * 60_000);
      if (r.stderr.trim()) for (const l of r.stderr.trim().split('\n')) log(`  ${l}`);
      if (r.status !== 0) {
        failed = lastLine(r.stderr) || `exit ${r.status}`;
        break;
      }
      ran++;
    }
    if (failed === undefined) return choice;
    if (choice.kind === 'docker-container' && !probe.containerRefused) {
      // `create` succeeded when the failure was the start: then a builder is left to remove.
      probe.containerRefused = { error: failed.replace(/^ERROR:\s*/, ''), builderLeft: ran > 0 };
      continue;
    }
    throw new UserError(choice.kind === 'buildkitd' ? `no builder ${name}: ${failed.replace(/^error:\s*/, '')}` : `builder ${name}: ${failed}`);
  }
}
