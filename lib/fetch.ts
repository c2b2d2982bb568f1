// HTTP downloads with retries, and the RPM cache keyed by sha256.
// A file enters the cache only by rename after its digest matched, so an interrupted or
// failed download leaves at most a temp file that no later run reads.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pRetry, { AbortError } from 'p-retry';
import { sha256 } from './digest.ts';

export class FetchError extends Error {
  /** The HTTP status, when the server answered. */
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'FetchError';
  }
}

export interface RetryOptions {
  /** Attempts after the first. */
  retries?: number;
  /** First backoff delay in ms; doubles each time. */
  minTimeout?: number;
  /** Per-attempt timeout in ms. */
  timeout?: number;
}

const DEFAULT_RETRY: Required<RetryOptions> = { retries: 4, minTimeout: 500, timeout: 120_000 };

/** Status codes worth another try: server errors and rate limiting. */
const transient = (status: number) => status >= 500 || status === 429 || status === 408;

/**
 * GETs `url` with retries and backoff on network errors and transient statuses; other
 * statuses fail at once. Calls `consume` with the response of a successful attempt;
 * a failure inside `consume` (a short body, say) is retried too.
 */
export async function withResponse<T>(url: string, consume: (res: Response) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const o = { ...DEFAULT_RETRY, ...opts };
  return pRetry(
    async () => {
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(o.timeout), redirect: 'follow' });
      } catch (e) {
        const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e);
        throw new FetchError(`${url}: ${cause}`);
      }
      if (!res.ok) {
        await res.body?.cancel();
        const err = new FetchError(`${url}: HTTP ${res.status} ${res.statusText}`.trim(), res.status);
        if (transient(res.status)) throw err;
        throw new AbortError(err);
      }
      try {
        return await consume(res);
      } catch (e) {
        if (e instanceof AbortError || e instanceof FetchError) throw e;
        const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e);
        throw new FetchError(`${url}: ${cause}`);
      }
    },
    { retries: o.retries, minTimeout: o.minTimeout, factor: 2, randomize: true },
  );
}

/** Reads a body into memory, refusing more than `max` bytes. */
async function readBody(res: Response, url: string, max: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new AbortError(new FetchError(`${url}: ${declared} bytes, over the ${max}-byte bound`));
  const parts: Uint8Array[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
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

/** RPMs on disk, one file per sha256. */
export class RpmCache {
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

  /** Stores bytes under their own digest: temp file, then rename. */
  async write(buf: Buffer): Promise<string> {
    const digest = sha256(buf);
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await fs.writeFile(tmp, buf);
      await fs.rename(tmp, this.pathOf(digest));
    } finally {
      await fs.rm(tmp, { force: true });
    }
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
    await this.write(buf);
    return { buf, sha256: got };
  }
}

/** An RPM named on a command line: an http(s) URL (through the cache) or a local file; errors name it. */
export async function readRpmSource(source: string, cache: RpmCache): Promise<Buffer> {
  if (/^https?:\/\//.test(source)) return (await cache.get(source)).buf;
  return fs.readFile(source).catch((e: Error) => {
    throw new Error(`${source}: ${e.message}`);
  });
}
