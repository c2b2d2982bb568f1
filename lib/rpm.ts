// Reads an RPM package: lead, signature header, main header, payload.
// Hand-written because no maintained npm library reads RPM v4 headers with their digests;
// it is kept small, bounds-checks every read and is fed hostile and truncated packages in test/unit/extract.test.ts.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { decodeZstdInWorker, zstdBackend } from './zstd-pool.ts';
import { UserError } from './user-error.ts';

/** One line, naming the package, for anything wrong with an RPM. */
export class RpmError extends UserError {
  constructor(label: string, problem: string) {
    super(`${label}: ${problem}`);
    this.name = 'RpmError';
  }
}

/** Sane bounds: far above any real qemu-user-static RPM, far below what would exhaust memory. */
export const LIMITS = {
  /** Whole RPM file. */
  rpmBytes: 1 << 30,
  /** Decompressed cpio payload. */
  payloadBytes: 1536 * (1 << 20),
  /** rpm's own header limits (HEADER_TAGS_MAX, HEADER_DATA_MAX). */
  headerEntries: 0xffff,
  headerDataBytes: 0x0fffffff,
} as const;

const LEAD_SIZE = 96;
const LEAD_MAGIC = 0xedabeedb;
const HEADER_MAGIC = 0x8eade801;

// Tag numbers from rpm's rpmtag.h; signature tags live in their own numbering.
const SIG = { size: 1000, md5: 1004, payloadSize: 1007, sha1: 269, sha256: 273, longSize: 270, longArchiveSize: 271 } as const;
const TAG = {
  name: 1000, version: 1001, release: 1002, epoch: 1003, buildTime: 1006, license: 1014, arch: 1022,
  fileSizes: 1028, fileModes: 1030, fileDigests: 1035, archiveSize: 1046,
  dirIndexes: 1116, baseNames: 1117, dirNames: 1118,
  payloadFormat: 1124, payloadCompressor: 1125,
  longFileSizes: 5008, fileDigestAlgo: 5011, payloadDigest: 5092, payloadDigestAlgo: 5093,
} as const;

// rpm's PGPHASHALGO values, mapped to node's hash names.
const HASH_ALGOS: Record<number, string> = { 1: 'md5', 2: 'sha1', 8: 'sha256', 9: 'sha384', 10: 'sha512' };

type TagValue = string | string[] | number[] | bigint[] | Buffer;

/** A parsed header: tag -> value, plus the exact bytes it was read from (for digests). */
export interface Header {
  tags: Map<number, TagValue>;
  bytes: Buffer;
}

export interface RpmFile {
  /** Absolute path inside the package, e.g. /usr/bin/qemu-aarch64-static. */
  path: string;
  mode: number;
  size: number;
  /** Hex digest from the header, empty for directories and ghosts. */
  digest: string;
}

export interface Rpm {
  name: string;
  version: string;
  release: string;
  /** The Epoch tag, only when the package has one (rpm treats none as 0, but prints none). */
  epoch?: number;
  arch: string;
  /** The License tag as written by the packager: an SPDX expression in Fedora since 2023, free text before. */
  license?: string;
  /** The BuildTime tag: seconds since 1970 when the package was built. */
  buildTime?: number;
  compressor: 'zstd' | 'xz' | 'gzip';
  /** Uncompressed payload size as declared by the package, when it declares one. */
  payloadSize?: number;
  files: RpmFile[];
  /** Hash algorithm of RpmFile.digest (node name). */
  fileDigestAlgo: string;
  /** The compressed payload. */
  payload: Buffer;
}

function parseHeader(buf: Buffer, start: number, label: string, which: string): Header {
  const fail = (p: string) => new RpmError(label, `${which} header: ${p}`);
  if (start + 16 > buf.length) throw fail('truncated');
  if (buf.readUInt32BE(start) !== HEADER_MAGIC) throw fail('bad magic');
  const count = buf.readUInt32BE(start + 8);
  const dataLen = buf.readUInt32BE(start + 12);
  if (count === 0 || count > LIMITS.headerEntries) throw fail(`implausible entry count ${count}`);
  if (dataLen > LIMITS.headerDataBytes) throw fail(`implausible data size ${dataLen}`);
  const indexStart = start + 16;
  const dataStart = indexStart + count * 16;
  const end = dataStart + dataLen;
  if (end > buf.length) throw fail('truncated');
  const data = buf.subarray(dataStart, end);
  const tags = new Map<number, TagValue>();

  for (let i = 0; i < count; i++) {
    const at = indexStart + i * 16;
    const tag = buf.readUInt32BE(at);
    const type = buf.readUInt32BE(at + 4);
    const offset = buf.readUInt32BE(at + 8);
    const n = buf.readUInt32BE(at + 12);
    const bad = (p: string) => fail(`tag ${tag}: ${p}`);
    if (offset > dataLen) throw bad('offset past end of data');
    if (n === 0 || n > dataLen) throw bad(`implausible count ${n}`);
    const fixed = (width: number): Buffer => {
      if (offset + n * width > dataLen) throw bad('value past end of data');
      return data.subarray(offset, offset + n * width);
    };
    const strings = (max: number): string[] => {
      const out: string[] = [];
      let p = offset;
      for (let k = 0; k < n && k < max; k++) {
        const nul = data.indexOf(0, p);
        if (nul < 0) throw bad('unterminated string');
        out.push(data.toString('utf8', p, nul));
        p = nul + 1;
      }
      return out;
    };
    switch (type) {
      case 1: case 2: case 7: tags.set(tag, fixed(1)); break; // CHAR, INT8, BIN
      case 3: { const b = fixed(2); tags.set(tag, Array.from({ length: n }, (_, k) => b.readUInt16BE(k * 2))); break; }
      case 4: { const b = fixed(4); tags.set(tag, Array.from({ length: n }, (_, k) => b.readUInt32BE(k * 4))); break; }
      case 5: { const b = fixed(8); tags.set(tag, Array.from({ length: n }, (_, k) => b.readBigUInt64BE(k * 8))); break; }
      case 6: tags.set(tag, strings(1)[0] ?? ''); break; // STRING
      case 8: case 9: tags.set(tag, strings(n)); break; // STRING_ARRAY, I18NSTRING
      case 0: break;
      default: throw bad(`unknown type ${type}`);
    }
  }
  return { tags, bytes: buf.subarray(start, end) };
}

function str(h: Header, tag: number): string | undefined {
  const v = h.tags.get(tag);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}
function strs(h: Header, tag: number): string[] {
  const v = h.tags.get(tag);
  return Array.isArray(v) && (v.length === 0 || typeof v[0] === 'string') ? (v as string[]) : [];
}
function num(h: Header, tag: number): number | undefined {
  const v = h.tags.get(tag);
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const x = v[0];
  return typeof x === 'bigint' ? Number(x) : typeof x === 'number' ? x : undefined;
}
function nums(h: Header, tag: number): number[] {
  const v = h.tags.get(tag);
  if (!Array.isArray(v)) return [];
  return v.map((x) => (typeof x === 'bigint' ? Number(x) : typeof x === 'number' ? x : NaN));
}

const hex = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');

/**
 * Parses an RPM and checks everything that can be checked without a signing key:
 * lead and header magic, every bound, the main header's own digest, the payload digest
 * and the declared package size. Throws RpmError naming `label`.
 */
export function readRpm(buf: Buffer, label: string): Rpm {
  if (buf.length > LIMITS.rpmBytes) throw new RpmError(label, `larger than ${LIMITS.rpmBytes} bytes`);
  if (buf.length < LEAD_SIZE) throw new RpmError(label, 'truncated lead (not an RPM?)');
  if (buf.readUInt32BE(0) !== LEAD_MAGIC) throw new RpmError(label, 'bad lead magic (not an RPM)');
  if (buf[4] !== 3) throw new RpmError(label, `unsupported RPM major version ${buf[4]}`);

  const sig = parseHeader(buf, LEAD_SIZE, label, 'signature');
  const mainStart = LEAD_SIZE + sig.bytes.length + ((8 - (sig.bytes.length % 8)) % 8);
  const main = parseHeader(buf, mainStart, label, 'main');
  const payloadStart = mainStart + main.bytes.length;
  const payload = buf.subarray(payloadStart);

  // The header's own digest, as rpm checks it: SHA256 when present, else SHA1.
  const want256 = str(sig, SIG.sha256);
  const want1 = str(sig, SIG.sha1);
  if (want256 !== undefined) {
    const got = hex('sha256', main.bytes);
    if (got !== want256) throw new RpmError(label, `header sha256 mismatch: expected ${want256}, got ${got}`);
  } else if (want1 !== undefined) {
    const got = hex('sha1', main.bytes);
    if (got !== want1) throw new RpmError(label, `header sha1 mismatch: expected ${want1}, got ${got}`);
  } else {
    throw new RpmError(label, 'signature header carries no header digest');
  }

  const declaredSize = num(sig, SIG.longSize) ?? num(sig, SIG.size);
  if (declaredSize !== undefined && declaredSize !== main.bytes.length + payload.length) {
    throw new RpmError(label, `truncated or padded: header+payload is ${main.bytes.length + payload.length} bytes, package declares ${declaredSize}`);
  }

  // Payload digest (rpm >= 4.14) over the compressed payload; older packages: MD5 over header+payload.
  const payloadDigest = str(main, TAG.payloadDigest);
  const md5 = sig.tags.get(SIG.md5);
  if (payloadDigest !== undefined) {
    const algo = HASH_ALGOS[num(main, TAG.payloadDigestAlgo) ?? 8];
    if (!algo) throw new RpmError(label, `unknown payload digest algorithm ${num(main, TAG.payloadDigestAlgo)}`);
    const got = hex(algo, payload);
    if (got !== payloadDigest) throw new RpmError(label, `payload ${algo} mismatch: expected ${payloadDigest}, got ${got}`);
  } else if (Buffer.isBuffer(md5)) {
    const got = createHash('md5').update(main.bytes).update(payload).digest('hex');
    if (got !== md5.toString('hex')) throw new RpmError(label, `header+payload md5 mismatch: expected ${md5.toString('hex')}, got ${got}`);
  } else {
    throw new RpmError(label, 'carries no payload digest');
  }

  const need = (tag: number, what: string): string => {
    const v = str(main, tag);
    if (v === undefined || v === '') throw new RpmError(label, `main header lacks ${what}`);
    return v;
  };
  const format = str(main, TAG.payloadFormat) ?? 'cpio';
  if (format !== 'cpio') throw new RpmError(label, `unsupported payload format "${format}"`);
  const compressor = str(main, TAG.payloadCompressor) ?? 'gzip';
  if (compressor !== 'zstd' && compressor !== 'xz' && compressor !== 'gzip') {
    throw new RpmError(label, `unsupported payload compressor "${compressor}" (zstd, xz, gzip)`);
  }

  const baseNames = strs(main, TAG.baseNames);
  const dirNames = strs(main, TAG.dirNames);
  const dirIndexes = nums(main, TAG.dirIndexes);
  const modes = nums(main, TAG.fileModes);
  const sizes = main.tags.has(TAG.longFileSizes) ? nums(main, TAG.longFileSizes) : nums(main, TAG.fileSizes);
  const digests = strs(main, TAG.fileDigests);
  if ([dirIndexes, modes, sizes].some((a) => a.length !== baseNames.length) || (digests.length > 0 && digests.length !== baseNames.length)) {
    throw new RpmError(label, 'main header file lists disagree in length');
  }
  const files = baseNames.map((base, i): RpmFile => {
    const dir = dirNames[dirIndexes[i] ?? -1];
    if (dir === undefined) throw new RpmError(label, `file ${base}: directory index out of range`);
    return { path: dir + base, mode: modes[i] ?? 0, size: sizes[i] ?? 0, digest: digests[i] ?? '' };
  });
  const fileDigestAlgo = HASH_ALGOS[num(main, TAG.fileDigestAlgo) ?? 1];
  if (!fileDigestAlgo) throw new RpmError(label, `unknown file digest algorithm ${num(main, TAG.fileDigestAlgo)}`);
  // Facts the SBOM reports. rpm stores Epoch and BuildTime as INT32 and License as a string;
  // a value of another type is treated as absent rather than guessed at.
  const epoch = num(main, TAG.epoch);
  const buildTime = num(main, TAG.buildTime);
  const license = str(main, TAG.license);

  return {
    name: need(TAG.name, 'a name'),
    version: need(TAG.version, 'a version'),
    release: need(TAG.release, 'a release'),
    ...(epoch !== undefined && { epoch }),
    arch: need(TAG.arch, 'an arch'),
    ...(license !== undefined && { license }),
    ...(buildTime !== undefined && { buildTime }),
    compressor,
    payloadSize: num(sig, SIG.longArchiveSize) ?? num(sig, SIG.payloadSize) ?? num(main, TAG.archiveSize),
    files,
    fileDigestAlgo,
    payload,
  };
}

/** The decompressor could not be started (not installed): another way may be tried. */
class NoTool extends Error {}

/**
 * Runs a decompressor over `input` (stdin to stdout). Output is counted as it streams and the
 * tool is killed past `max`.
 */
function toolDecompress(tool: string, args: string[], input: Buffer, max: number, fail: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let total = 0;
    let err = '';
    let failed: Error | undefined;
    child.on('error', (e) => reject(new NoTool(`cannot run ${tool}: ${e.message}`)));
    child.stdout.on('data', (c: Buffer) => {
      total += c.length;
      if (total > max) {
        failed ??= fail();
        child.kill();
        return;
      }
      parts.push(c);
    });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.stdin.on('error', () => { /* the decoder exited early; its status says why */ });
    child.on('close', (code) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(new Error(err.trim().split('\n').pop()?.replace(/^(xz|zstd): \(?stdin\)?\s*:\s*/, '') || `${tool} exited ${code}`));
      else resolve(Buffer.concat(parts, total));
    });
    child.stdin.end(input);
  });
}

/**
 * xz payloads (Fedora 30 and older) go through xz-utils: rpm writes them with a SHA-256
 * integrity check, which neither pure-JS/wasm xz decoder on npm supports.
 */
async function xzDecompress(input: Buffer, max: number, fail: () => Error): Promise<Buffer> {
  return toolDecompress('xz', ['--decompress', '--stdout', '--single-stream'], input, max, fail).catch((e: unknown) => {
    throw e instanceof NoTool ? new Error(`${e.message} (install xz-utils)`) : e;
  });
}

/** Whether the zstd tool ran here; once it could not be started, the wasm decoder is used. */
let zstdTool = true;

/**
 * zstd payloads decode natively on a worker thread when native/build/zstd.node is built, else
 * through the zstd tool when it is installed, else through the wasm decoder on worker threads
 * (lib/zstd-pool.ts). The bytes are the same every way and are checked against the package's
 * digests afterwards.
 */
async function zstdDecompress(input: Buffer, size: number | undefined, max: number, fail: () => Error, label: string): Promise<Buffer> {
  if (zstdBackend().kind === 'tool' && zstdTool) {
    try {
      return await toolDecompress('zstd', ['--decompress', '--stdout', '--quiet'], input, max, fail);
    } catch (e) {
      if (!(e instanceof NoTool)) throw e;
      zstdTool = false;
    }
  }
  return decodeZstdInWorker(input, size, max, label);
}

/**
 * Decompresses the payload into the cpio archive, never holding more than the declared
 * size (when the package declares one) or LIMITS.payloadBytes.
 */
export async function decompressPayload(rpm: Rpm, label: string): Promise<Buffer> {
  const max = Math.min(rpm.payloadSize ?? LIMITS.payloadBytes, LIMITS.payloadBytes);
  const tooBig = () => new RpmError(label, `payload decompresses past ${max} bytes`);
  let out: Buffer;
  try {
    if (rpm.compressor === 'zstd') {
      out = await zstdDecompress(rpm.payload, rpm.payloadSize, max, tooBig, label);
    } else if (rpm.compressor === 'xz') {
      out = await xzDecompress(rpm.payload, max, tooBig);
    } else {
      out = gunzipSync(rpm.payload, { maxOutputLength: max });
    }
  } catch (e) {
    if (e instanceof RpmError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new RpmError(label, `${rpm.compressor} payload: ${/maxOutputLength|buffer length|larger than/i.test(msg) ? `decompresses past ${max} bytes` : msg}`);
  }
  if (rpm.payloadSize !== undefined && out.length !== rpm.payloadSize) {
    throw new RpmError(label, `payload is ${out.length} bytes, package declares ${rpm.payloadSize}`);
  }
  return out;
}
