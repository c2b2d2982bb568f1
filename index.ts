// The program: validated stack config -> components. Wiring only; work lives in lib/.
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { BinfmtHost } from './components/binfmtHost.ts';
import { LocalRegistry } from './components/localRegistry.ts';
import { QemuImages } from './components/qemuImages.ts';
import { loadStackConfig, secretConfig } from './components/stackConfig.ts';
import { writeRegisterScript } from './lib/build-host.ts';
import { imageLabels, writeContexts } from './lib/contexts.ts';
import { prepareStackEmulators } from './lib/emulators.ts';
import { imageTarget, planForStack } from './lib/image-plan.ts';
import { readLock } from './lib/lock.ts';

const config = loadStackConfig();
const lock = await readLock(config.lockFile);

// Extracted at evaluation time (cached by the lockfile's digests), so previews show real digests.
const hostEmulators = await prepareStackEmulators(config, lock);

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
// ---- Images (issue 5): the tag scheme is lib/image-plan.ts, the build contexts lib/contexts.ts.
const imageRegistry = imageTarget(config);
let images: QemuImages | undefined;
if (imageRegistry) {
  const plan = planForStack(config, lock.qemu, hostEmulators, imageRegistry);
  const contexts = await writeContexts(plan, hostEmulators, { outDir: path.join(config.cacheDir, 'contexts'), baseImage: config.baseImage, labels: imageLabels(config, lock.qemu, plan.version) });
  const registry = config.localRegistry && new LocalRegistry('registry', config.localRegistry);
  const password = config.secrets.registryPassword ? secretConfig('registryPassword') : undefined;
  images = new QemuImages('images', { plan, contexts, username: imageRegistry.username, password }, { dependsOn: registry ? [registry.container] : [] });
}
/** Every tag this stack publishes (empty without a registry). */
export const imageTags = images?.tags ?? [];
/** Image and index name -> pushed tag with digest. */
export const imageRefs = images && pulumi.all([images.refs, images.indexRefs]).apply(([i, x]) => ({ ...i, ...x }));
