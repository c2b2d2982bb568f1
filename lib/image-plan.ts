// The tag scheme, in one place: which images a stack publishes, for which platforms, under
// which tags. Everything else (build contexts, the Pulumi component, the CLI, the tests)
// reads the plan made here.
//
//   :latest, :<version>       busybox + every emulator of the host + /register; one platform per host
//   :register                 busybox + /register only; one platform per host
//   :H-T, :H-T-<version>      FROM scratch + /usr/bin/qemu-T-static, for host H only
//   :T, :T-<version>          an index over every host's H-T image, so that
//                             `COPY --from=<repo>:T /usr/bin/qemu-T-static /usr/bin/` works on any host;
//                             when only one host publishes T, extra tags on that H-T image instead
//
// Why no one-entry index: it would cost a resource per tag and add nothing (a COPY --from
// gets the same bytes under the same name), and docker-build's Index reads manifests back
// over HTTPS only, so it cannot be created on a plain-HTTP registry such as the dev stack's.
//
// <version> is `<qemu>-<n>` (the release name without its `v`).
import { findCpu, type HostArch } from './cpus.ts';
import { releaseVersion, type Lock } from './lock.ts';
import { UserError } from './user-error.ts';

/** Where a stack's images go when its config names no registry. */
export const DEFAULT_REPOSITORY = 'polyarch/qemu-user-static';
export const DEFAULT_SERVER = 'docker.io';

/** The registry a stack publishes to, resolved from its config. */
export interface ImageTarget {
  /** Registry host[:port], e.g. ghcr.io or localhost:5000. */
  server: string;
  /** Repository path inside the registry. */
  repository: string;
  /** Push the images (and create the indexes, which need pushed images). */
  push: boolean;
  /** Registry user for the push; the password is the secret polyarch:registryPassword. */
  username?: string;
}

/** What the plan needs from stack config (a subset of StackConfig from lib/config.ts). */
export interface RegistryConfig {
  registry?: { server: string; repository: string; username?: string | undefined; push: boolean } | undefined;
  localRegistry?: { port: number } | undefined;
}

/**
 * The registry this stack publishes to: its `registry`, or the local registry the dev stack
 * starts (pushed to without credentials), or undefined when the stack publishes no images.
 */
export function imageTarget(c: RegistryConfig): ImageTarget | undefined {
  if (c.registry) return { server: c.registry.server, repository: c.registry.repository, push: c.registry.push, ...(c.registry.username ? { username: c.registry.username } : {}) };
  if (c.localRegistry) return { server: `localhost:${c.localRegistry.port}`, repository: DEFAULT_REPOSITORY, push: true };
  return undefined;
}

/** One host and the emulators (by CPU name, e.g. aarch64) it publishes. */
export interface PlanHost {
  host: HostArch;
  targets: readonly string[];
}

export interface PlanInput extends ImageTarget {
  /** `<qemu>-<n>`, e.g. 9.2.4-1 (no `v`). */
  version: string;
  hosts: readonly PlanHost[];
}

export type ImageKind = 'emulators' | 'register' | 'emulator';

export interface PlannedImage {
  /** Unique within the plan: `emulators`, `register` or `<host>-<target>`. */
  name: string;
  kind: ImageKind;
  /** One platform per host, in the plan's host order. */
  platforms: string[];
  /** Full references, `<server>/<repository>:<tag>`; an H-T image that is its target's only source also carries `:T` and `:T-<version>`. */
  tags: string[];
  /** The hosts whose files the image holds, parallel to `platforms`. */
  hosts: HostArch[];
  /** For kind `emulator`: the CPU whose emulator it holds. */
  target?: string;
}

/** An index over the H-T images of a target two or more hosts publish. */
export interface PlannedIndex {
  /** The tag, e.g. `aarch64` or `aarch64-9.2.4-1`; unique within the plan. */
  name: string;
  /** Full reference of the index. */
  tag: string;
  target: string;
  /** Names of the per-host images it lists, one per platform. */
  sources: string[];
  platforms: string[];
}

export interface ImagePlan {
  /** Registry host[:port], where credentials apply. */
  server: string;
  /** `<server>/<repository>` */
  repository: string;
  version: string;
  push: boolean;
  images: PlannedImage[];
  indexes: PlannedIndex[];
}

const VERSION = /^\d+(\.\d+)*-\d+$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The OCI platform of a host arch, from the CPU table (x86_64 -> linux/amd64). */
export function hostPlatform(host: HostArch): string {
  const platform = findCpu(host)?.platform;
  if (!platform) throw new Error(`host arch ${host} has no container platform in the CPU table`);
  return platform;
}

/** The platform's architecture as BuildKit's and Buildah's TARGETARCH spell it (linux/amd64 -> amd64). */
export function platformArch(platform: string): string {
  const arch = platform.split('/')[1];
  if (!arch) throw new Error(`malformed platform "${platform}"`);
  return arch;
}

/** The plan for a set of hosts and their targets. Throws on a bad version, an empty host, or a tag collision. */
export function planImages(input: PlanInput): ImagePlan {
  if (!VERSION.test(input.version)) throw new Error(`image version "${input.version}" is not <qemu>-<n> (e.g. 9.2.4-1)`);
  if (input.hosts.length === 0) throw new Error('the image plan needs at least one host');
  const seenHosts = new Set<string>();
  for (const h of input.hosts) {
    if (seenHosts.has(h.host)) throw new Error(`host ${h.host} is listed twice`);
    seenHosts.add(h.host);
    if (h.targets.length === 0) throw new UserError(`host ${h.host} publishes no emulators (check polyarch:targets and the lockfile)`);
    for (const t of h.targets) if (!findCpu(t)) throw new Error(`host ${h.host}: unknown target "${t}"`);
  }
  const repository = `${input.server}/${input.repository}`;
  const ref = (tag: string) => {
    if (!TAG.test(tag)) throw new Error(`"${tag}" is not a valid image tag`);
    return `${repository}:${tag}`;
  };
  const v = input.version;
  const hosts = input.hosts.map((h) => h.host);
  const platforms = hosts.map(hostPlatform);

  const images: PlannedImage[] = [
    { name: 'emulators', kind: 'emulators', platforms, hosts, tags: [ref('latest'), ref(v)] },
    { name: 'register', kind: 'register', platforms, hosts, tags: [ref('register')] },
  ];
  // How many hosts publish each target; a Map keeps first-seen order, so the plan reads stably.
  const publishers = new Map<string, number>();
  for (const h of input.hosts) for (const t of h.targets) publishers.set(t, (publishers.get(t) ?? 0) + 1);
  for (const h of input.hosts) {
    for (const t of h.targets) {
      const tags = [ref(`${h.host}-${t}`), ref(`${h.host}-${t}-${v}`)];
      if (publishers.get(t) === 1) tags.push(ref(t), ref(`${t}-${v}`));
      images.push({ name: `${h.host}-${t}`, kind: 'emulator', platforms: [hostPlatform(h.host)], hosts: [h.host], target: t, tags });
    }
  }
  const indexes: PlannedIndex[] = [];
  for (const [t, count] of publishers) {
    if (count < 2) continue;
    const sources = images.filter((i) => i.kind === 'emulator' && i.target === t);
    for (const name of [t, `${t}-${v}`]) {
      indexes.push({ name, tag: ref(name), target: t, sources: sources.map((s) => s.name), platforms: sources.flatMap((s) => s.platforms) });
    }
  }
  // A CPU named like a host-target pair or a keyword would make two things share a tag.
  const all = [...images.flatMap((i) => i.tags), ...indexes.map((i) => i.tag)];
  const dup = all.find((t, i) => all.indexOf(t) !== i);
  if (dup) throw new Error(`the image plan uses tag ${dup} twice`);
  return { server: input.server, repository, version: v, push: input.push, images, indexes };
}

/**
 * The plan for a stack: the version its lockfile publishes (`<qemu>-<n>`) and the emulators
 * each host publishes (HostEmulators from lib/emulators.ts).
 */
export function planForStack(
  lock: Pick<Lock, 'qemu' | 'releaseNumber'>,
  hosts: readonly { host: HostArch; emulators: readonly { cpu: string }[] }[],
  target: ImageTarget,
): ImagePlan {
  return planImages({ ...target, version: releaseVersion(lock), hosts: hosts.map((h) => ({ host: h.host, targets: h.emulators.map((e) => e.cpu) })) });
}
