// The polyarch command line: thin wrappers over lib/. Any failure prints one line,
// `error: ...`, on stderr and exits 1; commands write their output whole or not at all.
// Stopped by a signal, it removes its staging folders and temp files, says so in one line
// and exits 128 + the signal's number.
import { Command, CommanderError } from 'commander';
import { HOST_ARCHES, parseHostArch, type HostArch } from '../lib/cpus.ts';
import { assetsCommand } from './commands/assets.ts';
import { binfmtCommands } from './commands/binfmt.ts';
import { addFetchOptions, fetchOptions, type FetchFlags } from './commands/fetch-options.ts';
import { imageCommands } from './commands/images.ts';
import { extractToDir } from '../lib/extract.ts';
import { DEFAULT_CACHE_DIR, fetchText, readRpmSource, RpmCache } from '../lib/fetch.ts';
import { DEFAULT_KOJI, newestBuild } from '../lib/koji.ts';
import { checkLockWritable, createLock, extractLocked, readLock, readPreviousLock, releaseTag, writeLock } from '../lib/lock.ts';
import { removeUnfinishedSync } from '../lib/out-dir.ts';

// Node's default for these is to die at once, leaving staging folders for the next run to sweep.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    const removed = removeUnfinishedSync();
    process.stderr.write(`error: stopped by ${signal}${removed > 0 ? '; unfinished files removed' : ''}\n`);
    process.exit(code);
  });
}


const hostList = (value: string): HostArch[] => [...new Set(value.split(',').map((h) => parseHostArch(h.trim())))];
const json = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

const program = new Command('polyarch')
  .description('Publish QEMU user-mode static emulators for multi-architecture containers')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

addFetchOptions(program
  .command('lock')
  .description('pin every qemu-user-static RPM of one Fedora build (url, size, sha256, emulators) into a lockfile')
  .option('--qemu <version>', 'QEMU version as Fedora ships it, e.g. 9.2.4')
  .option('--release <release>', 'Fedora release of the build, e.g. 1.fc42')
  .option('--latest', "pin koji's newest finished Fedora build that has RPMs for every host (instead of --qemu/--release)")
  .option('--hosts <list>', `comma-separated host arches (${HOST_ARCHES.join(', ')})`, 'x86_64')
  .option('--koji <url>', 'koji package root')
  .option('--out <file>', 'lockfile to write; the one it replaces numbers the release (same pins: same n; other pins of the same QEMU: n+1)', 'qemu.lock.json')
  .option('--cache <dir>', 'RPM cache, keyed by sha256', DEFAULT_CACHE_DIR))
  .action(async (o: { qemu?: string; release?: string; latest?: boolean; hosts: string; koji?: string; out: string; cache: string } & FetchFlags) => {
    const fetching = fetchOptions(o);
    const hosts = hostList(o.hosts);
    const koji = o.koji ?? DEFAULT_KOJI;
    if (o.latest && (o.qemu || o.release)) throw new Error('give either --latest or --qemu and --release, not both');
    if (!o.latest && !(o.qemu && o.release)) throw new Error('give --qemu and --release, or --latest');
    await checkLockWritable(o.out);
    const previous = await readPreviousLock(o.out);
    const build = o.latest ? await newestBuild(koji, hosts, (url) => fetchText(url, fetching)) : { version: o.qemu!, release: o.release! };
    const lock = await createLock({ ...build, hosts, koji, cacheDir: o.cache, previous, ...fetching });
    await writeLock(o.out, lock);
    json({ lockfile: o.out, qemu: lock.qemu, tag: releaseTag(lock), hosts: Object.fromEntries(Object.entries(lock.hosts).map(([h, rpms]) => [h, rpms.length])) });
  });

addFetchOptions(program
  .command('extract')
  .description('write the emulators and binfmt.d confs of RPMs (files or URLs) into a folder; print a JSON manifest')
  .argument('[rpms...]', 'RPM files or http(s) URLs, all of one host arch')
  .requiredOption('--out <dir>', 'output folder')
  .option('--lock <file>', 'extract the RPMs this lockfile pins instead (fetched and verified)')
  .option('--host <arch>', 'host arch to take from the lockfile', 'x86_64')
  .option('--cache <dir>', 'RPM cache, keyed by sha256', DEFAULT_CACHE_DIR))
  .action(async (rpms: string[], o: { out: string; lock?: string; host: string; cache: string } & FetchFlags) => {
    const fetching = fetchOptions(o);
    if (o.lock) {
      if (rpms.length > 0) throw new Error('give either --lock or RPM files, not both');
      json(await extractLocked(await readLock(o.lock), parseHostArch(o.host), o.cache, o.out, fetching));
      return;
    }
    if (rpms.length === 0) throw new Error('no RPMs given (pass files or URLs, or --lock FILE)');
    const cache = new RpmCache(o.cache);
    const inputs = await Promise.all(
      rpms.map(async (r) => ({ label: r, buf: await readRpmSource(r, cache, fetching) })),
    );
    json(await extractToDir(inputs, o.out));
  });

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
