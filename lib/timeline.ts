// Where a run's time goes, for bench/timeline.ts: one span per step of work on one file (fetch,
// check, decode, hash, compress, write, copy) with the thread that did it, written as JSON to
// the file POLYARCH_TIMELINE names when the process exits. The bench samples each thread's CPU
// time from outside and lays the spans over it, so idle cores and what left them idle show.
// Unset (every run but that bench's), a span costs one comparison.
import { writeFileSync } from 'node:fs';

export const TIMELINE_ENV = 'POLYARCH_TIMELINE';

export interface Span {
  /** What was done: fetch, check, decode, hash, compress, write, copy, ... */
  step: string;
  /** The file (or RPM) it was done to. */
  file: string;
  /** Milliseconds since the epoch (performance.timeOrigin based: comparable across threads). */
  start: number;
  end: number;
  /** The Linux thread id that did it; the process id for the main thread, none for I/O waited on. */
  tid?: number;
}

const FILE = process.env[TIMELINE_ENV];
const spans: Span[] = [];
if (FILE) process.on('exit', () => writeFileSync(FILE, JSON.stringify({ pid: process.pid, spans })));

export const timelineOn = () => FILE !== undefined;

/** Now, on the clock spans use. */
export const clock = () => performance.timeOrigin + performance.now();

/** Records a span that ended now (or at `end`). */
export function mark(step: string, file: string, start: number, o: { end?: number; tid?: number } = {}): void {
  if (FILE) spans.push({ step, file, start, end: o.end ?? clock(), ...(o.tid !== undefined && { tid: o.tid }) });
}

/** Runs synchronous work on the main thread as a span. */
export function onMain<T>(step: string, file: string, work: () => T): T {
  if (!FILE) return work();
  const start = clock();
  try {
    return work();
  } finally {
    mark(step, file, start, { tid: process.pid });
  }
}

/** Awaits `work` as a span of waiting (I/O the main thread does not do itself). */
export async function waited<T>(step: string, file: string, work: () => Promise<T>): Promise<T> {
  if (!FILE) return work();
  const start = clock();
  try {
    return await work();
  } finally {
    mark(step, file, start);
  }
}
