#!/bin/sh
# register: let this kernel run foreign Linux binaries through QEMU user-mode emulators
# (binfmt_misc). POSIX sh for busybox ash and dash. Arguments are only compared with the CPU
# table or checked against a strict character set; nothing here evaluates user input.
#
# This is lib/register.sh, the script without its CPU table. polyarch generates the table
# from lib/cpus.ts as a header (lib/register-script.ts) and puts it right below the #! line;
# polyarch binfmt script prints the result. The header sets ALL_TARGETS, DEFAULT_TARGETS,
# the EXIT_* codes and the HELP_* texts, and defines cpu_info, canonical, uname_cpu,
# native_cpus, entry_platform and host_family.

BINFMT=/proc/sys/fs/binfmt_misc
# Byte-wise globs and character classes: --list orders entries and checks values the same
# everywhere.
LC_ALL=C
export LC_ALL
# What the header's functions set, so that this file reads whole on its own too.
emu='' fam='' off='' magic='' mask='' head='' cpu='' native='' host_fam='' platform=''

# Unquoted here-document for the header's texts: any other $ or \ in it must be escaped.
usage() {
  cat <<EOF
Usage: register [--reset] [-p yes|no] [-c yes|no] [-g yes|no] [-i yes|no]
                [--qemu-path DIR] [--qemu-suffix SUFFIX] [--targets LIST]
                [--install-dir DIR] [--persist-dir DIR]
       register --uninstall [LIST] [--install-dir DIR] [--persist-dir DIR]
       register --list [--json]
       register --help

Registers QEMU user-mode emulators with the kernel's binfmt_misc so that binaries for
other CPUs run transparently. Mounts binfmt_misc when it is not mounted yet. CPUs of
this machine's own family (by uname -m, or \$HOST_ARCH when set) are skipped. Running
it again is safe: an equal entry is left alone, a changed one is replaced.

Options:
  --reset                  first remove every registered qemu-* entry (and nothing else)
  -p, --persistent yes|no  flag F: the kernel opens the emulator now, so it also works in
                           containers and chroots; only emulators that exist are registered
                           (CPUs named with --targets are tried, and a refusal explained)
  -c, --credential yes|no  flags O and C: run setuid binaries with their credentials
  -g, --preserve-argv0 yes|no
                           flag P: pass the original argv[0] (the emulator must support it)
  -i, --ignore-family yes|no
                           yes: skip only this machine's own CPU, not its whole family
                           (e.g. register riscv32 on riscv64, i386 on x86_64), as QEMU's
                           qemu-binfmt-conf.sh --ignore-family does
  --qemu-path DIR          where the emulators are (default /usr/bin); with --install-dir,
                           where they are copied from
  --qemu-suffix SUFFIX     emulator name suffix (default -static): DIR/qemu-CPU-static
  --targets LIST           CPUs to register, comma-separated, or "all" (the default: every
                           CPU below$HELP_RETIRED)
  --uninstall [LIST]       remove the entries for LIST (default: every CPU below)
  --list                   show the registered qemu-* entries: name, state, flags, emulator
  --json                   with --list: one JSON document instead, with every entry's name,
                           enabled, interpreter, flags, offset, magic, mask and OCI platform
                           (e.g. linux/arm64; null when the CPU has none), and the machine,
                           its family and the CPUs it runs natively (the shape of polyarch
                           binfmt status --json)
  --install-dir DIR        copy every emulator registered into DIR (mode 0755, replaced
                           whole, left alone when DIR holds the same bytes) and point the
                           entries and the --persist-dir files at DIR/qemu-CPU-static; with
                           --uninstall, remove those copies. In a container, mount the host's
                           DIR at the same path DIR, so that path also works on the host
                           after a reboot (e.g. /usr/local/lib/qemu-static)
  --persist-dir DIR        also write DIR/qemu-CPU.conf (binfmt.d format, e.g. /etc/binfmt.d)
                           for every entry registered, or remove them with --uninstall
  -h, --help               show this help

CPUs$HELP_ALIASES:
$HELP_CPUS

Exit codes:
  $EXIT_OK  success
  $EXIT_USAGE  bad arguments (unknown option, value or CPU)
  $EXIT_NO_BINFMT  binfmt_misc is unavailable (no kernel support, cannot mount, not root)
  $EXIT_REFUSED  the kernel refused an entry, or one could not be removed (message says why)
  $EXIT_PERSIST  a --persist-dir file could not be written or removed
  $EXIT_INSTALL  an emulator could not be copied into --install-dir or removed from it
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'register: %s\n' "$*" >&2; }
die() { code=$1; shift; warn "error: $*"; exit "$code"; }
usage_error() { warn "error: $*"; warn "try: register --help"; exit "$EXIT_USAGE"; }

# Sets host_emu to the emulator this machine's own CPU would need (its uname -m when the
# table has no such CPU).
host_emulator() {
  canonical "$1" || uname_cpu "$1"
  if [ -n "$cpu" ] && cpu_info "$cpu"; then host_emu=$emu; else host_emu=$1; fi
}

yes_no() {
  case $2 in
  yes | no) ;;
  *) usage_error "$1 takes yes or no, not \"$2\"" ;;
  esac
}

# Splits a comma/space separated LIST ($1) into canonical CPU names in $list, without
# globbing; "all" stands for the CPUs in $2.
resolve_list() {
  list=
  old_ifs=$IFS
  IFS=', '
  set -f
  for t in $1; do
    if [ -z "$t" ]; then
      continue
    elif [ "$t" = all ]; then
      for c in $2; do add_target "$c"; done
    elif canonical "$t"; then
      add_target "$cpu"
    else
      set +f
      IFS=$old_ifs
      usage_error "unknown CPU \"$t\" (valid: $ALL_TARGETS)"
    fi
  done
  set +f
  IFS=$old_ifs
  [ -n "$list" ] || usage_error "empty CPU list"
}

add_target() {
  case " $list " in
  *" $1 "*) ;;
  *) list="${list:+$list }$1" ;;
  esac
}

check_chars() { # what value allowed-pattern-description
  case $2 in
  '' | *[!A-Za-z0-9._/+-]*) usage_error "$1 \"$2\" must be non-empty and use only letters, digits and . _ / + -" ;;
  esac
  [ ${#2} -le 512 ] || usage_error "$1 is longer than 512 characters"
}

# binfmt_misc: mounted, or mount it, or say plainly why not.
has_binfmt_fs() {
  while read -r a b; do
    [ "$a" = binfmt_misc ] || [ "$b" = binfmt_misc ] && return 0
  done </proc/filesystems
  return 1
}

ensure_binfmt() {
  [ -e "$BINFMT/register" ] && return 0
  if ! has_binfmt_fs && command -v modprobe >/dev/null 2>&1; then
    modprobe binfmt_misc >/dev/null 2>&1
  fi
  has_binfmt_fs || die "$EXIT_NO_BINFMT" "this kernel has no binfmt_misc support (it is not in /proc/filesystems), so it cannot run foreign binaries through QEMU"
  [ -d "$BINFMT" ] || die "$EXIT_NO_BINFMT" "$BINFMT does not exist (is /proc mounted?)"
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
    die "$EXIT_NO_BINFMT" "cannot mount binfmt_misc on $BINFMT (this needs root; in a container, run it with --privileged)"
  if [ "$JSON" = yes ]; then warn "mounted binfmt_misc on $BINFMT"; else say "mounted binfmt_misc on $BINFMT"; fi
}

need_writable() {
  [ -w "$BINFMT/register" ] ||
    die "$EXIT_NO_BINFMT" "$BINFMT/register is not writable (this needs root; in a container, run it with --privileged)"
}

# Reads an entry file into e_state e_interp e_flags e_off e_magic e_mask; fails on anything unexpected.
read_entry() {
  e_state='' e_interp='' e_flags='' e_off=0 e_magic='' e_mask=''
  while IFS= read -r l; do
    case $l in
    enabled | disabled) e_state=$l ;;
    'interpreter '*) e_interp=${l#interpreter } ;;
    'flags:'*)
      e_flags=${l#flags:}
      e_flags=${e_flags# }
      ;;
    'offset '*) e_off=${l#offset } ;;
    'magic '*) e_magic=${l#magic } ;;
    'mask '*) e_mask=${l#mask } ;;
    *) return 1 ;;
    esac
  done <"$1" || return 1
  [ -n "$e_state" ] && [ -n "$e_magic" ]
}

# \xHH escapes for a hex string, with builtins only.
hex_escape() {
  h=$1 esc=''
  while [ -n "$h" ]; do
    rest=${h#??}
    esc="$esc\\x${h%"$rest"}"
    h=$rest
  done
}

remove_entry() { # name
  printf '%s\n' -1 2>/dev/null >"$BINFMT/$1"
}

# Puts the entry read by read_entry back under name $1 (after a failed replacement).
restore_entry() {
  hex_escape "$e_magic"
  old_magic=$esc
  hex_escape "$e_mask"
  old_off=$e_off
  [ "$old_off" = 0 ] && old_off=
  if printf '%s\n' ":$1:M:$old_off:$old_magic:$esc:$e_interp:$e_flags" 2>/dev/null >"$BINFMT/register"; then
    warn "kept the previous $1 entry"
  else
    warn "error: could not restore the previous $1 entry"
  fi
}

flag_meaning() {
  case $1 in
  P) meaning="preserve-argv0 (-g yes)" ;;
  O) meaning="open-binary (-c yes)" ;;
  C) meaning="credentials (-c yes)" ;;
  F) meaning="fix-binary (-p yes), which needs Linux 4.8 or newer" ;;
  esac
}

# The kernel refused $line. Find out whether one flag is the reason by registering the
# same entry without it (and removing that probe again), and say so.
explain_refusal() {
  for f in P O C F; do
    case $FLAGS in *"$f"*) ;; *) continue ;; esac
    without="${FLAGS%%"$f"*}${FLAGS#*"$f"}"
    if printf '%s\n' "$head$interp:$without" 2>/dev/null >"$BINFMT/register"; then
      remove_entry "$name"
      flag_meaning "$f"
      if [ "$f" = F ] && [ ! -e "$interp" ]; then
        warn "error: $name: the kernel refused flag F: fix-binary opens the emulator when registering, and $interp does not exist"
      elif [ "$f" = F ] && { [ ! -f "$interp" ] || [ ! -x "$interp" ]; }; then
        warn "error: $name: the kernel refused flag F: fix-binary opens the emulator when registering, and $interp is not an executable file"
      else
        warn "error: $name: this kernel does not accept flag $f, $meaning; run without it"
      fi
      return
    fi
  done
  warn "error: $name: the kernel refused the entry $line"
}

persist() { # name line
  [ -n "$PERSIST_DIR" ] || return 0
  if ! printf '%s\n' "$2" 2>/dev/null >"$PERSIST_DIR/.$1.conf.tmp" ||
    ! mv -f "$PERSIST_DIR/.$1.conf.tmp" "$PERSIST_DIR/$1.conf"; then
    warn "error: cannot write $PERSIST_DIR/$1.conf"
    status=$EXIT_PERSIST
  fi
}

unpersist() { # name
  [ -n "$PERSIST_DIR" ] && [ -e "$PERSIST_DIR/$1.conf" ] || return 0
  rm -f "$PERSIST_DIR/$1.conf" || {
    warn "error: cannot remove $PERSIST_DIR/$1.conf"
    status=$EXIT_PERSIST
  }
}

# --install-dir: copies emulator $1 to $2 whole (a temporary file beside $2, then mv), so
# the kernel, which may hold the old $2 open (flag F), never sees a half-written file; a $2
# with the same bytes is left alone. Sets fresh=yes when it wrote.
install_emulator() { # from to
  fresh=no
  if [ -f "$2" ] && [ -x "$2" ] && cmp -s -- "$1" "$2" 2>/dev/null; then
    return 0
  fi
  [ ! -d "$2" ] || return 1
  tmp=${2%/*}/.${2##*/}.$$.tmp
  if cp -- "$1" "$tmp" 2>/dev/null && chmod 0755 "$tmp" 2>/dev/null && mv -f -- "$tmp" "$2" 2>/dev/null; then
    fresh=yes
    say "installed $2"
    return 0
  fi
  rm -f -- "$tmp" 2>/dev/null
  return 1
}

# Sets user to a registered entry (any name) whose emulator is $1; fails when there is none.
in_use() {
  for e in "$BINFMT"/*; do
    case ${e##*/} in register | status) continue ;; esac
    if [ -f "$e" ] && read_entry "$e" && [ "$e_interp" = "$1" ]; then
      user=${e##*/}
      return 0
    fi
  done
  return 1
}

# --uninstall --install-dir: removes DIR/qemu-EMULATOR-SUFFIX of every CPU uninstalled, and
# nothing else; one that an entry still registered runs (i386 and i486 share one) is kept.
uninstall_emulators() {
  seen=' '
  for c in $uninstall_targets; do
    cpu_info "$c"
    case $seen in *" $emu "*) continue ;; esac
    seen="$seen$emu "
    f=$INSTALL_DIR/qemu-$emu$QEMU_SUFFIX
    [ -f "$f" ] || [ -L "$f" ] || continue
    if in_use "$f"; then
      say "kept $f: $user still uses it"
    elif rm -f -- "$f" 2>/dev/null && [ ! -e "$f" ] && [ ! -L "$f" ]; then
      say "removed $f"
    else
      warn "error: cannot remove $f"
      status=$EXIT_INSTALL
    fi
  done
}

register_one() { # cpu explicit
  cpu_info "$1"
  name=qemu-$1
  src=$QEMU_DIR/qemu-$emu$QEMU_SUFFIX
  interp=$src
  [ "$INSTALL" = yes ] && interp=$INSTALL_DIR/qemu-$emu$QEMU_SUFFIX
  line=$head$interp:$FLAGS
  if [ ! -f "$src" ] || [ ! -x "$src" ]; then
    if [ "$2" = no ] && { [ "$PERSISTENT" = yes ] || [ "$INSTALL" = yes ]; }; then
      say "skipped $name: no emulator at $src"
      return
    elif [ "$INSTALL" = yes ]; then
      warn "error: $name: cannot install $interp: no emulator at $src"
      status=$EXIT_INSTALL
      return
    fi
  fi
  fresh=no
  if [ "$INSTALL" = yes ] && ! install_emulator "$src" "$interp"; then
    warn "error: $name: cannot copy $src to $interp"
    status=$EXIT_INSTALL
    return
  fi
  action=registered
  had_old=no
  if [ -e "$BINFMT/$name" ]; then
    # A freshly installed emulator is re-registered: with F the kernel still holds the old one.
    if [ "$fresh" = no ] && read_entry "$BINFMT/$name" && [ "$e_state" = enabled ] && [ "$e_interp" = "$interp" ] &&
      [ "$e_flags" = "$FLAGS" ] && [ "$e_off" = "$off" ] && [ "$e_magic" = "$magic" ] && [ "$e_mask" = "$mask" ]; then
      say "unchanged $name"
      persist "$name" "$line"
      return
    fi
    [ -n "$e_magic" ] && had_old=yes
    if ! remove_entry "$name"; then
      warn "error: cannot remove the previous $name entry"
      status=$EXIT_REFUSED
      return
    fi
    action=replaced
  fi
  if printf '%s\n' "$line" 2>/dev/null >"$BINFMT/register"; then
    say "$action $name: $interp${FLAGS:+ (flags $FLAGS)}"
    persist "$name" "$line"
  else
    explain_refusal
    status=$EXIT_REFUSED
    [ "$had_old" = yes ] && restore_entry "$name"
  fi
}

reset_entries() {
  for f in "$BINFMT"/qemu-*; do
    [ -f "$f" ] || continue
    if remove_entry "${f##*/}"; then
      say "removed ${f##*/}"
    else
      warn "error: cannot remove ${f##*/}"
      status=$EXIT_REFUSED
    fi
  done
}

list_entries() {
  for f in "$BINFMT"/qemu-*; do
    [ -f "$f" ] || continue
    if read_entry "$f"; then
      say "${f##*/} $e_state ${e_flags:--} $e_interp"
    else
      say "${f##*/} unreadable"
    fi
  done
}

# Fails unless $1 is printable ASCII without space, ":" or "\" (as lib/binfmt.ts requires).
printable() {
  case $1 in
  '' | *[![:graph:]]* | *:* | *\\*) return 1 ;;
  esac
}

# Sets js to $1 as the inside of a JSON string (in printable values only " needs escaping).
json_str() {
  v=$1 js=''
  while :; do
    case $v in
    *\"*)
      js=$js${v%%\"*}'\"'
      v=${v#*\"}
      ;;
    *)
      js=$js$v
      return
      ;;
    esac
  done
}

# --list --json: the status shape of lib/binfmt-status.ts, entries in byte order of name.
list_json() {
  host_family "$machine"
  native_cpus "$host_fam"
  json_str "$machine"
  printf '{"machine":"%s",' "$js"
  json_str "$host_fam"
  printf '"family":"%s","native":[' "$js"
  sep=
  for c in $native; do
    printf '%s"%s"' "$sep" "$c"
    sep=,
  done
  printf '],\n"entries":['
  sep='' other=''
  for f in "$BINFMT"/qemu-*; do
    [ -f "$f" ] || continue
    n=${f##*/}
    printable "$n" || continue
    if read_entry "$f" && printable "$e_interp"; then
      enabled=false
      [ "$e_state" = enabled ] && enabled=true
      json_str "$n"
      jn=$js
      json_str "$e_interp"
      # The platform goes last: a field added to the documented shape, not a reordered one.
      entry_platform "$n"
      jp=null
      [ -z "$platform" ] || jp="\"$platform\""
      printf '%s\n{"name":"%s","enabled":%s,"interpreter":"%s","flags":"%s","offset":%s,"magic":"%s","mask":"%s","platform":%s}' \
        "$sep" "$jn" "$enabled" "$js" "$e_flags" "$e_off" "$e_magic" "$e_mask" "$jp"
      sep=,
    else
      json_str "$n"
      other=${other:+$other,}'"'$js'"'
    fi
  done
  printf '],\n"other":[%s]}\n' "$other"
}

# --- arguments ---------------------------------------------------------------------------
RESET=no PERSISTENT=no CREDENTIAL=no PRESERVE=no IGNORE_FAMILY=no LIST=no JSON=no UNINSTALL=no
QEMU_PATH=/usr/bin QEMU_SUFFIX=-static TARGETS='' UNINSTALL_LIST='' PERSIST_DIR='' INSTALL=no INSTALL_DIR=''
while [ $# -gt 0 ]; do
  opt=$1
  shift
  has_val=no
  case $opt in
  --*=*)
    val=${opt#*=}
    opt=${opt%%=*}
    has_val=yes
    ;;
  esac
  case $opt in
  -p | --persistent | -c | --credential | -g | --preserve-argv0 | -i | --ignore-family | --qemu-path | --qemu-suffix | --targets | --persist-dir | --install-dir)
    if [ "$has_val" = no ]; then
      [ $# -gt 0 ] || usage_error "$opt needs a value"
      val=$1
      shift
    fi
    ;;
  --reset | --list | --json | --help | -h)
    [ "$has_val" = no ] || usage_error "$opt takes no value"
    ;;
  esac
  case $opt in
  --reset) RESET=yes ;;
  -p | --persistent) yes_no "$opt" "$val" && PERSISTENT=$val ;;
  -c | --credential) yes_no "$opt" "$val" && CREDENTIAL=$val ;;
  -g | --preserve-argv0) yes_no "$opt" "$val" && PRESERVE=$val ;;
  -i | --ignore-family) yes_no "$opt" "$val" && IGNORE_FAMILY=$val ;;
  --qemu-path) QEMU_PATH=$val ;;
  --qemu-suffix) QEMU_SUFFIX=$val ;;
  --targets) TARGETS=$val ;;
  --persist-dir) PERSIST_DIR=$val ;;
  --install-dir)
    INSTALL=yes
    INSTALL_DIR=$val
    ;;
  --list) LIST=yes ;;
  --json) JSON=yes ;;
  --uninstall)
    UNINSTALL=yes
    if [ "$has_val" = yes ]; then
      UNINSTALL_LIST=$val
    elif [ $# -gt 0 ]; then
      case $1 in
      -*) ;;
      *)
        UNINSTALL_LIST=$1
        shift
        ;;
      esac
    fi
    ;;
  -h | --help)
    usage
    exit "$EXIT_OK"
    ;;
  *) usage_error "unknown argument \"$opt\"" ;;
  esac
done

case $QEMU_PATH in
/*) ;;
*) usage_error "--qemu-path must be an absolute path" ;;
esac
check_chars --qemu-path "$QEMU_PATH"
QEMU_DIR=$QEMU_PATH
while :; do
  case $QEMU_DIR in
  */) QEMU_DIR=${QEMU_DIR%/} ;;
  *) break ;;
  esac
done
[ -z "$QEMU_SUFFIX" ] || check_chars --qemu-suffix "$QEMU_SUFFIX"
case $QEMU_SUFFIX in */*) usage_error "--qemu-suffix must not contain /" ;; esac
if [ -n "$PERSIST_DIR" ]; then
  # Relative to wherever the script happens to run is never what a root user meant.
  case $PERSIST_DIR in
  /*) ;;
  *) usage_error "--persist-dir must be an absolute path" ;;
  esac
  check_chars --persist-dir "$PERSIST_DIR"
fi
if [ "$INSTALL" = yes ]; then
  # The path goes into the entries and the binfmt.d files as it is: absolute, and plain.
  case $INSTALL_DIR in
  /*) ;;
  *) usage_error "--install-dir must be an absolute path" ;;
  esac
  check_chars --install-dir "$INSTALL_DIR"
  case $INSTALL_DIR/ in
  */./* | */../*) usage_error "--install-dir must not contain . or .. components" ;;
  esac
  while :; do
    case $INSTALL_DIR in
    */) INSTALL_DIR=${INSTALL_DIR%/} ;;
    *) break ;;
    esac
  done
  [ -n "$INSTALL_DIR" ] || usage_error "--install-dir must not be /"
fi

# JSON is a document on its own: nothing else may print to stdout.
if [ "$JSON" = yes ] && { [ "$LIST" = no ] || [ "$RESET" = yes ] || [ "$UNINSTALL" = yes ]; }; then
  usage_error "--json goes with --list alone"
fi

# Flags in the order the kernel prints them, so an equal entry compares equal.
FLAGS=
[ "$PRESERVE" = yes ] && FLAGS=P
[ "$CREDENTIAL" = yes ] && FLAGS="${FLAGS}OC"
[ "$PERSISTENT" = yes ] && FLAGS="${FLAGS}F"

explicit=no
if [ -n "$TARGETS" ]; then
  resolve_list "$TARGETS" "$DEFAULT_TARGETS"
  targets=$list
  explicit=yes
  case ",$TARGETS," in *,all,*) explicit=no ;; esac
else
  targets=$DEFAULT_TARGETS
fi
if [ "$UNINSTALL" = yes ]; then
  if [ -n "$UNINSTALL_LIST" ]; then resolve_list "$UNINSTALL_LIST" "$ALL_TARGETS"; else list=$ALL_TARGETS; fi
  uninstall_targets=$list
fi

# --- actions -----------------------------------------------------------------------------
# HOST_ARCH overrides uname -m, as in QEMU's qemu-binfmt-conf.sh; it only picks a family.
machine=${HOST_ARCH:-$(uname -m 2>/dev/null || echo unknown)}
ensure_binfmt
if [ "$LIST" = no ] || [ "$RESET" = yes ] || [ "$UNINSTALL" = yes ]; then
  need_writable
fi
if [ -n "$PERSIST_DIR" ] && [ "$LIST" = no ] && [ "$UNINSTALL" = no ]; then
  mkdir -p -- "$PERSIST_DIR" 2>/dev/null || die "$EXIT_PERSIST" "cannot create $PERSIST_DIR"
fi
if [ "$INSTALL" = yes ] && [ "$LIST" = no ] && [ "$UNINSTALL" = no ]; then
  mkdir -p -- "$INSTALL_DIR" 2>/dev/null || die "$EXIT_INSTALL" "cannot create $INSTALL_DIR"
fi
status=$EXIT_OK

[ "$RESET" = yes ] && reset_entries

if [ "$UNINSTALL" = yes ]; then
  for c in $uninstall_targets; do
    if [ -e "$BINFMT/qemu-$c" ]; then
      if remove_entry "qemu-$c"; then
        say "removed qemu-$c"
      else
        warn "error: cannot remove qemu-$c"
        status=$EXIT_REFUSED
      fi
    fi
    unpersist "qemu-$c"
  done
  [ "$INSTALL" = no ] || uninstall_emulators
elif [ "$LIST" = no ]; then
  host_family "$machine"
  host_emulator "$machine"
  for c in $targets; do
    cpu_info "$c"
    if [ "$fam" = "$host_fam" ] && { [ "$IGNORE_FAMILY" = no ] || [ "$emu" = "$host_emu" ]; }; then
      [ "$explicit" = yes ] && say "skipped qemu-$c: this machine runs $c natively ($host_fam family)"
      continue
    fi
    register_one "$c" "$explicit"
  done
fi

if [ "$LIST" = yes ]; then
  if [ "$JSON" = yes ]; then list_json; else list_entries; fi
fi
exit "$status"
