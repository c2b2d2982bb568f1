// Generates /register: the POSIX sh script (busybox ash and dash) that registers the QEMU
// emulators with binfmt_misc, both as the images' entrypoint and on build hosts.
//
// The script is a header generated here and lib/register.sh, the static shell part, kept as
// a file of its own so that shellcheck reads it (test/unit/register-script.test.ts).
// Everything CPU-specific is in the header, generated from the table (lib/cpus.ts) through
// the codec (lib/binfmt.ts), so the script writes exactly the lines `polyarch binfmt conf`
// prints. User input is only compared with the embedded table (targets) or checked against
// a strict character set (paths, suffix); it is never evaluated.
import fs from 'node:fs';
import { CPUS, HOST_CPU_PATTERNS, HOST_FAMILY_PATTERNS, type Cpu } from './cpus.ts';
import { formatLine, cpuEntry } from './binfmt.ts';

/**
 * The static part of the script. Beside this module both in the sources and in dist/
 * (scripts/build.mjs copies it), so tsx and the compiled build read the same file.
 */
export const REGISTER_SH = new URL('./register.sh', import.meta.url);
const SHEBANG = '#!/bin/sh\n';
let body: string | undefined;

/** lib/register.sh, read once; the header takes the place of its #! line. */
function scriptBody(): string {
  if (body === undefined) {
    const text = fs.readFileSync(REGISTER_SH, 'utf8');
    if (!text.startsWith(SHEBANG)) throw new Error(`${REGISTER_SH.pathname} must start with ${JSON.stringify(SHEBANG)}`);
    body = text;
  }
  return body;
}

/** The script's exit codes; --help prints them too. */
export const REGISTER_EXIT_CODES = {
  ok: 0,
  usage: 1,
  noBinfmt: 2,
  refused: 3,
  persist: 4,
  install: 5,
} as const;

export interface RegisterScriptOptions {
  /**
   * The CPUs the script knows, in order. Default: the whole table, where CPUs QEMU has
   * dropped (`removedIn`) are registered only when named. When given, every CPU listed
   * is a default target (e.g. the CPUs whose emulators an image actually ships, with the
   * magic/mask of their own binfmt.d confs).
   */
  readonly cpus?: readonly Cpu[];
}

const WORD = /^[a-z0-9_]+$/;
const ALIAS = /^[a-z0-9_.-]+$/;
const PATTERN = /^[a-z0-9_*[\]-]+$/;
const PLATFORM = /^[a-z0-9]+(?:\/[a-z0-9]+)+$/;

/** The register line up to and including the `:` before the interpreter. */
function lineHead(cpu: Cpu): string {
  const line = formatLine({ ...cpuEntry(cpu, { flags: '' }), interpreter: '/' });
  const tail = ':/:';
  if (!line.endsWith(tail)) throw new Error(`unexpected register line for ${cpu.name}`);
  return line.slice(0, -tail.length + 1);
}

function checkCpu(cpu: Cpu): void {
  // Everything below lands in the script unquoted or in single quotes: keep it to plain words.
  if (!WORD.test(cpu.name) || !WORD.test(cpu.emulator) || !WORD.test(cpu.family)) {
    throw new Error(`CPU "${cpu.name}" has a name, emulator or family the script cannot embed`);
  }
  for (const a of cpu.aliases) if (!ALIAS.test(a)) throw new Error(`CPU "${cpu.name}" has an alias the script cannot embed: "${a}"`);
}

/** Wraps a space-separated list into indented lines for the help text. */
function wrap(words: string, width = 84): string {
  const lines: string[] = [];
  let line = '';
  for (const w of words.split(' ')) {
    if (line !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = '';
    }
    line = line === '' ? w : `${line} ${w}`;
  }
  lines.push(line);
  return lines.map((l) => `  ${l}`).join('\n');
}

export function generateRegisterScript(options: RegisterScriptOptions = {}): string {
  const cpus = options.cpus ?? CPUS;
  if (cpus.length === 0) throw new Error('the register script needs at least one CPU');
  const seen = new Set<string>();
  for (const cpu of cpus) {
    checkCpu(cpu);
    for (const key of [cpu.name, ...cpu.aliases]) {
      if (seen.has(key)) throw new Error(`CPU name or alias "${key}" appears twice`);
      seen.add(key);
    }
  }
  const defaults = options.cpus ? cpus : cpus.filter((c) => c.removedIn === undefined);

  const info = cpus
    .map((c) => {
      const head = lineHead(c);
      return `  ${c.name}) emu=${c.emulator} fam=${c.family} off=${c.offset} magic=${c.magic} mask=${c.mask}\n    head='${head}' ;;`;
    })
    .join('\n');
  const canonical = cpus.map((c) => `  ${[c.name, ...c.aliases].join('|')}) cpu=${c.name} ;;`).join('\n');
  const families = HOST_FAMILY_PATTERNS.map(({ family, patterns }) => {
    for (const p of patterns) if (!PATTERN.test(p)) throw new Error(`host pattern "${p}" cannot be embedded`);
    return `  ${patterns.join('|')}) host_fam=${family} ;;`;
  }).join('\n');
  // From the whole table, not the CPUs this script registers: an image's script ships none
  // of its host's family, yet --list --json still says what the host runs natively.
  const nativeByFamily = new Map<string, string[]>();
  for (const c of CPUS) {
    checkCpu(c);
    nativeByFamily.set(c.family, [...(nativeByFamily.get(c.family) ?? []), c.name]);
  }
  // Also from the whole table: an image's script lists entries it did not register.
  const platforms = CPUS.flatMap((c) => {
    if (c.platform === undefined) return [];
    if (!PLATFORM.test(c.platform)) throw new Error(`CPU "${c.name}" has a platform the script cannot embed: "${c.platform}"`);
    return [`  ${[c.name, ...c.aliases].map((n) => `qemu-${n}`).join('|')}) platform=${c.platform} ;;`];
  }).join('\n');
  const natives = [...nativeByFamily].map(([family, names]) => `  ${family}) native='${names.join(' ')}' ;;`).join('\n');
  const hostCpus = HOST_CPU_PATTERNS.map(({ cpu, patterns }) => {
    for (const p of patterns) if (!PATTERN.test(p)) throw new Error(`host pattern "${p}" cannot be embedded`);
    return `  ${patterns.join('|')}) cpu=${cpu} ;;`;
  }).join('\n');
  const names = cpus.map((c) => c.name).join(' ');
  const retired = cpus.filter((c) => !defaults.includes(c)).map((c) => c.name);
  const aliases = cpus.flatMap((c) => c.aliases);
  const aliasNote = aliases.length > 0 ? ` (aliases such as ${aliases.slice(0, 4).join(', ')} are accepted too)` : '';
  const retiredNote = retired.length > 0 ? ` but ${retired.join(', ')}, which QEMU has dropped` : '';
  for (const text of [retiredNote, aliasNote]) if (text.includes("'")) throw new Error(`help text cannot be embedded: ${text}`);
  const E = REGISTER_EXIT_CODES;
  const exits = (Object.keys(E) as (keyof typeof E)[]).map((k) => `EXIT_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}=${E[k]}`);

  const header = `#!/bin/sh
# The CPU table, generated by polyarch from lib/cpus.ts; the script itself (lib/register.sh)
# follows it. Change those two, not this file.
ALL_TARGETS='${names}'
DEFAULT_TARGETS='${defaults.map((c) => c.name).join(' ')}'
${exits.join(' ')}
HELP_RETIRED='${retiredNote}'
HELP_ALIASES='${aliasNote}'
HELP_CPUS='${wrap(names)}'

# Sets emu, fam, off, magic, mask (lowercase hex, as /proc shows them) and head (the
# register line up to the emulator path) for a CPU name; fails for anything else.
cpu_info() {
  case $1 in
${info}
  *) return 1 ;;
  esac
}

# Sets cpu to the table name for a name or alias; fails for anything else.
canonical() {
  case $1 in
${canonical}
  *) return 1 ;;
  esac
}

# Sets cpu to the table CPU a uname -m spelling that is no name or alias stands for, or to
# nothing.
uname_cpu() {
  case $1 in
${hostCpus}
  *) cpu= ;;
  esac
}

# Sets native to the table's CPUs of family $1 (what a machine of that family runs natively).
native_cpus() {
  case $1 in
${natives}
  *) native= ;;
  esac
}

# Sets platform to the OCI platform a qemu-* entry named after a table CPU (or alias) lets
# this machine run, or to nothing (as entryPlatform in lib/cpus.ts).
entry_platform() {
  case $1 in
${platforms}
  *) platform= ;;
  esac
}

# Sets host_fam to the family this machine runs natively.
host_family() {
  case $1 in
${families}
  *) host_fam=$1 ;;
  esac
}
`;
  return header + scriptBody().slice(SHEBANG.length);
}
