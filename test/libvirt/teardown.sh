#!/usr/bin/env bash
# Stops what test/libvirt/setup.sh started, by PID file only: running domains are destroyed, the
# CI networks stopped, then sshd, libvirtd, virtlogd and Open vSwitch; /dev/kvm and ip_forward are restored and
# the empty LIBVIRT_* iptables chains libvirt leaves behind are removed. Packages, users, keys,
# the pool directory and the base image stay for the next run.
set -uo pipefail
STATE=${VIRTRIGAUD_LIBVIRT_STATE:-/tmp/virtrigaud-libvirt}
RUN=$STATE/run
NETWORK=virtrigaud-ci
URI=qemu:///system
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
log() { printf '[libvirt-teardown %(%T)T] %s\n' -1 "$*"; }
alive_pid() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
virsh_() { "${sudo[@]}" timeout 60 virsh -q -c "$URI" "$@"; }

stop_pidfile() {
  local name=$1 file=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if alive_pid "$pid"; then
    "${sudo[@]}" kill -TERM "$pid"
    for _ in $(seq 100); do alive_pid "$pid" || break; sleep 0.1; done
    if alive_pid "$pid"; then log "$name ($pid) ignored SIGTERM, sending SIGKILL"; "${sudo[@]}" kill -KILL "$pid"; fi
    log "stopped $name ($pid)"
  fi
  "${sudo[@]}" rm -f "$file"
}

[ -d "$RUN" ] || { log "nothing to stop ($RUN missing)"; exit 0; }
# Host tasks the tests' drivers started (recorded under $STATE/tasks, see test/helpers/libvirt-peer.ts)
# run detached from any session: stop those still running (a test killed mid-way may have left one
# held), checking that the recorded PID is still that task's runner.
"${sudo[@]}" rm -f "$STATE"/hold-*
for dir in "$STATE"/tasks/libvirt-*; do
  [ -s "$dir/pid" ] && [ ! -e "$dir/status" ] || continue
  pid=$(cat "$dir/pid")
  if alive_pid "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "${dir##*/}"; then
    "${sudo[@]}" kill -TERM -- "-$pid" 2>/dev/null && log "stopped task ${dir##*/}"
  fi
done
if [ -s "$RUN/libvirtd.pid" ] && alive_pid "$(cat "$RUN/libvirtd.pid")"; then
  # QEMU processes outlive libvirtd: stop them while libvirtd still knows them.
  for domain in $(virsh_ list --state-running --state-paused --uuid); do
    virsh_ destroy "$domain" >/dev/null && log "destroyed domain $domain"
  done
  if [ -e "$RUN/network.started" ]; then
    virsh_ net-destroy "$NETWORK" >/dev/null && log "network $NETWORK stopped"
    "${sudo[@]}" rm -f "$RUN/network.started"
  fi
  virsh_ net-destroy virtrigaud-ovs >/dev/null 2>&1 && log "network virtrigaud-ovs stopped"
fi
stop_pidfile sshd "$RUN/sshd.pid"
stop_pidfile libvirtd "$RUN/libvirtd.pid"
stop_pidfile virtlogd "$RUN/virtlogd.pid"
# Its userspace bridge (a tap device) goes with ovs-vswitchd; the database stays for the next run.
stop_pidfile ovs-vswitchd "$RUN/ovs-vswitchd.pid"
stop_pidfile ovsdb-server "$RUN/ovsdb-server.pid"

if [ -e "$RUN/ip_forward.orig" ] && ! ip link show vrci0 >/dev/null 2>&1; then
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    for spec in "filter INPUT LIBVIRT_INP" "filter FORWARD LIBVIRT_FWX" "filter FORWARD LIBVIRT_FWI" "filter FORWARD LIBVIRT_FWO" \
                "filter OUTPUT LIBVIRT_OUT" "nat POSTROUTING LIBVIRT_PRT" "mangle POSTROUTING LIBVIRT_PRT"; do
      set -- $spec
      # only chains left empty ('-N CHAIN' is their one line) are ours to remove
      if "${sudo[@]}" $ipt -t "$1" -S "$3" >/dev/null 2>&1 && [ "$("${sudo[@]}" $ipt -t "$1" -S "$3" | wc -l)" = 1 ]; then
        "${sudo[@]}" $ipt -t "$1" -D "$2" -j "$3" 2>/dev/null; "${sudo[@]}" $ipt -t "$1" -X "$3" 2>/dev/null
      fi
    done
  done
  cat "$RUN/ip_forward.orig" | "${sudo[@]}" tee /proc/sys/net/ipv4/ip_forward >/dev/null
  "${sudo[@]}" rm -f "$RUN/ip_forward.orig"
  log "ip_forward restored, empty LIBVIRT_* chains removed"
fi
if [ -s "$RUN/devkvm.orig" ] && [ -e /dev/kvm ]; then
  read -r owner group mode <"$RUN/devkvm.orig"
  "${sudo[@]}" chown "$owner:$group" /dev/kvm && "${sudo[@]}" chmod "$mode" /dev/kvm && log "/dev/kvm restored to $owner:$group $mode"
  "${sudo[@]}" rm -f "$RUN/devkvm.orig"
fi
"${sudo[@]}" rm -f "$STATE/env"
log done
