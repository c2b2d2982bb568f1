// The polyarch command line: thin wrappers over lib/. Any failure prints one line,
// `error: ...`, on stderr and exits 1; commands write their output whole or not at all.
// Stopped by a signal, it removes its staging folders and temp files, says so in one line
// and exits 128 + the signal's number.
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { removeUnfinishedSync } from '../lib/out-dir.ts';
import { assetsCommand } from './commands/assets.ts';
import { binfmtCommands } from './commands/binfmt.ts';
import { extractCommand } from './commands/extract.ts';
import { imageCommands } from './commands/images.ts';
import { lockCommand } from './commands/lock.ts';

// Node's default for these is to die at once, leaving staging folders for the next run to sweep.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    const removed = removeUnfinishedSync();
    process.stderr.write(`error: stopped by ${signal}${removed > 0 ? '; unfinished files removed' : ''}\n`);
    process.exit(code);
  });
}

/** This package's version, from its package.json: the first one up from here (bin/, or dist/bin/ when compiled). */
function packageVersion(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

const program = new Command('polyarch')
  .description('Publish QEMU user-mode static emulators for multi-architecture containers')
  .version(packageVersion(), '-V, --version', 'print the version of polyarch')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

lockCommand(program);
extractCommand(program);
binfmtCommands(program);
imageCommands(program);
assetsCommand(program);

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander already printed its message (or the help text) to stderr.
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`error: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}
