#!/usr/bin/env bash
# Builds the qemu guest used by tests/vm/run.sh: Debian's own kernel plus an initramfs with
# busybox, the VFIO and virtio-9p modules, and Debian's DPDK (testpmd + the PMDs the emulated
# NICs need). Nothing is installed on the host except the apt packages listed below: the guest
# kernel is only unpacked, because this host's kernel has no VFIO and we must not touch it.
#
# Output (git-ignored): tests/vm/cache/image/{vmlinuz,initrd.img,files.txt,key}
# The image is rebuilt only when its key changes: a hash of this script, init.sh and the
# versions of every package whose files go into the image.
#
# Usage: tests/vm/build_image.sh [--force]     prints the image directory on its last line
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
IMG="$CACHE/image"
MULTIARCH=x86_64-linux-gnu
PMD_DIR=/usr/lib/$MULTIARCH/dpdk/pmds-23.0
# Only the PMDs the guest needs: EAL dlopens every .so in PMD_DIR, and a PMD whose own
# dependencies are missing would make EAL init fail.
PMDS=(bus_pci bus_vdev mempool_ring mempool_stack net_e1000 net_virtio)
# Host packages: qemu to boot, busybox-static + cpio for the initramfs, kmod for depmod/modprobe,
# dpdk/libdpdk-dev for the guest binaries and for building the probes, pkg-config + gcc for those,
# meson + ninja-build + g++ for run.sh's private build of the iovam glue.
HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod dpdk libdpdk-dev pkg-config gcc g++ meson ninja-build)

log() { echo "build_image: $*" >&2; }

# Installs missing host packages; apt-get update only when something is missing, so cached
# runs stay offline and fast.
ensure_host_pkgs() {
    local missing=() p
    for p in "${HOST_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
}

# The kernel package that linux-image-amd64 currently points at (e.g. linux-image-6.1.0-56-amd64).
kernel_pkg() {
    local k
    k="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
    if [[ -z "$k" ]]; then
        apt-get update -q >&2
        k="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
    fi
    [[ -n "$k" ]] || { log "cannot find Debian's kernel package"; return 1; }
    echo "$k"
}

pkg_version() { apt-cache policy "$1" | awk '/Candidate:/{print $2; exit}'; }
installed_version() { dpkg-query -W -f='${Version}' "$1"; }

# Everything that changes the image goes into the key.
image_key() {
    local kpkg="$1"
    {
        cat "$HERE/build_image.sh" "$HERE/init.sh"
        echo "$kpkg $(pkg_version "$kpkg")"
        for p in dpdk librte-net-e1000-23 librte-net-virtio-23 busybox-static libc6; do
            echo "$p $(installed_version "$p" 2>/dev/null || echo none)"
        done
    } | sha256sum | cut -c1-16
}

# Fetches and unpacks the guest kernel package (not installed on the host) into $1.
unpack_kernel() {
    local kpkg="$1" dest="$2" deb
    mkdir -p "$CACHE/debs"
    deb="$(ls "$CACHE/debs/${kpkg}_"*.deb 2>/dev/null | head -1 || true)"
    if [[ -z "$deb" ]]; then
        (cd "$CACHE/debs" && apt-get download -q "$kpkg" >&2)
        deb="$(ls "$CACHE/debs/${kpkg}_"*.deb | head -1)"
    fi
    dpkg-deb -x "$deb" "$dest"
}

# Maps a host path to its place in the guest root, following Debian's merged /usr
# (/lib -> usr/lib) so ldd's /lib/... paths and /usr/lib/... paths land in one tree.
guest_path() {
    case "$1" in
        /lib/*|/lib64/*|/bin/*|/sbin/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}

# Copies one file into the root, keeping symlinks as symlinks and copying what they point to,
# so Debian's chains (libfoo.so.23 -> dpdk/pmds-23.0/libfoo.so.23 -> libfoo.so.23.0) survive.
copy_path() {
    local root="$1" src="$2" dst target
    dst="$root$(guest_path "$src")"
    [[ -e "$dst" || -L "$dst" ]] && return 0
    mkdir -p "$(dirname "$dst")"
    if [[ -L "$src" ]]; then
        target="$(readlink "$src")"
        cp -P "$src" "$dst"
        [[ "$target" == /* ]] || target="$(dirname "$src")/$target"
        copy_path "$root" "$(realpath -s "$target")"
    else
        cp "$src" "$dst"
    fi
}

# Copies binaries/libraries and every shared library they need (ldd resolves the closure).
copy_with_libs() {
    local root="$1" f lib
    shift
    for f in "$@"; do
        copy_path "$root" "$f"
        while read -r lib; do
            copy_path "$root" "$lib"
        done < <(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
    done
}

# Copies the modules needed for VFIO and the 9p share, with a load-order list for /init
# (modprobe --show-depends prints dependencies first).
copy_modules() {
    local root="$1" kroot="$2" kver="$3" m line ko
    depmod -b "$kroot" "$kver"
    mkdir -p "$root/lib/modules"
    : >"$root/lib/modules/order"
    for m in virtio_pci 9pnet_virtio 9p vfio vfio_iommu_type1 vfio-pci; do
        while read -r line; do
            [[ "$line" == insmod* ]] || continue
            ko="$(awk '{print $2}' <<<"$line")"
            local name; name="$(basename "$ko")"
            grep -qx "$name" "$root/lib/modules/order" && continue
            cp "$ko" "$root/lib/modules/$name"
            echo "$name" >>"$root/lib/modules/order"
        done < <(modprobe -d "$kroot" -S "$kver" --show-depends "$m")
    done
}

build_initramfs() {
    local kroot="$1" kver="$2" out="$3" root
    root="$(mktemp -d "$CACHE/root.XXXXXX")"
    # Merged-/usr layout, as on Debian, so ld.so and ldd's paths agree.
    mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,share,etc,mnt}
    ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
    # EAL keeps its runtime files under /var/run/dpdk: point it at the tmpfs.
    mkdir -p "$root/var"; ln -s /run "$root/var/run"
    cp /bin/busybox "$root/usr/bin/busybox"
    cp "$HERE/init.sh" "$root/init"
    chmod 755 "$root/init"
    copy_modules "$root" "$kroot" "$kver"
    local pmd_files=() p
    for p in "${PMDS[@]}"; do
        pmd_files+=("$PMD_DIR/librte_$p.so.23" "$PMD_DIR/librte_$p.so")
    done
    # libgcc_s is dlopened by glibc (pthread_cancel / unwinding), ldd cannot see it.
    copy_with_libs "$root" /usr/bin/dpdk-testpmd "${pmd_files[@]}" \
        "/usr/lib/$MULTIARCH/libgcc_s.so.1"
    # testpmd finds PMD-dir libraries through its RUNPATH, other programs (the probes) and the
    # PMDs that EAL dlopens find them through the /usr/lib/<multiarch> aliases: keep those.
    local f
    for f in "$root$PMD_DIR"/*; do
        f="/usr/lib/$MULTIARCH/$(basename "$f")"
        if [[ -e "$f" ]]; then copy_path "$root" "$f"; fi
    done
    # What the image holds, so run.sh ships only the missing libraries in the 9p share.
    (cd "$root" && find . ! -type d | sed 's|^\.||' | LC_ALL=C sort) >"$(dirname "$out")/files.txt"
    # The root entry must be in the archive with mode 755: EAL refuses to load plugins from
    # under a world-writable directory, and rootfs defaults to 777.
    chmod 755 "$root"
    (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$root"
}

main() {
    local force=0
    [[ "${1:-}" == --force ]] && force=1
    mkdir -p "$CACHE"
    # One builder at a time: two runs sharing the cache must not interleave their rebuilds.
    exec 9>"$CACHE/.build.lock"
    flock 9
    ensure_host_pkgs
    local kpkg key kver
    kpkg="$(kernel_pkg)"
    key="$(image_key "$kpkg")"
    if ((force == 0)) && [[ -f "$IMG/key" && "$(cat "$IMG/key")" == "$key" ]]; then
        log "image up to date ($key)"
        echo "$IMG"
        return 0
    fi
    log "building image $key from $kpkg"
    local kroot
    kroot="$(mktemp -d "$CACHE/kernel.XXXXXX")"
    unpack_kernel "$kpkg" "$kroot"
    kver="$(ls "$kroot/lib/modules")"
    rm -rf "$IMG.new" && mkdir -p "$IMG.new"
    cp "$kroot/boot/vmlinuz-$kver" "$IMG.new/vmlinuz"
    build_initramfs "$kroot" "$kver" "$IMG.new/initrd.img"
    echo "$key" >"$IMG.new/key"
    rm -rf "$kroot" "$IMG"
    mv "$IMG.new" "$IMG"
    # Old kernel debs are useless once a newer kernel is used.
    find "$CACHE/debs" -name '*.deb' ! -name "${kpkg}_*" -delete
    log "image ready: $(du -sh "$IMG" | cut -f1)"
    echo "$IMG"
}

main "$@"
