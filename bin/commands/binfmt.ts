// `polyarch binfmt conf|script`: register lines and the register script, from the CPU table.
// Errors are thrown as one-line Errors; the caller prints `error: <message>` and exits 1.
import type { Command } from 'commander';
import { HOST_ARCHES, parseHostArch, targetsFor } from '../../lib/cpus.ts';
import { registerLine } from '../../lib/binfmt.ts';
import { generateRegisterScript } from '../../lib/register-script.ts';

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

export function binfmtCommands(program: Command): void {
  const binfmt = program.command('binfmt').description('binfmt_misc register lines and the /register script');

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
    .command('script')
    .description('print the /register script (POSIX sh) on stdout')
    .action(() => {
      process.stdout.write(generateRegisterScript());
    });
}
