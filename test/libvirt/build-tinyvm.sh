#!/bin/sh
# Builds a tiny Linux guest for the libvirt tests into $1: vmlinuz (Debian's cloud kernel) and
# tinyvm-initramfs.gz (busybox + qemu-guest-agent + virtio modules). It boots under TCG in seconds,
# takes a DHCP lease on every virtio NIC, runs the guest agent and powers off on the ACPI button.
# Only `apt-get download` and `dpkg-deb -x` are used: nothing gets installed on the host.
set -eu
OUT=$1
mkdir -p "$OUT/debs"
OUT=$(cd "$OUT" && pwd)
KVER=${KVER:-$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{sub("linux-image-","",$2); print $2; exit}')}
if [ -z "$KVER" ]; then apt-get update -qq; KVER=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{sub("linux-image-","",$2); print $2; exit}'); fi
[ -n "$KVER" ] || { echo "cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
cd "$OUT/debs"
[ -n "$(ls linux-image-"$KVER"_*.deb 2>/dev/null)" ] || apt-get download "linux-image-$KVER" busybox-static qemu-guest-agent
X=$OUT/extract; R=$OUT/rootfs
rm -rf "$X" "$R"; mkdir -p "$X"
for d in "$OUT"/debs/*.deb; do dpkg-deb -x "$d" "$X"; done
mkdir -p "$R"/bin "$R"/sbin "$R"/lib/modules "$R"/lib64 "$R"/lib/x86_64-linux-gnu "$R"/etc/acpi/PWRF "$R"/proc "$R"/sys \
  "$R"/dev "$R"/run "$R"/tmp "$R"/var/run "$R"/var/log "$R"/usr/share/udhcpc
cp "$X/bin/busybox" "$R/bin/busybox"
cp "$X/usr/sbin/qemu-ga" "$R/sbin/qemu-ga"
# qemu-ga is dynamically linked: take its libraries from the host (same Debian release)
for l in $(ldd "$X/usr/sbin/qemu-ga" | awk '/=>/{print $3} /ld-linux/{print $1}'); do cp -L "$l" "$R$l"; done
M="$X/lib/modules/$KVER/kernel"
# load order matters: virtio_ring before virtio ("unknown symbol" otherwise)
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci net/core/failover drivers/net/net_failover drivers/net/virtio_net drivers/char/virtio_console \
         drivers/virtio/virtio_balloon drivers/block/virtio_blk drivers/acpi/button drivers/input/evdev; do
  cp "$M/$m.ko" "$R/lib/modules/"; basename "$m" >>"$R/lib/modules/order"
done
cat >"$R/init" <<'EOS'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "tinyvm: insmod $m failed"; done
sleep 1
hostname tinyvm; ip link set lo up
for n in /sys/class/net/eth*; do n=${n##*/}; ip link set $n up; udhcpc -i $n -b -q -t 20 -T 1 -s /usr/share/udhcpc/default.script >/dev/console 2>&1 & done
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && /sbin/qemu-ga -m virtio-serial -p /dev/${p##*/} -t /run -d
done
acpid -c /etc/acpi -l /var/log/acpid.log
echo "tinyvm: init done" >/dev/console
exec /bin/sh -c 'while true; do sleep 3600; done'
EOS
cat >"$R/usr/share/udhcpc/default.script" <<'EOS'
#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev $interface; ip addr add $ip/${mask:-24} dev $interface
               [ -n "$router" ] && ip route add default via ${router%% *} dev $interface 2>/dev/null
               echo "tinyvm: $interface got $ip" >/dev/console;;
  deconfig) ip addr flush dev $interface;;
esac
EOS
# busybox acpid runs this on the power button; qemu-ga's guest-shutdown calls /sbin/shutdown
printf '#!/bin/sh\nsync; poweroff -f\n' >"$R/etc/acpi/PWRF/00000080"
printf '#!/bin/sh\ncase "$*" in *-r*) reboot -f;; *) sync; poweroff -f;; esac\n' >"$R/sbin/shutdown"
chmod +x "$R/init" "$R/usr/share/udhcpc/default.script" "$R/etc/acpi/PWRF/00000080" "$R/sbin/shutdown"
(cd "$R" && find . | "$R/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -9) >"$OUT/tinyvm-initramfs.gz"
cp "$X/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
rm -rf "$X" "$R"
ls -la "$OUT/vmlinuz" "$OUT/tinyvm-initramfs.gz"
