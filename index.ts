// The program: validated stack config -> components. Wiring only; work lives in lib/.
import { loadStackConfig } from './components/stackConfig.ts';
import { targetsFor } from './lib/cpus.ts';
import { readLock } from './lib/lock.ts';

const config = loadStackConfig();
const lock = await readLock(config.lockFile);

const missing = config.hosts.filter((h) => !lock.hosts[h]);
if (missing.length > 0) throw new Error(`${config.lockFile} pins no RPMs for host(s) ${missing.join(', ')}; run polyarch lock with --hosts ${config.hosts.join(',')}`);

/** The release this stack publishes, e.g. v9.2.4-1. */
export const release = `v${lock.qemu.version}-${config.releaseNumber}`;
export const qemu = lock.qemu;
/** Per host arch: the target CPUs published, from the lockfile's RPMs and the stack's targets. */
export const emulators = Object.fromEntries(
  config.hosts.map((host) => {
    const pinned = new Set(lock.hosts[host]!.flatMap((r) => r.emulators));
    // Emulator names, not CPU names: an alias such as i486 runs on qemu-i386.
    const wanted = new Set(targetsFor(host, config.targets.includes('all') ? 'all' : config.targets).map((c) => c.emulator));
    return [host, [...wanted].filter((emulator) => pinned.has(emulator))];
  }),
);
