import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { binfmtCommands, binfmtConf } from '../../bin/commands/binfmt.ts';
import { registerLine } from '../../lib/binfmt.ts';
import { findCpu, targetsFor } from '../../lib/cpus.ts';
import { generateRegisterScript } from '../../lib/register-script.ts';

const DEFAULTS = { host: 'x86_64', targets: 'all', flags: 'F', path: '/usr/bin', suffix: '-static' };

test('binfmt conf: defaults are every CPU outside the x86_64 family, /usr/bin, -static, F', () => {
  const out = binfmtConf(DEFAULTS);
  assert.equal(out, targetsFor('x86_64').map((c) => `${registerLine(c)}\n`).join(''));
  assert.match(out, /^:qemu-aarch64:M::\\x7f\\x45\\x4c\\x46.*:\/usr\/bin\/qemu-aarch64-static:F$/m);
  assert.doesNotMatch(out, /qemu-(x86_64|i386|i486|cris):/);
});

test('binfmt conf: host, targets, flags, path and suffix', () => {
  const arm = binfmtConf({ ...DEFAULTS, host: 'aarch64' });
  assert.match(arm, /^:qemu-x86_64:/m);
  assert.doesNotMatch(arm, /^:qemu-(aarch64|arm):/m);
  const some = binfmtConf({ host: 'x86_64', targets: 'arm64, s390x', flags: 'CF', path: '/opt/qemu/', suffix: '' });
  assert.equal(some, [findCpu('aarch64')!, findCpu('s390x')!].map((c) => `${registerLine(c, { path: '/opt/qemu', suffix: '', flags: 'OCF' })}\n`).join(''));
  assert.match(some, /:\/opt\/qemu\/qemu-s390x:OCF\n$/);
  assert.equal(binfmtConf({ ...DEFAULTS, flags: '' }).split('\n')[0]!.slice(-1), ':');
});

test('binfmt conf: --ignore-family yes leaves out only the host’s own CPU', () => {
  const out = binfmtConf({ ...DEFAULTS, ignoreFamily: 'yes' });
  assert.equal(out, targetsFor('x86_64', 'all', { ignoreFamily: true }).map((c) => `${registerLine(c)}\n`).join(''));
  assert.match(out, /^:qemu-i386:.*:\/usr\/bin\/qemu-i386-static:F$/m);
  assert.match(out, /^:qemu-i486:.*:\/usr\/bin\/qemu-i386-static:F$/m);
  assert.doesNotMatch(out, /^:qemu-x86_64:/m);
  assert.equal(binfmtConf({ ...DEFAULTS, ignoreFamily: 'no' }), binfmtConf(DEFAULTS));
  assert.throws(() => binfmtConf({ ...DEFAULTS, ignoreFamily: 'maybe' }), /^Error: --ignore-family takes yes or no, not "maybe"$/);
});

test('binfmt conf: errors are one line and nothing is printed', () => {
  assert.throws(() => binfmtConf({ ...DEFAULTS, host: 'vax' }), /^Error: unknown host arch "vax" \(valid: x86_64, aarch64, ppc64le, s390x\)$/);
  assert.throws(() => binfmtConf({ ...DEFAULTS, targets: 'arm,pdp11' }), /^Error: unknown CPU "pdp11" \(valid: /);
  assert.throws(() => binfmtConf({ ...DEFAULTS, targets: ' , ' }), /--targets is empty/);
  assert.throws(() => binfmtConf({ ...DEFAULTS, flags: 'FZ' }), /unknown binfmt flag "Z"/);
  assert.throws(() => binfmtConf({ ...DEFAULTS, path: 'relative' }), /must be an absolute path/);
  assert.throws(() => binfmtConf({ ...DEFAULTS, suffix: 'a/b' }), /suffix "a\/b" contains/);
});

async function run(args: string[]): Promise<string> {
  const program = new Command('polyarch').exitOverride();
  binfmtCommands(program);
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'polyarch', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('commander wiring: binfmt conf and binfmt script', async () => {
  assert.equal(await run(['binfmt', 'conf']), binfmtConf(DEFAULTS));
  assert.equal(
    await run(['binfmt', 'conf', '--host', 's390x', '--targets', 'ppc64le,riscv64', '--flags', 'PF', '--path', '/x', '--suffix', '-q']),
    binfmtConf({ host: 's390x', targets: 'ppc64le,riscv64', flags: 'PF', path: '/x', suffix: '-q' }),
  );
  assert.equal(await run(['binfmt', 'script']), generateRegisterScript());
  assert.equal(await run(['binfmt', 'conf', '--ignore-family', 'yes']), binfmtConf({ ...DEFAULTS, ignoreFamily: 'yes' }));
  await assert.rejects(run(['binfmt', 'conf', '--targets', 'nope']), /unknown CPU "nope"/);
});
