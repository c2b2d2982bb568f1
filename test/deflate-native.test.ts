// The native libdeflate (native/build/libdeflate.node, built by scripts/native.mjs during
// `npm ci`) and the WebAssembly build must give the same DEFLATE bytes, or the tarballs would
// depend on the machine that made them. Held here on real emulators of four hosts, on edge
// inputs and at several levels, and through `polyarch assets` under each compressor.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { deflate as wasmDeflate } from 'libdeflate';
import { chooseDeflate, LIBDEFLATE_RELEASE } from '../lib/deflate-pool.ts';
import { debianQemuRoot, buildFixtureRpms, SPLIT_SUBPACKAGES } from './fixtures/rpms.ts';
import { requireSystem, type Probe } from './helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const ADDON = path.join(ROOT, 'native/build/libdeflate.node');
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `polyarch-deflate-${tag}-`));
const built: Probe = () => (fs.existsSync(ADDON) ? undefined : 'needs native/build/libdeflate.node (npm ci builds it with cargo and gcc)');
type Native = { version: string; deflate: (input: Uint8Array, level: number) => Buffer };
const native = () => createRequire(import.meta.url)(ADDON) as Native;

test('native libdeflate: npm ci built it, it loads, and it is the release the WebAssembly build is', (t) => {
  if (!requireSystem(t, built)) return;
  assert.equal(native().version, LIBDEFLATE_RELEASE);
  assert.deepEqual(chooseDeflate({}), { kind: 'native', addon: ADDON });
});

test('native and WebAssembly libdeflate give the same bytes: every fixture emulator of four hosts, edge inputs, levels 1 to 12', (t) => {
  if (!requireSystem(t, built)) return;
  const { deflate } = native();
  const same = (what: string, input: Uint8Array, level: number) => {
    const a = deflate(input, level);
    const b = Buffer.from(wasmDeflate(input, level));
    assert.ok(a.equals(b), `${what} at level ${level}: native ${a.length} bytes, WebAssembly ${b.length} bytes, not the same`);
  };
  const cpus = Object.values(SPLIT_SUBPACKAGES).flat();
  let emulators = 0;
  for (const host of HOSTS) {
    const bin = path.join(debianQemuRoot(host), 'usr/bin');
    for (const cpu of cpus) {
      const file = path.join(bin, `qemu-${cpu}-static`);
      if (!fs.existsSync(file)) continue;
      same(`${host}'s ${path.basename(file)}`, fs.readFileSync(file), 6);
      emulators++;
    }
  }
  assert.ok(emulators >= 36, `only ${emulators} emulators compared`);
  const text = Buffer.from('qemu-user-static '.repeat(70_000));
  const edges: [string, Uint8Array][] = [
    ['empty input', new Uint8Array(0)],
    ['one byte', Uint8Array.of(0x7f)],
    ['1 MiB of zeros', new Uint8Array(1 << 20)],
    ['1 MiB of random bytes', randomBytes(1 << 20)],
    ['repeated text', text],
  ];
  for (const level of [1, 3, 6, 9, 12]) for (const [what, input] of edges) same(what, input, level);
  same('an emulator at level 12', fs.readFileSync(path.join(debianQemuRoot('x86_64'), 'usr/bin/qemu-arm-static')), 12);
});

test('native libdeflate: bad arguments are one error line, not a crash', (t) => {
  if (!requireSystem(t, built)) return;
  const { deflate } = native();
  assert.throws(() => deflate('text' as unknown as Uint8Array, 6), { message: 'deflate: input must be a Uint8Array' });
  assert.throws(() => deflate(new Uint8Array(4), 13), { message: 'deflate: level must be an integer from 0 to 12' });
  assert.throws(() => (deflate as (...a: unknown[]) => Buffer)(new Uint8Array(4)), { message: 'deflate(input, level) takes two arguments' });
});

test('chooseDeflate: POLYARCH_DEFLATE chooses; a missing, foreign or broken module falls back with its reason; forced native that cannot load is an error', () => {
  const dir = tmp('choose');
  const missing = path.join(dir, 'none.node');
  const broken = path.join(dir, 'broken.node');
  fs.writeFileSync(broken, 'not an ELF file\n');
  assert.deepEqual(chooseDeflate({ POLYARCH_DEFLATE: 'wasm' }, [ADDON]), { kind: 'wasm', reason: 'POLYARCH_DEFLATE=wasm' });
  assert.match(chooseDeflate({}, [missing]).reason ?? '', /^native\/build\/libdeflate\.node is not built/);
  const fallback = chooseDeflate({}, [broken]);
  assert.equal(fallback.kind, 'wasm');
  assert.match(fallback.reason ?? '', new RegExp(`^${broken.replace(/[.]/g, '\\.')} does not load: `));
  assert.doesNotMatch(fallback.reason ?? '', /\n/);
  // A module of another libdeflate release, stood in for by a CommonJS file with its exports.
  const other = path.join(dir, 'other.cjs');
  fs.writeFileSync(other, 'exports.version = "1.14"; exports.deflate = () => Buffer.alloc(0);\n');
  assert.deepEqual(chooseDeflate({}, [other]), { kind: 'wasm', reason: `${other} is libdeflate 1.14, not ${LIBDEFLATE_RELEASE}` });
  assert.throws(() => chooseDeflate({ POLYARCH_DEFLATE: 'native' }, [missing]), /^Error: POLYARCH_DEFLATE=native, but native\/build\/libdeflate\.node is not built/);
  assert.throws(() => chooseDeflate({ POLYARCH_DEFLATE: 'zlib' }), { message: 'POLYARCH_DEFLATE=zlib: use native, wasm or leave it unset' });
  fs.rmSync(dir, { recursive: true });
});

test('polyarch assets compressed natively and in WebAssembly: the same files, byte for byte', (t) => {
  if (!requireSystem(t, built)) return;
  const rpms = buildFixtureRpms({ host: 'aarch64', layout: 'split', compression: 'zstd' });
  const runs = (['native', 'wasm'] as const).map((kind) => {
    const work = tmp(kind);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), 'assets', '--out', path.join(work, 'out'), '--host', 'aarch64', '--cache', path.join(work, 'cache'), ...rpms], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, POLYARCH_DEFLATE: kind },
    });
    assert.equal(r.status, 0, r.stderr);
    return path.join(work, 'out');
  });
  const [a, b] = runs as [string, string];
  const files = fs.readdirSync(a).sort();
  assert.deepEqual(files, fs.readdirSync(b).sort());
  assert.ok(files.filter((f) => f.endsWith('.tar.gz')).length >= 7);
  for (const f of files) assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} differs between native and WebAssembly`);
  for (const d of runs) fs.rmSync(path.dirname(d), { recursive: true });
});
