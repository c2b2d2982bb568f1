// The program: validated stack config -> components. Wiring only; work lives in lib/.
import path from 'node:path';
import { ReleaseAssets } from './components/releaseAssets.ts';
import { loadStackConfig, secretConfig } from './components/stackConfig.ts';
import { buildAssets } from './lib/assets.ts';
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

// Release assets: tarballs and SHA256SUMS built here (cached by emulator digest), published as
// the GitHub release `release`, or written into `<folder>/<release>/` (the dev stack's default).
const releaseFiles = await buildAssets(hostEmulators, { cacheDir: path.join(config.cacheDir, 'assets') });
const releaseAssets = new ReleaseAssets('release', {
  tag: release,
  qemu: lock.qemu,
  hosts: hostEmulators,
  assets: releaseFiles.assets,
  ...(config.release.repository
    ? { github: { repository: config.release.repository, apiUrl: config.release.apiUrl, token: secretConfig('githubToken') } }
    : { folder: config.release.folder }),
});
/** Where the release assets are: the GitHub release page, or the local folder. */
export const releaseLocation = releaseAssets.location;
/** Release asset name -> sha256. */
export const releaseDigests = releaseAssets.digests;
