// What binfmt_misc holds for QEMU on one machine, as data: the qemu-* entries and the CPUs
// the machine runs natively. One shape for the register script's `--list --json` and
// `polyarch binfmt status --json`, so CI steps can read either.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as z from 'zod/mini';
import { BINFMT_MISC, parseProcEntry, type ProcEntry } from './binfmt.ts';
import { CPUS, entryPlatform, hostFamily } from './cpus.ts';
import './schema.ts';

const hex = z.string().check(z.regex(/^(?:[0-9a-f]{2})*$/));

export const BinfmtStatusEntry = z.strictObject({
  /** The entry's name, `qemu-<cpu>`. */
  name: z.string(),
  enabled: z.boolean(),
  interpreter: z.string(),
  /** In the kernel's order (P, O, C, F); empty for none. */
  flags: z.string().check(z.regex(/^P?O?C?F?$/)),
  offset: z.int().check(z.nonnegative()),
  /** Lowercase hex, as /proc prints it. */
  magic: hex,
  /** Lowercase hex; empty when the entry was registered without a mask. */
  mask: hex,
  /**
   * The OCI platform the entry lets the machine run (`linux/arm64`), from the CPU table; null for
   * a CPU without one and for an entry of no table CPU. Last: added to the shape, nothing moved.
   */
  platform: z.nullable(z.string()),
});

export const BinfmtStatus = z.strictObject({
  /** `uname -m`, or $HOST_ARCH when set (as the register script reads it). */
  machine: z.string(),
  /** The CPU family that machine runs natively (lib/cpus.ts). */
  family: z.string(),
  /** The table's CPUs of that family, in table order: no entry is needed for them. */
  native: z.array(z.string()),
  /** Every qemu-* magic entry, by name in byte order. */
  entries: z.array(BinfmtStatusEntry),
  /** qemu-* entries that are not magic entries with printable values (e.g. extension entries), by name. */
  other: z.array(z.string()),
});
export type BinfmtStatus = z.infer<typeof BinfmtStatus>;
export type BinfmtStatusEntry = z.infer<typeof BinfmtStatusEntry>;


/** Names the script can print as JSON strings without escapes beyond \" and \\. */
const PRINTABLE = /^[\x21-\x7e]+$/;

/** The machine as the register script sees it. */
export function currentMachine(): string {
  return process.env.HOST_ARCH || os.machine();
}

/** The table's CPUs that `machine` runs natively (its family), in table order. */
export function nativeCpus(machine: string): string[] {
  const family = hostFamily(machine);
  return CPUS.filter((c) => c.family === family).map((c) => c.name);
}

/** Reads the qemu-* entries under `dir` (binfmt_misc) into the status shape. */
export function readBinfmtStatus(dir = BINFMT_MISC, machine = currentMachine()): BinfmtStatus {
  if (!fs.existsSync(path.join(dir, 'register'))) throw new Error(`binfmt_misc is not mounted at ${dir}`);
  const names = fs.readdirSync(dir).filter((n) => n.startsWith('qemu-') && PRINTABLE.test(n));
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const entries: BinfmtStatusEntry[] = [];
  const other: string[] = [];
  for (const name of names) {
    let e: ProcEntry;
    try {
      e = parseProcEntry(name, fs.readFileSync(path.join(dir, name), 'utf8'));
    } catch {
      other.push(name);
      continue;
    }
    if (e.type !== 'M') other.push(name);
    else entries.push({ name, enabled: e.enabled, interpreter: e.interpreter, flags: e.flags, offset: e.offset, magic: e.magic, mask: e.mask, platform: entryPlatform(name) });
  }
  return BinfmtStatus.parse({ machine, family: hostFamily(machine), native: nativeCpus(machine), entries, other });
}
