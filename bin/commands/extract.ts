// `polyarch extract`: the emulators and binfmt.d confs of RPMs (files, URLs, or what a lockfile
// pins) into a folder, and a JSON manifest of them.
import type { Command } from 'commander';
import { parseHostArch } from '../../lib/cpus.ts';
import { extractToDir } from '../../lib/extract.ts';
import { DEFAULT_CACHE_DIR, readRpmSource, RpmCache } from '../../lib/fetch.ts';
import { extractLocked, readLock } from '../../lib/lock.ts';
import { addFetchOptions, fetchOptions, type FetchFlags } from './fetch-options.ts';
import { printJson } from './output.ts';

interface ExtractOptions extends FetchFlags {
  out: string;
  lock?: string;
  host: string;
  cache: string;
}

export function extractCommand(program: Command): void {
  addFetchOptions(program
    .command('extract')
    .description('write the emulators and binfmt.d confs of RPMs (files or URLs) into a folder; print a JSON manifest')
    .argument('[rpms...]', 'RPM files or http(s) URLs, all of one host arch')
    .requiredOption('--out <dir>', 'output folder')
    .option('--lock <file>', 'extract the RPMs this lockfile pins instead (fetched and verified)')
    .option('--host <arch>', 'host arch to take from the lockfile', 'x86_64')
    .option('--cache <dir>', 'RPM cache, keyed by sha256', DEFAULT_CACHE_DIR))
    .action(async (rpms: string[], o: ExtractOptions) => {
      const fetching = fetchOptions(o);
      if (o.lock) {
        if (rpms.length > 0) throw new Error('give either --lock or RPM files, not both');
        printJson(await extractLocked(await readLock(o.lock), parseHostArch(o.host), o.cache, o.out, fetching));
        return;
      }
      if (rpms.length === 0) throw new Error('no RPMs given (pass files or URLs, or --lock FILE)');
      const cache = new RpmCache(o.cache);
      const inputs = await Promise.all(rpms.map(async (r) => ({ label: r, buf: await readRpmSource(r, cache, fetching) })));
      printJson(await extractToDir(inputs, o.out));
    });
}
