// Stack configuration: one schema, checked once when the program starts. Every problem is
// reported at once, on one line, with the valid values. Secret values never reach this
// module: callers pass only which secrets are set.
import { z } from 'zod';
import { cpuNames, isHostArch, unknownHostArch, type HostArch } from './cpus.ts';

const unique = <T>(items: readonly T[], key: (t: T) => string, what: string, ctx: z.core.$RefinementCtx) => {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: 'custom', message: `duplicate ${what} "${k}"`, path: [i] });
    seen.add(k);
  });
};

const hostArch = z.string().superRefine((h, ctx) => {
  if (!isHostArch(h)) ctx.addIssue({ code: 'custom', message: unknownHostArch(h) });
}).transform((h) => h as HostArch);

const target = z.string().superRefine((t, ctx) => {
  if (t !== 'all' && !cpuNames().includes(t)) ctx.addIssue({ code: 'custom', message: `unknown CPU "${t}" (valid: all, ${cpuNames().join(', ')})` });
});

const Registry = z.strictObject({
  /** Registry host, e.g. docker.io, ghcr.io, quay.io, localhost:5000. */
  server: z.string().regex(/^[a-z0-9.-]+(:\d{1,5})?$/, 'must be a registry host[:port]'),
  /** Repository path inside the registry, e.g. polyarch/qemu-user-static. */
  repository: z.string().regex(/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/, 'must be a lowercase repository path'),
  username: z.string().min(1).optional(),
  /** Push the images (false builds them only). */
  push: z.boolean().default(false),
});

const BuildHost = z.strictObject({
  /** Unique name, used in resource names and errors. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lowercase letters, digits and dashes'),
  address: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'must be a user name'),
  sudo: z.boolean().default(false),
  persist: z.boolean().default(true),
  targets: z.array(target).optional(),
});

const Release = z
  .strictObject({
    /** GitHub repository that gets the release, `owner/name`. */
    repository: z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*)\/[A-Za-z0-9._-]+$/, 'must be owner/name').optional(),
    /** GitHub REST API root, for GitHub Enterprise Server (e.g. https://ghe.example.com/api/v3). */
    apiUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Local folder that gets the assets instead, in a subfolder named after the tag (the dev stack). */
    folder: z.string().min(1).optional(),
  })
  .superRefine((r, ctx) => {
    if (!r.repository === !r.folder) ctx.addIssue({ code: 'custom', message: 'give either repository (a GitHub release) or folder (a local folder)' });
    if (r.apiUrl && !r.repository) ctx.addIssue({ code: 'custom', path: ['apiUrl'], message: 'only applies to a GitHub release (repository)' });
  });

export const StackConfigSchema = z
  .strictObject({
    lockFile: z.string().min(1).default('qemu.lock.json'),
    /** The n in release v<qemu>-<n>. */
    releaseNumber: z.number().int().min(1).max(9999).default(1),
    hosts: z.array(hostArch).min(1).default(['x86_64' as HostArch]).superRefine((h, ctx) => unique(h, (x) => x, 'host arch', ctx)),
    targets: z.array(target).min(1).default(['all']).superRefine((t, ctx) => {
      unique(t, (x) => x, 'target', ctx);
      if (t.includes('all') && t.length > 1) ctx.addIssue({ code: 'custom', message: '"all" stands alone' });
    }),
    cacheDir: z.string().min(1).default('.cache/rpms'),
    registry: Registry.optional(),
    buildHosts: z.array(BuildHost).default([]).superRefine((b, ctx) => unique(b, (x) => x.name, 'build host name', ctx)),
    /** Where the release assets go: a GitHub release, or a local folder (the default). */
    release: Release.default({ folder: 'out/release' }),
  });

export type StackConfig = z.infer<typeof StackConfigSchema> & {
  /** Which secrets are set (never their values). */
  secrets: { registryPassword: boolean; sshPrivateKey: boolean; githubToken: boolean };
};

/** Raw Pulumi config values are strings; objects and arrays arrive as JSON text. */
function decode(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/**
 * Validates the `polyarch:*` keys of a stack's config. `raw` maps key (without namespace)
 * to the value Pulumi holds; `secretsSet` names the secret keys that have a value.
 * Throws one Error listing every problem.
 */
export const SECRET_KEYS = ['registryPassword', 'sshPrivateKey', 'githubToken'] as const;

export function parseStackConfig(raw: Record<string, string>, secretsSet: ReadonlySet<string>): StackConfig {
  // A secret key in plain config would sit unencrypted in the stack file: refuse it, without echoing it.
  const exposed = SECRET_KEYS.filter((k) => k in raw);
  const plain = Object.fromEntries(
    Object.entries(raw).filter(([k]) => !(SECRET_KEYS as readonly string[]).includes(k)).map(([k, v]) => [k, decode(v)]),
  );
  const secrets = { registryPassword: secretsSet.has('registryPassword'), sshPrivateKey: secretsSet.has('sshPrivateKey'), githubToken: secretsSet.has('githubToken') };
  const parsed = StackConfigSchema.superRefine((c, ctx) => {
    if (c.registry?.push && (!c.registry.username || !secrets.registryPassword)) {
      ctx.addIssue({ code: 'custom', path: ['registry'], message: `pushes to ${c.registry.server} without credentials (set registry.username and the secret polyarch:registryPassword)` });
    }
    if (c.release.repository && !secrets.githubToken) {
      ctx.addIssue({ code: 'custom', path: ['release'], message: `publishing to ${c.release.repository} needs the secret polyarch:githubToken` });
    }
    if (c.buildHosts.length > 0 && !secrets.sshPrivateKey) {
      ctx.addIssue({ code: 'custom', path: ['buildHosts'], message: 'build hosts need the secret polyarch:sshPrivateKey' });
    }
  }).safeParse(plain);
  const exposedProblems = exposed.map((k) => `polyarch:${k}: must be set with \`pulumi config set --secret\`, not as plain text`);
  if (!parsed.success || exposedProblems.length > 0) {
    const problems = (parsed.error?.issues ?? []).map((i) => {
      const where = i.path.length ? `polyarch:${i.path.map(String).join('.')}` : 'polyarch';
      const msg = i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')} (valid: ${Object.keys(StackConfigSchema.shape).join(', ')}, ${SECRET_KEYS.join(', ')})` : i.message;
      return `${where}: ${msg}`;
    });
    throw new Error(`invalid stack config: ${[...exposedProblems, ...problems].join('; ')}`);
  }
  return { ...parsed.data!, secrets };
}
