// Raw DEFLATE on worker threads, one per core: the compressor is synchronous (WebAssembly), and
// the tarballs of a release are independent, so this is where building them gains from cores.
import os from 'node:os';
import { Worker } from 'node:worker_threads';

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
    const worker = new Worker(new URL('./deflate-worker.js', import.meta.url));
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
