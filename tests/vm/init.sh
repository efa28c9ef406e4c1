#!/bin/busybox sh
# /init of the iovam test guest (built into the initramfs by build_image.sh).
# Prepares VFIO + hugepages, binds the NICs named on the kernel command line to vfio-pci,
# runs /share/guest.sh from the host's 9p share, saves the kernel log there, and powers off.
# Every failure still ends in a power-off: the host must never wait on a stuck guest.

/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "IOVAM-INIT: $*"; }

# Stops the guest. poweroff -f needs no init system; the host also has -no-reboot + panic=-1.
halt_guest() {
    sync
    umount /share 2>/dev/null
    poweroff -f
    sleep 5
    exit 1
}

fail() { say "FAILED: $*"; halt_guest; }

# Value of key=... on the kernel command line.
cmdline_arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -1; }

mount_all() {
    mount -t proc proc /proc || fail "mount proc"
    mount -t sysfs sysfs /sys || fail "mount sysfs"
    mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
    mount -t tmpfs -o mode=755 tmpfs /run || fail "mount /run"
    mount -t tmpfs tmpfs /tmp || fail "mount /tmp"
    mkdir -p /dev/hugepages /dev/pts
    mount -t hugetlbfs nodev /dev/hugepages || fail "mount hugetlbfs"
}

load_modules() {
    local m
    for m in $(cat /lib/modules/order); do
        insmod "/lib/modules/$m" || fail "insmod $m"
    done
}

mount_share() {
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none share /share \
        || fail "mount 9p share"
    mkdir -p /share/out
}

# driver_override makes vfio-pci take exactly these devices; unbind first because virtio_pci
# (needed for the 9p share) also claims virtio NICs.
bind_vfio() {
    local bdf d
    for bdf in $(cmdline_arg vm_nics | tr ',' ' '); do
        d=/sys/bus/pci/devices/$bdf
        [ -e "$d" ] || fail "no PCI device $bdf"
        [ -e "$d/driver" ] && echo "$bdf" >"$d/driver/unbind"
        echo vfio-pci >"$d/driver_override"
        echo "$bdf" >/sys/bus/pci/drivers_probe
        [ "$(basename "$(readlink "$d/driver")")" = vfio-pci ] || fail "bind $bdf to vfio-pci"
        say "$bdf -> vfio-pci (iommu group $(basename "$(readlink "$d/iommu_group")"))"
    done
    [ -e /dev/vfio/vfio ] || fail "no /dev/vfio/vfio"
}

mount_all
load_modules
mount_share
bind_vfio
say "ready: $(cat /proc/uptime | cut -d' ' -f1)s, $(grep HugePages_Free /proc/meminfo)"
if [ -f /share/guest.sh ]; then
    sh /share/guest.sh 2>&1 | tee /share/out/guest.log
    say "guest.sh done"
else
    say "FAILED: no /share/guest.sh"
fi
dmesg >/share/out/dmesg.txt
say "poweroff"
halt_guest
