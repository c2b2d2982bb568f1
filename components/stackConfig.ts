// Reads this stack's `polyarch:*` config from Pulumi and validates it once with lib/config.
// Secret values stay in Pulumi: only whether they are set is passed on.
import * as pulumi from '@pulumi/pulumi';
import { parseStackConfig, type SECRET_KEYS, type StackConfig } from '../lib/config.ts';

const NAMESPACE = 'polyarch:';
// Present in the SDK's runtime but missing from its type declarations.
const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret(key: string): boolean }).isConfigSecret;

export function loadStackConfig(): StackConfig {
  const raw: Record<string, string> = {};
  const secretsSet = new Set<string>();
  for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!key.startsWith(NAMESPACE)) continue;
    const name = key.slice(NAMESPACE.length);
    if (isConfigSecret(key)) secretsSet.add(name);
    else raw[name] = value;
  }
  // The release providers fall back to GITHUB_TOKEN (CI runners have one) when the stack
  // holds no token of its own; the engine hands them the same environment as the program.
  if (process.env.GITHUB_TOKEN) secretsSet.add('githubToken');
  return parseStackConfig(raw, secretsSet);
}

/** A secret config value as a Pulumi secret Output (never a plain string). */
export function secretConfig(name: (typeof SECRET_KEYS)[number]): pulumi.Output<string> {
  return new pulumi.Config('polyarch').requireSecret(name);
}
