// Where the wall time of one cold `polyarch assets` goes, with every core in view: the CLI runs
// as `npx polyarch` runs it (bin/polyarch.js, the compiled build) on the real-size fixture (test/fixtures/rpms.ts,
// layout 'fedora') from a loopback koji, with POLYARCH_TIMELINE set, so it records a span per
// step and file (lib/timeline.ts); meanwhile this script samples each of its threads' CPU time
// (/proc/<pid>/task/<tid>/schedstat) every few milliseconds. It prints, over the run:
//   - a chart, one column per slice of time: cores busy, then each kind of thread, then how many
//     spans of each step were under way;
//   - CPU time by thread kind, and the core time left idle;
//   - every stretch where less than all cores were busy for long, and what was under way;
//   - per step: how many spans, their summed time and when the step ran.
// Cache state: cold (empty --cache), or warm with --warm (a first run fills the cache, untimed).
//   node --import tsx bench/timeline.ts [--hosts x86_64,...] [--warm] [--json FILE]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { HostArch } from '../lib/cpus.ts';
import { createLock, writeLock } from '../lib/lock.ts';
import { TIMELINE_ENV, type Span } from '../lib/timeline.ts';
import { compiledCliUrl } from '../scripts/compiled.mjs';
import { kojiTree, startKoji } from '../test/fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../test/fixtures/rpms.ts';
import { scratch } from './tmp.ts';

const { values: args } = parseArgs({ options: { hosts: { type: 'string', default: 'x86_64' }, warm: { type: 'boolean', default: false }, json: { type: 'string' } } });
const hosts = args.hosts.split(',') as HostArch[];
const REPO = path.dirname(import.meta.dirname);
if (!compiledCliUrl(REPO)) throw new Error('the compiled CLI is missing or stale; run npm run build first');
const CORES = os.availableParallelism();
const SAMPLE_MS = 4;
const COLUMNS = 100;

let root: string | undefined;
for (const h of hosts) root = kojiTree(buildFixtureRpms({ host: h, layout: 'fedora', compression: 'zstd' }), SPLIT_BUILD, h, root ?? scratch('polyarch-timeline-koji-'));
const koji = await startKoji(root!);
const lock = await createLock({ ...SPLIT_BUILD, hosts, koji: koji.url, cacheDir: scratch() });
const lockFile = path.join(scratch(), 'qemu.lock.json');
await writeLock(lockFile, lock);
const cache = scratch();
const cli = path.join(REPO, 'bin/polyarch.js');
const cliArgs = (out: string) => ['assets', '--lock', lockFile, '--hosts', hosts.join(','), '--cache', cache, '--out', out];
const clock = () => performance.timeOrigin + performance.now();

/** Runs the CLI to the end; with `trace`, samples its threads' CPU time and collects its spans. */
/** Each thread's name (its comm), as first seen. */
const names = new Map<number, string>();
async function runCli(trace?: string): Promise<{ start: number; end: number; pid: number; samples: { t: number; cpu: Map<number, number> }[] }> {
  const samples: { t: number; cpu: Map<number, number> }[] = [];
  const start = clock();
  const child = spawn(cli, cliArgs(path.join(scratch(), 'out')), { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...(trace && { [TIMELINE_ENV]: trace }) } });
  const pid = child.pid!;
  const sample = () => {
    const cpu = new Map<number, number>();
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      return; // the process has ended
    }
    for (const tid of tids) {
      try {
        // The first field: nanoseconds this thread has run on a CPU.
        cpu.set(Number(tid), Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
        if (!names.has(Number(tid))) names.set(Number(tid), fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim());
      } catch {
        // the thread ended between the listing and the read
      }
    }
    samples.push({ t: clock(), cpu });
  };
  const timer = trace ? setInterval(sample, SAMPLE_MS) : undefined;
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`polyarch assets exited with ${code}`);
  return { start, end: clock(), pid, samples };
}

if (args.warm) await runCli();
const traceFile = path.join(scratch(), 'timeline.json');
const { start, end, pid, samples } = await runCli(traceFile);
await koji.close();
const { spans } = JSON.parse(fs.readFileSync(traceFile, 'utf8')) as { spans: Span[] };
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ start, end, pid, samples: samples.map((s) => ({ t: s.t, cpu: Object.fromEntries(s.cpu) })), spans }));

// Threads by kind: the main thread, workers named by the spans they ran, the rest (libuv's
// pool doing file I/O, V8's helpers, the kernel on the process's behalf).
const kindOf = new Map<number, string>([[pid, 'main']]);
for (const s of spans) if (s.tid !== undefined && s.tid !== pid) kindOf.set(s.tid, `${s.step} workers`);
const kinds = ['main', ...[...new Set(kindOf.values())].filter((k) => k !== 'main').sort(), 'other threads'];
const kind = (tid: number) => kindOf.get(tid) ?? 'other threads';

const wall = end - start;
const slice = wall / COLUMNS;
const busy = kinds.map(() => new Float64Array(COLUMNS));
// CPU each thread used between two samples, spread over the slices that interval covers.
for (let i = 1; i < samples.length; i++) {
  const a = samples[i - 1]!;
  const b = samples[i]!;
  for (const [tid, ms] of b.cpu) {
    const used = ms - (a.cpu.get(tid) ?? 0);
    if (used <= 0) continue;
    const k = kinds.indexOf(kind(tid));
    for (let t = a.t; t < b.t; ) {
      const col = Math.min(COLUMNS - 1, Math.max(0, Math.floor((t - start) / slice)));
      const next = Math.min(b.t, start + (col + 1) * slice);
      busy[k]![col]! += (used * (Math.max(next, t + 1e-9) - t)) / (b.t - a.t);
      t = next > t ? next : b.t;
    }
  }
}
const total = new Float64Array(COLUMNS).map((_, c) => busy.reduce((s, k) => s + k[c]!, 0));
const cpuMs = total.reduce((a, b) => a + b, 0);

// Chart: a digit per slice, tenths of the slice's time busy; '#' busy all of it.
const digit = (x: number) => (x <= 0.02 ? ' ' : x >= 0.999 ? '#' : String(Math.min(9, Math.floor(x * 10))));
const lane = (label: string, values: ArrayLike<number>, scale: number) => `${label.padEnd(22)}|${Array.from(values, (v) => digit(v / scale)).join('')}|`;
const steps = [...new Set(spans.map((s) => s.step))];
const under = (step: string) =>
  Float64Array.from({ length: COLUMNS }, (_, c) => {
    const [a, b] = [start + c * slice, start + (c + 1) * slice];
    return spans.filter((s) => s.step === step).reduce((n, s) => n + Math.max(0, Math.min(b, s.end) - Math.max(a, s.start)), 0) / slice;
  });
const underWay = new Map(steps.map((s) => [s, under(s)]));

console.log(`polyarch assets, ${args.warm ? 'warm' : 'cold'}, ${hosts.join(',')}: ${(wall / 1000).toFixed(2)} s wall, ${(cpuMs / 1000).toFixed(2)} s CPU on ${CORES} cores (${((100 * cpuMs) / (wall * CORES)).toFixed(0)}% busy); ${(slice).toFixed(0)} ms a column, 0-9 tenths busy, # all`);
console.log(lane(`cores (of ${CORES})`, total, slice * CORES));
for (const [i, k] of kinds.entries()) {
  const threads = k === 'main' ? 1 : Math.max(1, new Set([...kindOf].filter(([, v]) => v === k).map(([t]) => t)).size);
  console.log(lane(`${k}${k === 'main' || k === 'other threads' ? '' : ` (${threads})`}`, busy[i]!, slice * (k === 'other threads' ? CORES : threads)));
}
for (const s of steps) console.log(`${lane(`  ${s} under way`, underWay.get(s)!.map((x) => Math.min(x, 1)), 1)} up to ${Math.max(...underWay.get(s)!).toFixed(1)} at once`);

console.log('\nCPU by thread kind:');
for (const [i, k] of kinds.entries()) console.log(`  ${k.padEnd(20)} ${busy[i]!.reduce((a, b) => a + b, 0).toFixed(0).padStart(6)} ms`);
// Each thread's CPU time as last sampled (a thread may end before the process does).
const lastSeen = new Map<number, number>();
for (const s of samples) for (const [tid, ms] of s.cpu) lastSeen.set(tid, ms);
const others = new Map<string, number>();
for (const [tid, ms] of lastSeen) if (kind(tid) === 'other threads') others.set(names.get(tid) ?? '?', (others.get(names.get(tid) ?? '?') ?? 0) + ms);
console.log(`    (by name: ${[...others].sort((a, b) => b[1] - a[1]).map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`).join(', ')})`);
console.log(`  idle core time       ${(wall * CORES - cpuMs).toFixed(0).padStart(6)} ms (${((100 * (wall * CORES - cpuMs)) / (wall * CORES)).toFixed(0)}% of ${CORES} x ${wall.toFixed(0)} ms)`);

// Stretches of at least three slices with a core or more idle, and the steps under way in them.
console.log('\nWhere cores stood idle (at least one core for 3 slices or more):');
for (let c = 0; c < COLUMNS; ) {
  if (total[c]! > slice * (CORES - 1)) {
    c++;
    continue;
  }
  let e = c;
  while (e < COLUMNS && total[e]! <= slice * (CORES - 1)) e++;
  if (e - c >= 3) {
    const idle = Array.from({ length: e - c }, (_, j) => slice * CORES - total[c + j]!).reduce((a, b) => a + b, 0);
    const active = steps.filter((s) => underWay.get(s)!.slice(c, e).some((x) => x > 0)).join(', ') || 'nothing recorded';
    console.log(`  ${(c * slice).toFixed(0).padStart(5)}-${(e * slice).toFixed(0).padEnd(5)} ms: ${idle.toFixed(0)} ms of core time idle; under way: ${active}`);
  }
  c = e;
}

console.log('\nSteps (summed span time; CPU steps ran on the thread named, the others are waits):');
for (const s of steps) {
  const mine = spans.filter((x) => x.step === s);
  const first = Math.min(...mine.map((x) => x.start)) - start;
  const last = Math.max(...mine.map((x) => x.end)) - start;
  const threads = new Set(mine.map((x) => (x.tid === undefined ? 'wait' : kind(x.tid))));
  console.log(`  ${s.padEnd(10)} ${String(mine.length).padStart(4)} spans ${mine.reduce((n, x) => n + x.end - x.start, 0).toFixed(0).padStart(6)} ms   from ${first.toFixed(0)} to ${last.toFixed(0)} ms   (${[...threads].join(', ')})`);
}
