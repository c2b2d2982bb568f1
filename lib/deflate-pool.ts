// Raw DEFLATE on worker threads, one per core: the compressor is synchronous, and the tarballs
// of a release are independent, so this is where building them gains from cores.
//
// The compressor is libdeflate, either built natively (native/build/libdeflate.node, made by
// scripts/native.mjs during `npm ci` where cargo and a C compiler are at hand) or the npm
// package's WebAssembly build. Both are libdeflate LIBDEFLATE_RELEASE, whose output depends on
// nothing but the input and the level, so both give the same bytes (test/unit/native.test.ts
// holds them to it); native is about twice as fast.
import { chooseNative, nativeCandidates, type Choice } from './native.ts';
import { poolSize, WorkerPool } from './worker-pool.ts';

/** The libdeflate release the npm `libdeflate` package's WebAssembly is built from; a native build must be the same release. */
export const LIBDEFLATE_RELEASE = '1.26';

export type DeflateBackend = Choice<'native' | 'wasm'>;

/**
 * Which compressor the workers run: POLYARCH_DEFLATE=native or =wasm, or unset for the native
 * module when it is built, loads and is the pinned release (lib/native.ts).
 */
export function chooseDeflate(env: NodeJS.ProcessEnv = process.env, candidates = nativeCandidates('libdeflate')): DeflateBackend {
  const check = (m: Record<string, unknown>) =>
    m.version !== LIBDEFLATE_RELEASE ? `is libdeflate ${String(m.version)}, not ${LIBDEFLATE_RELEASE}` : typeof m.crc32 !== 'function' ? 'has no crc32 (an older build: npm ci builds it again)' : undefined;
  return chooseNative({ name: 'libdeflate', variable: 'POLYARCH_DEFLATE', fallbacks: ['wasm'], check }, env, candidates);
}

let backend: DeflateBackend | undefined;
/** The compressor this process's workers run (chosen once). */
export const deflateBackend = () => (backend ??= chooseDeflate());

/** Workers in the pool: one per core, at most 8. */
export const deflateWorkers = poolSize;

const pool = new WorkerPool('deflate', new URL('./deflate-worker.js', import.meta.url), () => ({ addon: deflateBackend().addon }));

/** A compressed input, and what the worker learnt of the input on the way. */
export interface Deflated {
  /** Raw DEFLATE, no framing. */
  deflated: Buffer;
  /** CRC-32 of the whole input (what a gzip trailer holds). */
  crc32: number;
  /** SHA-1 of the `sha1Of` range of the input, when one was asked for. */
  sha1?: string;
}

/**
 * Input buffers the workers handed back, kept for the next inputs: their memory is paged in
 * already. New memory costs about as much again as the copy into it (the kernel zeroes and maps
 * every page), and a release's tarballs need hundreds of megabytes of input.
 */
const spares: ArrayBuffer[] = [];
/** Buffers made by inputBuffer: these may be handed over whole though the input is shorter. */
const ours = new WeakSet<ArrayBuffer>();
const SPARE_STEP = 1 << 20;

/** Room for a `size`-byte input to deflateInWorker: the smallest spare buffer that fits, else a new one. */
export function inputBuffer(size: number): Uint8Array {
  let best = -1;
  for (const [i, b] of spares.entries()) if (b.byteLength >= size && (best < 0 || b.byteLength < spares[best]!.byteLength)) best = i;
  const buffer = best >= 0 ? spares.splice(best, 1)[0]! : new ArrayBuffer(Math.ceil(Math.max(size, 1) / SPARE_STEP) * SPARE_STEP);
  ours.add(buffer);
  return new Uint8Array(buffer, 0, size);
}

/** Keeps a handed-back buffer for the next input; a few, the largest. */
function keep(buffer: ArrayBuffer): void {
  spares.push(buffer);
  spares.sort((a, b) => b.byteLength - a.byteLength);
  spares.length = Math.min(spares.length, poolSize() + 2);
}

/**
 * Compresses `input` (raw DEFLATE, no framing) with libdeflate's `level` on the least busy
 * worker, which also takes the input's CRC-32 and, given `sha1Of` (start and end), the SHA-1 of
 * that range. The input's memory is transferred to the worker: the caller must not use `input`
 * afterwards. `label` names the job in a timeline (lib/timeline.ts).
 */
export async function deflateInWorker(input: Uint8Array, level: number, label = '', sha1Of?: readonly [number, number]): Promise<Deflated> {
  // Transfer only a buffer the input owns whole (or one of inputBuffer's); a view into a shared
  // pool is copied instead.
  const whole = input.byteOffset === 0 && input.buffer instanceof ArrayBuffer && (input.byteLength === input.buffer.byteLength || ours.has(input.buffer));
  const data = whole ? input : Uint8Array.prototype.slice.call(input);
  const { output, facts, input: back } = await pool.run({ input: data, level, sha1Of }, [data.buffer as ArrayBuffer], label);
  // Whatever went out comes back (as a new ArrayBuffer: a transfer does not keep its identity).
  if (back?.buffer instanceof ArrayBuffer) keep(back.buffer);
  return { deflated: output, crc32: facts.crc32 as number, ...(typeof facts.sha1 === 'string' && { sha1: facts.sha1 }) };
}
