#!/usr/bin/env node
// Builds the project's two Node-API modules into native/build/:
//   libdeflate.node  libdeflate's compressor, about twice as fast as the WebAssembly build the
//                    tarballs otherwise use, with the same bytes (lib/deflate-pool.ts)
//   zstd.node        zstd's decoder, so RPM payloads decode on a worker thread instead of in a
//                    `zstd` process per RPM (lib/rpm.ts)
//
//   node scripts/native.mjs             part of `npm ci` (prepare): builds what it can, else
//                                       says why in one line; the program then falls back
//   node scripts/native.mjs --require   the same, but a module not built is an error (.ci/run)
//
// The C sources come from the -sys crates pinned in native/Cargo.toml, which cargo fetches and
// checks against the registry's checksums; the files used must also hash to the digests below.
// gcc (or $CC) compiles them with our glue (native/*.c, native/glue.h) against the headers of
// the Node.js that runs this. Results are kept in ~/.cache/polyarch/native keyed by every
// input, so later installs only copy them and need neither cargo nor the network.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const CFLAGS = ['-O2', '-fPIC', '-shared', '-fvisibility=hidden'];
/**
 * One module: the crate vendoring its library, the library's folder in the crate, what of it
 * is hashed (pinned by `digest`, sha256 over path and bytes of each file) and compiled, and the
 * glue and the functions it must export.
 */
const MODULES = [
  {
    name: 'libdeflate',
    crate: 'libdeflate-sys',
    dir: 'libdeflate',
    hashed: ['libdeflate.h', 'common_defs.h', 'lib/'],
    // crc32.c dispatches to carryless-multiply code by the CPU's features (cpu_features.c).
    compiled: ['lib/deflate_compress.c', 'lib/crc32.c', 'lib/utils.c', 'lib/x86/cpu_features.c', 'lib/arm/cpu_features.c'],
    glue: 'deflate.c',
    exports: ['deflate', 'crc32'],
    digest: '8bb540c0717e0899b0e594e553b8248a303dd345f9ab7fa4500bac2270c9d548',
  },
  {
    name: 'zstd',
    crate: 'zstd-sys',
    dir: 'zstd/lib',
    hashed: ['zstd.h', 'zstd_errors.h', 'common/', 'decompress/'],
    compiled: ['common/', 'decompress/'],
    glue: 'zstd.c',
    exports: ['decompress'],
    digest: '53edd13c0fa4b102efe19dbec374cbc520b3c4dd396b385ad3e7ef39f4cd06cb',
  },
];

const root = path.resolve(import.meta.dirname, '..');
const nativeDir = path.join(root, 'native');
const buildDir = path.join(nativeDir, 'build');
const required = process.argv.includes('--require');
const cacheRoot = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'polyarch', 'native');

/** A missing tool or a platform we cannot build on: the program falls back, so npm ci goes on. */
class Skip extends Error {}

const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(`${p.length}\0`).update(p);
  return h.digest('hex');
};
const run = (cmd, args, o = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...o });
const firstLine = (e) => String(e.stderr || e.message).trim().split('\n')[0];
const has = (cmd) => {
  try {
    run(cmd, ['--version']);
    return true;
  } catch {
    return false;
  }
};

/** The files `entries` names under `dir` (a trailing / is a whole folder, walked), sorted. */
function listFiles(dir, entries, pattern) {
  const out = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${rel}/${e.name}`);
      else if (pattern.test(e.name)) out.push(`${rel}/${e.name}`);
    }
  };
  for (const e of entries) if (e.endsWith('/')) walk(e.slice(0, -1));
  else out.push(e);
  return out.sort();
}

let crates;
/** Fetches the pinned crates with cargo (in a scratch folder: no Cargo.lock or target/ in the repo); their folders by name. */
function fetchCrates() {
  if (crates) return crates;
  if (!has('cargo')) throw new Skip('no cargo to fetch the pinned C sources');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-native-'));
  try {
    fs.copyFileSync(path.join(nativeDir, 'Cargo.toml'), path.join(work, 'Cargo.toml'));
    const manifest = ['--manifest-path', path.join(work, 'Cargo.toml')];
    try {
      run('cargo', ['fetch', '--quiet', ...manifest]);
    } catch (e) {
      throw new Skip(`cargo could not fetch the pinned crates: ${String(e.stderr || e.message).trim().split('\n').pop()}`);
    }
    let meta;
    try {
      meta = JSON.parse(run('cargo', ['metadata', '--offline', '--format-version', '1', ...manifest]));
    } catch (e) {
      throw new Skip(`cargo metadata failed: ${firstLine(e)}`);
    }
    crates = new Map(meta.packages.map((p) => [p.name, path.dirname(p.manifest_path)]));
    return crates;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Builds (or takes from the cache) one module and installs it in native/build/; returns its version. */
function buildModule(m, cc, nodeHeaders) {
  const glue = path.join(nativeDir, m.glue);
  // The compiler's own first line of --version (gcc and clang both print one) is part of the key.
  const key = sha256(m.digest, m.compiled.join(' '), fs.readFileSync(path.join(nativeDir, 'Cargo.toml')), fs.readFileSync(glue), fs.readFileSync(path.join(nativeDir, 'glue.h')), CFLAGS.join(' '), run(cc, ['--version']).split('\n')[0], `${process.platform}-${process.arch}`).slice(0, 16);
  const cached = path.join(cacheRoot, `${m.name}-${key}`, `${m.name}.node`);
  if (!fs.existsSync(cached)) {
    const crate = fetchCrates().get(m.crate);
    if (!crate) throw new Error(`cargo fetched no ${m.crate}: native/Cargo.toml must pin it`);
    const src = path.join(crate, m.dir);
    const hashed = listFiles(src, m.hashed, /\.[chS]$/);
    const digest = sha256(...hashed.flatMap((f) => [f, fs.readFileSync(path.join(src, f))]));
    if (digest !== m.digest) throw new Error(`${m.name} source in ${src} hashes to ${digest}, not the pinned ${m.digest}`);
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    const temp = `${cached}.tmp-${process.pid}`;
    try {
      run(cc, [...CFLAGS, `-I${nodeHeaders}`, `-I${src}`, '-o', temp, glue, ...listFiles(src, m.compiled, /\.[cS]$/).map((f) => path.join(src, f))]);
    } catch (e) {
      fs.rmSync(temp, { force: true });
      throw new Skip(`${cc} failed to compile native/${m.glue}: ${firstLine(e)}`);
    }
    fs.renameSync(temp, cached);
  }
  // Loaded once here: a module this Node cannot load must not be installed.
  let mod;
  try {
    mod = createRequire(import.meta.url)(cached);
  } catch (e) {
    throw new Skip(`this Node cannot load ${cached}: ${firstLine(e)}`);
  }
  if (m.exports.some((f) => typeof mod[f] !== 'function') || typeof mod.version !== 'string') throw new Error(`${cached} does not export ${m.exports.join(', ')} and version`);
  fs.mkdirSync(buildDir, { recursive: true });
  const target = path.join(buildDir, `${m.name}.node`);
  const temp = `${target}.tmp-${process.pid}`;
  fs.copyFileSync(cached, temp);
  fs.renameSync(temp, target);
  return mod.version;
}

let failed = false;
const cc = process.env.CC || 'gcc';
const nodeHeaders = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
for (const m of MODULES) {
  try {
    if (!has(cc)) throw new Skip(`no C compiler (${cc})`);
    if (!fs.existsSync(path.join(nodeHeaders, 'node_api.h'))) throw new Skip(`Node's headers are not in ${nodeHeaders}`);
    console.log(`polyarch: native ${m.name} ${buildModule(m, cc, nodeHeaders)} in native/build/`);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (required || !(e instanceof Skip)) {
      console.error(`error: native ${m.name} not built: ${why}`);
      failed = true;
    } else {
      console.log(`polyarch: native ${m.name} not built (${why}); the program uses its fallback (same bytes, slower)`);
    }
  }
}
process.exitCode = failed ? 1 : 0;
