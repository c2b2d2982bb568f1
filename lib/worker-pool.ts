// Worker threads for synchronous byte work (compressing tarballs, decoding RPM payloads): one
// per core, each job to the least busy worker, answered with the bytes the worker sends back
// (and any facts it learnt of them).
// lib/deflate-pool.ts and lib/zstd-pool.ts each keep one.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { mark } from './timeline.ts';

/** A worker's answer, with when it did the job and on which thread (for lib/timeline.ts). */
type Reply = ({ output: Uint8Array; facts?: Record<string, unknown>; input?: Uint8Array } | { error: string }) & { id: number; start?: number; end?: number; tid?: number };

/** What a job gave back: its bytes, and what the worker learnt of them on the way (digests, a CRC). */
export interface Answer {
  output: Buffer;
  facts: Record<string, unknown>;
  /** The job's input, when the worker hands its memory back for the next job. */
  input?: Uint8Array;
}

interface Slot {
  worker: Worker;
  /** Jobs out on this worker. */
  busy: number;
}

/** Workers in a pool: one per core, at most 8. */
export const poolSize = () => Math.max(1, Math.min(os.availableParallelism(), 8));

export class WorkerPool {
  private slots: Slot[] | undefined;
  private seq = 0;
  private readonly pending = new Map<number, { label: string; resolve: (a: Answer) => void; reject: (e: Error) => void }>();

  /**
   * @param name what the pool does, for errors ("deflate", "zstd")
   * @param body the worker's module: plain JavaScript that answers `{ id, ...job }` with
   *   `{ id, output }` or `{ id, error }`
   * @param workerData handed to each worker when it starts (asked when the pool starts)
   */
  constructor(
    private readonly name: string,
    private readonly body: URL,
    private readonly workerData: () => unknown,
  ) {}

  private start(): Slot[] {
    const slots = Array.from({ length: poolSize() }, () => {
      // No Node flags: the bodies need no loader, and a worker inheriting `--input-type` (a
      // process run with --eval) fails to start.
      const worker = new Worker(this.body, { workerData: this.workerData(), execArgv: [] });
      worker.on('message', (r: Reply) => {
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.start !== undefined) mark(this.name, p.label, r.start, { end: r.end, tid: r.tid });
        if ('error' in r) p.reject(new Error(r.error));
        else p.resolve({ output: Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength), facts: r.facts ?? {}, ...(r.input && { input: r.input }) });
      });
      // A worker that dies (its module failed to load, say) fails every job out, and the next
      // job starts a new pool: a job posted to a dead worker would never be answered.
      const die = (e: Error) => {
        // A worker of a pool already given up (terminated below) has nothing left to fail.
        if (this.slots !== slots) return;
        this.slots = undefined;
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
        for (const s of slots) if (s.worker !== worker) void s.worker.terminate();
      };
      worker.on('error', die);
      worker.on('exit', (code) => die(new Error(`${this.name}: worker exited with code ${code}`)));
      // After the listeners: adding a 'message' listener refs the worker's port again.
      worker.unref();
      return { worker, busy: 0 };
    });
    this.slots = slots;
    return slots;
  }

  /** Runs `job` on the least busy worker; `transfer` moves memory to it instead of copying; `label` names it in a timeline. */
  run(job: Record<string, unknown>, transfer: ArrayBuffer[] = [], label = ''): Promise<Answer> {
    const slot = (this.slots ?? this.start()).reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.seq++;
    slot.busy++;
    // Idle workers must not keep the process alive: ref while a job is out.
    slot.worker.ref();
    const finish = () => {
      slot.busy--;
      if (slot.busy === 0) slot.worker.unref();
    };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { label, resolve: (a) => { finish(); resolve(a); }, reject: (e) => { finish(); reject(e); } });
      slot.worker.postMessage({ id, ...job }, transfer);
    });
  }
}
