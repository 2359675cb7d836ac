#!/usr/bin/env bash
# Starts the real Libvirt peer for the tests: libvirtd (QEMU in software emulation) and an sshd on
# 127.0.0.1, without systemd, plus a storage pool, an isolated NAT network, an Open vSwitch
# network for VLANs (userspace datapath) and a tiny bootable base image. Idempotent; everything it starts has a PID file under $STATE and test/libvirt/teardown.sh
# stops it. The tests read the connection details from $STATE/env.
#
# Knobs: VIRTRIGAUD_LIBVIRT_STATE (default /tmp/virtrigaud-libvirt), VIRTRIGAUD_LIBVIRT_SSH_PORT (2222),
#        VIRTRIGAUD_LIBVIRT_GUEST=0 to skip the tiny guest (the base image then has no OS).
set -euo pipefail
started=$SECONDS
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${VIRTRIGAUD_LIBVIRT_STATE:-/tmp/virtrigaud-libvirt}
RUN=$STATE/run
LOGS=$STATE/logs
SSH_DIR=$STATE/ssh
POOL=virtrigaud-ci
POOL_DIR=$STATE/pool
NETWORK=virtrigaud-ci
SSH_PORT=${VIRTRIGAUD_LIBVIRT_SSH_PORT:-2222}
WITH_GUEST=${VIRTRIGAUD_LIBVIRT_GUEST:-1}
URI=qemu:///system
BASE_VOLUME=tinyvm-base.qcow2
PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils openssh-server
  genisoimage dnsmasq-base iptables syslinux mtools dosfstools curl libvirt-daemon-config-nwfilter openvswitch-switch)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
log() { printf '[libvirt-setup %(%T)T] %s\n' -1 "$*"; }
die() { log "ERROR: $*"; exit 1; }
# A killed daemon can stay a zombie for a while here (PID 1 reaps lazily): state Z counts as dead.
alive() {
  local pid; [ -s "$1" ] || return 1; pid=$(cat "$1")
  [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
virsh_() { "${sudo[@]}" timeout 120 virsh -q -c "$URI" "$@"; }

"${sudo[@]}" mkdir -p "$RUN" "$LOGS" "$SSH_DIR" "$POOL_DIR"
"${sudo[@]}" chmod 0755 "$STATE" "$POOL_DIR"

# ---- packages (only the missing ones)
missing=()
for package in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >"$LOGS/apt-install.log" 2>&1 \
    || { tail -20 "$LOGS/apt-install.log"; die "apt-get install failed"; }
fi

# ---- users, directories, qemu.conf (what libvirt-daemon-system would do)
# The QEMU driver resolves its built-in user 'libvirt-qemu' before reading qemu.conf, so it must exist.
getent group kvm >/dev/null || "${sudo[@]}" groupadd -r kvm
getent group libvirt-qemu >/dev/null || "${sudo[@]}" groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || "${sudo[@]}" useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin -M libvirt-qemu
"${sudo[@]}" mkdir -p /var/log/libvirt/qemu /var/lib/libvirt /var/cache/libvirt /run/libvirt /run/sshd /etc/libvirt
if ! grep -q 'managed-by: virtrigaud test/libvirt/setup.sh' /etc/libvirt/qemu.conf 2>/dev/null; then
  [ -e /etc/libvirt/qemu.conf ] && "${sudo[@]}" cp -n /etc/libvirt/qemu.conf "$RUN/qemu.conf.orig"
  "${sudo[@]}" tee /etc/libvirt/qemu.conf >/dev/null <<'CONF'
# managed-by: virtrigaud test/libvirt/setup.sh (no libvirt-daemon-system, no systemd)
security_driver = "none"
vnc_listen = "127.0.0.1"
spice_listen = "127.0.0.1"
CONF
fi
# Without udev /dev/kvm is root 0600 while QEMU runs as libvirt-qemu: libvirt then re-probes QEMU on
# every capabilities lookup (define took over a minute). Give it the usual root:kvm 0660.
if [ -e /dev/kvm ] && [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
  [ -e "$RUN/devkvm.orig" ] || stat -c '%U %G %a' /dev/kvm | "${sudo[@]}" tee "$RUN/devkvm.orig" >/dev/null
  "${sudo[@]}" chgrp kvm /dev/kvm && "${sudo[@]}" chmod 0660 /dev/kvm
fi

# ---- daemons
if ! alive "$RUN/virtlogd.pid"; then
  "${sudo[@]}" virtlogd -d -p "$RUN/virtlogd.pid"
  for _ in $(seq 50); do alive "$RUN/virtlogd.pid" && break; sleep 0.1; done
  alive "$RUN/virtlogd.pid" || die "virtlogd did not start"
fi
if ! alive "$RUN/libvirtd.pid"; then
  if [ -S /run/libvirt/libvirt-sock ] && "${sudo[@]}" timeout 5 virsh -c "$URI" version >/dev/null 2>&1; then
    die "a libvirtd this script did not start already answers on /run/libvirt/libvirt-sock"
  fi
  "${sudo[@]}" env LIBVIRT_LOG_OUTPUTS="3:file:$LOGS/libvirtd.log" libvirtd -d -p "$RUN/libvirtd.pid"
  for _ in $(seq 600); do "${sudo[@]}" timeout 5 virsh -c "$URI" version >/dev/null 2>&1 && break; sleep 0.1; done
  alive "$RUN/libvirtd.pid" || { tail -20 "$LOGS/libvirtd.log"; die "libvirtd did not start"; }
  log "libvirtd pid $(cat "$RUN/libvirtd.pid")"
fi
virsh_ list --all >/dev/null || die "virsh -c $URI list failed"

# ---- a host-only NAT network with DHCP (guest addresses; dnsmasq listens on the bridge only)
if ! virsh_ net-info "$NETWORK" >/dev/null 2>&1; then
  cat >"$RUN/network.xml" <<XML
<network>
  <name>$NETWORK</name>
  <forward mode='nat'/>
  <bridge name='vrci0' stp='on' delay='0'/>
  <ip address='192.168.123.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.123.10' end='192.168.123.250'/></dhcp>
  </ip>
</network>
XML
  virsh_ net-define "$RUN/network.xml" >/dev/null
fi
if ! grep -q '^Active:.*yes' <<<"$(virsh_ net-info "$NETWORK")"; then
  # libvirt turns on ip_forward and adds LIBVIRT_* chains; teardown restores the former and drops empty chains
  [ -e "$RUN/ip_forward.orig" ] || cat /proc/sys/net/ipv4/ip_forward >"$RUN/ip_forward.orig"
  virsh_ net-start "$NETWORK" >/dev/null && touch "$RUN/network.started"
fi

# ---- Open vSwitch for VLAN-tagged NICs: ovsdb-server and ovs-vswitchd without systemd, the
# database, PID files and logs under $STATE. The bridge uses the userspace datapath (netdev), so
# no openvswitch kernel module is needed (this kernel has none). Only the database socket is at
# OVS's built-in path: libvirt runs ovs-vsctl without naming one.
OVS_SOCK=/var/run/openvswitch/db.sock
OVS_BRIDGE=vrovs0
OVS_NETWORK=virtrigaud-ovs
"${sudo[@]}" mkdir -p "$STATE/ovs" /var/run/openvswitch
if ! alive "$RUN/ovsdb-server.pid"; then
  if [ -S "$OVS_SOCK" ] && "${sudo[@]}" timeout 5 ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
    die "an Open vSwitch this script did not start already answers on $OVS_SOCK"
  fi
  [ -s "$STATE/ovs/conf.db" ] || "${sudo[@]}" ovsdb-tool create "$STATE/ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  "${sudo[@]}" ovsdb-server --remote="punix:$OVS_SOCK" --pidfile="$RUN/ovsdb-server.pid" --detach \
    --log-file="$LOGS/ovsdb-server.log" "$STATE/ovs/conf.db" 2>/dev/null
  "${sudo[@]}" ovs-vsctl --timeout=10 --no-wait init
fi
if ! alive "$RUN/ovs-vswitchd.pid"; then
  "${sudo[@]}" ovs-vswitchd --pidfile="$RUN/ovs-vswitchd.pid" --unixctl="$RUN/ovs-vswitchd.ctl" --detach \
    --log-file="$LOGS/ovs-vswitchd.log" "unix:$OVS_SOCK" 2>/dev/null
fi
"${sudo[@]}" ovs-vsctl --timeout=10 --may-exist add-br "$OVS_BRIDGE" -- set bridge "$OVS_BRIDGE" datapath_type=netdev
if ! virsh_ net-info "$OVS_NETWORK" >/dev/null 2>&1; then
  cat >"$RUN/ovs-network.xml" <<XML
<network>
  <name>$OVS_NETWORK</name>
  <forward mode='bridge'/>
  <bridge name='$OVS_BRIDGE'/>
  <virtualport type='openvswitch'/>
</network>
XML
  virsh_ net-define "$RUN/ovs-network.xml" >/dev/null
fi
grep -q '^Active:.*yes' <<<"$(virsh_ net-info "$OVS_NETWORK")" || virsh_ net-start "$OVS_NETWORK" >/dev/null

# ---- libvirt's stock network filters (clean-traffic for NIC firewalls). The package only drops
# them into /etc/libvirt/nwfilter, which a running libvirtd read at its start: define what it lacks.
for filter in /usr/share/libvirt/nwfilter/*.xml; do
  name=$(basename "$filter" .xml)
  virsh_ nwfilter-dumpxml "$name" >/dev/null 2>&1 || virsh_ nwfilter-define "$filter" >/dev/null
done

# ---- dir storage pool (every parent of POOL_DIR must be o+x for libvirt-qemu)
if ! virsh_ pool-info "$POOL" >/dev/null 2>&1; then
  virsh_ pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null
  virsh_ pool-build "$POOL" >/dev/null
fi
grep -q '^State:.*running' <<<"$(virsh_ pool-info "$POOL")" || virsh_ pool-start "$POOL" >/dev/null

# ---- tiny guest + bootable base image: kernel and initramfs on a FAT disk booted by SYSLINUX
if [ "$WITH_GUEST" = 1 ] && [ ! -s "$POOL_DIR/$BASE_VOLUME" ]; then
  "${sudo[@]}" bash "$here/build-tinyvm.sh" "$STATE/guest" >"$LOGS/build-tinyvm.log" 2>&1 \
    || { tail -20 "$LOGS/build-tinyvm.log"; die "building the tiny guest failed"; }
  img=$STATE/guest/base.img
  rm -f "$img"
  mkfs.vfat -C -n TINYVM "$img" 32768 >/dev/null
  syslinux --install "$img"
  printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND console=ttyS0 quiet panic=-1\n' >"$STATE/guest/syslinux.cfg"
  mcopy -o -i "$img" "$STATE/guest/vmlinuz" ::vmlinuz
  mcopy -o -i "$img" "$STATE/guest/tinyvm-initramfs.gz" ::initrd.gz
  mcopy -o -i "$img" "$STATE/guest/syslinux.cfg" ::syslinux.cfg
  qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$img" "$POOL_DIR/$BASE_VOLUME.tmp"
  mv "$POOL_DIR/$BASE_VOLUME.tmp" "$POOL_DIR/$BASE_VOLUME"
  rm -f "$img"
  log "base image $BASE_VOLUME built"
elif [ "$WITH_GUEST" != 1 ] && [ ! -s "$POOL_DIR/$BASE_VOLUME" ]; then
  qemu-img create -q -f qcow2 -o compat=1.1 "$POOL_DIR/$BASE_VOLUME" 64M
fi
virsh_ pool-refresh "$POOL" >/dev/null

# ---- sshd on 127.0.0.1 with a generated host key (pinned by the tests) and a client key for root
"${sudo[@]}" chmod 700 "$SSH_DIR"
[ -f "$SSH_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C virtrigaud-ci-host -f "$SSH_DIR/host_ed25519"
[ -f "$SSH_DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C virtrigaud-ci-client -f "$SSH_DIR/client_ed25519"
install -m 600 "$SSH_DIR/client_ed25519.pub" "$SSH_DIR/authorized_keys"
cat >"$SSH_DIR/sshd_config.new" <<CONF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSH_DIR/host_ed25519
PidFile $RUN/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# the key files live under /tmp (sticky, world-writable), which StrictModes refuses as a parent
StrictModes no
MaxSessions 30
MaxStartups 30:30:100
CONF
# An unprivileged user that logs in with a password only, for the transport's password path.
PASSWORD_USER=vrci-password
if [ ! -s "$SSH_DIR/password" ]; then (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$SSH_DIR/password"); fi
id "$PASSWORD_USER" >/dev/null 2>&1 || "${sudo[@]}" useradd -r -M -d /nonexistent -s /bin/sh "$PASSWORD_USER"
echo "$PASSWORD_USER:$(cat "$SSH_DIR/password")" | "${sudo[@]}" chpasswd
cat >>"$SSH_DIR/sshd_config.new" <<CONF
Match User $PASSWORD_USER
  PasswordAuthentication yes
  AuthenticationMethods password
CONF
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/host_ed25519.pub")" >"$SSH_DIR/known_hosts"
if ! cmp -s "$SSH_DIR/sshd_config.new" "$SSH_DIR/sshd_config"; then
  mv "$SSH_DIR/sshd_config.new" "$SSH_DIR/sshd_config"
  # a running sshd re-reads its configuration on SIGHUP
  alive "$RUN/sshd.pid" && "${sudo[@]}" /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config" && "${sudo[@]}" kill -HUP "$(cat "$RUN/sshd.pid")"
else
  rm -f "$SSH_DIR/sshd_config.new"
fi
if ! alive "$RUN/sshd.pid"; then
  "${sudo[@]}" /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config"
  "${sudo[@]}" /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$LOGS/sshd.log"
  for _ in $(seq 50); do alive "$RUN/sshd.pid" && break; sleep 0.1; done
  alive "$RUN/sshd.pid" || { cat "$LOGS/sshd.log"; die "sshd did not start"; }
fi
ssh -p "$SSH_PORT" -i "$SSH_DIR/client_ed25519" -o BatchMode=yes -o UserKnownHostsFile="$SSH_DIR/known_hosts" \
  -o StrictHostKeyChecking=yes root@127.0.0.1 virsh -c "$URI" list --all >/dev/null || die "ssh -> virsh failed"

# ---- what the tests read
cat >"$STATE/env" <<ENV
LIBVIRT_URI=qemu+ssh://root@127.0.0.1:$SSH_PORT/system
LIBVIRT_SSH_PRIVATE_KEY_FILE=$SSH_DIR/client_ed25519
LIBVIRT_KNOWN_HOSTS_FILE=$SSH_DIR/known_hosts
LIBVIRT_STORAGE_POOL=$POOL
LIBVIRT_NETWORK=$NETWORK
LIBVIRT_VLAN_NETWORK=$OVS_NETWORK
LIBVIRT_DOMAIN_TYPE=qemu
LIBVIRT_BASE_VOLUME=$BASE_VOLUME
LIBVIRT_GUEST=$WITH_GUEST
LIBVIRT_PASSWORD_USER=$PASSWORD_USER
LIBVIRT_PASSWORD_FILE=$SSH_DIR/password
ENV
log "ready in $((SECONDS - started))s: $STATE/env"
