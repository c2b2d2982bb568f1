// The real Pulumi engine (scripts/engine.sh: the CLI, the language host and the plugins), run
// on a copy of the project in a temp folder with a local file backend, as a user's `pulumi`
// would run it. Nothing here talks to anything but loopback.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import YAML from 'yaml';
import type { Probe } from './system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** One PULUMI_HOME for every engine test: the docker-build plugin is installed into it once. */
const PULUMI_HOME = path.join(ROOT, '.cache/pulumi-home');
/**
 * What a stack's program needs: the rest of the checkout (tests, caches, state) stays out. The
 * loader and the build stamp's checker (scripts/), and the build (dist/) when npm made one: the
 * copy's sources are the checkout's, so the build stays fresh there and the program runs compiled.
 * The native compressor (native/build/) too when it was built, so the program compresses as a
 * user's checkout does.
 */
const PROJECT_FILES = ['index.ts', 'components', 'lib', 'bin', 'Pulumi.yaml', 'package.json', 'tsconfig.json', 'scripts/compiled.mjs', 'scripts/build.mjs', 'scripts/program-loader.mjs', 'scripts/program-hooks.mjs', 'dist', 'native/build'];
export const PASSPHRASE = 'engine-test-passphrase';

let bin: string | undefined;
let failure: string | undefined;

/** The engine's bin folder, built by scripts/engine.sh on first use (minutes) or taken from its cache. */
export function engineBin(): string {
  if (bin) return bin;
  if (failure) throw new Error(failure);
  try {
    const out = execFileSync('bash', [path.join(ROOT, 'scripts/engine.sh')], {
      // Always the engine built from the pinned modules, even where a pulumi is on PATH: the
      // tests turn plugin downloads off, so they need the plugins built beside it.
      env: { ...process.env, PULUMI_HOME, POLYARCH_BUILD_ENGINE: '1' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 20 * 60_000,
    });
    bin = out.trim().split('\n').pop()!;
    return bin;
  } catch (e) {
    failure = `scripts/engine.sh failed: ${(e as Error).message.split('\n')[0]}`;
    throw new Error(failure);
  }
}

export const hasEngine: Probe = () => {
  try {
    engineBin();
    return undefined;
  } catch (e) {
    return `needs the Pulumi engine: ${(e as Error).message}`;
  }
};

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A `pulumi` command still running: its process (the leader of its own group) and its output so far. */
export interface Started {
  child: ChildProcess;
  output(): string;
  done: Promise<Run>;
}

export interface EngineProject {
  /** The project copy the engine runs in. */
  dir: string;
  stack: string;
  /** The environment every command gets (backend, PULUMI_HOME, passphrase, PATH). */
  env: NodeJS.ProcessEnv;
  /** Every command's stdout and stderr so far, for secret scans. */
  transcript: string[];
  /** `pulumi <args> --stack <stack> --non-interactive`; `input` goes to stdin. */
  pulumi(args: readonly string[], o?: { input?: string; env?: NodeJS.ProcessEnv }): Promise<Run>;
  /** Starts `pulumi <args>` and returns at once, for a test that interrupts it. */
  start(args: readonly string[], o?: { input?: string; env?: NodeJS.ProcessEnv }): Started;
  /** Like `pulumi`, but a non-zero exit throws with the output's last lines. */
  ok(args: readonly string[], o?: { input?: string; env?: NodeJS.ProcessEnv }): Promise<Run>;
  /** Sets a stack config string; a `secret` one goes in through stdin, never argv. */
  setConfig(key: string, value: string, secret?: boolean): Promise<void>;
  /**
   * After a SIGKILL, the README's step for a torn `.attrs` sidecar: removes every stack file's
   * sidecar that is not whole JSON, and returns their paths. The file backend (gocloud's
   * fileblob) renames a stack file into place whole but writes its sidecar in place
   * (blob/fileblob/attrs.go, setAttrs), and reads a torn one as "failed to load checkpoint: EOF";
   * a missing one reads as the default.
   */
  removeTornSidecars(): string[];
}

export interface ProjectOptions {
  /** A committed stack whose Pulumi.<name>.yaml the stack starts from. */
  from?: string;
  /** Config over that file, namespaced keys (`polyarch:hosts`) to plain values. */
  config?: Record<string, unknown>;
  /** Secret config, set with `pulumi config set --secret` (value on stdin, never argv). */
  secrets?: Record<string, string>;
  /** More environment for every command (e.g. DOCKER_CONFIG for a buildx builder). */
  env?: NodeJS.ProcessEnv;
  /** A program of the test's own (file name -> text, with its Pulumi.yaml) instead of this project's. */
  program?: Record<string, string>;
}

/** SIGKILLs every process working in `folder` (its cwd there); returns their pids. */
export function killStrays(folder: string): number[] {
  const killed: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let cwd: string;
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, '');
    } catch {
      continue;
    }
    if (cwd !== folder && !cwd.startsWith(`${folder}/`)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      killed.push(Number(pid));
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}

/** A fresh copy of the project with a new stack on a temp file backend; removed after the test. */
export async function engineProject(t: TestContext, stack: string, o: ProjectOptions = {}): Promise<EngineProject> {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-engine-'));
  const dir = path.join(top, 'project');
  const state = path.join(top, 'state');
  fs.mkdirSync(dir);
  fs.mkdirSync(state);
  if (o.program) for (const [f, text] of Object.entries(o.program)) fs.writeFileSync(path.join(dir, f), text);
  else for (const f of PROJECT_FILES.filter((f) => !['dist', 'native/build'].includes(f) || fs.existsSync(path.join(ROOT, f)))) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const base = o.from ? (YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${o.from}.yaml`), 'utf8')) as { config?: Record<string, unknown> }).config : {};
  fs.writeFileSync(path.join(dir, `Pulumi.${stack}.yaml`), YAML.stringify({ config: { ...base, ...o.config } }));
  // Plugins run in process groups of their own: one whose engine was SIGKILLed lives on, in the
  // project folder, until it is killed too.
  t.after(() => killStrays(top));
  if (!process.env.POLYARCH_KEEP_ENGINE_TMP) t.after(() => fs.rmSync(top, { recursive: true, force: true }));

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${engineBin()}:${process.env.PATH}`,
    PULUMI_HOME,
    PULUMI_BACKEND_URL: `file://${state}`,
    PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    PULUMI_SKIP_CONFIRMATIONS: 'true',
    NO_COLOR: '1',
    ...o.env,
  };
  const transcript: string[] = [];
  const start = (args: readonly string[], p: { input?: string; env?: NodeJS.ProcessEnv } = {}): Started => {
    // Async, never spawnSync: a test's loopback servers (fake GitHub, koji) answer from this process.
    // A process group of its own, so a test can signal the CLI and every plugin it started at once.
    const child = spawn('pulumi', [...args, '--stack', stack, '--non-interactive'], { cwd: dir, env: { ...env, ...p.env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // A command that reads no input may exit before it is written: that EPIPE is no failure.
    child.stdin!.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
    child.stdin!.end(p.input ?? '');
    const done = new Promise<Run>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        transcript.push(stdout, stderr);
        resolve({ code: code ?? (signal ? 128 + os.constants.signals[signal] : -1), stdout, stderr });
      });
    });
    return { child, output: () => stdout + stderr, done };
  };
  const pulumi = (args: readonly string[], p: { input?: string; env?: NodeJS.ProcessEnv } = {}) => start(args, p).done;
  const ok = async (args: readonly string[], p?: { input?: string; env?: NodeJS.ProcessEnv }) => {
    const r = await pulumi(args, p);
    if (r.code !== 0) throw new Error(`pulumi ${args.join(' ')} exited ${r.code}:\n${(r.stdout + r.stderr).split('\n').slice(-60).join('\n')}`);
    return r;
  };
  const project: EngineProject = {
    dir,
    stack,
    env,
    transcript,
    pulumi,
    start,
    ok,
    async setConfig(key, value, secret = false) {
      await ok(secret ? ['config', 'set', '--secret', key] : ['config', 'set', key, value], secret ? { input: value } : undefined);
    },
    removeTornSidecars() {
      const stacks = path.join(state, '.pulumi', 'stacks');
      const sidecars = fs.existsSync(stacks) ? (fs.readdirSync(stacks, { recursive: true }) as string[]).filter((f) => f.endsWith('.attrs')).map((f) => path.join(stacks, f)) : [];
      const torn = sidecars.filter((f) => {
        try {
          JSON.parse(fs.readFileSync(f, 'utf8'));
          return false;
        } catch {
          return true;
        }
      });
      for (const f of torn) fs.rmSync(f);
      return torn;
    },
  };
  // `stack init` may not be given --stack; it names the stack itself.
  const init = await new Promise<Run>((resolve, reject) => {
    const child = spawn('pulumi', ['stack', 'init', stack, '--non-interactive'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: out, stderr: '' }));
  });
  if (init.code !== 0) throw new Error(`pulumi stack init ${stack} failed: ${init.stdout.trim()}`);
  for (const [key, value] of Object.entries(o.secrets ?? {})) await project.setConfig(key, value, true);
  return project;
}

/** One step of a `--json` preview or update. */
export interface Step {
  op: string;
  urn: string;
  newState?: { type: string; inputs: Record<string, unknown> };
}

/** The resource name and type a URN holds. */
export const urnName = (urn: string) => urn.split('::').pop()!;
export const urnType = (urn: string) => urn.split('::')[2]!.split('$').pop()!;

/** `<op> <name>` of every step that changes something, sorted: what a preview says it will do. */
export const changes = (steps: readonly Step[]) => steps.filter((s) => s.op !== 'same' && s.op !== 'read').map((s) => `${s.op} ${urnName(s.urn)}`).sort();

/** Type and name of every resource in a preview's or an update's steps (`--json`), stack and providers left out. */
export function stepResources(steps: readonly { urn: string }[]): string[] {
  return steps
    .map(({ urn }) => {
      return `${urnType(urn)} ${urnName(urn)}`;
    })
    .filter((r) => !r.startsWith('pulumi:pulumi:Stack ') && !r.startsWith('pulumi:providers:'))
    .sort();
}

/** The JSON a `--json` command printed (the engine may print warnings before it). */
export function parseJson<T = Record<string, unknown>>(stdout: string): T {
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error(`no JSON in: ${stdout.slice(0, 400)}`);
  return JSON.parse(stdout.slice(start)) as T;
}
