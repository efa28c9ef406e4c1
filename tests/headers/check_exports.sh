#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The shared libraries export exactly their version script's C API:
#
#   tests/headers/check_exports.sh [BUILD_DIR]
#
# nm -D --defined-only of libiovam.so and libiovam_dpdk.so against the
# global: names of lib/version.map and dpdk-glue/version.map (no C++
# symbol, nothing missing, nothing extra), and those maps against the
# functions iovam.h and iovam_dpdk.h declare. Prints the count of each.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
failed=0

# A build with -Dtest_hooks=true exports the glue's iovam_dpdk_test_* hooks
# too (dpdk-glue/version_test_hooks.map); a build without must not.
hooks=$(meson introspect "$build" --buildoptions 2>/dev/null |
	python3 -c 'import json,sys; print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "test_hooks"), False))')
if [ "$hooks" = True ]; then
	glue_map=$root/dpdk-glue/version_test_hooks.map
	not_declared='^$'
else
	glue_map=$root/dpdk-glue/version.map
	not_declared='^iovam_dpdk_test_'
fi

check() { # library, version map, public headers, their functions' prefix, names to leave out
	local lib=$1 map=$2 header=$3 prefix=$4 skip=${5:-^$}
	# Every function the header declares is in the map (a new one must be
	# added there, or it would be hidden), and nothing else.
	local declared listed
	declared=$(grep -ohE "\\b${prefix}[a-z_0-9]+\\(" $header | tr -d '(' | grep -v '_$' | grep -vE "$skip" | sort -u)
	listed=$(sed -n '/global:/,/local:/p' "$map" | grep -oE '^[[:space:]]*[a-z_0-9]+;' | tr -d ' \t;' | sort)
	if [ "$declared" != "$listed" ]; then
		echo "FAIL $map differs from the functions $header declares (< header only, > map only):"
		diff <(echo "$declared") <(echo "$listed") | grep '^[<>]'
		failed=$((failed + 1))
	fi
	if [ ! -e "$lib" ]; then
		echo "FAIL $lib: not built"
		failed=$((failed + 1))
		return
	fi
	local want got
	want=$(sed -n '/global:/,/local:/p' "$map" | grep -oE '^[[:space:]]*[a-z_0-9]+;' | tr -d ' \t;' | sort)
	got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
	if [ "$want" = "$got" ]; then
		echo "ok   $(basename "$lib"): $(wc -l <<<"$got") symbols, exactly $(basename "$(dirname "$map")")/$(basename "$map")"
	else
		echo "FAIL $(basename "$lib"): exports differ from $map (< map only, > library only):"
		diff <(echo "$want") <(echo "$got") | grep '^[<>]'
		failed=$((failed + 1))
	fi
}

check "$build/lib/libiovam.so" "$root/lib/version.map" "$root/lib/include/iovam.h $root/lib/include/iovam_numa.h" iovam_
check "$build/dpdk-glue/libiovam_dpdk.so" "$glue_map" "$root/dpdk-glue/include/iovam_dpdk.h" iovam_dpdk_ \
	"$not_declared"
[ "$failed" = 0 ]
