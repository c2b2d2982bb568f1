// The compiled JavaScript (scripts/build.mjs into dist/) runs only while it matches the sources:
// the CLI, the program's loader and the dynamic providers' module loader take it when fresh and
// tsx when not. Each test builds in a copy of the project, so the checkout's own dist/ (fresh or
// not) decides nothing here. Correctness only: bench/startup.bench.ts measures the speed.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import zlib from 'node:zlib';
import { CLI_BUNDLE } from '../../scripts/compiled.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const COPIED = ['index.ts', 'components', 'lib', 'bin', 'scripts', 'package.json', 'tsconfig.json'];
// A line only the compiled file carries: where it shows, the build ran.
const MARK = 'export const COMPILED_MARK = true;\n';

/** A copy of the project (node_modules linked) with a fresh build in its dist/. */
function builtCopy(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-build-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of COPIED) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  fs.rmSync(path.join(dir, 'dist'), { recursive: true, force: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: dir, stdio: 'pipe' });
  return dir;
}

/** Runs node without tsx on the command line or in NODE_OPTIONS: only the code's own choice loads it. */
function node(dir: string, args: string[]): string {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, args, { cwd: dir, env, encoding: 'utf8' });
  assert.equal(r.status, 0, `node ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const HELP = [[], ['lock'], ['extract'], ['assets'], ['plan'], ['contexts'], ['binfmt'], ['binfmt', 'conf'], ['binfmt', 'status'], ['binfmt', 'script']];

test('the compiled CLI prints what the TypeScript CLI prints: every help text, register lines, the script', (t) => {
  const dir = builtCopy(t);
  const runs = [...HELP.map((c) => [...c, '--help']), ['binfmt', 'conf', '--host', 'aarch64'], ['binfmt', 'script']];
  for (const argv of runs) {
    const compiled = node(dir, ['dist/bin/polyarch.js', ...argv]);
    const bundled = node(dir, [`dist/${CLI_BUNDLE}`, ...argv]);
    const source = node(dir, ['--import', 'tsx', 'bin/polyarch.ts', ...argv]);
    assert.ok(compiled.length > 100, `polyarch ${argv.join(' ')} printed something`);
    assert.equal(compiled, source, `polyarch ${argv.join(' ')}`);
    assert.equal(bundled, source, `polyarch ${argv.join(' ')}, bundled`);
  }
});

test('bin/polyarch.js runs the build while it is fresh, and the TypeScript once any source differs', (t) => {
  const dir = builtCopy(t);
  const help = () => node(dir, ['bin/polyarch.js', 'binfmt', '--help']);
  const original = help();
  // Change only the compiled file, not its stamp: the launcher shows the change, so it ran the build.
  const built = path.join(dir, 'dist', CLI_BUNDLE);
  fs.writeFileSync(built, fs.readFileSync(built, 'utf8').replace('print the /register script', 'COMPILED the /register script'));
  assert.match(help(), /COMPILED the \/register script/);
  // Touched but equal sources keep the build: freshness is the bytes, not the clock.
  fs.utimesSync(path.join(dir, 'lib/cpus.ts'), new Date(), new Date(Date.now() + 3600_000));
  assert.match(help(), /COMPILED/);

  // Any edit, one added file, or one removed: the TypeScript runs, as it is now.
  const edits: [string, () => void, () => void][] = [
    ['an edited source', () => fs.appendFileSync(path.join(dir, 'lib/cpus.ts'), '// edited\n'), () => fs.writeFileSync(path.join(dir, 'lib/cpus.ts'), fs.readFileSync(path.join(ROOT, 'lib/cpus.ts')))],
    ['an added source', () => fs.writeFileSync(path.join(dir, 'lib/new-file.ts'), 'export {};\n'), () => fs.rmSync(path.join(dir, 'lib/new-file.ts'))],
    ['a removed worker', () => fs.renameSync(path.join(dir, 'lib/zstd-worker.js'), path.join(dir, 'zstd-worker.js')), () => fs.renameSync(path.join(dir, 'zstd-worker.js'), path.join(dir, 'lib/zstd-worker.js'))],
    ['an edited register.sh', () => fs.appendFileSync(path.join(dir, 'lib/register.sh'), '# edited\n'), () => fs.writeFileSync(path.join(dir, 'lib/register.sh'), fs.readFileSync(path.join(ROOT, 'lib/register.sh')))],
  ];
  for (const [what, edit, undo] of edits) {
    edit();
    assert.equal(help(), original, `${what}: the stale build did not run`);
    undo();
    assert.match(help(), /COMPILED/, `${what} undone: the build is fresh again`);
  }
  // No stamp (a build cut short): never the build.
  fs.rmSync(path.join(dir, 'dist/build.json'));
  assert.equal(help(), original);
});

test("the program's loader sends index.ts and lib/*.ts to the build while it is fresh, else to tsx", (t) => {
  const dir = builtCopy(t);
  fs.appendFileSync(path.join(dir, 'dist/lib/cpus.js'), MARK);
  // As the language host starts the program: the loader from Pulumi.yaml, in the project folder.
  const probe = `const m = await import(${JSON.stringify(new URL('lib/cpus.ts', `file://${dir}/`).href)}); console.log('COMPILED_MARK' in m, m.CPUS.length > 20)`;
  const loaded = () => node(dir, ['--import', './scripts/program-loader.mjs', '--input-type=module', '-e', probe]).trim();
  assert.equal(loaded(), 'true true');
  fs.appendFileSync(path.join(dir, 'lib/binfmt.ts'), '// edited\n');
  assert.equal(loaded(), 'false true', 'a stale build: tsx loads the TypeScript');
});

test("dynamic providers' loadProjectModule takes the build while it is fresh, else the TypeScript", (t) => {
  const dir = builtCopy(t);
  fs.appendFileSync(path.join(dir, 'dist/lib/digest.js'), MARK);
  // The provider host's working folder is the project; the function is imported from the copy's build.
  const probe = `const { loadProjectModule } = await import('./dist/components/provider-runtime.js'); const m = await loadProjectModule('lib/digest.ts'); console.log('COMPILED_MARK' in m, typeof m.sha256)`;
  assert.equal(node(dir, ['--input-type=module', '-e', probe]).trim(), 'true function');
  fs.appendFileSync(path.join(dir, 'index.ts'), '// edited\n');
  assert.equal(node(dir, ['--input-type=module', '-e', probe]).trim(), 'false function');
});

test('the build carries the worker bodies: a compiled deflate pool compresses in its worker', async (t) => {
  const dir = builtCopy(t);
  for (const w of fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('-worker.js'))) {
    assert.deepEqual(fs.readFileSync(path.join(dir, 'dist/lib', w)), fs.readFileSync(path.join(ROOT, 'lib', w)), w);
  }
  // A file, not -e: workers inherit --input-type, which they refuse.
  fs.writeFileSync(path.join(dir, 'probe.mjs'), `const { deflateInWorker } = await import('./dist/lib/deflate-pool.js'); const { deflated } = await deflateInWorker(new Uint8Array(Buffer.from('polyarch '.repeat(1000))), 6); console.log(deflated.toString('base64'));\n`);
  const out = Buffer.from(node(dir, ['probe.mjs']).trim(), 'base64');
  assert.equal(zlib.inflateRawSync(out).toString(), 'polyarch '.repeat(1000));
});

test('the build carries lib/register.sh: the compiled CLI prints the script from its own copy', (t) => {
  const dir = builtCopy(t);
  const copy = path.join(dir, 'dist/lib/register.sh');
  assert.deepEqual(fs.readFileSync(copy), fs.readFileSync(path.join(ROOT, 'lib/register.sh')));
  // Changed in dist/ only (the stamp still fresh): the compiled CLI shows it, so it read that copy.
  fs.appendFileSync(copy, '# COMPILED\n');
  assert.ok(node(dir, ['bin/polyarch.js', 'binfmt', 'script']).endsWith('# COMPILED\n'));
});
