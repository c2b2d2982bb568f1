// Stack configuration: one schema, checked once when the program starts. Every problem is
// reported at once, on one line, with the valid values. Secret values never reach this
// module: callers pass only which secrets are set.
import * as z from 'zod/mini';
import { normalizeFlags } from './binfmt.ts';
import { cpuNames, HOST_ARCHES, isHostArch, unknownHostArch, type HostArch } from './cpus.ts';
import { DEFAULT_CACHE_DIR } from './fetch.ts';
import { DEFAULT_BASE_IMAGE, DEFAULT_IMAGE_SOURCE, LABEL_REVISION, LABEL_SOURCE, PINNED_IMAGE } from './image-refs.ts';
import { SIGNING_MODES } from './cosign.ts';
import './schema.ts';
import { UserError } from './user-error.ts';

const unique = <T>(items: readonly T[], key: (t: T) => string, what: string, ctx: z.core.$RefinementCtx) => {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: 'custom', message: `duplicate ${what} "${k}"`, path: [i] });
    seen.add(k);
  });
};

const hostArch = z.pipe(
  z.string().check(
    z.superRefine((h, ctx) => {
      if (!isHostArch(h)) ctx.addIssue({ code: 'custom', message: unknownHostArch(h) });
    }),
  ),
  z.transform((h) => h as HostArch),
);

const target = z.string().check(
  z.superRefine((t, ctx) => {
    if (t !== 'all' && !cpuNames().includes(t)) ctx.addIssue({ code: 'custom', message: `unknown CPU "${t}" (valid: all, ${cpuNames().join(', ')})` });
  }),
);

const Registry = z.strictObject({
  /** Registry host, e.g. docker.io, ghcr.io, quay.io, localhost:5000. */
  server: z.string().check(z.regex(/^[a-z0-9.-]+(:\d{1,5})?$/, 'must be a registry host[:port]')),
  /** Repository path inside the registry, e.g. polyarch/qemu-user-static. */
  repository: z.string().check(z.regex(/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/, 'must be a lowercase repository path')),
  username: z.optional(z.string().check(z.minLength(1))),
  /** Push the images (false builds them only). */
  push: z._default(z.boolean(), false),
});

const LocalRegistry = z.strictObject({
  /** Loopback port of the registry container the program starts (images go to localhost:<port>). */
  port: z._default(z.int().check(z.minimum(1), z.maximum(65535)), 5000),
  /** The registry image, pinned by digest. */
  image: z.optional(z.string().check(z.regex(PINNED_IMAGE, 'must be pinned by digest (name@sha256:<64 hex>)'))),
});

const BuildHost = z.strictObject({
  /** Unique name, used in resource names and errors. */
  name: z.string().check(z.regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lowercase letters, digits and dashes')),
  address: z.string().check(z.minLength(1)),
  port: z._default(z.int().check(z.minimum(1), z.maximum(65535)), 22),
  user: z.string().check(z.regex(/^[a-z_][a-z0-9_-]*$/, 'must be a user name')),
  sudo: z._default(z.boolean(), false),
  persist: z._default(z.boolean(), true),
  targets: z.optional(z.array(target)),
  /** QEMU's --ignore-family: register CPUs of the host's family too, all but its own CPU (e.g. i386 on x86_64). */
  ignoreFamily: z._default(z.boolean(), false),
  /** The build host's own arch (`uname -m`): it gets this host's emulators, so it must be one of `hosts`. */
  arch: z._default(hostArch, 'x86_64' as HostArch),
  /** The host's public key, `<type> <base64>` as in known_hosts; without it the host key is not checked. */
  hostKey: z.optional(
    z.string().check(
      z.regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}$/, 'must be a public key "<type> <base64>" (e.g. a line of ssh-keyscan without the host name)'),
      // The command plugin offers only the key's own type as host key algorithm, and for an RSA
      // key that is SHA-1 "ssh-rsa", which OpenSSH 8.8 and later refuse (test/engine/hosts.test.ts).
      z.refine((k) => !k.startsWith('ssh-rsa '), 'is an ssh-rsa key, which the command plugin can only check with SHA-1 signatures that OpenSSH 8.8+ refuses: use the host\'s ed25519 or ECDSA key line (ssh-keyscan -t ed25519 <host>)'),
    ),
  ),
  /** binfmt flags for the entries: any of P, O, C, F; the register script sets O and C together. */
  flags: z.pipe(
    z._default(z.string(), 'F'),
    z.transform((f: string, ctx) => {
      let flags: string;
      try {
        flags = normalizeFlags(f);
      } catch (e) {
        ctx.issues.push({ code: 'custom', message: (e as Error).message, input: f });
        return z.NEVER;
      }
      if (flags.includes('O') !== flags.includes('C')) ctx.issues.push({ code: 'custom', message: 'flag O comes with C (the register script sets both with --credential yes)', input: f });
      return flags;
    }),
  ),
  /** Root-owned folder on the build host for the emulators, one subfolder per registration. */
  emulatorDir: z._default(z.string().check(z.maxLength(200), z.regex(/^(\/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+$/, 'must be an absolute path of letters, digits and . _ + - (no trailing /, no . or .. parts)')), '/usr/local/lib/polyarch'),
});

const Release = z
  .strictObject({
    /** GitHub repository that gets the release, `owner/name`. */
    repository: z.optional(z.string().check(z.regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*)\/[A-Za-z0-9._-]+$/, 'must be owner/name'))),
    /** GitHub REST API root, for GitHub Enterprise Server (e.g. https://ghe.example.com/api/v3). */
    apiUrl: z.optional(z.url({ protocol: /^https?$/ })),
    /** Local folder that gets the assets instead, in a subfolder named after the tag (the dev stack). */
    folder: z.optional(z.string().check(z.minLength(1))),
  })
  .check(
    z.superRefine((r, ctx) => {
      if (!r.repository === !r.folder) ctx.addIssue({ code: 'custom', message: 'give either repository (a GitHub release) or folder (a local folder)' });
      if (r.apiUrl && !r.repository) ctx.addIssue({ code: 'custom', path: ['apiUrl'], message: 'only applies to a GitHub release (repository)' });
    }),
  );

export const StackConfigSchema = z
  .strictObject({
    lockFile: z._default(z.string().check(z.minLength(1)), 'qemu.lock.json'),
    hosts: z._default(
      z.array(hostArch).check(
        z.minLength(1, `is empty: list the host arches to publish for (valid: ${HOST_ARCHES.join(', ')})`),
        z.superRefine((h, ctx) => unique(h, (x) => x, 'host arch', ctx)),
      ),
      ['x86_64' as HostArch],
    ),
    targets: z._default(
      z.array(target).check(
        z.minLength(1, 'is empty: list the target CPUs to publish, or [all]'),
        z.superRefine((t, ctx) => {
          unique(t, (x) => x, 'target', ctx);
          if (t.includes('all') && t.length > 1) ctx.addIssue({ code: 'custom', message: '"all" stands alone' });
        }),
      ),
      ['all'],
    ),
    cacheDir: z._default(z.string().check(z.minLength(1)), DEFAULT_CACHE_DIR),
    registry: z.optional(Registry),
    buildHosts: z._default(z.array(BuildHost).check(z.superRefine((b, ctx) => unique(b, (x) => x.name, 'build host name', ctx))), []),
    /** Base of the :latest and :register images; must list every host's platform. */
    baseImage: z._default(z.string().check(z.regex(PINNED_IMAGE, 'must be pinned by digest (name@sha256:<64 hex>)')), DEFAULT_BASE_IMAGE),
    /** OCI label org.opencontainers.image.source. */
    imageSource: z._default(z.string().check(z.regex(LABEL_SOURCE, 'must be an http(s) URL')), DEFAULT_IMAGE_SOURCE),
    /** OCI label org.opencontainers.image.revision; default: the QEMU build, <version>-<release>. */
    imageRevision: z.optional(z.string().check(z.regex(LABEL_REVISION, 'may only hold letters, digits and . _ + -'))),
    /** Start a local registry container and publish there (the dev stack). */
    localRegistry: z.optional(LocalRegistry),
    /**
     * The buildx builder that builds the images, by name (e.g. a `remote` builder over a
     * buildkitd of one's own). Unset: the docker-build provider picks or creates one itself.
     */
    builder: z.optional(z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a buildx builder name (letters, digits, . _ -)'))),
    /** Where the release assets go: a GitHub release, a local folder (the default), or false for none. */
    release: z._default(z.union([z.literal(false), Release]), { folder: 'out/release' }),
    /**
     * How SHA256SUMS, the SBOM and every pushed image are signed (lib/cosign.ts): `keyless`
     * (Sigstore, with the CI job's OIDC identity), `key` (a cosign key pair: the secrets
     * polyarch:signingKey and polyarch:signingPassword), or `none` (published unsigned, said so).
     */
    signing: z._default(z.enum(SIGNING_MODES), 'none'),
  });

export type StackConfig = z.infer<typeof StackConfigSchema> & {
  /** Which secrets are set (never their values). */
  secrets: { registryPassword: boolean; sshPrivateKey: boolean; githubToken: boolean; signingKey: boolean; signingPassword: boolean };
};

/** Raw Pulumi config values are strings; objects and arrays arrive as JSON text. */
function decode(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** The config namespace, the project's name: stack keys are `polyarch:<key>`. */
export const CONFIG_PREFIX = 'polyarch:';

/** The keys that hold secrets: set only with `pulumi config set --secret`. */
export const SECRET_KEYS = ['registryPassword', 'sshPrivateKey', 'githubToken', 'signingKey', 'signingPassword'] as const;

/**
 * Validates the `polyarch:*` keys of a stack's config. `raw` maps key (without namespace)
 * to the value Pulumi holds; `secretsSet` names the secret keys that have a value.
 * Throws one UserError listing every problem.
 */
export function parseStackConfig(raw: Record<string, string>, secretsSet: ReadonlySet<string>): StackConfig {
  // A secret key in plain config would sit unencrypted in the stack file: refuse it, without echoing it.
  const exposed = SECRET_KEYS.filter((k) => k in raw);
  const plain = Object.fromEntries(
    Object.entries(raw).filter(([k]) => !(SECRET_KEYS as readonly string[]).includes(k)).map(([k, v]) => [k, decode(v)]),
  );
  // The release number moved to the lockfile, so that every stack publishes one version.
  const moved = 'releaseNumber' in plain ? ['polyarch:releaseNumber: the n of v<qemu>-<n> is now "releaseNumber" in the lockfile, the same for every stack; remove it from this stack\'s config'] : [];
  delete plain.releaseNumber;
  const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, secretsSet.has(k)])) as StackConfig['secrets'];
  const parsed = StackConfigSchema.check(z.superRefine((c, ctx) => {
    if (c.registry?.push && (!c.registry.username || !secrets.registryPassword)) {
      ctx.addIssue({ code: 'custom', path: ['registry'], message: `pushes to ${c.registry.server} without credentials (set registry.username and the secret polyarch:registryPassword)` });
    }
    c.buildHosts.forEach((b, i) => {
      if (!c.hosts.includes(b.arch)) ctx.addIssue({ code: 'custom', path: ['buildHosts', i, 'arch'], message: `build host "${b.name}" is ${b.arch}, which is not among hosts (${c.hosts.join(', ')}), so no emulators are extracted for it` });
    });
    if (c.registry && c.localRegistry) {
      ctx.addIssue({ code: 'custom', path: ['localRegistry'], message: 'set either registry or localRegistry, not both' });
    }
    // The local registry speaks plain HTTP, and the docker-build provider reads indexes back
    // over HTTPS only: a second host would make indexes (lib/image-plan.ts) that cannot be created.
    if (c.localRegistry && c.hosts.length > 1) {
      ctx.addIssue({ code: 'custom', path: ['localRegistry'], message: `serves one host (plain HTTP, where multi-host indexes cannot be created); hosts lists ${c.hosts.join(', ')}: keep one, or publish to a registry on TLS with polyarch:registry` });
    }
    if (c.release && c.release.repository && !secrets.githubToken) {
      ctx.addIssue({ code: 'custom', path: ['release'], message: `publishing to ${c.release.repository} needs the secret polyarch:githubToken` });
    }
    if (c.signing === 'key' && !secrets.signingKey) {
      ctx.addIssue({ code: 'custom', path: ['signing'], message: 'is key, which needs the secret polyarch:signingKey (a cosign private key, `cosign generate-key-pair`) and, for an encrypted key, polyarch:signingPassword' });
    }
    if (c.signing !== 'key' && (secrets.signingKey || secrets.signingPassword)) {
      ctx.addIssue({ code: 'custom', path: ['signing'], message: `is ${c.signing}, but the secret polyarch:signingKey or polyarch:signingPassword is set: set polyarch:signing to key to sign with it, or remove the secret` });
    }
    if (c.buildHosts.length > 0 && !secrets.sshPrivateKey) {
      ctx.addIssue({ code: 'custom', path: ['buildHosts'], message: 'build hosts need the secret polyarch:sshPrivateKey' });
    }
  })).safeParse(plain);
  const exposedProblems = exposed.map((k) => `${CONFIG_PREFIX}${k}: must be set with \`pulumi config set --secret\`, not as plain text`);
  if (!parsed.success || exposedProblems.length > 0 || moved.length > 0) {
    const problems = (parsed.error?.issues ?? []).map((i) => {
      const where = i.path.length ? `${CONFIG_PREFIX}${i.path.map(String).join('.')}` : 'polyarch';
      const msg = i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')} (valid: ${Object.keys(StackConfigSchema.shape).join(', ')}, ${SECRET_KEYS.join(', ')})` : i.message;
      return `${where}: ${msg}`;
    });
    throw new UserError(`invalid stack config: ${[...exposedProblems, ...moved, ...problems].join('; ')}`);
  }
  return { ...parsed.data!, secrets };
}
