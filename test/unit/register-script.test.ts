// The generated register script, without touching the kernel: what it embeds, that both
// shells accept it, its help and its refusal of bad arguments (which happen before any
// binfmt_misc access, so these run unprivileged).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { registerLine } from '../../lib/binfmt.ts';
import { CPUS, entryPlatform, findCpu } from '../../lib/cpus.ts';
import { REGISTER_EXIT_CODES, REGISTER_SH, generateRegisterScript } from '../../lib/register-script.ts';
import { SHELLS, registerScript, runScript } from '../helpers/binfmt.ts';
import { hasCommand, requireSystem } from '../helpers/system.ts';

const script = generateRegisterScript();

test('the script embeds every CPU with the codec’s own register line', () => {
  assert.ok(script.startsWith('#!/bin/sh\n'));
  for (const cpu of CPUS) {
    const line = registerLine(cpu, { path: '/X', suffix: '', flags: '' });
    const head = line.slice(0, line.indexOf('/X/qemu-'));
    assert.ok(script.includes(`head='${head}'`), cpu.name);
    assert.ok(script.includes(` magic=${cpu.magic} mask=${cpu.mask}`), cpu.name);
    assert.ok(script.includes(`  ${cpu.name}) emu=${cpu.emulator} fam=${cpu.family} `), cpu.name);
  }
  const all = /^ALL_TARGETS='([^']*)'$/m.exec(script)?.[1]?.split(' ');
  const defaults = /^DEFAULT_TARGETS='([^']*)'$/m.exec(script)?.[1]?.split(' ');
  assert.deepEqual(all, CPUS.map((c) => c.name));
  assert.deepEqual(defaults, CPUS.filter((c) => !c.removedIn).map((c) => c.name));
  assert.ok(!defaults?.includes('cris'));
  assert.ok(/^ {2}aarch64\|arm64\) cpu=aarch64 ;;$/m.test(script));
});

test('the script never evaluates anything', () => {
  assert.doesNotMatch(script, /\beval\b|`|\bsource\b|^\s*\.\s/m);
});

test('generation from a given CPU list (e.g. with an RPM conf’s magic)', () => {
  const aarch64 = findCpu('aarch64')!;
  const custom = { ...aarch64, mask: 'ffffffffffffff00ffffffffffffffffffffffff' };
  const s = generateRegisterScript({ cpus: [custom, findCpu('cris')!] });
  assert.match(s, /^DEFAULT_TARGETS='aarch64 cris'$/m);
  assert.ok(s.includes(`mask=${custom.mask}`));
  assert.throws(() => generateRegisterScript({ cpus: [] }), /at least one CPU/);
  assert.throws(() => generateRegisterScript({ cpus: [{ ...aarch64, name: "x';reboot;'" }] }), /cannot embed/);
  assert.throws(() => generateRegisterScript({ cpus: [{ ...aarch64, aliases: ['a)b'] }] }), /cannot embed/);
  assert.throws(() => generateRegisterScript({ cpus: [aarch64, aarch64] }), /"aarch64" appears twice/);
});

test('dash and busybox ash parse the script', (t) => {
  if (!requireSystem(t, hasCommand('dash'), hasCommand('busybox'))) return;
  const file = registerScript();
  for (const argv of [['dash', '-n'], ['busybox', 'sh', '-n']]) {
    const r = spawnSync(argv[0]!, [...argv.slice(1), file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
});

// Both: lib/register.sh as it is edited, and the script as generated (header included).
test('shellcheck finds nothing in lib/register.sh nor in the generated script (POSIX sh)', (t) => {
  if (!requireSystem(t, hasCommand('shellcheck'))) return;
  for (const file of [fileURLToPath(REGISTER_SH), registerScript()]) {
    const r = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${file}: ${r.stdout}${r.stderr}`);
  }
});

test('the script is the generated header, then lib/register.sh after its #! line', () => {
  const sh = fs.readFileSync(REGISTER_SH, 'utf8');
  assert.ok(sh.startsWith('#!/bin/sh\n'));
  const rest = sh.slice('#!/bin/sh\n'.length);
  assert.ok(script.endsWith(rest));
  const header = script.slice(0, -rest.length);
  // The header is data: assignments, comments and the table's case functions, nothing that acts.
  for (const fn of ['cpu_info', 'canonical', 'uname_cpu', 'native_cpus', 'host_family']) assert.match(header, new RegExp(`^${fn}\\(\\) \\{$`, 'm'), fn);
  assert.doesNotMatch(header, /^(?:exit|if|for|while|say|warn|printf|mount)\b/m);
  for (const [key, code] of Object.entries(REGISTER_EXIT_CODES)) {
    const name = `EXIT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
    assert.match(header, new RegExp(`(?:^| )${name}=${code}(?: |$)`, 'm'), name);
  }
  // The file uses the codes by name only: a literal exit status would bypass REGISTER_EXIT_CODES.
  assert.doesNotMatch(rest, /\b(?:exit|die) [0-9]|\bstatus=[0-9]/);
});

for (const shell of SHELLS) {
  // --list --json itself needs binfmt_misc (test/system/status.test.ts); its platforms come from here.
  test(`${shell.name}: entry_platform names each entry's OCI platform as entryPlatform does, for any CPU list`, (t) => {
    if (!requireSystem(t, hasCommand(shell.argv[0]))) return;
    const names = ['qemu-polyarch-x', 'qemu-', 'aarch64', ...CPUS.flatMap((c) => [c.name, ...c.aliases].map((n) => `qemu-${n}`))];
    // An image's script knows only the CPUs it ships, yet names the platform of any entry.
    for (const s of [script, generateRegisterScript({ cpus: [findCpu('riscv64')!] })]) {
      const rest = fs.readFileSync(REGISTER_SH, 'utf8').slice('#!/bin/sh\n'.length);
      // The header only defines things: run it, then ask.
      const probe = `${s.slice(0, -rest.length)}\nfor n in "$@"; do entry_platform "$n"; printf '%s=%s\\n' "$n" "$platform"; done\n`;
      const r = spawnSync(shell.argv[0], [...shell.argv.slice(1), '-c', probe, 'sh', ...names], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, names.map((n) => `${n}=${entryPlatform(n) ?? ''}\n`).join(''));
    }
  });

  test(`${shell.name}: --help documents options, CPUs and exit codes`, (t) => {
    if (!requireSystem(t, hasCommand(shell.argv[0]))) return;
    for (const arg of ['--help', '-h']) {
      const r = runScript(shell, [arg]);
      assert.equal(r.code, 0);
      for (const opt of ['--reset', '-p, --persistent', '-c, --credential', '-g, --preserve-argv0', '--qemu-path', '--qemu-suffix', '--targets', '--uninstall [LIST]', '--list', '--persist-dir']) {
        assert.ok(r.stdout.includes(opt), opt);
      }
      for (const [, code] of Object.entries(REGISTER_EXIT_CODES)) assert.match(r.stdout, new RegExp(`^ {2}${code} {2}\\S`, 'm'));
      for (const cpu of CPUS) assert.ok(r.stdout.includes(` ${cpu.name}`), cpu.name);
    }
  });

  test(`${shell.name}: bad arguments exit 1 with one clear message, before touching anything`, (t) => {
    if (!requireSystem(t, hasCommand(shell.argv[0]))) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-inject-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const marker = path.join(dir, 'pwned');
    const cases: [string[], RegExp][] = [
      [['--targets', 'pdp11'], /^register: error: unknown CPU "pdp11" \(valid: aarch64 aarch64_be .* xtensaeb\)$/m],
      [['--targets', `aarch64;touch ${marker}`], /unknown CPU "aarch64;touch"/],
      [['--targets', `$(touch ${marker})`], /unknown CPU "\$\(touch/],
      [['--targets', '*'], /unknown CPU "\*"/],
      [['--targets', ','], /empty CPU list/],
      [['--uninstall', 'arm,vax'], /unknown CPU "vax"/],
      [['-p', 'maybe'], /-p takes yes or no, not "maybe"/],
      [['--persistent=1'], /--persistent takes yes or no, not "1"/],
      [['-c'], /-c needs a value/],
      [['--reset=yes'], /--reset takes no value/],
      [['--bogus'], /unknown argument "--bogus"/],
      [['extra'], /unknown argument "extra"/],
      [['--qemu-path', 'usr/bin'], /--qemu-path must be an absolute path/],
      [['--qemu-path', `/tmp/$(touch ${marker})`], /--qemu-path "\/tmp\/\$\(touch .*" must be non-empty and use only/],
      [['--qemu-path', '/usr/my bin'], /--qemu-path .* must be non-empty and use only/],
      [['--qemu-path', `/${'a'.repeat(600)}`], /--qemu-path is longer than 512 characters/],
      [['--qemu-suffix', '-static;id'], /--qemu-suffix .* must be non-empty and use only/],
      [['--qemu-suffix', 'a/b'], /--qemu-suffix must not contain \//],
      [['--persist-dir', `${dir}/x y`], /--persist-dir .* must be non-empty and use only/],
    ];
    for (const [args, message] of cases) {
      const r = runScript(shell, args);
      assert.equal(r.code, REGISTER_EXIT_CODES.usage, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /try: register --help/);
      assert.equal(r.stdout, '', args.join(' '));
    }
    assert.ok(!fs.existsSync(marker), 'an argument was executed');
  });

  test(`${shell.name}: --persist-dir must be absolute, like --qemu-path`, (t) => {
    if (!requireSystem(t, hasCommand(shell.argv[0]))) return;
    // Run unprivileged when we are root: if the check were missing, the script would go on to
    // binfmt_misc, and an unprivileged run can neither mount it nor register anything there.
    const asUser = process.getuid?.() === 0;
    if (asUser && !requireSystem(t, hasCommand('setpriv'))) return;
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-persist-'));
    fs.chmodSync(cwd, 0o777);
    t.after(() => fs.rmSync(cwd, { recursive: true, force: true }));
    for (const args of [['--persist-dir', '../../etc'], ['--persist-dir=etc/binfmt.d'], ['--uninstall', 'arm', '--persist-dir', './x'], ['--targets', 'aarch64', '--persist-dir', '~/binfmt.d']]) {
      const [cmd, ...pre] = asUser ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...shell.argv] : shell.argv;
      const r = spawnSync(cmd!, [...pre, registerScript(), ...args], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent' } });
      assert.equal(r.status, REGISTER_EXIT_CODES.usage, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, 'register: error: --persist-dir must be an absolute path\nregister: try: register --help\n', args.join(' '));
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(fs.readdirSync(cwd), [], 'nothing written');
  });
}
