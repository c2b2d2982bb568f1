// Reads the cpio "newc" archives inside RPM payloads (magic 070701, or 070702 with checksums).
// Hand-written: the format is 110 bytes of hex fields per entry, smaller than any dependency,
// and we need strict bounds on every field (fuzzed in test/unit/extract.test.ts, "cpio reader, fuzzed").
import { UserError } from './user-error.ts';

export class CpioError extends UserError {
  constructor(label: string, problem: string) {
    super(`${label}: cpio: ${problem}`);
    this.name = 'CpioError';
  }
}

export interface CpioEntry {
  /** Name as stored, e.g. "./usr/bin/qemu-arm-static". */
  name: string;
  mode: number;
  nlink: number;
  /** File data (a view into the archive, not a copy). */
  data: Buffer;
}

const HEADER = 110;
const TRAILER = 'TRAILER!!!';
/** Longest name we accept; Linux's PATH_MAX. */
const MAX_NAME = 4096;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function hexField(buf: Buffer, at: number, label: string, field: string): number {
  const s = buf.toString('latin1', at, at + 8);
  if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new CpioError(label, `bad ${field} field "${s}"`);
  return parseInt(s, 16);
}

/** Yields every entry up to the trailer; throws CpioError on anything malformed or truncated. */
export function* readCpio(buf: Buffer, label: string): Generator<CpioEntry> {
  let at = 0;
  for (;;) {
    if (at + HEADER > buf.length) throw new CpioError(label, 'truncated (no trailer)');
    const magic = buf.toString('latin1', at, at + 6);
    if (magic !== '070701' && magic !== '070702') throw new CpioError(label, `bad magic "${magic}" at offset ${at} (only newc is supported)`);
    const mode = hexField(buf, at + 14, label, 'mode');
    const nlink = hexField(buf, at + 38, label, 'nlink');
    const size = hexField(buf, at + 54, label, 'filesize');
    const nameSize = hexField(buf, at + 94, label, 'namesize');
    if (nameSize < 2 || nameSize > MAX_NAME) throw new CpioError(label, `implausible name size ${nameSize} at offset ${at}`);
    const nameStart = at + HEADER;
    const dataStart = nameStart + nameSize + pad4(HEADER + nameSize);
    if (dataStart > buf.length) throw new CpioError(label, 'truncated name');
    if (buf[nameStart + nameSize - 1] !== 0) throw new CpioError(label, `unterminated name at offset ${at}`);
    const name = buf.toString('utf8', nameStart, nameStart + nameSize - 1);
    if (name.includes('\0')) throw new CpioError(label, `name with NUL at offset ${at}`);
    if (name === TRAILER) return;
    if (dataStart + size > buf.length) throw new CpioError(label, `truncated data of ${name}`);
    yield { name, mode, nlink, data: buf.subarray(dataStart, dataStart + size) };
    at = dataStart + size + pad4(size);
  }
}
