// The Node-API modules scripts/native.mjs builds during `npm ci` (native/build/):
// - libdeflate must give the same DEFLATE bytes as the WebAssembly build, or the tarballs would
//   depend on the machine that made them. Held here on real emulators of four hosts, on edge
//   inputs and at several levels, and through `polyarch assets` under each compressor.
// - zstd must decode every payload as the zstd tool does, and stop hostile ones with one line;
//   each of the three decoders (native, tool, WebAssembly) is run in a process of its own.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { deflate as wasmDeflate } from 'libdeflate';
import { chooseDeflate, LIBDEFLATE_RELEASE } from '../../lib/deflate-pool.ts';
import { readRpm } from '../../lib/rpm.ts';
import { chooseZstd } from '../../lib/zstd-pool.ts';
import { debianQemuRoot, buildFixtureRpms, SPLIT_SUBPACKAGES } from '../fixtures/rpms.ts';
import { requireSystem, type Probe } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ADDON = path.join(ROOT, 'native/build/libdeflate.node');
const ZSTD = path.join(ROOT, 'native/build/zstd.node');
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `polyarch-deflate-${tag}-`));
const built: Probe = () => (fs.existsSync(ADDON) ? undefined : 'needs native/build/libdeflate.node (npm ci builds it with cargo and gcc)');
const zstdBuilt: Probe = () => (fs.existsSync(ZSTD) ? undefined : 'needs native/build/zstd.node (npm ci builds it with cargo and gcc)');
type Native = { version: string; deflate: (input: Uint8Array, level: number) => Buffer; crc32: (input: Uint8Array) => number };
const native = () => createRequire(import.meta.url)(ADDON) as Native;
type NativeZstd = { version: string; decompress: (input: Uint8Array, size: number | undefined, max: number) => Buffer };
const nativeZstd = () => createRequire(import.meta.url)(ZSTD) as NativeZstd;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

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

test("native libdeflate's CRC-32 is zlib's: the gzip trailer does not depend on which one the worker had", (t) => {
  if (!requireSystem(t, built)) return;
  const { crc32 } = native();
  const inputs = [new Uint8Array(0), Uint8Array.of(0x7f), randomBytes(1 << 20), randomBytes(4097).subarray(3), fs.readFileSync(path.join(debianQemuRoot('x86_64'), 'usr/bin/qemu-arm-static'))];
  for (const input of inputs) assert.equal(crc32(input), zlib.crc32(input), `CRC-32 of ${input.length} bytes`);
  assert.throws(() => crc32('text' as unknown as Uint8Array), { message: 'crc32: input must be a Uint8Array' });
  // A module built before it had crc32 is not taken: the worker would have none to call.
  const old = path.join(tmp('old'), 'old.cjs');
  fs.writeFileSync(old, `module.exports = { version: '${LIBDEFLATE_RELEASE}', deflate() {} };\n`);
  assert.deepEqual(chooseDeflate({}, [old]), { kind: 'wasm', reason: `${old} has no crc32 (an older build: npm ci builds it again)` });
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

test('native zstd: npm ci built it; it decodes every fixture payload of four hosts as the zstd tool does', (t) => {
  if (!requireSystem(t, zstdBuilt)) return;
  const { decompress, version } = nativeZstd();
  assert.match(version, /^1\.\d+\.\d+$/);
  let payloads = 0;
  for (const host of HOSTS) {
    for (const file of buildFixtureRpms({ host, layout: 'split', compression: 'zstd' })) {
      const rpm = readRpm(fs.readFileSync(file), file);
      const tool = execFileSync('zstd', ['-dc'], { input: rpm.payload, maxBuffer: 1 << 30 });
      assert.ok(decompress(rpm.payload, rpm.payloadSize, 1 << 30).equals(tool), `${path.basename(file)}: sized decode differs from zstd -dc`);
      assert.ok(decompress(rpm.payload, undefined, 1 << 30).equals(tool), `${path.basename(file)}: streamed decode differs from zstd -dc`);
      payloads++;
    }
  }
  assert.ok(payloads >= 24, `only ${payloads} payloads decoded`);
});

test('native zstd: bombs, truncated and foreign input, and bad arguments are one error line', (t) => {
  if (!requireSystem(t, zstdBuilt)) return;
  const { decompress } = nativeZstd();
  const zeros = Buffer.alloc(8 << 20);
  const bomb = execFileSync('zstd', ['-q', '-19', '-c'], { input: zeros });
  assert.throws(() => decompress(bomb, 1 << 20, 1 << 20), { message: 'decompresses past 1048576 bytes' });
  assert.throws(() => decompress(bomb, undefined, 1 << 20), { message: 'decompresses past 1048576 bytes' });
  assert.throws(() => decompress(bomb, zeros.length + 1, 1 << 30), { message: 'corrupt zstd stream or wrong declared size' });
  assert.throws(() => decompress(bomb.subarray(0, bomb.length - 9), undefined, 1 << 30), { message: /^corrupt zstd stream/ });
  assert.throws(() => decompress(Buffer.from('not zstd at all'), 15, 100), { message: /^corrupt zstd stream \(.+\)$/ });
  assert.throws(() => decompress(new Uint8Array(0), undefined, 100), { message: 'corrupt zstd stream (truncated)' });
  assert.throws(() => decompress('x' as unknown as Uint8Array, 1, 1), { message: 'decompress: input must be a Uint8Array' });
  assert.throws(() => decompress(bomb, -1, 1), { message: 'decompress: size must be a byte count or undefined' });
  assert.throws(() => (decompress as (...a: unknown[]) => Buffer)(bomb, 1), { message: 'decompress(input, size, max) takes three arguments' });
  assert.equal(decompress(bomb, zeros.length, zeros.length).length, zeros.length);
});

test('every zstd decoder, each in a process of its own: the same cpio from a real RPM, and a bomb stopped at its declared size', (t) => {
  if (!requireSystem(t, zstdBuilt)) return;
  const file = buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' })[0]!;
  // A payload declared as 1 MiB that decodes to 8 MiB, in an RPM shape decompressPayload takes.
  const script = `
    import fs from 'node:fs';
    import { decompressPayload, readRpm } from ${JSON.stringify(path.join(ROOT, 'lib/rpm.ts'))};
    import { zstdBackend } from ${JSON.stringify(path.join(ROOT, 'lib/zstd-pool.ts'))};
    import { createHash } from 'node:crypto';
    const file = process.argv[2];
    const cpio = await decompressPayload(readRpm(fs.readFileSync(file), file), file);
    const bomb = { name: 'bomb', version: '1', release: '1', arch: 'x86_64', compressor: 'zstd', payloadSize: 1 << 20, files: [], fileDigestAlgo: 'sha256', payload: fs.readFileSync(process.argv[3]) };
    const error = await decompressPayload(bomb, 'bomb.rpm').then(() => 'none', (e) => String(e));
    console.log(JSON.stringify({ kind: zstdBackend().kind, cpio: createHash('sha256').update(cpio).digest('hex'), error }));
  `;
  const dir = tmp('zstd');
  // A file, not --eval: the workers inherit the process's flags, and --input-type breaks them.
  const scriptFile = path.join(dir, 'decode.mts');
  fs.writeFileSync(scriptFile, script);
  const bombFile = path.join(dir, 'bomb.zst');
  fs.writeFileSync(bombFile, execFileSync('zstd', ['-q', '-19', '-c'], { input: Buffer.alloc(8 << 20) }));
  const expected = sha256(execFileSync('zstd', ['-dc'], { input: readRpm(fs.readFileSync(file), file).payload, maxBuffer: 1 << 30 }));
  for (const kind of ['native', 'tool', 'wasm']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', scriptFile, file, bombFile], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, POLYARCH_ZSTD: kind } });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { kind: string; cpio: string; error: string };
    assert.equal(got.kind, kind);
    assert.equal(got.cpio, expected, `${kind}: the cpio differs from zstd -dc's`);
    // zstddec's WebAssembly cannot tell a payload larger than its declared size from a corrupt one.
    const said = kind === 'wasm' ? '(decompresses past 1048576 bytes|corrupt zstd stream or wrong declared size)' : 'decompresses past 1048576 bytes';
    assert.match(got.error, new RegExp(`^RpmError: bomb\\.rpm: (zstd payload: |payload )?${said}$`), `${kind}: ${got.error}`);
  }
  fs.rmSync(dir, { recursive: true });
});

test('chooseZstd: native when built, else the tool; POLYARCH_ZSTD chooses, and forced native that cannot load is an error', () => {
  const missing = path.join(os.tmpdir(), 'polyarch-no-such-zstd.node');
  assert.deepEqual(chooseZstd({ POLYARCH_ZSTD: 'wasm' }), { kind: 'wasm', reason: 'POLYARCH_ZSTD=wasm' });
  assert.deepEqual(chooseZstd({ POLYARCH_ZSTD: 'tool' }), { kind: 'tool', reason: 'POLYARCH_ZSTD=tool' });
  assert.equal(chooseZstd({}, [missing]).kind, 'tool');
  assert.throws(() => chooseZstd({ POLYARCH_ZSTD: 'native' }, [missing]), /^Error: POLYARCH_ZSTD=native, but native\/build\/zstd\.node is not built/);
  assert.throws(() => chooseZstd({ POLYARCH_ZSTD: 'xz' }), { message: 'POLYARCH_ZSTD=xz: use native, tool, wasm or leave it unset' });
});

test('scripts/native.mjs: without cargo, npm ci goes on and says why in one line per module, --require fails; a cached build needs no cargo', (t) => {
  if (!requireSystem(t, built, zstdBuilt)) return;
  const bin = tmp('path');
  fs.symlinkSync(execFileSync('sh', ['-c', 'command -v gcc'], { encoding: 'utf8' }).trim(), path.join(bin, 'gcc'));
  const script = (args: string[], cache: string) =>
    spawnSync(process.execPath, [path.join(ROOT, 'scripts/native.mjs'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: bin, XDG_CACHE_HOME: cache } });
  const before = [ADDON, ZSTD].map((f) => sha256(fs.readFileSync(f)));
  const empty = tmp('cache');
  const optional = script([], empty);
  assert.equal(optional.status, 0, optional.stderr);
  assert.equal(optional.stderr, '');
  assert.deepEqual(optional.stdout.trimEnd().split('\n'), ['libdeflate', 'zstd'].map((m) => `polyarch: native ${m} not built (no cargo to fetch the pinned C sources); the program uses its fallback (same bytes, slower)`));
  const required = script(['--require'], empty);
  assert.equal(required.status, 1);
  assert.deepEqual(required.stderr.trimEnd().split('\n'), ['libdeflate', 'zstd'].map((m) => `error: native ${m} not built: no cargo to fetch the pinned C sources`));
  assert.deepEqual([ADDON, ZSTD].map((f) => sha256(fs.readFileSync(f))), before, 'a failed build leaves the installed modules alone');
  // The cache npm ci filled: the same modules again, with no cargo on PATH.
  const cached = script(['--require'], process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'));
  assert.equal(cached.status, 0, cached.stderr);
  assert.match(cached.stdout, /^polyarch: native libdeflate 1\.26 in native\/build\/\npolyarch: native zstd 1\.\d+\.\d+ in native\/build\/\n$/);
  assert.deepEqual([ADDON, ZSTD].map((f) => sha256(fs.readFileSync(f))), before);
  fs.rmSync(bin, { recursive: true });
  fs.rmSync(empty, { recursive: true });
});
