// zstd payloads decode in worker threads, one per core: the decoder is synchronous, and a
// host's RPMs are independent, so this is where extraction gains from a second core.
//
// The decoder is zstd built natively (native/build/zstd.node, see lib/native.ts), else the
// `zstd` tool, one process per payload (lib/rpm.ts runs it: forking a process this size costs
// about 20 ms a time), else zstddec's WebAssembly here, about four times slower than either.
// Decoding is exact: all three give the same bytes.
import { chooseNative, nativeCandidates, type Choice } from './native.ts';
import { WorkerPool } from './worker-pool.ts';

export type ZstdBackend = Choice<'native' | 'tool' | 'wasm'>;

/** POLYARCH_ZSTD=native, =tool or =wasm, or unset for native when built, else the tool. */
export const chooseZstd = (env: NodeJS.ProcessEnv = process.env, candidates = nativeCandidates('zstd')): ZstdBackend =>
  chooseNative({ name: 'zstd', variable: 'POLYARCH_ZSTD', fallbacks: ['tool', 'wasm'] }, env, candidates);

let backend: ZstdBackend | undefined;
/** The decoder this process uses (chosen once). */
export const zstdBackend = () => (backend ??= chooseZstd());

const pool = new WorkerPool('zstd', new URL('./zstd-worker.js', import.meta.url), () => ({ addon: zstdBackend().addon }));

/** Decodes on the least busy worker (native or WebAssembly); the input is copied, the output transferred back. `label` names it in a timeline. */
export function decodeZstdInWorker(input: Uint8Array, size: number | undefined, max: number, label = ''): Promise<Buffer> {
  return pool.run({ input, size, max }, [], label).then((a) => a.output);
}
