// The one codec for binfmt_misc register lines, `:name:type:offset:magic:mask:interpreter:flags`,
// and for the entries the kernel shows under /proc/sys/fs/binfmt_misc/<name>.
//
// Refusing here what the kernel would refuse (fs/binfmt_misc.c) turns a bare EINVAL at
// registration time into a message that says what is wrong. A few rules are stricter than
// the kernel on purpose, so a line is always safe to pass through a shell and a conf file:
// names and interpreters use printable ASCII without spaces, `\` only starts a `\xHH`
// escape, and interpreters are absolute paths.
import type { Cpu } from './cpus.ts';

/** The kernel refuses writes to `register` longer than this (newline included). */
export const MAX_REGISTER_LENGTH = 1920;
/** Where the kernel's binfmt_misc is mounted: one file per entry, plus `register` and `status`. */
export const BINFMT_MISC = '/proc/sys/fs/binfmt_misc';
/** The kernel only looks at this many bytes of a file; offset + magic must fit in them. */
export const BINPRM_BUF_SIZE = 256;
/** An entry becomes a file in binfmt_misc, so its name is bounded like any file name. */
export const NAME_MAX = 255;
/** The order the kernel prints flags in; formatting uses it so lines round-trip exactly. */
export const FLAG_ORDER = 'POCF';

export interface BinfmtEntry {
  /** Entry name; the file /proc/sys/fs/binfmt_misc/<name>. */
  readonly name: string;
  /** M: match magic bytes; E: match a file name extension. */
  readonly type: 'M' | 'E';
  readonly offset: number;
  /** M: lowercase hex bytes. E: empty. */
  readonly magic: string;
  /** M: lowercase hex bytes, same length as magic, or empty for "all bits". E: empty. */
  readonly mask: string;
  /** E: the extension, without the dot. M: empty. */
  readonly extension: string;
  readonly interpreter: string;
  /** Canonical: a subset of FLAG_ORDER in that order, with O whenever C is present. */
  readonly flags: string;
}

export interface ProcEntry extends BinfmtEntry {
  readonly enabled: boolean;
}

export class BinfmtError extends Error {
  override name = 'BinfmtError';
}

/** Quotes a value for a message; JSON escapes keep the message on one line. */
const q = (s: string): string => JSON.stringify(s);

function fail(message: string): never {
  throw new BinfmtError(message);
}

const RESERVED_NAMES = new Set(['.', '..', 'register', 'status']);
// Printable ASCII without space, `/` (a path separator), `:` (the delimiter) or `\`.
const SAFE_NAME = /^[\x21-\x2e\x30-\x39\x3b-\x5b\x5d-\x7e]+$/;
// The same, `/` allowed, starting with `/`.
const SAFE_PATH = /^\/[\x21-\x39\x3b-\x5b\x5d-\x7e]*$/;

/** Canonical flags: validated, deduplicated, C implies O, in the kernel's print order. */
export function normalizeFlags(flags: string): string {
  const set = new Set<string>();
  for (const f of flags) {
    if (!FLAG_ORDER.includes(f)) {
      fail(`unknown binfmt flag ${q(f)} (valid: P, O, C, F)`);
    }
    set.add(f);
  }
  if (set.has('C')) set.add('O');
  return [...FLAG_ORDER].filter((f) => set.has(f)).join('');
}

function validateName(name: string): void {
  if (name === '') fail('binfmt entry name is empty');
  if (RESERVED_NAMES.has(name)) fail(`binfmt entry name ${q(name)} is reserved by binfmt_misc`);
  if (name.includes('/')) fail(`binfmt entry name ${q(name)} contains "/"`);
  if (name.length > NAME_MAX) fail(`binfmt entry name is ${name.length} characters long (at most ${NAME_MAX})`);
  if (!SAFE_NAME.test(name)) fail(`binfmt entry name ${JSON.stringify(name)} contains a space, control, ":" or "\\" character`);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

function validateEntry(e: BinfmtEntry): void {
  validateName(e.name);
  if (e.type !== 'M' && e.type !== 'E') fail(`binfmt type ${q(String(e.type))} must be M (magic) or E (extension)`);
  if (!Number.isSafeInteger(e.offset) || e.offset < 0) fail(`binfmt offset ${String(e.offset)} is not a non-negative integer`);
  if (e.type === 'M') {
    if (e.extension !== '') fail('a magic (M) entry has no extension');
    if (!HEX.test(e.magic)) fail('binfmt magic must be lowercase hex, two digits per byte');
    if (!HEX.test(e.mask)) fail('binfmt mask must be lowercase hex, two digits per byte');
    const size = e.magic.length / 2;
    if (size === 0) fail('binfmt magic is empty');
    if (e.mask !== '' && e.mask.length !== e.magic.length) {
      fail(`binfmt magic and mask differ in length (${size} and ${e.mask.length / 2} bytes)`);
    }
    if (e.offset + size > BINPRM_BUF_SIZE) {
      fail(`binfmt offset ${e.offset} + magic ${size} bytes exceeds the ${BINPRM_BUF_SIZE} bytes the kernel reads`);
    }
  } else {
    if (e.offset !== 0) fail('an extension (E) entry takes no offset');
    if (e.magic !== '' || e.mask !== '') fail('an extension (E) entry takes no magic or mask');
    if (e.extension === '') fail('binfmt extension is empty');
    if (!SAFE_NAME.test(e.extension)) fail(`binfmt extension ${JSON.stringify(e.extension)} contains "/", ":", "\\", a space or a control character`);
  }
  if (e.interpreter === '') fail('binfmt interpreter is empty');
  if (!SAFE_PATH.test(e.interpreter)) {
    fail(`binfmt interpreter ${JSON.stringify(e.interpreter)} must be an absolute path without spaces, control, ":" or "\\" characters`);
  }
  if (normalizeFlags(e.flags) !== e.flags) fail(`binfmt flags ${q(e.flags)} are not canonical (expected ${q(normalizeFlags(e.flags))})`);
}

function escapeHex(hex: string): string {
  return hex.replace(/../g, '\\x$&');
}

/** Format an entry as a register line (no trailing newline). Throws on what the kernel would refuse. */
export function formatLine(entry: BinfmtEntry): string {
  const e = { ...entry, flags: normalizeFlags(entry.flags) };
  validateEntry(e);
  const line =
    e.type === 'M'
      ? `:${e.name}:M:${e.offset === 0 ? '' : e.offset}:${escapeHex(e.magic)}:${escapeHex(e.mask)}:${e.interpreter}:${e.flags}`
      : `:${e.name}:E::${e.extension}::${e.interpreter}:${e.flags}`;
  checkLength(line);
  return line;
}

function checkLength(line: string): void {
  const bytes = Buffer.byteLength(line) + 1;
  if (bytes > MAX_REGISTER_LENGTH) fail(`binfmt line is ${bytes} bytes with its newline (the kernel accepts at most ${MAX_REGISTER_LENGTH})`);
}

/** Decode a magic or mask field: `\xHH` escapes and literal printable characters, to lowercase hex. */
function unescapeField(field: string, what: string): string {
  let hex = '';
  for (let i = 0; i < field.length; ) {
    const c = field.charCodeAt(i);
    if (c === 0x5c) {
      const m = /^\\x([0-9a-fA-F]{2})/.exec(field.slice(i));
      if (!m) fail(`bad escape in binfmt ${what} at character ${i + 1} (only \\xHH is allowed)`);
      hex += (m[1] as string).toLowerCase();
      i += 4;
    } else if (c > 0x20 && c < 0x7f) {
      hex += c.toString(16).padStart(2, '0');
      i += 1;
    } else {
      fail(`binfmt ${what} contains a raw space or non-printable character at character ${i + 1} (write it as \\xHH)`);
    }
  }
  return hex;
}

/** Parse a register line (as in binfmt.d conf files). Throws a one-line BinfmtError on what the kernel would refuse. */
export function parseLine(input: string): BinfmtEntry {
  const line = input.endsWith('\n') ? input.slice(0, -1) : input;
  checkLength(line);
  if (line.length < 2) fail('binfmt line is too short');
  const delimiter = line[0] as string;
  if (/[0-9A-Za-z\\\s]/.test(delimiter)) fail(`binfmt line must start with a delimiter such as ":" (got ${q(delimiter)})`);
  const fields = line.slice(1).split(delimiter);
  if (fields.length !== 7) {
    fail(`binfmt line has ${fields.length} fields, expected 7 (:name:type:offset:magic:mask:interpreter:flags)`);
  }
  const [name, type, offsetText, magicField, maskField, interpreter, flags] = fields as [string, string, string, string, string, string, string];
  validateName(name);
  if (type !== 'M' && type !== 'E') fail(`binfmt type ${q(type)} must be M (magic) or E (extension)`);
  if (!/^\d*$/.test(offsetText)) fail(`binfmt offset ${q(offsetText)} is not a non-negative decimal number`);
  if (offsetText.length > 6) fail(`binfmt offset ${offsetText} is too large`);
  const offset = offsetText === '' ? 0 : Number(offsetText);
  const entry: BinfmtEntry =
    type === 'M'
      ? {
          name,
          type,
          offset,
          magic: unescapeField(magicField, 'magic'),
          mask: unescapeField(maskField, 'mask'),
          extension: '',
          interpreter,
          flags: normalizeFlags(flags),
        }
      : (() => {
          if (offsetText !== '') fail('an extension (E) entry takes no offset');
          if (maskField !== '') fail('an extension (E) entry takes no mask');
          return { name, type, offset: 0, magic: '', mask: '', extension: magicField, interpreter, flags: normalizeFlags(flags) };
        })();
  validateEntry(entry);
  return entry;
}

/** Parse the text of /proc/sys/fs/binfmt_misc/<name> into the same structure. */
export function parseProcEntry(name: string, text: string): ProcEntry {
  let enabled: boolean | undefined;
  let interpreter: string | undefined;
  let flags: string | undefined;
  let offset = 0;
  let magic = '';
  let mask = '';
  let extension = '';
  let type: 'M' | 'E' | undefined;
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    if (raw === 'enabled' || raw === 'disabled') enabled = raw === 'enabled';
    else if (raw.startsWith('interpreter ')) interpreter = raw.slice('interpreter '.length);
    else if (raw.startsWith('flags:')) flags = raw.slice('flags:'.length).trim();
    else if (raw.startsWith('offset ')) offset = Number(raw.slice('offset '.length));
    else if (raw.startsWith('magic ')) {
      magic = raw.slice('magic '.length).toLowerCase();
      type = 'M';
    } else if (raw.startsWith('mask ')) mask = raw.slice('mask '.length).toLowerCase();
    else if (raw.startsWith('extension .')) {
      extension = raw.slice('extension .'.length);
      type = 'E';
    } else fail(`binfmt_misc entry ${q(name)}: unexpected line ${JSON.stringify(raw)}`);
  }
  if (enabled === undefined || interpreter === undefined || flags === undefined || type === undefined) {
    fail(`binfmt_misc entry ${q(name)} is incomplete (needs enabled/disabled, interpreter, flags, and magic or extension)`);
  }
  const entry: ProcEntry = { name, type, offset, magic, mask, extension, interpreter, flags: normalizeFlags(flags), enabled };
  validateEntry(entry);
  return entry;
}

export interface RegisterOptions {
  /** Directory holding the emulators (default /usr/bin). */
  readonly path?: string;
  /** Appended to `qemu-<cpu>` (default -static). */
  readonly suffix?: string;
  /** binfmt flags (default F), normalized to the kernel's order. */
  readonly flags?: string;
}

/** The entry that registers `cpu`'s emulator. */
export function cpuEntry(cpu: Cpu, { path = '/usr/bin', suffix = '-static', flags = 'F' }: RegisterOptions = {}): BinfmtEntry {
  if (suffix.includes('/')) fail(`emulator suffix ${q(suffix)} contains "/"`);
  const dir = path.length > 1 ? path.replace(/\/+$/, '') : path;
  const interpreter = `${dir === '/' ? '' : dir}/qemu-${cpu.emulator}${suffix}`;
  return {
    name: `qemu-${cpu.name}`,
    type: 'M',
    offset: cpu.offset,
    magic: cpu.magic,
    mask: cpu.mask,
    extension: '',
    interpreter,
    flags: normalizeFlags(flags),
  };
}

/** The register line (binfmt.d format, no newline) for `cpu`. */
export function registerLine(cpu: Cpu, options: RegisterOptions = {}): string {
  return formatLine(cpuEntry(cpu, options));
}

function describeBytes(what: string, table: string, conf: string): string | undefined {
  if (table === conf) return undefined;
  if (table.length !== conf.length) {
    return `${what}: table has ${table.length / 2} bytes (${table}), conf ${conf.length / 2} bytes (${conf})`;
  }
  const at: string[] = [];
  for (let i = 0; i < table.length; i += 2) {
    const a = table.slice(i, i + 2);
    const b = conf.slice(i, i + 2);
    if (a !== b) at.push(`byte ${i / 2}: table ${a}, conf ${b}`);
  }
  return `${what} differs at ${at.join('; ')}`;
}

/**
 * A conf line shipped with an emulator (e.g. an RPM's /usr/lib/binfmt.d/qemu-<cpu>-static.conf)
 * wins over the table: QEMU adjusts magic and mask between versions. Returns the conf's line
 * (normalized), the table CPU with the conf's offset/magic/mask, and what differs from the table.
 * A row with `overridesConf` wins instead: the line keeps the conf's interpreter and flags
 * with the table's bytes, the CPU is the table's, and the reason is one more difference.
 */
export function reconcileConf(cpu: Cpu, confLine: string): { line: string; differences: string[]; cpu: Cpu } {
  const conf = parseLine(confLine.trim());
  if (conf.name !== `qemu-${cpu.name}`) fail(`conf line registers ${q(conf.name)}, expected "qemu-${cpu.name}"`);
  if (conf.type !== 'M') fail(`conf line for qemu-${cpu.name} is not a magic (M) entry`);
  const mask = conf.mask === '' ? 'ff'.repeat(conf.magic.length / 2) : conf.mask;
  const differences = [
    conf.offset === cpu.offset ? undefined : `offset: table ${cpu.offset}, conf ${conf.offset}`,
    describeBytes('magic', cpu.magic, conf.magic),
    describeBytes('mask', cpu.mask, mask),
  ].filter((d): d is string => d !== undefined);
  if (cpu.overridesConf !== undefined && differences.length > 0) {
    return {
      line: formatLine({ ...conf, offset: cpu.offset, magic: cpu.magic, mask: cpu.mask }),
      differences: [...differences, `the table's line is registered, not the conf's: ${cpu.overridesConf}`].map((d) => `qemu-${cpu.name}: ${d}`),
      cpu,
    };
  }
  return {
    line: formatLine(conf),
    differences: differences.map((d) => `qemu-${cpu.name}: ${d}`),
    cpu: Object.freeze({ ...cpu, offset: conf.offset, magic: conf.magic, mask }),
  };
}
