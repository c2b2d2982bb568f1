// Raw DEFLATE on worker threads, one per core: the compressor is synchronous, and the tarballs
// of a release are independent, so this is where building them gains from cores.
//
// The compressor is libdeflate, either built natively (native/build/libdeflate.node, made by
// scripts/native.mjs during `npm ci` where cargo and a C compiler are at hand) or the npm
// package's WebAssembly build. Both are libdeflate LIBDEFLATE_RELEASE, whose output depends on
// nothing but the input and the level, so both give the same bytes (test/deflate-native.test.ts
// holds them to it); native is about twice as fast.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** The libdeflate release the npm `libdeflate` package's WebAssembly is built from; a native build must be the same release. */
export const LIBDEFLATE_RELEASE = '1.26';

export interface DeflateBackend {
  kind: 'native' | 'wasm';
  /** The Node-API module, when native. */
  addon?: string;
  /** Why WebAssembly, when it is. */
  reason?: string;
}

// lib/ in the sources, dist/lib/ in the build: the project's native/ is one or two folders up.
const ADDON_CANDIDATES = ['../native/build/libdeflate.node', '../../native/build/libdeflate.node'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));

/**
 * Which compressor the workers run. POLYARCH_DEFLATE=wasm or =native chooses; unset, the native
 * module is taken when it is there, loads and is the pinned release. Forced native that cannot
 * be had is an error: benchmarks and tests must not measure the other one unknowingly.
 */
export function chooseDeflate(env: NodeJS.ProcessEnv = process.env, candidates = ADDON_CANDIDATES): DeflateBackend {
  const wanted = env.POLYARCH_DEFLATE ?? 'auto';
  if (!['auto', 'native', 'wasm'].includes(wanted)) throw new Error(`POLYARCH_DEFLATE=${wanted}: use native, wasm or leave it unset`);
  if (wanted === 'wasm') return { kind: 'wasm', reason: 'POLYARCH_DEFLATE=wasm' };
  const addon = candidates.find((f) => existsSync(f));
  let reason: string;
  if (!addon) reason = 'native/build/libdeflate.node is not built (npm ci builds it where cargo and gcc are installed)';
  else {
    try {
      const { version } = createRequire(import.meta.url)(addon) as { version?: unknown };
      if (version === LIBDEFLATE_RELEASE) return { kind: 'native', addon };
      reason = `${addon} is libdeflate ${String(version)}, not ${LIBDEFLATE_RELEASE}`;
    } catch (e) {
      reason = `${addon} does not load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`;
    }
  }
  if (wanted === 'native') throw new Error(`POLYARCH_DEFLATE=native, but ${reason}`);
  return { kind: 'wasm', reason };
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
    const worker = new Worker(new URL('./deflate-worker.js', import.meta.url), { workerData: { addon: deflateBackend().addon } });
    worker.on('message', (r: Reply) => {
      const p = pending.get(r.id);
      if (!p) return;
      pending.delete(r.id);
      if ('error' in r) p.reject(new Error(`deflate: ${r.error}`));
      else p.resolve(Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength));
    });
    worker.on('error', (e) => {
      for (const p of pending.values()) p.reject(e);
      pending.clear();
    });
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
