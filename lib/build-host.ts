// What one build host gets: the files to copy there over SSH and the shell strings that
// register, re-register and unregister its binfmt_misc entries. The plan itself is pure;
// writeRegisterScript and stageUpload write the files it names into the cache. The component
// turns the plan into remote.CopyToRemote and remote.Command resources, and the system test
// runs the very same strings over ssh.
//
// Layout on the build host (every path below is fixed here, and quoted wherever used):
//   ~/.polyarch-<sha16>/          one upload per host and set of files (one CopyToRemote of a
//                                 folder: one SSH connection, not one per emulator), as the
//                                 SSH user, straight into the home folder so no parent folder
//                                 has to exist; consumed by the register command
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
//
// Drift. The command plugin cannot read a host back, so BinfmtCheck (components/binfmt-check.ts)
// does: `expected` below is what a healthy registration looks like, observeScript reads it
// over SSH and compareObservation says what is missing. A refresh that finds drift counts a
// repair; the repair count is part of the update string (withRepair), so the next `up` runs the
// update, which re-registers in place (same folder, no replacement, no claim to lose).
import fs from 'node:fs/promises';
import path from 'node:path';
import { BINFMT_MISC as BINFMT, formatLine, parseProcEntry, registerLine } from './binfmt.ts';
import { runsNatively, targetsFor, type Cpu } from './cpus.ts';
import type { StackConfig } from './config.ts';
import type { HostEmulators } from './emulators.ts';
import { emulatorFile } from './extract.ts';
import { hashStamped } from './known-digests.ts';
import { copyNew, makeStage, publishStage, removeStage, sweepStages, sweepTemps, writeError, writeWhole } from './out-dir.ts';
import { generateRegisterScript } from './register-script.ts';
import { sha256 } from './digest.ts';
import { UserError } from './user-error.ts';

export type BuildHost = StackConfig['buildHosts'][number];

/** Where the register script writes persistent entries, read by systemd-binfmt at boot. */
export const PERSIST_DIR = '/etc/binfmt.d';
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
  /** Upload path, relative to the SSH user's home (where SFTP starts): `<upload>/<name>`. */
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
  /** The upload folder, `.polyarch-<sha16 of the files>`: its name in the home folder and in the local stage. */
  upload: string;
  /** What a healthy registration looks like on the host, for BinfmtCheck. */
  expected: ExpectedHost;
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
  if (native.length > 0) throw new UserError(`build host "${b.name}" (${b.arch}) runs ${native.map((c) => c.name).join(', ')} natively; leave them out of its targets`);
  const missing = cpus.filter((c) => !published.has(c.emulator));
  if (missing.length > 0) {
    throw new UserError(`build host "${b.name}" targets ${missing.map((c) => c.name).join(', ')}, but the stack publishes no such emulator for ${b.arch} (published: ${[...published].join(', ') || 'none'})`);
  }
  return cpus;
}

/** Plans one build host from its config, every host's extracted emulators and the register script. */
export function planBuildHost(b: BuildHost, hostEmulators: readonly HostEmulators[], script: RegisterScriptFile): BuildHostPlan {
  const emulators = hostEmulators.find((h) => h.host === b.arch);
  if (!emulators) throw new UserError(`build host "${b.name}" is ${b.arch}, but no emulators were extracted for ${b.arch} (add it to hosts)`);
  const cpus = hostTargets(b, emulators);
  if (cpus.length === 0) throw new UserError(`build host "${b.name}" has no targets to register`);

  const wanted = new Set(cpus.map((c) => c.emulator));
  const contents = available(b, emulators)
    .filter((e) => wanted.has(e.cpu))
    .map((e) => ({ name: emulatorFile(e.cpu), local: path.join(emulators.dir, e.file), sha256: e.sha256 }));
  contents.push({ name: SCRIPT, local: script.path, sha256: script.sha256 });
  const upload = `.polyarch-${sha256(JSON.stringify(contents.map((f) => [f.name, f.sha256]))).slice(0, 16)}`;
  const files: RemoteFile[] = contents.map((f) => ({ ...f, remote: `${upload}/${f.name}` }));

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
    `upload=${shellQuote(upload)}`,
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

  // The register script writes each binfmt.d file as the entry's line and a newline.
  const lines = cpus.map((c) => ({ name: `qemu-${c.name}`, line: registerLine(c, { path: folder, flags: b.flags }) }));
  const expected: ExpectedHost = {
    entries: lines,
    files: files.map((f) => ({ path: `${folder}/${f.name}`, sha256: f.sha256 })),
    confs: b.persist ? lines.map((e) => ({ path: `${PERSIST_DIR}/${e.name}.conf`, text: `${e.line}\n` })) : [],
  };

  return {
    host: b.name,
    key,
    folder,
    targets,
    entries: entries.map((e) => e.name),
    files,
    upload,
    expected,
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
  rm -rf "\${home:?}/$upload"
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

/** What a healthy registration looks like on its build host. */
export interface ExpectedHost {
  /** Each binfmt_misc entry and the register line it was made from. */
  entries: { name: string; line: string }[];
  /** Each file in the registration folder and its sha256. */
  files: { path: string; sha256: string }[];
  /** With persistence, each binfmt.d file and its text. */
  confs: { path: string; text: string }[];
}

/** What a check found missing or changed; `files` says whether the uploads are needed again. */
export interface Drift {
  problems: string[];
  files: boolean;
}

const END = '@polyarch-end';

/**
 * A POSIX sh script that prints every entry, file digest and binfmt.d file of `expected`,
 * each after a marker line. It only reads; observeCommand says as which user.
 */
export function observeScript(expected: ExpectedHost): string {
  const lines = ['LC_ALL=C; export LC_ALL'];
  for (const e of expected.entries) lines.push(`echo ${shellQuote(`@entry ${e.name}`)}; cat ${shellQuote(`${BINFMT}/${e.name}`)} 2>/dev/null`);
  // One sha256sum for every file: a missing file is left out of its output, not an error here.
  lines.push(`echo @files; sha256sum ${expected.files.map((f) => shellQuote(f.path)).join(' ')} 2>/dev/null`);
  for (const c of expected.confs) lines.push(`echo ${shellQuote(`@conf ${c.path}`)}; cat ${shellQuote(c.path)} 2>/dev/null`);
  lines.push(`echo ${END}`);
  return lines.join('\n');
}

/**
 * The SSH exec string that runs observeScript: through sudo for a host whose user registers
 * through sudo, since the emulator folder's parents need not be readable by that user.
 */
export function observeCommand(expected: ExpectedHost, sudo: boolean): string {
  const script = shellQuote(observeScript(expected));
  return sudo ? `sudo -n sh -c ${script}` : `sh -c ${script}`;
}

/** Compares observeScript's output with `expected`; throws on output that is not its own. */
export function compareObservation(expected: ExpectedHost, output: string): Drift {
  if (!output.trimEnd().endsWith(END)) throw new Error(`the host's answer is incomplete (no ${END} line): ${JSON.stringify(output.slice(-200))}`);
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split('\n')) {
    if (line.startsWith('@entry ') || line === '@files' || line.startsWith('@conf ')) sections.set(line, (current = []));
    else if (line !== END) current?.push(line);
  }
  const problems: string[] = [];
  for (const e of expected.entries) {
    const text = (sections.get(`@entry ${e.name}`) ?? []).join('\n');
    if (text.trim() === '') {
      problems.push(`${e.name} is not registered`);
      continue;
    }
    let got;
    try {
      got = parseProcEntry(e.name, `${text}\n`);
    } catch {
      problems.push(`${e.name} cannot be read`);
      continue;
    }
    // /proc reads back as the register line it was made from (test/system/register.test.ts).
    if (!got.enabled) problems.push(`${e.name} is disabled`);
    else if (formatLine(got) !== e.line) problems.push(`${e.name} is not the planned entry (now ${formatLine(got)})`);
  }
  const digests = new Map<string, string>();
  for (const line of sections.get('@files') ?? []) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) digests.set(m[2]!, m[1]!);
  }
  let files = false;
  for (const f of expected.files) {
    const got = digests.get(f.path);
    if (got === f.sha256) continue;
    files = true;
    problems.push(got === undefined ? `${f.path} is missing` : `${f.path} has other bytes`);
  }
  for (const c of expected.confs) {
    const text = sections.get(`@conf ${c.path}`)?.join('\n') ?? '';
    if (`${text.replace(/\n+$/, '')}\n` !== c.text) problems.push(text.trim() === '' ? `${c.path} is missing` : `${c.path} differs`);
  }
  return { problems, files };
}

/** The update string after `repairs` repairs: a changed input, so Pulumi runs the update again. */
export function withRepair(command: string, repairs: number): string {
  return repairs > 0 ? `# polyarch repair ${repairs}\n${command}` : command;
}

/**
 * The local copy of the plan's upload folder, `<dir>/<upload>`: copies of the emulators and the
 * script, each checked against the plan's digest, made in a stage and renamed into place whole.
 */
export async function stageUpload(plan: BuildHostPlan, dir: string): Promise<string> {
  const target = path.join(dir, plan.upload);
  // A folder of the right names is not enough: it is in the cache too, and a byte changed there
  // would go to every host. Each file must hash to the plan's digest (known stamps skip the hash).
  const complete = async () => {
    const names = await fs.readdir(target).catch(() => undefined);
    if (!names || names.length !== plan.files.length) return undefined;
    for (const f of plan.files) {
      const file = path.join(target, f.name);
      const st = await fs.lstat(file).catch(() => undefined);
      if (!st?.isFile() || (await hashStamped(file)).sha256 !== f.sha256) return undefined;
    }
    return target;
  };
  if (await complete()) return target;
  await fs.mkdir(dir, { recursive: true }).catch((e: unknown) => {
    throw writeError(e, dir, plan.upload);
  });
  await sweepStages(dir, '.stage-');
  const stage = await makeStage(dir, '.stage-');
  try {
    // Copies, not hard links into the emulator cache: a write to one must not reach the other
    // (and a link would change the extraction's stamp). Each copy is checked against the plan,
    // which has its digests from the extraction: what goes to a host is what the RPMs hold.
    for (const f of plan.files) {
      const to = path.join(stage, f.name);
      await copyNew(f.local, to);
      const got = (await hashStamped(to)).sha256;
      if (got !== f.sha256) throw new Error(`${f.local}: sha256 ${got}, expected ${f.sha256} (changed since it was extracted); run again`);
    }
    return await publishStage(stage, target, target, complete, 'upload folder');
  } finally {
    await removeStage(stage);
  }
}
