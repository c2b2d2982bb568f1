// Status as data on the real kernel: the register script's `--list --json` (dash and busybox
// ash) and `polyarch binfmt status --json` print the same document for the same binfmt_misc
// state, and it says what the kernel holds. binfmt_misc is snapshotted and restored.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseLine, registerLine } from '../../lib/binfmt.ts';
import { BinfmtStatus } from '../../lib/binfmt-status.ts';
import { findCpu, hostFamily } from '../../lib/cpus.ts';
import { BINFMT, SHELLS, guardBinfmt, hasBinfmtMisc, readEntries, registerRaw, registerScript, removeEntry, runScript, type Shell } from '../helpers/binfmt.ts';
import { hasCommand, isRoot, requireSystem, type Probe } from '../helpers/system.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
const DEBIAN_QEMU: Probe = () => (fs.existsSync('/usr/bin/qemu-aarch64-static') ? undefined : 'needs /usr/bin/qemu-aarch64-static');

function cli(env: NodeJS.ProcessEnv = process.env): BinfmtStatus {
  const r = spawnSync(process.execPath, [CLI, 'binfmt', 'status', '--json'], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return BinfmtStatus.parse(JSON.parse(r.stdout));
}

function script(shell: Shell, env: NodeJS.ProcessEnv = process.env): BinfmtStatus {
  const r = runScript(shell, ['--list', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return BinfmtStatus.parse(JSON.parse(r.stdout));
}

/** A state with every kind of entry: F, O/C, P, disabled, an offset without mask, an odd interpreter, an extension entry. */
function varietyState(shell: Shell): void {
  for (const name of readEntries().keys()) if (name.startsWith('qemu-')) removeEntry(name);
  const run = (args: string[]) => assert.equal(runScript(shell, args).code, 0);
  run(['-p', 'yes', '--targets', 'aarch64,s390x']);
  run(['-c', 'yes', '-g', 'yes', '--targets', 'arm']);
  fs.writeFileSync(path.join(BINFMT, 'qemu-s390x'), '0\n');
  // Magics no real file starts with; no F, so the interpreters need not exist.
  registerRaw(':qemu-polyarch-offset:M:7:\\x00\\x50\\x4f\\x4c\\x59::/opt/a"b/qemu-x:');
  registerRaw(':qemu-polyarch-ext:E::polyarchx::/bin/false:');
}

for (const shell of SHELLS) {
  test(`${shell.name}: register --list --json equals polyarch binfmt status --json on the same kernel state`, (t) => {
    if (!requireSystem(t, isRoot, hasBinfmtMisc, hasCommand(shell.argv[0]), DEBIAN_QEMU)) return;
    guardBinfmt(t);
    varietyState(shell);
    const fromScript = script(shell);
    const fromCli = cli();
    assert.deepEqual(fromScript, fromCli);

    // And it is what the kernel holds.
    const byName = new Map(fromScript.entries.map((e) => [e.name, e]));
    const aarch64 = parseLine(registerLine(findCpu('aarch64')!));
    assert.deepEqual(byName.get('qemu-aarch64'), { name: 'qemu-aarch64', enabled: true, interpreter: '/usr/bin/qemu-aarch64-static', flags: 'F', offset: 0, magic: aarch64.magic, mask: aarch64.mask, platform: 'linux/arm64' });
    assert.equal(byName.get('qemu-arm')?.flags, 'POC');
    assert.equal(byName.get('qemu-s390x')?.enabled, false);
    // The OCI platform each entry lets the machine run, as a CI step reads it (a disabled one too).
    const platforms = fromScript.entries.map((e) => [e.name, 'platform' in e ? e.platform : undefined]);
    assert.deepEqual(platforms, [['qemu-aarch64', 'linux/arm64'], ['qemu-arm', 'linux/arm/v7'], ['qemu-polyarch-offset', null], ['qemu-s390x', 'linux/s390x']]);
    assert.deepEqual(byName.get('qemu-polyarch-offset'), { name: 'qemu-polyarch-offset', enabled: true, interpreter: '/opt/a"b/qemu-x', flags: '', offset: 7, magic: '00504f4c59', mask: '', platform: null });
    assert.deepEqual(fromScript.other, ['qemu-polyarch-ext']);
    assert.deepEqual(fromScript.entries.map((e) => e.name), ['qemu-aarch64', 'qemu-arm', 'qemu-polyarch-offset', 'qemu-s390x']);
    assert.equal(fromScript.family, hostFamily(fromScript.machine));
    assert.ok(fromScript.native.includes('x86_64') || fromScript.machine !== 'x86_64');

    // HOST_ARCH stands for uname -m in both.
    const riscv = { ...process.env, HOST_ARCH: 'riscv64' };
    const r1 = script(shell, riscv);
    assert.deepEqual([r1.machine, r1.family, r1.native], ['riscv64', 'riscv', ['riscv32', 'riscv64']]);
    assert.deepEqual(r1, cli(riscv));

    // With no qemu-* entry at all, still one document, and still equal.
    for (const name of readEntries().keys()) if (name.startsWith('qemu-')) removeEntry(name);
    const empty = script(shell);
    assert.deepEqual([empty.entries, empty.other], [[], []]);
    assert.deepEqual(empty, cli());
  });

  test(`${shell.name}: --list --json mounts binfmt_misc quietly (the message goes to stderr) and refuses other actions`, (t) => {
    if (!requireSystem(t, isRoot, hasBinfmtMisc, hasCommand(shell.argv[0]), hasCommand('unshare'), DEBIAN_QEMU)) return;
    guardBinfmt(t);
    const r = spawnSync('unshare', ['-m', '--', 'sh', '-c', `umount ${BINFMT} && exec "$@"`, 'sh', ...shell.argv, registerScript(), '--list', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /mounted binfmt_misc/);
    assert.deepEqual(BinfmtStatus.parse(JSON.parse(r.stdout)), cli());
    for (const args of [['--json'], ['--reset', '--list', '--json'], ['--list', '--json', '--uninstall']]) {
      const bad = runScript(shell, args);
      assert.equal(bad.code, 1, args.join(' '));
      assert.match(bad.stderr, /--json goes with --list alone/);
    }
  });
}
