// ELF headers as a Linux toolchain writes them, and the kernel's binfmt_misc match, for
// holding register lines to each other without a kernel.
import { parseLine } from '../../lib/binfmt.ts';

export interface MagicPattern {
  readonly offset: number;
  readonly magic: string;
  readonly mask: string;
}

/** The kernel's test (fs/binfmt_misc.c): every bit under the mask equals the magic's. */
export function accepts(p: MagicPattern, header: Buffer): boolean {
  const magic = Buffer.from(p.magic, 'hex');
  const mask = p.mask === '' ? Buffer.alloc(magic.length, 0xff) : Buffer.from(p.mask, 'hex');
  if (p.offset + magic.length > header.length) return false;
  return magic.every((b, i) => (((header[p.offset + i] as number) ^ b) & (mask[i] as number)) === 0);
}

/** A register line's match pattern. */
export function patternOf(line: string): MagicPattern {
  const e = parseLine(line);
  return { offset: e.offset, magic: e.magic, mask: e.mask };
}

export const ET_EXEC = 2;
export const ET_DYN = 3;
/** The OS ABIs Linux binaries carry: ELFOSABI_NONE (SysV) and ELFOSABI_GNU. */
export const LINUX_OS_ABIS = [0, 3] as const;
export const ABI_VERSIONS = [0, 1, 2, 3] as const;

/**
 * A 64-byte ELF header of the kind `template` (a register line's magic: class, byte order,
 * e_machine, and for MIPS o32/n32 the EF_MIPS_ABI2 bit of e_flags), with the given OS ABI,
 * ABI version and e_type, e_version 1, and arbitrary values where no line should look
 * (entry point, table offsets, the other e_flags bits).
 */
export function elfHeader(template: string, osabi: number, abiVersion: number, type: number): Buffer {
  const t = Buffer.from(template, 'hex');
  const h = Buffer.alloc(64);
  t.copy(h, 0, 0, Math.min(t.length, 20));
  h[6] = 1; // EI_VERSION
  h[7] = osabi;
  h[8] = abiVersion;
  h.fill(0, 9, 16);
  const le = h[5] === 1;
  const u16 = (v: number, at: number) => (le ? h.writeUInt16LE(v, at) : h.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (le ? h.writeUInt32LE(v, at) : h.writeUInt32BE(v, at));
  u16(type, 16);
  u32(1, 20);
  for (let i = 24; i < 64; i++) h[i] = (i * 37 + 11) & 0xff;
  if (h[4] === 1) {
    // ELF32 e_flags at 36: typical MIPS-like bits, with the ABI2 bit as the template says.
    const low = le ? 36 : 39; // e_flags' low byte
    const abi2 = t.length > low ? (t[low] as number) & 0x20 : 0;
    u32(((0x70001007 & ~0x20) | abi2) >>> 0, 36);
  }
  return h;
}

/** Every Linux header of `template`'s kind: OS ABI 0 or 3, ABI version 0-3, ET_EXEC or ET_DYN. */
export function linuxHeaders(template: string): { header: Buffer; what: string }[] {
  const out: { header: Buffer; what: string }[] = [];
  for (const osabi of LINUX_OS_ABIS) {
    for (const abi of ABI_VERSIONS) {
      for (const type of [ET_EXEC, ET_DYN]) {
        out.push({ header: elfHeader(template, osabi, abi, type), what: `OS ABI ${osabi}, ABI version ${abi}, ${type === ET_EXEC ? 'ET_EXEC' : 'ET_DYN'}` });
      }
    }
  }
  return out;
}

/**
 * What an emulator built to run on each host looks like: EI_CLASS, EI_DATA and e_machine as
 * the file's bytes 4-5 and 18-19 (e_machine in the header's own byte order). All four hosts
 * are 64-bit; s390x alone is big-endian. ppc64le is EM_PPC64 (21) written little-endian.
 */
export const HOST_ELF = {
  x86_64: '0201' + '3e00', // ELFCLASS64, ELFDATA2LSB, EM_X86_64 62
  aarch64: '0201' + 'b700', // EM_AARCH64 183
  ppc64le: '0201' + '1500', // EM_PPC64 21
  s390x: '0202' + '0016', // ELFDATA2MSB, EM_S390 22
} as const;

/** Bytes 4-5 and 18-19 of an ELF file, in hex, to compare with HOST_ELF; throws on a non-ELF. */
export function hostElfBytes(file: Buffer): string {
  if (file.length < 20 || file.toString('latin1', 0, 4) !== '\x7fELF') throw new Error('not an ELF file');
  return file.subarray(4, 6).toString('hex') + file.subarray(18, 20).toString('hex');
}
