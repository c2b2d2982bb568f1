#!/usr/bin/env node
// Builds native/build/libdeflate.node: libdeflate's compressor as a Node-API module, about
// twice as fast as the WebAssembly build the tarballs otherwise use, with the same bytes.
//
//   node scripts/native.mjs             part of `npm ci` (prepare): builds when it can, else says
//                                       why in one line and the tarballs use WebAssembly
//   node scripts/native.mjs --require   the same, but failing to build is an error (.ci/run)
//
// libdeflate's source comes from the libdeflate-sys crate pinned in native/Cargo.toml, which
// cargo fetches and checks against the registry's checksum; the files compiled must also hash to
// LIBDEFLATE_SOURCE below. gcc (or $CC) compiles them with native/deflate.c against the headers
// of the Node.js that runs this. The result is kept in ~/.cache/polyarch/native, keyed by every
// input, so later installs only copy it.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/** sha256 over libdeflate's files that are compiled or included (see sourceFiles), as the pinned crate holds them. */
const LIBDEFLATE_SOURCE = '8bb540c0717e0899b0e594e553b8248a303dd345f9ab7fa4500bac2270c9d548';
const CFLAGS = ['-O2', '-fPIC', '-shared', '-fvisibility=hidden'];

const root = path.resolve(import.meta.dirname, '..');
const nativeDir = path.join(root, 'native');
const target = path.join(nativeDir, 'build', 'libdeflate.node');
const required = process.argv.includes('--require');
const cacheRoot = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'polyarch', 'native');

class Skip extends Error {}

const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(`${p.length}\0`).update(p);
  return h.digest('hex');
};
const run = (cmd, args, o = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...o });
const has = (cmd) => {
  try {
    run(cmd, ['--version']);
    return true;
  } catch {
    return false;
  }
};

/** libdeflate's headers and library sources, relative to its folder, sorted. */
function sourceFiles(dir) {
  const out = ['libdeflate.h', 'common_defs.h'];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (e.isDirectory()) walk(`${rel}/${e.name}`);
      else if (/\.[ch]$/.test(e.name)) out.push(`${rel}/${e.name}`);
    }
  };
  walk('lib');
  return out.sort();
}

/** Fetches the pinned crate with cargo (in a scratch folder: no Cargo.lock or target/ in the repo) and returns libdeflate's folder. */
function fetchSource() {
  if (!has('cargo')) throw new Skip('no cargo to fetch the pinned libdeflate source');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-native-'));
  try {
    fs.copyFileSync(path.join(nativeDir, 'Cargo.toml'), path.join(work, 'Cargo.toml'));
    const manifest = ['--manifest-path', path.join(work, 'Cargo.toml')];
    try {
      run('cargo', ['fetch', '--quiet', ...manifest]);
    } catch (e) {
      throw new Skip(`cargo could not fetch libdeflate-sys: ${String(e.stderr ?? e.message).trim().split('\n').pop()}`);
    }
    const meta = JSON.parse(run('cargo', ['metadata', '--offline', '--format-version', '1', ...manifest], { maxBuffer: 64 << 20 }));
    const crate = meta.packages.find((p) => p.name === 'libdeflate-sys');
    if (!crate) throw new Error('cargo metadata lists no libdeflate-sys');
    return path.join(path.dirname(crate.manifest_path), 'libdeflate');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function build() {
  const cc = process.env.CC || 'gcc';
  if (!has(cc)) throw new Skip(`no C compiler (${cc})`);
  const nodeHeaders = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(nodeHeaders, 'node_api.h'))) throw new Skip(`Node's headers are not in ${nodeHeaders}`);

  const src = fetchSource();
  const files = sourceFiles(src);
  const digest = sha256(...files.flatMap((f) => [f, fs.readFileSync(path.join(src, f))]));
  if (digest !== LIBDEFLATE_SOURCE) throw new Error(`libdeflate source in ${src} hashes to ${digest}, not the pinned ${LIBDEFLATE_SOURCE}`);

  const glue = fs.readFileSync(path.join(nativeDir, 'deflate.c'));
  const key = sha256(digest, glue, CFLAGS.join(' '), run(cc, ['-dumpfullversion']).trim(), `${process.platform}-${process.arch}`).slice(0, 16);
  const cached = path.join(cacheRoot, `libdeflate-${key}`, 'libdeflate.node');
  if (!fs.existsSync(cached)) {
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    const temp = `${cached}.tmp-${process.pid}`;
    try {
      run(cc, [...CFLAGS, `-I${nodeHeaders}`, `-I${src}`, '-o', temp, path.join(nativeDir, 'deflate.c'), path.join(src, 'lib/deflate_compress.c'), path.join(src, 'lib/utils.c')]);
    } catch (e) {
      fs.rmSync(temp, { force: true });
      throw new Skip(`${cc} failed to compile native/deflate.c: ${String(e.stderr ?? e.message).trim().split('\n')[0]}`);
    }
    fs.renameSync(temp, cached);
  }
  // Load it once here: a module this Node cannot load must not be installed.
  let addon;
  try {
    addon = createRequire(import.meta.url)(cached);
  } catch (e) {
    throw new Skip(`this Node cannot load ${cached}: ${e.message.split('\n')[0]}`);
  }
  if (typeof addon.deflate !== 'function' || typeof addon.version !== 'string') throw new Error(`${cached} does not export deflate and version`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const temp = `${target}.tmp-${process.pid}`;
  fs.copyFileSync(cached, temp);
  fs.renameSync(temp, target);
  return { version: addon.version, digest };
}

try {
  const { version, digest } = build();
  console.log(`polyarch: native libdeflate ${version} in native/build/ (source sha256 ${digest.slice(0, 16)}…)`);
} catch (e) {
  const why = e instanceof Error ? e.message : String(e);
  if (required || !(e instanceof Skip)) {
    console.error(`error: native libdeflate not built: ${why}`);
    process.exit(1);
  }
  console.log(`polyarch: native libdeflate not built (${why}); tarballs are compressed by the WebAssembly build: same bytes, about half the speed`);
}
