// The program: validated stack config -> components. Wiring only; work lives in lib/.
// Everything that can be computed (extraction, tarballs, build contexts, register commands)
// is computed here at evaluation time and cached by digest, so previews show real diffs.
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { BinfmtHost } from './components/binfmt-host.ts';
import { LocalRegistry } from './components/local-registry.ts';
import { QemuImages } from './components/qemu-images.ts';
import { ReleaseAssets } from './components/release-assets.ts';
import { evaluate, loadStackConfig, readStackLock, secretConfig, signingMode } from './components/stack-config.ts';
import { buildAssets, Tarballs } from './lib/assets.ts';
import { writeRegisterScript } from './lib/build-host.ts';
import { imageLabels, writeContexts } from './lib/contexts.ts';
import { prepareStackEmulators } from './lib/emulators.ts';
import { imageTarget, planForStack } from './lib/image-plan.ts';
import { releaseTag } from './lib/lock.ts';

// evaluate(): a problem the user fixes stops the program with one line, no stack trace.
const config = await evaluate(loadStackConfig);
const lock = await evaluate(() => readStackLock(config.lockFile));
// A cold host takes minutes (fetch, extract, compress) before the first resource: say so.
const progress = (message: string) => void pulumi.log.info(message);
const cache = (what: string) => path.join(config.cacheDir, what);
// Signed with cosign (lib/cosign.ts), or published unsigned, said in one line.
const signing = await evaluate(() => signingMode(config));
// Release assets: a GitHub release, or a local folder (dev), or none (stacks that only push images).
// Built too for signed images, which carry the release's SBOM. Their tarballs start from each
// emulator's bytes as a cold extraction checks them.
const imageRegistry = imageTarget(config);
const tarballs = config.release || (signing && imageRegistry) ? new Tarballs(cache('assets')) : undefined;
const hostEmulators = await evaluate(() => prepareStackEmulators(config, lock, progress, undefined, tarballs && ((e) => tarballs.offer(e))));

/** The release this stack publishes, e.g. v9.2.4-1. */
export const release = releaseTag(lock);
export const qemu = lock.qemu;
/** Per host arch: the emulators published (qemu-<name>-static). */
export const emulators = Object.fromEntries(hostEmulators.map((h) => [h.host, h.emulators.map((e) => e.cpu)]));

const built = tarballs ? await evaluate(() => buildAssets(hostEmulators, { cacheDir: cache('assets'), releaseTag: release, progress, tarballs })) : undefined;
let releaseAssets: ReleaseAssets | undefined;
if (config.release && built) {
  const { repository, apiUrl, folder } = config.release;
  releaseAssets = new ReleaseAssets('release', {
    tag: release,
    qemu: lock.qemu,
    hosts: hostEmulators,
    assets: built.assets,
    signing,
    ...(repository ? { github: { repository, apiUrl } } : { folder }),
  });
}
/** The GitHub release page or the local folder, and every asset's sha256. */
export const releaseLocation = releaseAssets?.location;
export const releaseDigests = releaseAssets?.digests;

// Images: the tag scheme is lib/image-plan.ts, the build contexts lib/contexts.ts.
let images: QemuImages | undefined;
if (imageRegistry) {
  const plan = await evaluate(() => planForStack(lock, hostEmulators, imageRegistry));
  const contexts = await evaluate(() => writeContexts(plan, hostEmulators, { outDir: cache('contexts'), baseImage: config.baseImage, labels: imageLabels(config, lock.qemu, plan.version) }));
  const registry = config.localRegistry && new LocalRegistry('registry', config.localRegistry);
  const password = config.secrets.registryPassword ? secretConfig('registryPassword') : undefined;
  const sbom = built?.assets.find((a) => a.kind === 'sbom');
  images = new QemuImages('images', { plan, contexts, username: imageRegistry.username, password, builder: config.builder, signing: signing && { mode: signing, sbom } }, { dependsOn: registry ? [registry.container] : [] });
}
/** Every tag this stack publishes, and image or index name -> pushed reference with digest. */
export const imageTags = images?.tags ?? [];
export const imageRefs = images && pulumi.all([images.refs, images.indexRefs]).apply(([i, x]) => ({ ...i, ...x }));

// Build hosts: emulators and the register script over SSH, entries registered.
const registerScript = await evaluate(() => writeRegisterScript(cache('scripts')));
const binfmtHosts = await evaluate(() => config.buildHosts.map((b) => new BinfmtHost(b.name, { buildHost: b, hostEmulators, registerScript, privateKey: secretConfig('sshPrivateKey'), uploadDir: cache('uploads') })));
/** Per build host: the binfmt entries registered and the folder holding their emulators. */
export const buildHosts = Object.fromEntries(binfmtHosts.map((h) => [h.hostName, { entries: h.entries, folder: h.folder }]));
