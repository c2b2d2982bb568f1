// What a dynamic provider needs at run time. Pulumi serializes a dynamic provider's methods
// into the resource's `__provider` input, and its dynamic-provider host runs them later in a
// plain `node` process (no tsx loader), whose working folder is the project. So provider
// methods capture nothing but plain values and functions from this file, and load the
// project's modules here, at run time: compiled (dist/, when fresh) or through tsx's scoped loader.
import type * as pulumi from '@pulumi/pulumi';
import type * as GitHubLib from '../lib/github-release.ts';

/**
 * Imports a module of this project (path relative to the project folder, e.g.
 * `lib/github-release.ts`), once per process. Works in plain node and under tsx alike.
 */
export function loadProjectModule<T>(relPath: string): Promise<T> {
  // Builtins and dynamic import only: the closure serializer captures this function's text as is.
  const { pathToFileURL } = process.getBuiltinModule('node:url');
  const cache = ((globalThis as { __polyarchModules?: Map<string, Promise<unknown>> }).__polyarchModules ??= new Map());
  let loaded = cache.get(relPath);
  if (!loaded) {
    const project = pathToFileURL(`${process.cwd()}/`);
    // The compiled module when npm's build matches the sources (plain JavaScript, no loader).
    loaded = import(new URL('scripts/compiled.mjs', project).href).then(async ({ compiledUrl }) => {
      const built = (compiledUrl as (root: string, rel: string) => string | undefined)(process.cwd(), relPath);
      if (built) return import(built);
      // Else tsx's ESM entry (its CommonJS build of tsImport cannot find its own files); the
      // bare specifier resolves from the host's node_modules, which are the project's.
      const { tsImport } = await import('tsx/esm/api');
      return tsImport(new URL(relPath, project).href, project.href);
    });
    cache.set(relPath, loaded);
  }
  return loaded as Promise<T>;
}

/** Keys whose change needs a new resource, and keys whose change is an update in place. */
export function diffKeys(olds: Record<string, unknown>, news: Record<string, unknown>, replaceKeys: readonly string[], updateKeys: readonly string[]) {
  const changed = (k: string) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]);
  const replaces = replaceKeys.filter(changed);
  return { changes: replaces.length > 0 || updateKeys.some(changed), replaces };
}

/** A provider's `diff` by input key: a change to one of `replaceKeys` replaces, to one of `updateKeys` updates in place. */
export function keyedDiff(replaceKeys: readonly string[], updateKeys: readonly string[]) {
  return async (_id: string, olds: object, news: object) => diffKeys({ ...olds }, { ...news }, replaceKeys, updateKeys);
}

/** The stack config key the GitHub providers read the token from, at run time. */
export const TOKEN_CONFIG_KEY = 'polyarch:githubToken';

/**
 * The GitHub token for a provider's `configure`: the stack's secret config, else GITHUB_TOKEN.
 * Read at run time so it is never an input, never in state, never captured by the serializer.
 */
export function githubToken(config: { get(key: string): string | undefined }): string | undefined {
  return config.get(TOKEN_CONFIG_KEY) || process.env.GITHUB_TOKEN;
}

/** A provider over GitHub: it holds the token it was configured with, in the provider host's memory only. */
export interface GitHubProvider<I, O> extends pulumi.dynamic.ResourceProvider<I, O> {
  token?: string;
}

/** What every GitHub provider's `configure` does: take the token from the stack's secret config (or GITHUB_TOKEN). */
export async function configureGitHub(this: { token?: string }, req: pulumi.dynamic.ConfigureRequest): Promise<void> {
  this.token = githubToken(req.config);
}

/** lib/github-release and a client holding the provider's token, for one provider call. */
export async function gitHub(token: string | undefined, apiUrl: string): Promise<{ gh: typeof GitHubLib; client: GitHubLib.GitHub }> {
  const gh = await loadProjectModule<typeof GitHubLib>('lib/github-release.ts');
  return { gh, client: gh.githubClient({ token: token ?? '', apiUrl }) };
}

/** The signing key and its password, as a signing provider's `configure` read them from the stack's secret config. */
export interface SigningSecrets {
  key?: string;
  password?: string;
}

/** A provider that signs: it holds the signing secrets in the provider host's memory only. */
export interface SigningProvider<I, O> extends pulumi.dynamic.ResourceProvider<I, O> {
  secrets?: SigningSecrets;
}

/** What every signing provider's `configure` does: take the key and its password from the stack's secret config, into the provider host's memory. */
export async function configureSigning(this: { secrets?: SigningSecrets }, req: pulumi.dynamic.ConfigureRequest): Promise<void> {
  this.secrets = { key: req.config.get('polyarch:signingKey'), password: req.config.get('polyarch:signingPassword') };
}

/** The signer for one call: keyless needs nothing; a key must have been configured. */
export function signerFor(mode: 'key' | 'keyless', secrets: SigningSecrets | undefined): { mode: 'key' | 'keyless'; key?: string; password?: string } {
  if (mode === 'keyless') return { mode };
  if (!secrets?.key) throw new Error('polyarch:signing is key, but the provider was given no polyarch:signingKey');
  return { mode, key: secrets.key, password: secrets.password };
}
