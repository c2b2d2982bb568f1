// The program: validated stack config -> components. Wiring only; work lives in lib/.
import path from 'node:path';
import { loadStackConfig } from './components/stackConfig.ts';
import { prepareEmulators } from './lib/emulators.ts';
import { readLock } from './lib/lock.ts';

const config = loadStackConfig();
const lock = await readLock(config.lockFile);

const missing = config.hosts.filter((h) => !lock.hosts[h]);
if (missing.length > 0) throw new Error(`${config.lockFile} pins no RPMs for host(s) ${missing.join(', ')}; run polyarch lock with --hosts ${config.hosts.join(',')}`);

// Extracted at evaluation time (cached by the lockfile's digests), so previews show real digests.
const hostEmulators = await Promise.all(
  config.hosts.map((host) =>
    prepareEmulators(lock, host, {
      cacheDir: config.cacheDir,
      emulatorsDir: path.join(config.cacheDir, 'emulators'),
      targets: config.targets.includes('all') ? 'all' : config.targets,
    }),
  ),
);

/** The release this stack publishes, e.g. v9.2.4-1. */
export const release = `v${lock.qemu.version}-${config.releaseNumber}`;
export const qemu = lock.qemu;
/** Per host arch: the emulators published (qemu-<name>-static), from the lockfile's RPMs and the stack's targets. */
export const emulators = Object.fromEntries(hostEmulators.map((h) => [h.host, h.emulators.map((e) => e.cpu)]));
