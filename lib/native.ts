// The project's Node-API modules (native/build/*.node, made by scripts/native.mjs during `npm ci`
// where cargo and a C compiler are at hand), and how a worker pool chooses between one of them
// and its fallback. A missing or broken module is never an error unless it was asked for: the
// fallbacks give the same bytes, only slower.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type NativeModule = 'libdeflate' | 'zstd';

/** Where the module may be: lib/ in the sources, dist/lib/ in the build, so native/ is one or two folders up. */
export const nativeCandidates = (name: NativeModule) =>
  [`../native/build/${name}.node`, `../../native/build/${name}.node`].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));

export interface Choice<K extends string> {
  kind: K;
  /** The Node-API module, when native. */
  addon?: string;
  /** Why not native, when not. */
  reason?: string;
}

export interface ChoiceSpec<K extends string> {
  name: NativeModule;
  /** The environment variable that chooses, e.g. POLYARCH_DEFLATE. */
  variable: string;
  /** The other kinds it may name, in the order tried when native cannot be had. */
  fallbacks: readonly [K, ...K[]];
  /** Why a module that loaded is not the one wanted (a wrong release), or undefined. */
  check?: (module: Record<string, unknown>) => string | undefined;
}

/**
 * What `spec.variable` in `env` asks for: native, one of the fallbacks, or unset (native when
 * the module is there and loads and passes the check, else the first fallback, with the
 * reason). Native asked for but not to be had is an error naming why: benchmarks and tests
 * must never measure the other way unknowingly.
 */
export function chooseNative<K extends string>(spec: ChoiceSpec<K>, env: NodeJS.ProcessEnv, candidates = nativeCandidates(spec.name)): Choice<K | 'native'> {
  const wanted = env[spec.variable] ?? 'auto';
  const kinds: string[] = ['native', ...spec.fallbacks];
  if (wanted !== 'auto' && !kinds.includes(wanted)) throw new Error(`${spec.variable}=${wanted}: use ${kinds.join(', ')} or leave it unset`);
  if (wanted !== 'auto' && wanted !== 'native') return { kind: wanted as K, reason: `${spec.variable}=${wanted}` };
  const addon = candidates.find((f) => existsSync(f));
  let reason: string | undefined;
  if (!addon) reason = `native/build/${spec.name}.node is not built (npm ci builds it where cargo and gcc are installed)`;
  else {
    try {
      reason = spec.check?.(createRequire(import.meta.url)(addon) as Record<string, unknown>);
      if (reason === undefined) return { kind: 'native', addon };
      reason = `${addon} ${reason}`;
    } catch (e) {
      reason = `${addon} does not load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    }
  }
  if (wanted === 'native') throw new Error(`${spec.variable}=native, but ${reason}`);
  return { kind: spec.fallbacks[0], reason };
}
