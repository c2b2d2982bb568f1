#!/usr/bin/env node
// Compiles the program and the CLI to JavaScript in dist/ (npm's `prepare`, so `npm ci` does it;
// `npm run build` after an edit). Starting from JavaScript skips tsx's transpile and its hooks on
// every start; a stale build is never run (scripts/compiled.mjs), so skipping this only costs time.
//
// esbuild, the transpiler tsx itself runs, one output file per source: every import stays an
// import, a relative `.ts` one rewritten to `.js` (the program and the providers load these);
// and the CLI bundled into one file (CLI_BUNDLE in scripts/compiled.mjs), which starts faster. Plain .js files beside the sources (the
// worker bodies lib/*-worker.js) and .sh files (lib/register.sh) are copied, so
// `new URL('./x-worker.js', import.meta.url)` holds.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { BUILD_DIR, CLI_BUNDLE, SOURCES, STAMP, sourceDigest } from './compiled.mjs';

const root = path.resolve(import.meta.dirname, '..');
// The digest of what is read below, taken first: a source edited mid-build leaves a stale stamp, never a wrong one.
const digest = sourceDigest(root);

const files = [];
const collect = (rel) => {
  const abs = path.join(root, rel);
  if (!fs.existsSync(abs)) return;
  if (fs.statSync(abs).isDirectory()) for (const name of fs.readdirSync(abs)) collect(`${rel}/${name}`);
  else files.push(rel);
};
for (const s of SOURCES.filter((s) => !s.startsWith('scripts/') && s !== 'tsconfig.json')) collect(s);
const entries = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
// A .js with a .ts sibling (bin/polyarch.js, the launcher) would collide with that file's output.
const copies = files.filter((f) => (f.endsWith('.js') && !files.includes(f.replace(/\.js$/, '.ts'))) || f.endsWith('.sh'));

// Built beside dist/ and renamed in whole, so a run never sees half a build under a valid stamp.
const out = path.join(root, BUILD_DIR);
const next = `${out}.next-${process.pid}`;
fs.rmSync(next, { recursive: true, force: true });
try {
  await build({
    absWorkingDir: root,
    entryPoints: entries,
    outdir: next,
    outbase: '.',
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    logLevel: 'warning',
    plugins: [
      {
        name: 'one-file-per-source',
        setup(b) {
          b.onResolve({ filter: /.*/ }, (a) =>
            a.kind === 'entry-point' ? undefined : { path: a.path.replace(/^(\.\.?\/.*)\.ts$/, '$1.js'), external: true },
          );
        },
      },
    ],
  });
  // The CLI once more, as one file with its dependencies (CLI_BUNDLE): what bin/polyarch.js runs.
  // Its CommonJS dependencies (tar-stream's) call require, which an ES module lacks.
  await build({
    absWorkingDir: root,
    entryPoints: ['bin/polyarch.ts'],
    outfile: path.join(next, CLI_BUNDLE),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    logLevel: 'warning',
    banner: { js: "import { createRequire as polyarchCreateRequire } from 'node:module'; const require = polyarchCreateRequire(import.meta.url);" },
  });
  for (const f of copies) fs.cpSync(path.join(root, f), path.join(next, f));
  fs.writeFileSync(path.join(next, STAMP), `${JSON.stringify({ sources: digest })}\n`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(next, out);
} finally {
  fs.rmSync(next, { recursive: true, force: true });
}
console.log(`polyarch: compiled ${entries.length} sources into ${BUILD_DIR}/`);
