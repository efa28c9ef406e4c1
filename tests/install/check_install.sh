#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The install, as a user with a --prefix of their choice does it, into a
# temporary prefix: meson setup --prefix=<tmp>/prefix in a build directory of
# its own, meson install, then a C and a C++ program built against the
# installed library with nothing but `pkg-config --cflags --libs iovam`
# (PKG_CONFIG_PATH pointing into the prefix), run with LD_LIBRARY_PATH, and
# checked to load the prefix's libraries. With DPDK, the same for iovam-dpdk.
# Everything lives in one temporary directory, removed on every exit: this
# installs nothing system-wide (no /usr/local, no ldconfig).
#
#   tests/install/check_install.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d -t iovam_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
prefix=$tmp/prefix

dpdk=disabled
pkg-config --exists libdpdk && dpdk=enabled
meson setup "$tmp/build" "$root" --prefix="$prefix" -Dwerror=true -Dtests=disabled \
	-Dperf=disabled -Ddpdk=$dpdk >"$tmp/setup.log" || { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/build" -j2 >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
meson install -C "$tmp/build" --no-rebuild --quiet

pc=$(find "$prefix" -name iovam.pc)
[ -n "$pc" ] || { echo "no iovam.pc under $prefix"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libdir=$(pkg-config --variable=libdir iovam)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "installed under $prefix:"
(cd "$prefix" && find . -type f -o -type l | sort)

# PROGRAM LIB...: each LIB must be loaded from the prefix's libdir.
loads_from_prefix() {
	local bin=$1 lib path
	shift
	for lib in "$@"; do
		path=$(ldd "$bin" | awk -v l="$lib" '$1 ~ "^" l "\\.so" {print $3}')
		[ "$(dirname "$path")" = "$libdir" ] || { echo "$bin loads $lib from '$path', not $libdir"; return 1; }
	done
}

cat >"$tmp/app.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <iovam.h>
int main(void)
{
	struct iovam_domain_conf conf = { .granule = 4096, .start_pfn = 1, .end_pfn = 1 << 20, .n_caches = 2 };
	struct iovam_domain *d = iovam_domain_create(&conf);
	uint64_t pfn;
	if (d == NULL) return 1;
	if (iovam_alloc(d, 8, UINT64_MAX, true, &pfn) != 0 || pfn % 8 != 0) return 2;
	if (iovam_alloc_fast(d, 0, 1, UINT64_MAX, &pfn) != 0) return 3;
	if (iovam_free_fast(d, 0, pfn, 1) != 0) return 4;
	if (iovam_free(d, 12345678) != -ENOENT) return 5;
	if (iovam_verify(d) != 0) return 6;
	iovam_domain_destroy(d);
	printf("c app ok\n");
	return 0;
}
C
cp "$tmp/app.c" "$tmp/app.cc"
cc -std=c11 -Wall -Werror "$tmp/app.c" -o "$tmp/app_c" $(pkg-config --cflags --libs iovam)
c++ -std=c++20 -Wall -Werror "$tmp/app.cc" -o "$tmp/app_cc" $(pkg-config --cflags --libs iovam)
loads_from_prefix "$tmp/app_c" libiovam
loads_from_prefix "$tmp/app_cc" libiovam
"$tmp/app_c"
"$tmp/app_cc"

if [ $dpdk = enabled ]; then
	# Built against iovam-dpdk (and through it libdpdk); without an EAL the
	# glue answers "not initialised" and init refuses with -EPERM.
	cat >"$tmp/app_dpdk.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <iovam_dpdk.h>
int main(void)
{
	struct iovam_dpdk_conf conf = { 0 };
	if (iovam_dpdk_is_initialised() != 0) return 1;
	if (iovam_dpdk_init(&conf) != -EPERM) return 2;
	printf("dpdk app ok\n");
	return 0;
}
C
	cc -std=c11 -Wall -Werror "$tmp/app_dpdk.c" -o "$tmp/app_dpdk" $(pkg-config --cflags --libs iovam-dpdk)
	loads_from_prefix "$tmp/app_dpdk" libiovam_dpdk libiovam
	"$tmp/app_dpdk"
fi
# The README's uninstall takes back every file.
ninja -C "$tmp/build" uninstall >"$tmp/uninstall.log" || { cat "$tmp/uninstall.log"; exit 1; }
left=
[ ! -d "$prefix" ] || left=$(find "$prefix" ! -type d) # meson removes emptied directories too
[ -z "$left" ] || { echo "uninstall left: $left"; exit 1; }
echo "install and uninstall ok: $prefix (removed on exit)"
