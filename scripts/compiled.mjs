// Where the compiled JavaScript of this project lives, and whether it may run. Plain JavaScript
// with builtins only: the CLI launcher, the program's --import loader and the dynamic providers
// load it before any TypeScript loader exists.
//
// scripts/build.mjs writes dist/ and, last, dist/build.json holding the digest of every source
// it compiled. A build runs only while that digest equals the sources' digest now; any edit,
// added or removed file makes it stale, and callers fall back to tsx (the source as it is).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The build folder, relative to the project (gitignored). */
export const BUILD_DIR = 'dist';
/**
 * The CLI as one file, its npm dependencies inside: a start loads one module instead of a few
 * hundred. In dist/lib/, beside the files its code finds by `import.meta.url` (the worker bodies,
 * register.sh).
 */
export const CLI_BUNDLE = 'lib/polyarch-cli.js';
export const STAMP = 'build.json';
/** What the build compiles (folders are walked) and what decides its output. */
export const SOURCES = ['index.ts', 'components', 'lib', 'bin', 'tsconfig.json', 'scripts/build.mjs', 'scripts/compiled.mjs'];

function walk(root, rel, out) {
  const st = fs.statSync(path.join(root, rel), { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) {
    out.push(rel);
    return;
  }
  for (const name of fs.readdirSync(path.join(root, rel))) walk(root, `${rel}/${name}`, out);
}

/** sha256 over every source's path and bytes, in a fixed order. */
export function sourceDigest(root) {
  const files = [];
  for (const s of SOURCES) walk(root, s, files);
  files.sort();
  const h = crypto.createHash('sha256');
  for (const f of files) {
    const bytes = fs.readFileSync(path.join(root, f));
    // Length-prefixed, so no two different trees hash the same stream.
    h.update(`${f}\0${bytes.length}\0`).update(bytes);
  }
  return h.digest('hex');
}

const fresh = new Map();

/** True when root's build was made from exactly the sources root holds now (checked once per process). */
export function buildIsFresh(root) {
  let ok = fresh.get(root);
  if (ok === undefined) {
    let stamp;
    try {
      stamp = JSON.parse(fs.readFileSync(path.join(root, BUILD_DIR, STAMP), 'utf8'));
    } catch {
      stamp = undefined;
    }
    ok = typeof stamp?.sources === 'string' && stamp.sources === sourceDigest(root);
    fresh.set(root, ok);
  }
  return ok;
}

/** The file URL of the CLI bundle (CLI_BUNDLE), or undefined when there is no build or it is stale. */
export function compiledCliUrl(root) {
  if (!buildIsFresh(root)) return undefined;
  const file = path.join(root, BUILD_DIR, CLI_BUNDLE);
  return fs.existsSync(file) ? pathToFileURL(file).href : undefined;
}

/**
 * The file URL of the compiled form of `rel` (a project source such as `bin/polyarch.ts`),
 * or undefined when there is no build or it is stale.
 */
export function compiledUrl(root, rel) {
  if (!buildIsFresh(root)) return undefined;
  const file = path.join(root, BUILD_DIR, rel.replace(/\.ts$/, '.js'));
  return fs.existsSync(file) ? pathToFileURL(file).href : undefined;
}
