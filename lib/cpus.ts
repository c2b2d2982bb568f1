// The one table of CPUs that QEMU user mode emulates, and what binfmt_misc needs to know
// about each: which ELF headers it claims, and which host "family" already runs them
// natively (so the register step skips them there). Everything else (register lines,
// the /register script, image tags) is derived from this table.
//
// Representation: `magic` and `mask` are lowercase hex strings, two digits per byte, no
// separators, the same length, matching the file from byte `offset` on. This is the form
// /proc/sys/fs/binfmt_misc/<entry> prints; lib/binfmt.ts turns it into `\xHH` escapes.
//
// Where the values come from:
// - magic, mask and family: QEMU's scripts/qemu-binfmt-conf.sh (the same rows from v7.0
//   through v10.0), byte for byte, with one exception, microblaze (see its row). The
//   Fedora RPMs we publish ship exactly those lines as their binfmt.d confs, and images
//   register the conf (reconcileConf in lib/binfmt.ts), so keeping the table equal to
//   QEMU's means `binfmt conf`, build hosts and images register the same bytes. A row
//   with `overridesConf` is the exception: its line is registered over the RPM's conf.
//   test/unit/cpus.test.ts holds the table to QEMU's lines, kept as data in
//   test/fixtures/qemu-binfmt.ts.
// - Debian's binfmt.d files (bookworm, 7.2) differ: they mask EI_OSABI with fc (OS ABI
//   0-3) where QEMU ignores it, and keep MIPS's EI_ABIVERSION to 0-1 (mask fe). We follow
//   QEMU: OS ABIs 4 and up are not Linux binaries, so ignoring the byte costs nothing in
//   practice, and MIPS binaries with ABI version 2 or 3 are real (newer glibc writes them,
//   QEMU issue #843) and QEMU runs them.
// - e_machine values: the ELF gABI and binutils (listed above ROWS).
// - aliases and platforms: uname -m, Debian and Docker/OCI spellings.
//
// Most magics are the first 20 bytes of an ELF header: "\x7fELF", class (01 = 32-bit,
// 02 = 64-bit), data (01 = little, 02 = big endian), version 01, OS ABI, ABI version,
// padding, then e_type (ET_EXEC; the mask's fe lets ET_DYN through too) and e_machine.
// MIPS o32/n32 reach on into e_version and e_flags to tell o32 from n32 (EF_MIPS_ABI2, 0x20).

export interface Cpu {
  /** QEMU's target name; the binfmt entry is `qemu-<name>`. */
  readonly name: string;
  /** The emulator binary is `qemu-<emulator>`; differs from `name` only for i486 (run by qemu-i386). */
  readonly emulator: string;
  /** Lowercase hex, two digits per byte (see the note at the top of this file). */
  readonly magic: string;
  /** Lowercase hex, same length as `magic`. */
  readonly mask: string;
  /** Byte offset of `magic` in the file. */
  readonly offset: number;
  /** CPUs of one family run natively on a host of that family, so they are not registered there. */
  readonly family: string;
  /** Docker/OCI platform, where one exists. */
  readonly platform?: string;
  /** Other names for this CPU (uname -m, Debian and Docker spellings); unique across the table. */
  readonly aliases: readonly string[];
  /** The QEMU version that dropped this CPU; such CPUs are only registered when named. */
  readonly removedIn?: string;
  /**
   * Why this row's magic and mask are registered even where an RPM ships its own conf for
   * the CPU (lib/binfmt.ts reconcileConf). Unset, the conf wins: QEMU adjusts its lines.
   */
  readonly overridesConf?: string;
}

// Masks shared by many rows, named after the header layout they accept. Bytes 7 (EI_OSABI)
// and, for MIPS, 8 (EI_ABIVERSION) are ignored as QEMU does.
/** Little-endian ELF. */
const LE = 'ffffffffffffff00fffffffffffffffffeffffff';
/** Big-endian ELF. */
const BE = 'ffffffffffffff00fffffffffffffffffffeffff';
/** x86 and alpha: also tolerant of odd data/version bytes (fe at 5 and 6), as QEMU has always been. */
const X86 = 'fffffffffffefe00fffffffffffffffffeffffff';

/** ELF ident + e_type for a class/endianness; append e_machine in file byte order. */
function elf(bits: 32 | 64, endian: 'le' | 'be', machine: number): string {
  const ident = `7f454c46${bits === 32 ? '01' : '02'}${endian === 'le' ? '01' : '02'}01${'00'.repeat(9)}`;
  const hi = (machine >> 8).toString(16).padStart(2, '0');
  const lo = (machine & 0xff).toString(16).padStart(2, '0');
  return endian === 'le' ? `${ident}0200${lo}${hi}` : `${ident}0002${hi}${lo}`;
}

/**
 * A MIPS o32/n32 row: the header (EI_ABIVERSION ignored), e_version 1, and e_flags'
 * EF_MIPS_ABI2 bit (0x20, in its low byte) clear for o32 or set for n32. 40 bytes, as QEMU.
 */
function mips32(endian: 'le' | 'be', n32: boolean): { magic: string; mask: string } {
  const head = elf(32, endian, 8);
  const headMask = endian === 'le' ? 'ffffffffffffff0000fffffffffffffffeffffff' : 'ffffffffffffff0000fffffffffffffffffeffff';
  const version = endian === 'le' ? '01000000' : '00000001';
  // e_entry, e_phoff, e_shoff: not looked at; then e_flags with the ABI2 bit.
  const flags = (bit: string) => (endian === 'le' ? `${bit}000000` : `000000${bit}`);
  return {
    magic: head + version + '00'.repeat(12) + flags(n32 ? '20' : '00'),
    mask: headMask + 'ffffffff' + '00'.repeat(12) + flags('20'),
  };
}

interface Row {
  name: string;
  magic: string;
  mask: string;
  family: string;
  platform?: string;
  aliases?: readonly string[];
  emulator?: string;
  removedIn?: string;
  overridesConf?: string;
}

// e_machine values (ELF gABI / binutils): EM_386 3, EM_486 6, EM_X86_64 62, EM_ARM 40,
// EM_AARCH64 183, EM_ALPHA 0x9026, EM_PARISC 15, EM_68K 4, EM_MIPS 8, EM_PPC 20,
// EM_PPC64 21, EM_S390 22, EM_SH 42, EM_SPARC 2, EM_SPARC32PLUS 18, EM_SPARCV9 43,
// EM_RISCV 243, EM_XTENSA 94, EM_MICROBLAZE 0xbaab, EM_OPENRISC 92, EM_QDSP6 164,
// EM_LOONGARCH 258, EM_CRIS 76.
const ROWS: readonly Row[] = [
  { name: 'aarch64', magic: elf(64, 'le', 183), mask: LE, family: 'arm', platform: 'linux/arm64', aliases: ['arm64'] },
  { name: 'aarch64_be', magic: elf(64, 'be', 183), mask: BE, family: 'armeb' },
  { name: 'alpha', magic: elf(64, 'le', 0x9026), mask: X86, family: 'alpha' },
  { name: 'arm', magic: elf(32, 'le', 40), mask: LE, family: 'arm', platform: 'linux/arm/v7', aliases: ['armhf', 'armel', 'armv7', 'armv7l', 'armv6l', 'armv5tel'] },
  { name: 'armeb', magic: elf(32, 'be', 40), mask: BE, family: 'armeb' },
  // Not in QEMU's script (its user mode went in 10.0); the generic little-endian line.
  { name: 'cris', magic: elf(32, 'le', 76), mask: LE, family: 'cris', removedIn: '10.0' },
  { name: 'hexagon', magic: elf(32, 'le', 164), mask: LE, family: 'hexagon' },
  { name: 'hppa', magic: elf(32, 'be', 15), mask: BE, family: 'hppa', aliases: ['parisc'] },
  { name: 'i386', magic: elf(32, 'le', 3), mask: X86, family: 'i386', platform: 'linux/386', aliases: ['386', 'x86', 'i586', 'i686'] },
  { name: 'i486', emulator: 'i386', magic: elf(32, 'le', 6), mask: X86, family: 'i386' },
  {
    name: 'loongarch64',
    magic: elf(64, 'le', 258),
    // QEMU's own choice for this newer row: OS ABI 0-3, ABI version ignored.
    mask: 'fffffffffffffffc00fffffffffffffffeffffff',
    family: 'loongarch',
    platform: 'linux/loong64',
    aliases: ['loong64'],
  },
  // QEMU's m68k mask also tolerates EI_VERSION 0 (fe at byte 6).
  { name: 'm68k', magic: elf(32, 'be', 4), mask: 'fffffffffffffe00fffffffffffffffffffeffff', family: 'm68k' },
  // The one row that differs from QEMU on purpose, and so the one that overrides the conf
  // Fedora's RPMs ship (QEMU's line): registering that would leave a dead entry.
  {
    name: 'microblaze',
    magic: elf(32, 'be', 0xbaab),
    mask: BE,
    family: 'microblaze',
    overridesConf:
      "QEMU's microblaze line writes e_type little-endian (02 00) inside a big-endian header, so it matches no real binary (bytes 16-17 are 00 02); the table's has e_type in the header's byte order",
  },
  { name: 'microblazeel', magic: elf(32, 'le', 0xbaab), mask: LE, family: 'microblazeel' },
  { name: 'mips', ...mips32('be', false), family: 'mips', platform: 'linux/mips' },
  { name: 'mipsel', ...mips32('le', false), family: 'mips', platform: 'linux/mipsle', aliases: ['mipsle'] },
  { name: 'mipsn32', ...mips32('be', true), family: 'mips' },
  { name: 'mipsn32el', ...mips32('le', true), family: 'mips' },
  { name: 'mips64', magic: elf(64, 'be', 8), mask: 'ffffffffffffff0000fffffffffffffffffeffff', family: 'mips', platform: 'linux/mips64' },
  { name: 'mips64el', magic: elf(64, 'le', 8), mask: 'ffffffffffffff0000fffffffffffffffeffffff', family: 'mips', platform: 'linux/mips64le', aliases: ['mips64le'] },
  { name: 'or1k', magic: elf(32, 'be', 92), mask: BE, family: 'or1k', aliases: ['openrisc'] },
  { name: 'ppc', magic: elf(32, 'be', 20), mask: BE, family: 'ppc', aliases: ['powerpc'] },
  { name: 'ppc64', magic: elf(64, 'be', 21), mask: BE, family: 'ppc', platform: 'linux/ppc64', aliases: ['powerpc64'] },
  // The last byte (high half of e_machine) is ignored, as QEMU does.
  { name: 'ppc64le', magic: elf(64, 'le', 21), mask: 'ffffffffffffff00fffffffffffffffffeffff00', family: 'ppcle', platform: 'linux/ppc64le', aliases: ['ppc64el', 'powerpc64le'] },
  // One family, as in QEMU: a riscv64 host is taken to run riscv32 too. Few riscv64
  // machines really do (Fedora builds its riscv64 confs with --ignore-family yes for
  // that reason); `--ignore-family yes` registers riscv32 there.
  { name: 'riscv32', magic: elf(32, 'le', 243), mask: LE, family: 'riscv' },
  { name: 'riscv64', magic: elf(64, 'le', 243), mask: LE, family: 'riscv', platform: 'linux/riscv64' },
  { name: 's390x', magic: elf(64, 'be', 22), mask: BE, family: 's390x', platform: 'linux/s390x' },
  { name: 'sh4', magic: elf(32, 'le', 42), mask: LE, family: 'sh4' },
  { name: 'sh4eb', magic: elf(32, 'be', 42), mask: BE, family: 'sh4' },
  { name: 'sparc', magic: elf(32, 'be', 2), mask: BE, family: 'sparc' },
  { name: 'sparc32plus', magic: elf(32, 'be', 18), mask: BE, family: 'sparc' },
  { name: 'sparc64', magic: elf(64, 'be', 43), mask: BE, family: 'sparc' },
  { name: 'x86_64', magic: elf(64, 'le', 62), mask: X86, family: 'i386', platform: 'linux/amd64', aliases: ['amd64', 'x86-64', 'x64'] },
  { name: 'xtensa', magic: elf(32, 'le', 94), mask: LE, family: 'xtensa' },
  { name: 'xtensaeb', magic: elf(32, 'be', 94), mask: BE, family: 'xtensaeb' },
];

export const CPUS: readonly Cpu[] = Object.freeze(
  ROWS.map((r): Cpu =>
    Object.freeze({
      name: r.name,
      emulator: r.emulator ?? r.name,
      magic: r.magic,
      mask: r.mask,
      offset: 0,
      family: r.family,
      ...(r.platform === undefined ? {} : { platform: r.platform }),
      aliases: Object.freeze([...(r.aliases ?? [])]),
      ...(r.removedIn === undefined ? {} : { removedIn: r.removedIn }),
      ...(r.overridesConf === undefined ? {} : { overridesConf: r.overridesConf }),
    }),
  ),
);

/** The host architectures we publish emulators for (Fedora's koji build arches). */
export const HOST_ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
export type HostArch = (typeof HOST_ARCHES)[number];

export function isHostArch(s: string): s is HostArch {
  return (HOST_ARCHES as readonly string[]).includes(s);
}

/** The one wording for a bad host arch, wherever it is given (CLI, stack config, API). */
export const unknownHostArch = (s: string) => `unknown host arch "${s}" (valid: ${HOST_ARCHES.join(', ')})`;

/** `s` as a HostArch, or an Error naming it and the valid values. */
export function parseHostArch(s: string): HostArch {
  if (!isHostArch(s)) throw new Error(unknownHostArch(s));
  return s;
}

/**
 * `uname -m` spellings and the family they run natively, as shell glob patterns. The
 * register script's `case` is generated from this list and hostFamily() matches the same
 * patterns, so the two cannot drift. A machine matching none is its own family.
 */
export const HOST_FAMILY_PATTERNS: readonly { readonly family: string; readonly patterns: readonly string[] }[] = [
  { family: 'i386', patterns: ['x86_64', 'amd64', 'i386', 'i486', 'i586', 'i686', 'i86pc'] },
  { family: 'arm', patterns: ['aarch64', 'arm64', 'arm', 'armel', 'armhf', 'armv[4-9]*l'] },
  { family: 'armeb', patterns: ['aarch64_be', 'armeb', 'armv[4-9]*b'] },
  { family: 'ppc', patterns: ['ppc', 'ppc64', 'powerpc', 'powerpc64'] },
  { family: 'ppcle', patterns: ['ppc64le', 'ppc64el', 'powerpc64le', 'ppcle'] },
  { family: 'mips', patterns: ['mips*'] },
  { family: 'sparc', patterns: ['sparc*'] },
  { family: 'sh4', patterns: ['sh4*'] },
  { family: 'hppa', patterns: ['parisc*', 'hppa*'] },
  { family: 'loongarch', patterns: ['loongarch*'] },
  { family: 'riscv', patterns: ['riscv*'] },
];

/**
 * `uname -m` spellings that name a table CPU without being one of its names or aliases.
 * With --ignore-family only the host's own CPU is left out, so it has to be known exactly.
 */
export const HOST_CPU_PATTERNS: readonly { readonly cpu: string; readonly patterns: readonly string[] }[] = [
  { cpu: 'i386', patterns: ['i[3-6]86'] },
  { cpu: 'arm', patterns: ['armv[4-9]*l'] },
  { cpu: 'armeb', patterns: ['armv[4-9]*b'] },
];

/** Translate the small glob subset used above (`*`, `[a-b]`) to an anchored RegExp. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '.*';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      re += glob.slice(i, end + 1);
      i = end;
    } else re += c.replace(/[.+?^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The family a machine (as `uname -m` prints it) runs natively. */
export function hostFamily(machine: string): string {
  for (const { family, patterns } of HOST_FAMILY_PATTERNS) {
    if (patterns.some((p) => globToRegExp(p).test(machine))) return family;
  }
  return machine;
}

/** The table CPU a machine (as `uname -m` prints it) is, or undefined for one the table lacks. */
export function hostCpu(machine: string): Cpu | undefined {
  const direct = findCpu(machine);
  if (direct) return direct;
  const hit = HOST_CPU_PATTERNS.find(({ patterns }) => patterns.some((p) => globToRegExp(p).test(machine)));
  return hit ? findCpu(hit.cpu) : undefined;
}

/**
 * Whether a host skips `cpu` when registering everything. Normally every CPU of the host's
 * family is skipped (QEMU's rule). With `ignoreFamily` (QEMU's --ignore-family yes), only
 * the CPUs the host's own emulator would run are: on x86_64 that is x86_64, so i386 gets
 * an entry; on riscv64, riscv32 does.
 */
export function runsNatively(machine: string, cpu: Cpu, ignoreFamily = false): boolean {
  if (cpu.family !== hostFamily(machine)) return false;
  if (!ignoreFamily) return true;
  return cpu.emulator === (hostCpu(machine)?.emulator ?? machine);
}

const byName = new Map<string, Cpu>();
for (const cpu of CPUS) {
  for (const key of [cpu.name, ...cpu.aliases]) {
    if (byName.has(key)) throw new Error(`CPU table: "${key}" is used twice`);
    byName.set(key, cpu);
  }
}

/** The CPU with this name or alias (exact, case-sensitive as QEMU's names are). */
export function findCpu(nameOrAlias: string): Cpu | undefined {
  return byName.get(nameOrAlias);
}

/**
 * The Docker/OCI platform a binfmt_misc entry named `qemu-<cpu>` lets the machine run (the
 * table's `platform` of that CPU, by name or alias), or null for any other entry and for CPUs
 * without one. The register script's --list --json says the same (lib/register-script.ts).
 */
export function entryPlatform(entryName: string): string | null {
  if (!entryName.startsWith('qemu-')) return null;
  return findCpu(entryName.slice('qemu-'.length))?.platform ?? null;
}

/** Every CPU name in the table, in table order. */
export function cpuNames(): string[] {
  return CPUS.map((c) => c.name);
}

export interface TargetOptions {
  /** QEMU's --ignore-family yes: skip only the host's own CPU, not its whole family. */
  readonly ignoreFamily?: boolean;
}

/**
 * The CPUs to register on `host`. Without a list (or with 'all'): every current CPU the host
 * does not run natively (see runsNatively). With a list: exactly those CPUs (aliases
 * resolved, duplicates dropped, table order), so a caller can ask for anything by name.
 * Unknown names throw.
 */
export function targetsFor(host: HostArch, targets: 'all' | readonly string[] = 'all', o: TargetOptions = {}): Cpu[] {
  parseHostArch(String(host));
  if (targets === 'all') {
    return CPUS.filter((c) => !runsNatively(host, c, o.ignoreFamily) && c.removedIn === undefined);
  }
  const wanted = new Set<Cpu>();
  for (const name of targets) {
    const cpu = findCpu(name);
    if (!cpu) throw new Error(`unknown CPU "${name}" (valid: ${cpuNames().join(', ')})`);
    wanted.add(cpu);
  }
  return CPUS.filter((c) => wanted.has(c));
}
