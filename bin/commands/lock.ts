// `polyarch lock`: pin every qemu-user-static RPM of one Fedora build into the lockfile, numbering
// the release from the lockfile it replaces.
import type { Command } from 'commander';
import { HOST_ARCHES, parseHostArch, type HostArch } from '../../lib/cpus.ts';
import { DEFAULT_CACHE_DIR, fetchText } from '../../lib/fetch.ts';
import { DEFAULT_KOJI, newestBuild } from '../../lib/koji.ts';
import { checkLockWritable, createLock, readPreviousLock, releaseTag, writeLock } from '../../lib/lock.ts';
import { addFetchOptions, fetchOptions, type FetchFlags } from './fetch-options.ts';
import { printJson } from './output.ts';

interface LockOptions extends FetchFlags {
  qemu?: string;
  release?: string;
  latest?: boolean;
  hosts: string;
  koji?: string;
  out: string;
  cache: string;
}

const hostList = (value: string): HostArch[] => [...new Set(value.split(',').map((h) => parseHostArch(h.trim())))];

export function lockCommand(program: Command): void {
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
    .action(async (o: LockOptions) => {
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
      printJson({ lockfile: o.out, qemu: lock.qemu, tag: releaseTag(lock), hosts: Object.fromEntries(Object.entries(lock.hosts).map(([h, rpms]) => [h, rpms.length])) });
    });
}
