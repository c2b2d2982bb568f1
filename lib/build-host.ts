// What one build host gets: the files to copy there over SSH and the shell strings that
// register, re-register and unregister its binfmt_misc entries. Pure: the component turns
// this into remote.CopyToRemote and remote.Command resources, and the system test runs the
// very same strings over ssh.
//
// Layout on the build host (every path below is fixed here, and quoted wherever used):
//   ~/.polyarch-<file>.<sha16>    uploads (CopyToRemote, as the SSH user, straight into the
//                                 home folder so no parent folder has to exist); consumed
//                                 by the register command
//   <emulatorDir>/<key>/          root-owned copy of the emulators and the register script,
//                                 one folder per registration; the entries point here
//   <emulatorDir>/<key>/claims    how many registrations hold this folder
//   /etc/binfmt.d/qemu-<cpu>.conf with persistence on, so systemd-binfmt restores the entries
//
// Replacement. A change to the emulators, the script, the flags or persistence is a new
// registration key, so Pulumi replaces the command: it runs the new create, then the old
// (stored) delete. The new create re-registers every entry with the new folder; the old
// delete only removes entries and binfmt.d files whose interpreter is in its own folder,
// so it cannot touch the new ones. A replacement with nothing changed (`pulumi up
// --replace`) has the same key: every create takes a claim on the folder and every delete
// gives one back, and only the last one removes anything.
import fs from 'node:fs/promises';
import path from 'node:path';
import { runsNatively, targetsFor, type Cpu } from './cpus.ts';
import type { StackConfig } from './config.ts';
import type { HostEmulators } from './emulators.ts';
import { emulatorFile } from './extract.ts';
import { sweepTemps, writeError, writeWhole } from './out-dir.ts';
import { generateRegisterScript } from './register-script.ts';
import { sha256 } from './digest.ts';

export type BuildHost = StackConfig['buildHosts'][number];

/** Where the register script writes persistent entries, read by systemd-binfmt at boot. */
export const PERSIST_DIR = '/etc/binfmt.d';
const BINFMT = '/proc/sys/fs/binfmt_misc';
const SCRIPT = 'register';

/** The register script as a local file, named by its digest. */
export interface RegisterScriptFile {
  path: string;
  sha256: string;
}

/** One file copied to the build host. */
export interface RemoteFile {
  /** Its name in the registration folder: `qemu-<cpu>-static` or `register`. */
  name: string;
  /** Local path (the extracted emulator, or the generated script). */
  local: string;
  /** Upload path, relative to the SSH user's home (where SFTP starts). */
  remote: string;
  sha256: string;
}

export interface BuildHostPlan {
  host: string;
  /** Digest of everything the registration puts on the host; names its folder. */
  key: string;
  /** `<emulatorDir>/<key>`: the emulators and the script the entries use. */
  folder: string;
  /** CPU names for the register script's --targets. */
  targets: string[];
  /** The binfmt_misc entries registered, `qemu-<cpu>`. */
  entries: string[];
  files: RemoteFile[];
  /** A change to any of these replaces the registration (see the note at the top). */
  triggers: string[];
  create: string;
  update: string;
  delete: string;
}


/** Single-quotes `s` for a POSIX shell: nothing inside is expanded. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Writes the register script once per content into `dir`; returns its path and digest. */
export async function writeRegisterScript(dir: string): Promise<RegisterScriptFile> {
  const text = generateRegisterScript();
  const digest = sha256(text);
  const file = path.resolve(dir, `${SCRIPT}-${digest.slice(0, 16)}`);
  const existing = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (existing !== text) {
    await fs.mkdir(dir, { recursive: true }).catch((e: unknown) => {
      throw writeError(e, dir, path.basename(file));
    });
    // Temps of runs that were killed before their rename; this run's own is removed on failure.
    await sweepTemps(dir);
    await writeWhole(file, text, { mode: 0o755 });
  }
  return { path: file, sha256: digest };
}

/** The register script's options for binfmt flags (already validated: O comes with C). */
export function registerFlags(flags: string, ignoreFamily = false): string[] {
  const yn = (f: string) => (flags.includes(f) ? 'yes' : 'no');
  // --ignore-family only when set, so the commands of existing hosts stay as they were.
  return ['--persistent', yn('F'), '--credential', yn('C'), '--preserve-argv0', yn('P'), ...(ignoreFamily ? ['--ignore-family', 'yes'] : [])];
}

/**
 * The emulators a build host may get: those published for its arch and, with ignoreFamily,
 * its own family's that the release and images leave out.
 */
function available(b: BuildHost, emulators: HostEmulators): HostEmulators['emulators'] {
  const all = [...emulators.emulators, ...(b.ignoreFamily ? (emulators.ownFamily ?? []) : [])];
  return all.sort((x, y) => (x.cpu < y.cpu ? -1 : x.cpu > y.cpu ? 1 : 0));
}

/** The CPUs this build host registers: its targets (default: everything published for its arch). */
function hostTargets(b: BuildHost, emulators: HostEmulators): Cpu[] {
  const published = new Set(available(b, emulators).map((e) => e.cpu));
  if (!b.targets || b.targets.includes('all')) return targetsFor(b.arch, 'all', { ignoreFamily: b.ignoreFamily }).filter((c) => published.has(c.emulator));
  const cpus = targetsFor(b.arch, b.targets);
  const native = cpus.filter((c) => runsNatively(b.arch, c, b.ignoreFamily));
  if (native.length > 0) throw new Error(`build host "${b.name}" (${b.arch}) runs ${native.map((c) => c.name).join(', ')} natively; leave them out of its targets`);
  const missing = cpus.filter((c) => !published.has(c.emulator));
  if (missing.length > 0) {
    throw new Error(`build host "${b.name}" targets ${missing.map((c) => c.name).join(', ')}, but the stack publishes no such emulator for ${b.arch} (published: ${[...published].join(', ') || 'none'})`);
  }
  return cpus;
}

/** Plans one build host from its config, every host's extracted emulators and the register script. */
export function planBuildHost(b: BuildHost, hostEmulators: readonly HostEmulators[], script: RegisterScriptFile): BuildHostPlan {
  const emulators = hostEmulators.find((h) => h.host === b.arch);
  if (!emulators) throw new Error(`build host "${b.name}" is ${b.arch}, but no emulators were extracted for ${b.arch} (add it to hosts)`);
  const cpus = hostTargets(b, emulators);
  if (cpus.length === 0) throw new Error(`build host "${b.name}" has no targets to register`);

  const wanted = new Set(cpus.map((c) => c.emulator));
  const upload = (name: string, digest: string) => `.polyarch-${name}.${digest.slice(0, 16)}`;
  const files: RemoteFile[] = available(b, emulators)
    .filter((e) => wanted.has(e.cpu))
    .map((e) => ({ name: emulatorFile(e.cpu), local: path.join(emulators.dir, e.file), remote: upload(emulatorFile(e.cpu), e.sha256), sha256: e.sha256 }));
  files.push({ name: SCRIPT, local: script.path, remote: upload(SCRIPT, script.sha256), sha256: script.sha256 });

  const targets = cpus.map((c) => c.name);
  const key = sha256(JSON.stringify({ arch: b.arch, targets, files: files.map((f) => [f.name, f.sha256]), flags: b.flags, persist: b.persist, ...(b.ignoreFamily && { ignoreFamily: true }) })).slice(0, 16);
  const folder = `${b.emulatorDir}/${key}`;
  const entries = cpus.map((c) => ({ name: `qemu-${c.name}`, file: emulatorFile(c.emulator) }));

  const common = [
    `host=${shellQuote(b.name)}`,
    `dir=${shellQuote(b.emulatorDir)}`,
    `folder=${shellQuote(folder)}`,
    // The SSH user's home, passed by the login shell (sudo resets HOME): the uploads are there.
    'home=$1',
    `uploads=${shellQuote(files.map((f) => f.remote).join(' '))}`,
  ];
  const register = (mode: 'create' | 'update') =>
    wrap(b, [
      ...common,
      `mode=${mode}`,
      `arch=${shellQuote(b.arch)}`,
      `files=${shellQuote(files.map((f) => `${f.name}:${f.sha256}:${f.remote}`).join(' '))}`,
      `targets=${shellQuote(targets.join(','))}`,
      `options=${shellQuote([...registerFlags(b.flags, b.ignoreFamily), ...(b.persist ? ['--persist-dir', PERSIST_DIR] : [])].join(' '))}`,
      REGISTER_BODY,
    ]);
  const unregister = wrap(b, [
    ...common,
    `entries=${shellQuote(entries.map((e) => `${e.name}:${e.file}`).join(' '))}`,
    `persist_dir=${shellQuote(PERSIST_DIR)}`,
    UNREGISTER_BODY,
  ]);

  return {
    host: b.name,
    key,
    folder,
    targets,
    entries: entries.map((e) => e.name),
    files,
    triggers: [
      `address=${b.address}:${b.port}`,
      `arch=${b.arch}`,
      `folder=${folder}`,
      `flags=${b.flags}`,
      `persist=${b.persist}`,
      `targets=${targets.join(',')}`,
      ...files.map((f) => `${f.name}=${f.sha256}`),
    ],
    create: register('create'),
    update: register('update'),
    delete: unregister,
  };
}

/** The command line for the SSH session: the script as root, through sudo when configured. */
function wrap(b: BuildHost, lines: string[]): string {
  const script = shellQuote(`${lines.join('\n')}\n`);
  if (!b.sudo) return `sh -c ${script} polyarch "$HOME"`;
  const refuse = shellQuote(`polyarch: build host ${b.name}: user ${b.user} cannot run sudo without a password (sudo -n)`);
  return `sudo -n true 2>/dev/null || { echo ${refuse} >&2; exit 1; }; sudo -n sh -c ${script} polyarch "$HOME"`;
}

// Shared by both scripts: messages name the build host; root is required.
const PRELUDE = `set -u
say() { printf 'polyarch: %s: %s\\n' "$host" "$*"; }
fail() { printf 'polyarch: build host %s: %s\\n' "$host" "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root: log in as root, or set sudo: true for a user with passwordless sudo"

# The folder's claim count: one per create that has not been deleted yet.
read_claims() {
  claims=0
  [ -f "$folder/claims" ] && read -r claims <"$folder/claims"
  case $claims in '' | *[!0-9]*) claims=0 ;; esac
}
write_claims() {
  { printf '%s\\n' "$1" >"$folder/.claims.part" && mv -f "$folder/.claims.part" "$folder/claims"; } ||
    fail "cannot write $folder/claims"
}
drop_uploads() {
  for u in $uploads; do rm -f "$home/$u"; done
}
`;

// create and update: install the emulators and the script into the registration folder
// (root-owned, each checked against its digest), register, take a claim, drop the uploads.
const REGISTER_BODY = `${PRELUDE}
machine=$(uname -m)
[ "$machine" = "$arch" ] || fail "this machine is $machine, but the stack config says arch $arch"
command -v sha256sum >/dev/null 2>&1 || fail "needs sha256sum (coreutils or busybox)"
umask 022
mkdir -p "$folder" || fail "cannot create $folder"

digest() { sha256sum "$1" 2>/dev/null | cut -d ' ' -f 1; }

# Puts $1 (sha256 $2) into the folder, from its upload ($3) or from another registration's
# folder with the same bytes; the copy is checked, never the source.
put() {
  [ -f "$folder/$1" ] && [ "$(digest "$folder/$1")" = "$2" ] && return 0
  for src in "$home/$3" "$dir"/*/"$1"; do
    [ -f "$src" ] || continue
    cp -f "$src" "$folder/.$1.part" || fail "cannot copy $src to $folder"
    if [ "$(digest "$folder/.$1.part")" = "$2" ]; then
      { chmod 755 "$folder/.$1.part" && mv -f "$folder/.$1.part" "$folder/$1"; } || fail "cannot install $folder/$1"
      return 0
    fi
    rm -f "$folder/.$1.part"
  done
  fail "no copy of $1 with sha256 $2: the upload $home/$3 is missing or damaged (copy it again: pulumi up --replace on this host's copy resources)"
}

for f in $files; do
  name=\${f%%:*}
  rest=\${f#*:}
  put "$name" "\${rest%%:*}" "\${rest#*:}"
done

# Word splitting of $options is intended: fixed option words without spaces.
# shellcheck disable=SC2086
sh "$folder/register" --qemu-path "$folder" --targets "$targets" $options ||
  fail "the register script failed (exit $?)"

read_claims
if [ "$mode" = create ]; then
  claims=$((claims + 1))
elif [ "$claims" = 0 ]; then
  claims=1
fi
write_claims "$claims"
drop_uploads
say "$mode: registered from $folder (claims: $claims)"
`;

// delete: give back a claim; the last one removes the entries and binfmt.d files whose
// interpreter is in this registration's folder (nothing else), then the folder.
const UNREGISTER_BODY = `${PRELUDE}
BINFMT=${BINFMT}
drop_uploads
if [ ! -d "$folder" ]; then
  say "nothing to remove: $folder does not exist"
  exit 0
fi
read_claims
if [ "$claims" -gt 1 ]; then
  write_claims $((claims - 1))
  say "kept $folder: a newer registration with the same content holds it"
  exit 0
fi
status=0
for e in $entries; do
  name=\${e%%:*}
  interp=$folder/\${e#*:}
  if [ -f "$BINFMT/$name" ] && grep -qxF "interpreter $interp" "$BINFMT/$name"; then
    if printf '%s\\n' -1 2>/dev/null >"$BINFMT/$name"; then
      say "removed $name"
    else
      printf 'polyarch: build host %s: cannot remove %s\\n' "$host" "$name" >&2
      status=1
    fi
  fi
  conf=$persist_dir/$name.conf
  if [ -f "$conf" ] && grep -qF ":$interp:" "$conf"; then
    if rm -f "$conf"; then say "removed $conf"; else status=1; fi
  fi
done
[ "$status" = 0 ] || fail "could not remove every entry; kept $folder"
rm -rf "$folder" || fail "cannot remove $folder"
rmdir "$dir" 2>/dev/null
say "unregistered; removed $folder"
`;
