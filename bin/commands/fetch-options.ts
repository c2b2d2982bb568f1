// The download flags every fetching command takes (--stall-timeout, --fetch-timeout), and
// what a download shows on stderr while it runs: progress once it takes a while, retries.
import type { Command } from 'commander';
import { FETCH_TIMEOUT_ENV, formatBytes, parseSeconds, resolveTimeouts, STALL_TIMEOUT_ENV, type FetchProgress, type RetryOptions } from '../../lib/fetch.ts';

export interface FetchFlags {
  stallTimeout?: string;
  fetchTimeout?: string;
}

export function addFetchOptions(cmd: Command): Command {
  return cmd
    .option('--stall-timeout <seconds>', `give up on a download attempt after this long without data (default: $${STALL_TIMEOUT_ENV}, or 30)`)
    .option('--fetch-timeout <seconds>', `give up on a download attempt after this long in all (default: $${FETCH_TIMEOUT_ENV}, or 600)`);
}

/** A download is reported once it has run this long, then at this interval, and when it ends. */
const FIRST_REPORT_MS = 1000;
const REPORT_EVERY_MS = 5000;

const say = (line: string) => process.stderr.write(`polyarch: ${line}\n`);

/** Progress lines for long downloads; quick ones print nothing. */
function progressPrinter(): (p: FetchProgress) => void {
  const runs = new Map<string, { attempt: number; start: number; last?: number }>();
  return (p) => {
    const now = performance.now();
    let r = runs.get(p.url);
    if (r?.attempt !== p.attempt) runs.set(p.url, (r = { attempt: p.attempt, start: now }));
    if (p.done) {
      if (r.last !== undefined) say(`${p.url}: ${formatBytes(p.received)} in ${((now - r.start) / 1000).toFixed(1)} s`);
      runs.delete(p.url);
    } else if (now - r.start >= FIRST_REPORT_MS && (r.last === undefined || now - r.last >= REPORT_EVERY_MS)) {
      r.last = now;
      const of = p.total ? ` of ${formatBytes(p.total)} (${Math.floor((100 * p.received) / p.total)}%)` : '';
      say(`${p.url}: ${formatBytes(p.received)}${of}`);
    }
  };
}

/**
 * The download options of a command: flags over the environment over the defaults, all
 * checked now, so a malformed value fails before any work starts.
 */
export function fetchOptions(o: FetchFlags): RetryOptions {
  const timeouts = resolveTimeouts({
    ...(o.stallTimeout !== undefined && { stallTimeout: parseSeconds(o.stallTimeout, '--stall-timeout') }),
    ...(o.fetchTimeout !== undefined && { timeout: parseSeconds(o.fetchTimeout, '--fetch-timeout') }),
  });
  return { ...timeouts, onProgress: progressPrinter(), onRetry: (e) => say(`${e.message}; retrying`) };
}
