// The shell side of host tasks (tasks.ts). These scripts are fixed text: everything variable
// reaches them as positional parameters, and a task's steps as command lines built by
// shell.ts, so no value is ever spliced into shell code.
//
// Layout under the state directory D (one per SSH user, shared by every runtime replica):
//   D/<task-id>/        kind, keys, script (the steps; removed when it ends), pid (the runner, a
//                       session leader), alive (flock held while the task lives), status (exit
//                       code, written last), error (the end of its stderr)
//   D/<task-id>/        for a leased task (a disk transfer the runtime itself runs, see
//                       transfers.ts) also: progress (percent; its mtime is the runtime's lease)
//                       and outcome (exit code, then stderr lines, written by the runtime when done)
//   D/locks/<key>       symlink → "<task-id>/<kind>": the task holding that key (a domain UUID)
//   D/imports/<volume>  "<file sha256> <volume sha256> <bytes>" of a verified disk import (import.ts)
//   D/.lock             flock serialising starts and releases, so a lock is never taken twice
// A task is running while some process holds D/<id>/alive: the runner takes it before the task
// becomes visible and its commands inherit it. No holder and no status means the process was
// killed or the host rebooted: the task is reported as vanished, never as running forever.
// A PID would not do: PIDs are reused, a lock dies with its last holder.

/** State directory and task state; shared by every script below. `$1` is the configured directory or ''. */
const LIB = `
vr_root() {
  if [ -n "$1" ]; then printf '%s' "$1"
  elif [ "$(id -u)" = 0 ]; then printf '%s' /var/lib/virtrigaud/tasks
  else printf '%s' "\${XDG_STATE_HOME:-$HOME/.local/state}/virtrigaud/tasks"
  fi
}
vr_state() {
  vr_t=$D/$1
  [ -d "$vr_t" ] || { echo missing; return; }
  [ -f "$vr_t/status" ] && { echo "done $(cat "$vr_t/status")"; return; }
  if flock -n "$vr_t/alive" true 2>/dev/null; then
    # the holder may have written its status just before letting go
    [ -f "$vr_t/status" ] && { echo "done $(cat "$vr_t/status")"; return; }
    echo vanished
  else
    echo running
  fi
}
D=$(vr_root "$1")
# A directory we may not read is "cannot see", never "no such task" or "no lock".
vr_readable() {
  if [ -e "$D" ] && ! { [ -r "$D" ] && [ -x "$D" ]; }; then
    echo "error: the task directory $D cannot be read by $(id -un)" >&2
    exit 1
  fi
}
`;

/**
 * Runs a task's steps detached from the SSH session (setsid), so neither a closed channel nor
 * the runtime's exit stops it. Inherits fd 9, the task's `alive` lock, from the start script.
 * `$1` state directory, `$2` task ID.
 */
const RUNNER = `
T=$1/$2
cd "$T" || exit 1
# for administrators (kill -- -PID stops the task); liveness is the lock, not this PID
printf '%s\\n' "$$" >"$T/pid"
VR_DIR=$1 VR_TASK=$T sh -e "$T/script" >/dev/null 2>"$T/stderr"
vr_code=$?
tail -c 4096 "$T/stderr" >"$T/error"
rm -f "$T/stderr" "$T/script"
printf '%s\\n' "$vr_code" >"$T/status.new" && mv -f "$T/status.new" "$T/status"
exec 8>>"$1/.lock"
flock 8
while read -r vr_kv; do
  [ "$(readlink "$1/locks/\${vr_kv%%=*}" 2>/dev/null)" = "$2/\${vr_kv#*=}" ] && rm -f "$1/locks/\${vr_kv%%=*}"
done <"$T/keys"
`;

/**
 * `$1` state directory or '', `$2` task ID, `$3` the runner, then `key=kind` per lock; the steps
 * on stdin. Prints `started <id>`, `running <id>` (the same kind already runs: its ID) or
 * `busy <kind>` (another kind holds a key).
 */
export const START_SCRIPT = `set -eu
${LIB}
vr_id=$2 vr_runner=$3
shift 3
umask 077
mkdir -p "$D/locks"
exec 8>>"$D/.lock"
flock -w 60 8 || { echo 'error: timed out waiting for the task state lock' >&2; exit 75; }
for vr_kv in "$@"; do
  vr_key=\${vr_kv%%=*} vr_kind=\${vr_kv#*=}
  vr_cur=$(readlink "$D/locks/$vr_key" 2>/dev/null) || continue
  if [ "$(vr_state "\${vr_cur%%/*}")" = running ]; then
    if [ "\${vr_cur#*/}" = "$vr_kind" ]; then echo "running \${vr_cur%%/*}"; else echo "busy \${vr_cur#*/}"; fi
    exit 0
  fi
  rm -f "$D/locks/$vr_key"
done
# Finished tasks are kept a day for taskStatus, then pruned here.
for vr_old in $(find "$D" -mindepth 1 -maxdepth 1 -type d -name 'libvirt-*' -mmin +1440); do
  [ "$(vr_state "\${vr_old##*/}")" = running ] || rm -rf "$vr_old"
done
T=$D/$vr_id
mkdir "$T"
cat >"$T/script"
printf '%s\\n' "$@" >"$T/keys"
printf '%s\\n' "\${1#*=}" >"$T/kind"
exec 9>"$T/alive"
flock 9
for vr_kv in "$@"; do ln -s "$vr_id/\${vr_kv#*=}" "$D/locks/\${vr_kv%%=*}"; done
setsid sh -c "$vr_runner" sh "$D" "$vr_id" </dev/null >/dev/null 2>&1 8>&- &
echo "started $vr_id"
`;

/** `$1` state directory or '', `$2` task ID. Prints the state line, then the task's stderr when it ended. */
export const STATUS_SCRIPT = `set -u
${LIB}
vr_readable
vr_s=$(vr_state "$2")
echo "$vr_s"
case $vr_s in
  done*) cat "$D/$2/error" 2>/dev/null || true ;;
  running) cat "$D/$2/progress" 2>/dev/null || true ;;
esac
`;

/**
 * Renews the lease of a running leased task and records its progress. `$1` state directory or
 * '', `$2` task ID, `$3` percent. Prints `ok`, or `ended` when the task no longer runs (it
 * was killed, or its lease expired): the runtime then stops the work it no longer holds locks for.
 */
export const RENEW_SCRIPT = `set -u
${LIB}
vr_readable
T=$D/$2
[ "$(vr_state "$2")" = running ] && [ ! -f "$T/outcome" ] || { echo ended; exit 0; }
printf '%s\\n' "$3" >"$T/progress.new" && mv -f "$T/progress.new" "$T/progress"
echo ok
`;

/** Ends a leased task: `$1` state directory or '', `$2` task ID; the outcome (exit code, then stderr lines) on stdin. */
export const FINISH_SCRIPT = `set -u
${LIB}
vr_readable
T=$D/$2
[ -d "$T" ] || exit 0
cat >"$T/outcome.new" && mv -f "$T/outcome.new" "$T/outcome"
`;

/**
 * The record of a verified import (`$1` state directory or '', `$2` volume name): prints it, or
 * nothing; with a third argument, writes that as the record first. Kept apart from the task
 * directories, which are pruned after a day.
 */
export const IMPORT_RECORD_SCRIPT = `set -u
${LIB}
vr_readable
if [ "$#" -ge 3 ]; then
  umask 077
  mkdir -p "$D/imports"
  printf '%s\\n' "$3" >"$D/imports/$2.new" && mv -f "$D/imports/$2.new" "$D/imports/$2"
fi
cat "$D/imports/$2" 2>/dev/null || true
`;

/** `$1` state directory or '', then keys. Prints `<key> <kind> <task-id>` for each key a running task holds. */
export const LOCKS_SCRIPT = `set -u
${LIB}
vr_readable
shift
for vr_key in "$@"; do
  vr_cur=$(readlink "$D/locks/$vr_key" 2>/dev/null) || continue
  [ "$(vr_state "\${vr_cur%%/*}")" = running ] && echo "$vr_key \${vr_cur#*/} \${vr_cur%%/*}"
done
true
`;

export { RUNNER as RUNNER_SCRIPT };

/**
 * Functions a task's steps may call (each step is one command line, run with `sh -e`). virsh's
 * own `error:` lines reach the task's stderr unchanged, so taskStatus classifies them like any
 * virsh failure (errors.ts); the functions' own failures print `error:` lines the same way.
 */
export const STEP_LIB = `
# Runs "$@"; a failure saying the object does not exist counts as done (a retried delete).
vr_absent_ok() {
  vr_out=$("$@" 2>&1 >/dev/null) && return 0
  vr_code=$?
  case $vr_out in *"not found"*|*"failed to get domain"*|*"failed to get vol"*) return 0 ;; esac
  printf '%s\\n' "$vr_out" >&2
  return "$vr_code"
}
# Destroys domain $2 unless it is off already.
vr_stop() {
  vr_s=$(virsh -q -c "$1" domstate --domain "$2") || return
  case $vr_s in "shut off"*|crashed*) return 0 ;; esac
  vr_out=$(virsh -q -c "$1" destroy --domain "$2" 2>&1 >/dev/null) && return 0
  vr_code=$?
  case $vr_out in *"domain is not running"*) return 0 ;; esac
  printf '%s\\n' "$vr_out" >&2
  return "$vr_code"
}
# Waits up to $3 seconds for domain $2 to shut down, then destroys it.
vr_follow_shutdown() {
  vr_end=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$vr_end" ]; do
    vr_s=$(virsh -q -c "$1" domstate --domain "$2") || return
    case $vr_s in "shut off"*|crashed*) return 0 ;; esac
    sleep 1
  done
  vr_stop "$1" "$2"
}
# Holds the task's locks while the provider runtime that started it does the work itself (a disk
# export or import: the disk's bytes flow through the runtime): it renews $VR_TASK/progress every
# few seconds and writes $VR_TASK/outcome when done. No renewal for $1 seconds means that runtime
# is gone (restarted, disconnected): the task fails and its locks are released.
vr_lease() {
  while [ ! -f "$VR_TASK/outcome" ]; do
    vr_seen=$(stat -c %Y "$VR_TASK/progress" 2>/dev/null || stat -c %Y "$VR_TASK/kind")
    if [ $(( $(date +%s) - vr_seen )) -gt "$1" ]; then
      echo "error: the provider runtime doing this task stopped reporting for $1 seconds (restarted or disconnected); start it again" >&2
      return 1
    fi
    sleep 1
  done
  tail -n +2 "$VR_TASK/outcome" >&2
  return "$(head -n 1 "$VR_TASK/outcome")"
}
# Feeds $1 (volume XML) to the command's stdin.
vr_stdin() {
  vr_in=$1
  shift
  printf '%s' "$vr_in" | "$@"
}
# Grows volume $3 of pool $2 to $4 bytes unless it is that large already.
vr_grow() {
  vr_cap=$(virsh -q -c "$1" vol-info --pool "$2" --vol "$3" --bytes | awk '$1 == "Capacity:" { print $2 }')
  [ -n "$vr_cap" ] || { echo "error: cannot read the capacity of volume $3" >&2; return 1; }
  [ "$vr_cap" -ge "$4" ] || virsh -q -c "$1" vol-resize --pool "$2" --vol "$3" --capacity "$4"
}
# Refuses a root disk of $2 bytes on image $1 when the image is larger.
vr_check_size() {
  vr_size=$(qemu-img info -U --output=json "$1" | awk -F '[:,]' '/^    "virtual-size":/ { gsub(/ /, "", $2); print $2; exit }')
  [ -n "$vr_size" ] || { echo "error: cannot read image $1" >&2; return 1; }
  [ "$2" -ge "$vr_size" ] || { echo "error: the root disk ($2 bytes) cannot be smaller than the image ($vr_size bytes)" >&2; return 65; }
}
# Builds the NoCloud seed ISO (label cidata) with tool $4 from user-data $5, meta-data $6 and
# network-config $7, as raw volume $3 of pool $2. The data arrive as arguments of this function,
# never of a command (no process's argv shows them), in a private directory removed afterwards.
vr_seed() (
  set -e
  vr_d=$(mktemp -d /tmp/virtrigaud-seed.XXXXXXXX)
  trap 'rm -rf "$vr_d"' EXIT
  printf '%s' "$5" >"$vr_d/user-data"
  printf '%s' "$6" >"$vr_d/meta-data"
  printf '%s' "$7" >"$vr_d/network-config"
  case $4 in
    *cloud-localds) "$4" -N "$vr_d/network-config" "$vr_d/seed.iso" "$vr_d/user-data" "$vr_d/meta-data" ;;
    *xorriso) "$4" -as mkisofs -quiet -output "$vr_d/seed.iso" -volid cidata -joliet -rock "$vr_d/user-data" "$vr_d/meta-data" "$vr_d/network-config" ;;
    *) "$4" -quiet -output "$vr_d/seed.iso" -volid cidata -joliet -rock "$vr_d/user-data" "$vr_d/meta-data" "$vr_d/network-config" ;;
  esac
  vr_absent_ok virsh -q -c "$1" vol-delete --pool "$2" --vol "$3"
  virsh -q -c "$1" vol-create-as --pool "$2" --name "$3" --capacity "$(stat -c %s "$vr_d/seed.iso")" --format raw >/dev/null
  virsh -q -c "$1" vol-upload --pool "$2" --vol "$3" --file "$vr_d/seed.iso"
)
# Stores the Ignition config $4 as raw volume $3 of pool $2, byte for byte (QEMU hands the file
# to the guest through fw_cfg). Like vr_seed's data, the config is an argument of this function,
# never of a command, and passes through a private file (mktemp's 0600) removed afterwards.
vr_ignition() (
  set -e
  vr_f=$(mktemp /tmp/virtrigaud-ignition.XXXXXXXX)
  trap 'rm -f "$vr_f"' EXIT
  printf '%s' "$4" >"$vr_f"
  vr_absent_ok virsh -q -c "$1" vol-delete --pool "$2" --vol "$3"
  virsh -q -c "$1" vol-create-as --pool "$2" --name "$3" --capacity "$(stat -c %s "$vr_f")" --format raw >/dev/null
  virsh -q -c "$1" vol-upload --pool "$2" --vol "$3" --file "$vr_f"
)
# Downloads URL $5 into volume $4 of pool $2 (directory $3) once, checking the checksum ($6
# sha256|sha512 or '', $7 hex), as qcow2, or as it is when $8 is raw (an installer ISO, which
# QEMU reads as a raw CD-ROM whatever its bytes look like). One download per image at a time: a
# second VM from the same URL waits here, then finds the volume.
vr_import() (
  set -e
  exec 7>>"$VR_DIR/image-$4.lock"
  flock 7
  if virsh -q -c "$1" vol-info --pool "$2" --vol "$4" >/dev/null 2>&1; then exit 0; fi
  vr_part=$(mktemp -p "$3" .virtrigaud-download.XXXXXX)
  trap 'rm -f "$vr_part" "$vr_part.qcow2"' EXIT
  if command -v curl >/dev/null 2>&1; then
    if ! vr_out=$(curl -fsSL --proto =http,https -o "$vr_part" -- "$5" 2>&1); then
      echo "error: the image URL could not be downloaded: $vr_out" >&2
      exit 1
    fi
  elif command -v wget >/dev/null 2>&1; then
    if ! vr_out=$(wget -q -O "$vr_part" -- "$5" 2>&1); then
      echo "error: the image URL could not be downloaded: wget $vr_out" >&2
      exit 1
    fi
  else
    echo 'error: the libvirt host has neither curl nor wget for image downloads: not supported' >&2
    exit 127
  fi
  if [ -n "$6" ]; then
    vr_sum=$("$6"sum -- "$vr_part" | cut -d ' ' -f 1)
    [ "$vr_sum" = "$7" ] || { echo "error: image checksum mismatch: expected $6:$7, got $6:$vr_sum" >&2; exit 65; }
  fi
  if [ "\${8:-qcow2}" = raw ]; then
    chmod 0644 "$vr_part"
    mv -f "$vr_part" "$3/$4"
    virsh -q -c "$1" pool-refresh --pool "$2" >/dev/null
    exit 0
  fi
  vr_info=$(qemu-img info -U --output=json "$vr_part")
  # A backing or data file would let the image read any file on the host.
  case $vr_info in *'"backing-filename"'*|*'"data-file"'*) echo 'error: the downloaded image refers to other files (backing or data file); refusing it' >&2; exit 65 ;; esac
  vr_format=$(printf '%s\\n' "$vr_info" | awk -F '"' '/^    "format": / { print $4; exit }')
  [ -n "$vr_format" ] || { echo 'error: cannot read the downloaded image' >&2; exit 1; }
  qemu-img convert -q -f "$vr_format" -O qcow2 -o compat=1.1 "$vr_part" "$vr_part.qcow2"
  # a base image is no secret, and QEMU (another user) reads it as a backing file
  chmod 0644 "$vr_part.qcow2"
  mv -f "$vr_part.qcow2" "$3/$4"
  virsh -q -c "$1" pool-refresh --pool "$2" >/dev/null
)
`;
