// Stack config for the CLI, read from the project's files the way Pulumi layers them: the
// defaults in Pulumi.yaml, then Pulumi.<stack>.yaml. Validated by the same schema as the
// program (lib/config.ts). Secret values are never read: a `secure:` value only counts as set.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { CONFIG_PREFIX, parseStackConfig, type StackConfig } from './config.ts';

/** Keys of a Pulumi.yaml config entry that declares a type rather than giving a value. */
const SCHEMA_KEYS = new Set(['type', 'description', 'default', 'value', 'items', 'secret']);

function readYaml(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: not a YAML mapping`);
  const config = (doc as Record<string, unknown>).config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${file}: "config" is not a mapping`);
  return config as Record<string, unknown>;
}

/** Pulumi hands config to programs as strings, with objects and arrays as JSON text. */
const asRaw = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

const isSecure = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && 'secure' in v;

/**
 * The validated config of `stack` in `projectDir` (Pulumi.yaml defaults, then
 * Pulumi.<stack>.yaml), or of the project defaults alone when no stack is named.
 */
export function readStackConfig(projectDir: string, stack?: string): StackConfig {
  const raw: Record<string, string> = {};
  const secrets = new Set<string>();
  const project = path.join(projectDir, 'Pulumi.yaml');
  if (fs.existsSync(project)) {
    for (const [key, entry] of Object.entries(readYaml(project))) {
      if (!key.startsWith(CONFIG_PREFIX)) continue;
      const isSchema = typeof entry === 'object' && entry !== null && !Array.isArray(entry) && Object.keys(entry).some((k) => SCHEMA_KEYS.has(k));
      const value = isSchema ? ((entry as Record<string, unknown>).value ?? (entry as Record<string, unknown>).default) : entry;
      if (value !== undefined) raw[key.slice(CONFIG_PREFIX.length)] = asRaw(value);
    }
  } else if (stack !== undefined) {
    throw new Error(`no Pulumi.yaml in ${projectDir}`);
  }
  if (stack !== undefined) {
    if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new Error(`bad stack name "${stack}"`);
    const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) throw new Error(`stack "${stack}" has no Pulumi.${stack}.yaml in ${projectDir}`);
    for (const [key, value] of Object.entries(readYaml(file))) {
      if (!key.startsWith(CONFIG_PREFIX)) continue;
      const name = key.slice(CONFIG_PREFIX.length);
      if (isSecure(value)) {
        secrets.add(name);
        delete raw[name];
      } else {
        raw[name] = asRaw(value);
      }
    }
  }
  return parseStackConfig(raw, secrets);
}
