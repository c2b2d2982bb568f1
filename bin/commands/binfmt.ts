// `polyarch binfmt conf|script|status`: register lines and the register script, from the CPU
// table, and what this machine's binfmt_misc holds.
// Errors are thrown as one-line Errors; the caller prints `error: <message>` and exits 1.
import { Option, type Command } from 'commander';
import { HOST_ARCHES, parseHostArch, targetsFor } from '../../lib/cpus.ts';
import { registerLine } from '../../lib/binfmt.ts';
import { generateRegisterScript } from '../../lib/register-script.ts';
import type { BinfmtStatus } from '../../lib/binfmt-status.ts';
import { printJson } from './output.ts';

export interface ConfOptions {
  host: string;
  targets: string;
  flags: string;
  path: string;
  suffix: string;
  /** QEMU's --ignore-family: yes leaves out only the host's own CPU, not its family. */
  ignoreFamily?: string;
}

/** The `binfmt conf` output: one register line per target, newline-terminated. */
export function binfmtConf(o: ConfOptions): string {
  const host = parseHostArch(o.host);
  const ignore = o.ignoreFamily ?? 'no';
  if (ignore !== 'yes' && ignore !== 'no') throw new Error(`--ignore-family takes yes or no, not "${ignore}"`);
  const list = o.targets.split(',').map((t) => t.trim()).filter((t) => t !== '');
  if (list.length === 0) throw new Error('--targets is empty (give CPU names or "all")');
  const cpus = list.length === 1 && list[0] === 'all' ? targetsFor(host, 'all', { ignoreFamily: ignore === 'yes' }) : targetsFor(host, list);
  // Format every line before printing any, so a bad option prints nothing.
  const lines = cpus.map((cpu) => registerLine(cpu, { path: o.path, suffix: o.suffix, flags: o.flags }));
  return lines.map((l) => `${l}\n`).join('');
}

/** `binfmt status` without --json: the register script's --list lines, then the native CPUs. */
export function formatStatus(s: BinfmtStatus): string {
  const lines = s.entries.map((e) => `${e.name} ${e.enabled ? 'enabled' : 'disabled'} ${e.flags || '-'} ${e.interpreter}`);
  for (const name of s.other) lines.push(`${name} unreadable`);
  lines.push(`native (${s.machine}, ${s.family} family): ${s.native.join(' ') || 'none in the table'}`);
  return lines.map((l) => `${l}\n`).join('');
}

export function binfmtCommands(program: Command): void {
  const binfmt = program.command('binfmt').description("binfmt_misc register lines, the /register script, and this machine's entries");

  binfmt
    .command('conf')
    .description('print one binfmt.d register line per target CPU')
    .option('--host <arch>', `host arch whose own CPU family is left out (${HOST_ARCHES.join(', ')})`, 'x86_64')
    .option('--targets <list>', 'comma-separated CPUs, or "all" (every CPU outside the host family)', 'all')
    .option('--ignore-family <yes|no>', "yes: with all targets, leave out only the host's own CPU, not its family", 'no')
    .option('--flags <flags>', 'binfmt flags: any of P, O, C, F', 'F')
    .option('--path <dir>', 'directory holding the emulators', '/usr/bin')
    .option('--suffix <suffix>', 'emulator name suffix', '-static')
    .action((o: ConfOptions) => {
      process.stdout.write(binfmtConf(o));
    });

  binfmt
    .command('status')
    .description("this machine's qemu-* binfmt_misc entries and the CPUs it runs natively (as register --list [--json])")
    .option('--json', 'one JSON document: machine, family, native, entries (name, enabled, interpreter, flags, offset, magic, mask, platform), other')
    // Another binfmt_misc mount (a chroot's, or a test's copy); HOST_ARCH overrides uname -m as in the script.
    .addOption(new Option('--binfmt-dir <dir>').hideHelp())
    .action(async (o: { json?: boolean; binfmtDir?: string }) => {
      // Loaded here, not for `--help`: only this command reads binfmt_misc and checks it against a schema.
      const [{ BINFMT_MISC }, { readBinfmtStatus }] = await Promise.all([import('../../lib/binfmt.ts'), import('../../lib/binfmt-status.ts')]);
      const status = readBinfmtStatus(o.binfmtDir ?? BINFMT_MISC);
      if (o.json) printJson(status);
      else process.stdout.write(formatStatus(status));
    });

  binfmt
    .command('script')
    .description('print the /register script (POSIX sh) on stdout')
    .action(() => {
      process.stdout.write(generateRegisterScript());
    });
}
