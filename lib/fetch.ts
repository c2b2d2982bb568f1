// HTTP downloads with retries, and the RPM cache keyed by sha256.
// A file enters the cache only by rename after its digest matched, so an interrupted or
// failed download (or a full disk) leaves at most a temp file that no later run reads, and
// that the next write into the cache removes.
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import pRetry, { AbortError } from 'p-retry';
import { sha256 } from './digest.ts';
import { sweepTemps, writeError, writeWhole } from './out-dir.ts';
import { UserError } from './user-error.ts';

export class FetchError extends UserError {
  /**
   * `status`: the HTTP status, when the server answered. `slow`: the attempt ran out of time
   * (no data for the stall timeout, or not done within the attempt's timeout).
   */
  constructor(message: string, readonly status?: number, readonly slow?: boolean) {
    super(message);
    this.name = 'FetchError';
  }
}

/** Body bytes of one attempt so far; `done` once the body is complete. */
export interface FetchProgress {
  url: string;
  /** 1 for the first try, 2 for the first retry, … */
  attempt: number;
  received: number;
  /** The declared size (content-length), when the server sent one. */
  total?: number;
  done: boolean;
}

export interface RetryOptions {
  /** Attempts after the first. A slow attempt (stall or timeout) is retried once at most. */
  retries?: number;
  /** First backoff delay in ms; doubles each time. */
  minTimeout?: number;
  /** Per-attempt limit on the whole download in ms; default $POLYARCH_FETCH_TIMEOUT seconds, or 10 minutes. */
  timeout?: number;
  /** Longest wait for any data (the response, then each part of the body) in ms; default $POLYARCH_STALL_TIMEOUT seconds, or 30 s. */
  stallTimeout?: number;
  /** Told as body bytes arrive, so a caller can show a long download under way. */
  onProgress?: (p: FetchProgress) => void;
  /** Told of a failed attempt that is about to be retried. */
  onRetry?: (error: FetchError) => void;
  /** Stops the download, retries and backoff included (a sibling download failed: nobody waits for this one). */
  signal?: AbortSignal;
}

export const STALL_TIMEOUT_ENV = 'POLYARCH_STALL_TIMEOUT';
export const FETCH_TIMEOUT_ENV = 'POLYARCH_FETCH_TIMEOUT';
const DEFAULT_RETRY = { retries: 4, minTimeout: 500, timeout: 600_000, stallTimeout: 30_000 };
/** Timers hold 32-bit milliseconds; a day is more than any download should need. */
const MAX_SECONDS = 86_400;

/** Seconds as given on a command line or in the environment, in ms; `what` names the setting in the error. */
export function parseSeconds(value: string, what: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > MAX_SECONDS) throw new UserError(`${what} must be a number of seconds above 0 and at most ${MAX_SECONDS}, not ${JSON.stringify(value)}`);
  return Math.round(n * 1000);
}

const fromEnv = (name: string): number | undefined => {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : parseSeconds(v, name);
};

/**
 * The timeouts a download runs with: given ones first, then the environment (read here, so
 * the Pulumi program honours it too), then the defaults. Throws on a malformed variable.
 */
export function resolveTimeouts(opts: Pick<RetryOptions, 'timeout' | 'stallTimeout'> = {}): { timeout: number; stallTimeout: number } {
  return {
    timeout: opts.timeout ?? fromEnv(FETCH_TIMEOUT_ENV) ?? DEFAULT_RETRY.timeout,
    stallTimeout: opts.stallTimeout ?? fromEnv(STALL_TIMEOUT_ENV) ?? DEFAULT_RETRY.stallTimeout,
  };
}

export const formatSeconds = (ms: number) => `${Number((ms / 1000).toFixed(3))} s`;
export const formatBytes = (n: number) => (n < 1000 ? `${n} bytes` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);

/** An answer to a GET, its body read as Node streams read it. */
export interface Reply {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: AsyncIterable<Uint8Array>;
  /** Drops the body unread and frees the connection. */
  cancel(): void;
}

/** Redirects followed before giving up, as fetch does. */
const MAX_REDIRECTS = 20;

/**
 * One GET with Node's own http client. An RPM's body comes in thousands of parts, and Node
 * streams carry them at a fraction of the CPU fetch's WHATWG streams take (which also load undici
 * on first use): on two cores that CPU is taken from decoding and compressing.
 */
function get(url: string, signal: AbortSignal, hops = 0): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch (e) {
      reject(e);
      return;
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      reject(new Error(`not an http(s) URL`));
      return;
    }
    const req = (target.protocol === 'https:' ? https : http).get(target, { signal }, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status >= 300 && status < 400 && location !== undefined) {
        res.resume();
        if (hops >= MAX_REDIRECTS) reject(new Error(`more than ${MAX_REDIRECTS} redirects`));
        else get(new URL(location, target).href, signal, hops + 1).then(resolve, reject);
        return;
      }
      resolve({
        ok: status >= 200 && status < 300,
        status,
        statusText: res.statusMessage ?? '',
        headers: { get: (name) => (res.headers[name.toLowerCase()] as string | undefined) ?? null },
        body: res,
        cancel: () => res.destroy(),
      });
    });
    req.on('error', reject);
  });
}

/** Status codes worth another try: server errors and rate limiting. */
const transient = (status: number) => status >= 500 || status === 429 || status === 408;

const causeOf = (e: unknown) => (e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e));

/**
 * GETs `url` with retries and backoff on network errors and transient statuses; other
 * statuses fail at once. Calls `consume` with the response of a successful attempt;
 * a failure inside `consume` (a short body, say) is retried too. An attempt is cut when no
 * data arrives for the stall timeout, or when it runs past its timeout; a steady trickle is
 * never cut by the first.
 */
export async function withResponse<T>(url: string, consume: (res: Reply) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { timeout, stallTimeout } = resolveTimeouts(opts);
  let slowAttempts = 0;
  return pRetry(
    async (attempt) => {
      const ac = new AbortController();
      let why: 'stall' | 'timeout' | undefined;
      let answered = false;
      let received = 0;
      let total: number | undefined;
      const deadline = setTimeout(() => {
        why ??= 'timeout';
        ac.abort();
      }, timeout);
      const stall = setTimeout(() => {
        why ??= 'stall';
        ac.abort();
      }, stallTimeout);
      const stop = () => ac.abort();
      opts.signal?.addEventListener('abort', stop, { once: true });
      // Whatever went wrong, a cut attempt is reported as what cut it.
      const failure = (e: unknown) => {
        if (why === 'stall') {
          const where = !answered ? 'no response' : `stalled after ${formatBytes(received)}`;
          return new FetchError(`${url}: no data for ${formatSeconds(stallTimeout)} (${where}); set --stall-timeout or ${STALL_TIMEOUT_ENV} to wait longer`, undefined, true);
        }
        if (why === 'timeout') {
          const got = total === undefined ? formatBytes(received) : `${formatBytes(received)} of ${formatBytes(total)}`;
          return new FetchError(`${url}: not done after ${formatSeconds(timeout)} (${got} received); set --fetch-timeout or ${FETCH_TIMEOUT_ENV} to wait longer`, undefined, true);
        }
        return e instanceof FetchError ? e : new FetchError(`${url}: ${causeOf(e)}`);
      };
      try {
        let res: Reply;
        try {
          res = await get(url, ac.signal);
        } catch (e) {
          throw failure(e);
        }
        answered = true;
        stall.refresh();
        if (!res.ok) {
          res.cancel();
          const err = new FetchError(`${url}: HTTP ${res.status} ${res.statusText}`.trim(), res.status);
          if (transient(res.status)) throw err;
          throw new AbortError(err);
        }
        const declared = Number(res.headers.get('content-length') ?? NaN);
        if (Number.isSafeInteger(declared)) total = declared;
        // The body as `consume` reads it, counted: each part restarts the stall timer.
        const body = res.body;
        async function* parts(): AsyncGenerator<Uint8Array> {
          for await (const chunk of body) {
            received += chunk.byteLength;
            stall.refresh();
            opts.onProgress?.({ url, attempt, received, total, done: false });
            yield chunk;
          }
          opts.onProgress?.({ url, attempt, received, total, done: true });
        }
        try {
          return await consume({ ...res, body: parts() });
        } catch (e) {
          if (e instanceof AbortError) throw e;
          throw failure(e);
        }
      } finally {
        clearTimeout(deadline);
        clearTimeout(stall);
        opts.signal?.removeEventListener('abort', stop);
        // Frees the connection when `consume` stopped early; a finished body is not affected.
        ac.abort();
      }
    },
    {
      retries: opts.retries ?? DEFAULT_RETRY.retries,
      minTimeout: opts.minTimeout ?? DEFAULT_RETRY.minTimeout,
      factor: 2,
      randomize: true,
      signal: opts.signal,
      // A slow attempt costs the whole timeout: one more try for a passing hiccup, not four.
      shouldRetry: ({ error }) => {
        if (opts.signal?.aborted) return false;
        if (error instanceof FetchError && error.slow && ++slowAttempts > 1) return false;
        if (error instanceof FetchError) opts.onRetry?.(error);
        return true;
      },
    },
  );
}

/**
 * A `fetch` for clients that bring their own retries (Octokit, with plugin-retry): one
 * attempt, bounded like withResponse's. The body is read here, under the stall timer, and handed
 * back whole: a client that swallows body errors (Octokit's JSON parsing does) can then never
 * take a body cut short for a complete one. An upload is bounded the same way: the stall timer
 * runs while it is sent, restarted by each part the connection takes, and then while the answer
 * is awaited, so a server that takes the bytes and never answers fails like one that never sends.
 * Timers are unref'd: they never keep a finished process alive.
 */
export function timedFetch(opts: Pick<RetryOptions, 'timeout' | 'stallTimeout'> = {}): typeof fetch {
  return async (input, init) => {
    const { timeout, stallTimeout } = resolveTimeouts(opts);
    const url = input instanceof Request ? input.url : String(input);
    const what = `${init?.method ?? 'GET'} ${url}`;
    const ac = new AbortController();
    let cut: Error | undefined;
    const cutWith = (message: string) => () => {
      cut ??= new FetchError(`${what}: ${message}`, undefined, true);
      ac.abort(cut);
    };
    let received = 0;
    let answered = false;
    const upload = bodyBytes(init?.body);
    let sent = 0;
    const deadline = setTimeout(cutWith(`not done after ${formatSeconds(timeout)}; set --fetch-timeout or ${FETCH_TIMEOUT_ENV} to wait longer`), timeout).unref();
    const waited = () => {
      if (answered) return `stalled after ${formatBytes(received)}`;
      if (!upload || upload.byteLength <= UPLOAD_PART) return 'no response';
      return sent < upload.byteLength ? `upload stalled after ${formatBytes(sent)} of ${formatBytes(upload.byteLength)}` : `no response to the ${formatBytes(upload.byteLength)} sent`;
    };
    const stallMessage = () => `no data for ${formatSeconds(stallTimeout)} (${waited()}); set --stall-timeout or ${STALL_TIMEOUT_ENV} to wait longer`;
    let stall: NodeJS.Timeout | undefined;
    let over = false;
    const arm = () => {
      if (over) return;
      if (stall) stall.refresh();
      else stall = setTimeout(() => cutWith(stallMessage())(), stallTimeout).unref();
    };
    arm();
    // A large upload goes in parts, each one the connection takes restarting the stall timer: a
    // slow link is never taken for a dead one. A small body goes as it is (sent at once, and sent
    // again should a redirect ask for it).
    let request = init;
    if (upload && upload.byteLength > UPLOAD_PART) {
      const headers = new Headers(init?.headers);
      if (!headers.has('content-length')) headers.set('content-length', String(upload.byteLength));
      const parts = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            if (sent > 0) arm();
            const part = upload.subarray(sent, sent + UPLOAD_PART);
            sent += part.byteLength;
            controller.enqueue(part);
            if (sent === upload.byteLength) controller.close();
          },
        },
        // No part is read ahead of the connection's demand.
        { highWaterMark: 0 },
      );
      request = { ...init, headers, body: parts, duplex: 'half' } as RequestInit;
    }
    const outer = init?.signal;
    const onOuter = () => ac.abort(outer?.reason);
    outer?.addEventListener('abort', onOuter, { once: true });
    try {
      const res = await fetch(input, { ...request, signal: ac.signal });
      answered = true;
      arm();
      const parts: Uint8Array[] = [];
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          received += chunk.byteLength;
          arm();
          parts.push(chunk);
        }
      }
      // 204, 205 and 304 may carry no body, not even an empty one.
      const body = [204, 205, 304].includes(res.status) ? null : Buffer.concat(parts, received);
      const whole = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
      Object.defineProperty(whole, 'url', { value: res.url });
      return whole;
    } catch (e) {
      throw cut ?? e;
    } finally {
      over = true;
      clearTimeout(deadline);
      clearTimeout(stall);
      outer?.removeEventListener('abort', onOuter);
    }
  };
}

/** Uploads larger than this are sent in parts of this size (timedFetch). */
const UPLOAD_PART = 64 * 1024;

/** A request body as bytes, when it is bytes or text (what Octokit sends); streams and forms are not. */
function bodyBytes(body: RequestInit['body']): Uint8Array | undefined {
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

/** Reads a body into memory, refusing more than `max` bytes. */
async function readBody(res: Reply, url: string, max: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new AbortError(new FetchError(`${url}: ${declared} bytes, over the ${max}-byte bound`));
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += chunk.length;
    if (total > max) throw new AbortError(new FetchError(`${url}: body over the ${max}-byte bound`));
    parts.push(chunk);
  }
  if (!Number.isNaN(declared) && total !== declared) throw new FetchError(`${url}: body ended after ${total} of ${declared} bytes`);
  return Buffer.concat(parts, total);
}

/** A text resource (a koji directory index), bounded in size. */
export function fetchText(url: string, opts: RetryOptions = {}, max = 4 << 20): Promise<string> {
  return withResponse(url, async (res) => (await readBody(res, url, max)).toString('utf8'), opts);
}


export interface Pin {
  sha256: string;
  size?: number;
}

/** Where RPMs are cached unless told otherwise (relative to the working folder); extracted emulators, tarballs and contexts live below it. */
export const DEFAULT_CACHE_DIR = '.cache/rpms';

/** RPMs on disk, one file per sha256. */
export class RpmCache {
  private swept = false;

  constructor(readonly dir: string) {}

  pathOf(digest: string): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`not a sha256 digest: ${JSON.stringify(digest)}`);
    return path.join(this.dir, `${digest}.rpm`);
  }

  /** The cached bytes, re-hashed on read; a damaged entry is dropped and reported as absent. */
  async read(digest: string): Promise<Buffer | undefined> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.pathOf(digest));
    } catch {
      return undefined;
    }
    if (sha256(buf) === digest) return buf;
    await fs.rm(this.pathOf(digest), { force: true });
    return undefined;
  }

  /**
   * Stores bytes under their own digest: temp file, then rename, so two runs filling one cache
   * at once each leave a whole entry. Temp files of killed runs are swept on the first write.
   * `known` is the digest when the caller has just computed it over these very bytes.
   */
  async write(buf: Buffer, known?: string): Promise<string> {
    const digest = known ?? sha256(buf);
    await fs.mkdir(this.dir, { recursive: true }).catch((e: unknown) => {
      throw writeError(e, this.dir, `${digest}.rpm`);
    });
    if (!this.swept) {
      this.swept = true;
      await sweepTemps(this.dir);
    }
    await writeWhole(this.pathOf(digest), buf);
    return digest;
  }

  /**
   * The bytes of `url`. With a pin, the cache answers when it can, and a download whose
   * digest or size differs is an error naming the url and both digests. Without a pin
   * (writing a lockfile) the download is cached under the digest it turned out to have.
   */
  async get(url: string, pin?: Pin, opts: RetryOptions & { maxBytes?: number } = {}): Promise<{ buf: Buffer; sha256: string }> {
    if (pin) {
      const hit = await this.read(pin.sha256);
      if (hit) return { buf: hit, sha256: pin.sha256 };
    }
    const max = pin?.size ?? opts.maxBytes ?? 1 << 30;
    const buf = await withResponse(url, (res) => readBody(res, url, max), opts);
    const got = sha256(buf);
    if (pin && got !== pin.sha256) throw new FetchError(`${url}: sha256 mismatch: expected ${pin.sha256}, got ${got}`);
    if (pin?.size !== undefined && buf.length !== pin.size) throw new FetchError(`${url}: size mismatch: expected ${pin.size}, got ${buf.length}`);
    await this.write(buf, got);
    return { buf, sha256: got };
  }
}

/** An RPM named on a command line: an http(s) URL (through the cache) or a local file; errors name it. */
export async function readRpmSource(source: string, cache: RpmCache, opts: RetryOptions = {}): Promise<Buffer> {
  if (/^https?:\/\//.test(source)) return (await cache.get(source, undefined, opts)).buf;
  return fs.readFile(source).catch((e: Error) => {
    throw new Error(`${source}: ${e.message}`);
  });
}
