// zstd payloads decode in worker threads, one per core: the decoder is synchronous, and a
// host's RPMs are independent, so this is where extraction gains from a second core.
//
// The decoder is zstd built natively (native/build/zstd.node, see lib/native.ts), else the
// `zstd` tool, one process per payload (lib/rpm.ts runs it: forking a process this size costs
// about 20 ms a time), else zstddec's WebAssembly here, about four times slower than either.
// Decoding is exact: all three give the same bytes.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { chooseNative, nativeCandidates, WORKER_FLAGS, type Choice } from './native.ts';

export type ZstdBackend = Choice<'native' | 'tool' | 'wasm'>;

/** POLYARCH_ZSTD=native, =tool or =wasm, or unset for native when built, else the tool. */
export const chooseZstd = (env: NodeJS.ProcessEnv = process.env, candidates = nativeCandidates('zstd')): ZstdBackend =>
  chooseNative({ name: 'zstd', variable: 'POLYARCH_ZSTD', fallbacks: ['tool', 'wasm'] }, env, candidates);

let backend: ZstdBackend | undefined;
/** The decoder this process uses (chosen once). */
export const zstdBackend = () => (backend ??= chooseZstd());

interface Job { id: number; input: Uint8Array; size?: number; max: number }
type Reply = { id: number; output: Uint8Array } | { id: number; error: string };

let pool: Worker[] | undefined;
/** Jobs out per worker, to hand each new job to the least busy one. */
const load = new Map<Worker, number>();
let seq = 0;
const pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();

function workers(): Worker[] {
  if (!pool) {
    const n = Math.max(1, Math.min(os.availableParallelism(), 8));
    const ws = Array.from({ length: n }, () => {
      const w = new Worker(new URL('./zstd-worker.js', import.meta.url), { workerData: { addon: zstdBackend().addon }, execArgv: WORKER_FLAGS });
      w.unref();
      w.on('message', (r: Reply) => {
        const p = pending.get(r.id);
        if (!p) return;
        pending.delete(r.id);
        if ('error' in r) p.reject(new Error(r.error));
        else p.resolve(Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength));
      });
      // A worker that dies fails every job out, and the next job starts a new pool (as in lib/deflate-pool.ts).
      const die = (e: Error) => {
        const dead = pool;
        if (!dead?.includes(w)) return;
        pool = undefined;
        for (const p of pending.values()) p.reject(e);
        pending.clear();
        for (const x of dead) if (x !== w) void x.terminate();
      };
      w.on('error', die);
      w.on('exit', (code) => die(new Error(`zstd: worker exited with code ${code}`)));
      return w;
    });
    pool = ws;
  }
  return pool;
}

/** Decodes on the least busy worker (native or WebAssembly); the input is copied, the output transferred back. */
export function decodeZstdInWorker(input: Uint8Array, size: number | undefined, max: number): Promise<Buffer> {
  const ws = workers();
  const w = ws.reduce((a, b) => ((load.get(b) ?? 0) < (load.get(a) ?? 0) ? b : a));
  load.set(w, (load.get(w) ?? 0) + 1);
  const id = seq++;
  // Idle workers must not keep the process alive: ref while a job is out, unref when none is.
  const settle = () => { if (pending.size === 0) for (const x of ws) x.unref(); };
  return new Promise((resolve, reject) => {
    const finish = () => { load.set(w, (load.get(w) ?? 1) - 1); settle(); };
    pending.set(id, { resolve: (b) => { resolve(b); finish(); }, reject: (e) => { reject(e); finish(); } });
    w.ref();
    w.postMessage({ id, input, size, max } satisfies Job);
  });
}
