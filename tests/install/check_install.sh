#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# meson install, then build a C and a C++ program against the installed
# library with nothing but `pkg-config --cflags --libs iovam`, and run them.
#   tests/install/check_install.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
meson install -C "$build" --quiet
ldconfig
pc_dir=$(dirname "$(find /usr/local -name iovam.pc | head -1)")
export PKG_CONFIG_PATH="$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists iovam
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
"$tmp/app_c"
"$tmp/app_cc"
if pkg-config --exists iovam-dpdk; then
	pkg-config --cflags --libs iovam-dpdk
fi
