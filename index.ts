// The program: validated stack config -> components. Wiring only; work lives in lib/.
import path from 'node:path';
import { BinfmtHost } from './components/binfmtHost.ts';
import { loadStackConfig, secretConfig } from './components/stackConfig.ts';
import { writeRegisterScript } from './lib/build-host.ts';
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

// --- Build hosts (issue 6): emulators and the register script over SSH, entries registered.
const registerScript = await writeRegisterScript(path.join(config.cacheDir, 'scripts'));
const binfmtHosts = config.buildHosts.map((b) => new BinfmtHost(b.name, { buildHost: b, hostEmulators, registerScript, privateKey: secretConfig('sshPrivateKey') }));
/** Per build host: the binfmt entries registered and the folder holding their emulators. */
export const buildHosts = Object.fromEntries(binfmtHosts.map((h) => [h.hostName, { entries: h.entries, folder: h.folder }]));
