// For the worker bodies (plain JavaScript): when a job ran and on which thread, sent back with
// its answer so lib/worker-pool.ts can put it in a timeline (lib/timeline.ts).
import { readlinkSync } from 'node:fs';

/** Milliseconds since the epoch, on the clock lib/timeline.ts uses in every thread. */
export const clock = () => performance.timeOrigin + performance.now();

/** This thread's Linux id (/proc/thread-self is task/<tid>); undefined elsewhere. */
export const tid = (() => {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
})();
