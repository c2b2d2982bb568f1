// Start-up: `polyarch --help` and the program's run in a `pulumi preview` of the dockerhub stack
// (four hosts), each against baselines measured in the same run, alternated round by round.
// Every figure names its cache state. The OS file cache is warm throughout (a first round is
// run and dropped); "tsx cache" is tsx's transpile cache in $TMPDIR, cold when TMPDIR is new.
//
// 1. `node bin/polyarch.js --help` on the fresh build (scripts/build.mjs) against `node -e 0`
//    (node's own start, the floor) and against the TypeScript through tsx, tsx cache warm and cold.
// 2. The program's node process in `pulumi preview` (from its start to its exit, read inside that
//    process), warm: RPM, emulator, asset and context caches full, no resource in the stack yet.
//    Baseline: an empty program (index.js importing @pulumi/pulumi, no loader) on the same engine:
//    what node, @pulumi/pulumi's start and the engine's round trips cost any Node.js program.
//    Against it: the program as Pulumi.yaml runs it (the build), and as it ran before (`--import tsx`).
//    Needs root (fixture RPMs) and the engine (scripts/engine.sh); skipped otherwise.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { buildIsFresh } from '../scripts/compiled.mjs';
import { engineProject, hasEngine } from '../test/helpers/engine.ts';
import { fixtureLock } from '../test/helpers/program.ts';
import { isRoot } from '../test/helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const PREVIEW_ROUNDS = Number(process.env.BENCH_PREVIEW_ROUNDS ?? 4);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const env = { ...process.env };
delete env.NODE_OPTIONS;

/** Builds dir's sources into its dist/ and checks the build is fresh there. */
function build(dir: string): void {
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0 || !buildIsFresh(dir)) throw new Error(`build in ${dir} failed: ${r.stderr}`);
}

/**
 * A snapshot of the sources with its own build: edits made in the checkout while the bench runs
 * would make its build stale, and the launcher would quietly measure tsx instead.
 */
function snapshot(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bench-src-'));
  for (const f of ['index.ts', 'components', 'lib', 'bin', 'scripts', 'package.json', 'tsconfig.json']) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  fs.rmSync(path.join(dir, 'dist'), { recursive: true, force: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  build(dir);
  return dir;
}

function time(cwd: string, argv: string[], extraEnv: NodeJS.ProcessEnv = {}): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} failed: ${r.stderr}`);
  return ms;
}

function report(title: string, runs: Record<string, number[]>, base: string): void {
  const b = median(runs[base]!);
  console.log(title);
  for (const [name, xs] of Object.entries(runs)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(48)} ${m.toFixed(0).padStart(6)} ms   ${(m / b).toFixed(2)}x ${base}`);
  }
}

function cliHelp(): void {
  const dir = snapshot();
  const runs: Record<string, number[]> = {
    'node -e 0 (floor)': [],
    'polyarch --help, build': [],
    'polyarch --help, tsx cache warm': [],
    'polyarch --help, tsx cache cold': [],
  };
  for (let i = 0; i <= ROUNDS; i++) {
    const cold = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bench-tsx-'));
    const xs = [
      time(dir, ['-e', '0']),
      time(dir, ['bin/polyarch.js', '--help']),
      time(dir, ['--import', 'tsx', 'bin/polyarch.ts', '--help']),
      time(dir, ['--import', 'tsx', 'bin/polyarch.ts', '--help'], { TMPDIR: cold }),
    ];
    fs.rmSync(cold, { recursive: true, force: true });
    // Round 0 warms the file cache and tsx's own cache; it is not counted.
    if (i > 0) Object.values(runs).forEach((r, k) => r.push(xs[k]!));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  report(`startup bench: polyarch --help, ${ROUNDS} rounds, median wall time (goal: build under 300 ms)`, runs, 'node -e 0 (floor)');
  const m = (k: string) => median(runs[k]!);
  console.log(`  build against tsx: ${(m('polyarch --help, tsx cache warm') / m('polyarch --help, build')).toFixed(2)}x faster (tsx cache warm), ${(m('polyarch --help, tsx cache cold') / m('polyarch --help, build')).toFixed(2)}x (cold)`);
}

async function programPreview(): Promise<void> {
  const why = isRoot() ?? hasEngine();
  if (why) {
    console.log(`startup bench, preview: skipped (${why})`);
    return;
  }
  const cleanups: (() => void)[] = [];
  const t = { after: (fn: () => void) => cleanups.push(fn) } as unknown as TestContext;
  try {
    const lock = await fixtureLock(['x86_64', 'aarch64', 'ppc64le', 's390x']);
    const secrets = { 'polyarch:registryPassword': 'bench-pw', 'polyarch:githubToken': 'bench-token' };
    const config = { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir };
    const program = await engineProject(t, 'dockerhub', { from: 'dockerhub', config, secrets });
    const empty = await engineProject(t, 'dockerhub', { from: 'dockerhub', config, secrets });
    // The copy's own build, from the sources copied: the checkout's dist/ may lag behind them.
    build(program.dir);
    // package.json's main names the entry; no loader at all.
    fs.writeFileSync(path.join(empty.dir, 'index.js'), "import '@pulumi/pulumi';\nexport {};\n");
    const pkg = path.join(empty.dir, 'package.json');
    fs.writeFileSync(pkg, JSON.stringify({ ...JSON.parse(fs.readFileSync(pkg, 'utf8')), main: 'index.js' }));
    const yaml = path.join(program.dir, 'Pulumi.yaml');
    const asBuilt = fs.readFileSync(yaml, 'utf8');
    const withTsx = asBuilt.replace(/nodeargs: .*/, 'nodeargs: "--import tsx"');
    fs.writeFileSync(path.join(empty.dir, 'Pulumi.yaml'), asBuilt.replace(/ *nodeargs: .*\n/, ''));

    // Each node process appends its script and lifetime; the program's is @pulumi/pulumi's cmd/run.
    const timings = path.join(program.dir, '..', 'timings.txt');
    const timer = path.join(program.dir, '..', 'timer.mjs');
    fs.writeFileSync(timer, `import fs from 'node:fs';\nprocess.on('exit', () => fs.appendFileSync(${JSON.stringify(timings)}, \`\${process.argv[1]} \${performance.now()}\\n\`));\n`);
    const lifetime = async (p: typeof program): Promise<number> => {
      fs.rmSync(timings, { force: true });
      await p.ok(['preview'], { env: { NODE_OPTIONS: `--import ${timer}` } });
      const line = fs.readFileSync(timings, 'utf8').split('\n').find((l) => l.includes('/cmd/run'));
      if (!line) throw new Error('no timing from the program process');
      return Number(line.split(' ').pop());
    };

    const runs: Record<string, number[]> = { 'empty program (baseline)': [], 'program, build': [], 'program, --import tsx, tsx cache warm': [] };
    for (let i = 0; i <= PREVIEW_ROUNDS; i++) {
      const xs = [await lifetime(empty)];
      xs.push(await lifetime(program));
      fs.writeFileSync(yaml, withTsx);
      xs.push(await lifetime(program));
      fs.writeFileSync(yaml, asBuilt);
      // Round 0 fills the caches (emulators, assets, contexts, tsx's); it is not counted.
      if (i > 0) Object.values(runs).forEach((r, k) => r.push(xs[k]!));
    }
    report(`startup bench: the program's node process in a warm pulumi preview of dockerhub (four hosts), ${PREVIEW_ROUNDS} rounds, median (goal: build under 3000 ms)`, runs, 'empty program (baseline)');
    const m = (k: string) => median(runs[k]!);
    const base = m('empty program (baseline)');
    console.log(`  beyond the empty program: build ${(m('program, build') - base).toFixed(0)} ms, tsx ${(m('program, --import tsx, tsx cache warm') - base).toFixed(0)} ms`);
  } finally {
    for (const fn of cleanups.reverse()) fn();
  }
}

cliHelp();
await programPreview();
