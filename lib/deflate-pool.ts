// Raw DEFLATE on worker threads, one per core: the compressor is synchronous, and the tarballs
// of a release are independent, so this is where building them gains from cores.
//
// The compressor is libdeflate, either built natively (native/build/libdeflate.node, made by
// scripts/native.mjs during `npm ci` where cargo and a C compiler are at hand) or the npm
// package's WebAssembly build. Both are libdeflate LIBDEFLATE_RELEASE, whose output depends on
// nothing but the input and the level, so both give the same bytes (test/native.test.ts
// holds them to it); native is about twice as fast.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { chooseNative, nativeCandidates, WORKER_FLAGS, type Choice } from './native.ts';

/** The libdeflate release the npm `libdeflate` package's WebAssembly is built from; a native build must be the same release. */
export const LIBDEFLATE_RELEASE = '1.26';

export type DeflateBackend = Choice<'native' | 'wasm'>;

/**
 * Which compressor the workers run: POLYARCH_DEFLATE=native or =wasm, or unset for the native
 * module when it is built, loads and is the pinned release (lib/native.ts).
 */
export function chooseDeflate(env: NodeJS.ProcessEnv = process.env, candidates = nativeCandidates('libdeflate')): DeflateBackend {
  const check = (m: Record<string, unknown>) => (m.version === LIBDEFLATE_RELEASE ? undefined : `is libdeflate ${String(m.version)}, not ${LIBDEFLATE_RELEASE}`);
  return chooseNative({ name: 'libdeflate', variable: 'POLYARCH_DEFLATE', fallbacks: ['wasm'], check }, env, candidates);
}

let backend: DeflateBackend | undefined;
/** The compressor this process's workers run (chosen once). */
export const deflateBackend = () => (backend ??= chooseDeflate());

type Reply = { id: number; output: Uint8Array } | { id: number; error: string };

interface Slot {
  worker: Worker;
  /** Jobs out on this worker. */
  busy: number;
}

let pool: Slot[] | undefined;
let seq = 0;
const pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();

/** Workers in the pool: one per core, at most 8. */
export const deflateWorkers = () => Math.max(1, Math.min(os.availableParallelism(), 8));

function slots(): Slot[] {
  pool ??= Array.from({ length: deflateWorkers() }, () => {
    const worker = new Worker(new URL('./deflate-worker.js', import.meta.url), { workerData: { addon: deflateBackend().addon }, execArgv: WORKER_FLAGS });
    worker.on('message', (r: Reply) => {
      const p = pending.get(r.id);
      if (!p) return;
      pending.delete(r.id);
      if ('error' in r) p.reject(new Error(`deflate: ${r.error}`));
      else p.resolve(Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength));
    });
    // A worker that dies (its module failed to load, say) fails every job out, and the next job
    // starts a new pool: a job posted to a dead worker would never be answered.
    const die = (e: Error) => {
      const dead = pool;
      // A worker of a pool already given up (terminated below) has nothing left to fail.
      if (!dead?.some((s) => s.worker === worker)) return;
      pool = undefined;
      for (const p of pending.values()) p.reject(e);
      pending.clear();
      for (const s of dead) if (s.worker !== worker) void s.worker.terminate();
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new Error(`deflate: worker exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    return { worker, busy: 0 };
  });
  return pool;
}

/**
 * Compresses `input` (raw DEFLATE, no framing) with libdeflate's `level` on the least busy
 * worker. The input's memory is transferred to the worker: the caller must not use
 * `input` afterwards.
 */
export function deflateInWorker(input: Uint8Array, level: number): Promise<Buffer> {
  const all = slots();
  const slot = all.reduce((a, b) => (b.busy < a.busy ? b : a));
  const id = seq++;
  slot.busy++;
  slot.worker.ref();
  // Idle workers must not keep the process alive.
  const finish = () => {
    slot.busy--;
    if (slot.busy === 0) slot.worker.unref();
  };
  // Transfer only a buffer the input owns whole; a view into a shared pool is copied instead.
  const owned = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength && input.buffer instanceof ArrayBuffer;
  const data = owned ? input : Uint8Array.prototype.slice.call(input);
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: (b) => { finish(); resolve(b); }, reject: (e) => { finish(); reject(e); } });
    slot.worker.postMessage({ id, input: data, level }, [data.buffer as ArrayBuffer]);
  });
}
