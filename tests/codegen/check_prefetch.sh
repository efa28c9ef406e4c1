#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The software prefetches the 1M-range figures depend on are in the built
# library, whatever its optimisation level:
#
#   tests/codegen/check_prefetch.sh [BUILD_DIR]
#
# Domain::free() asks for the range's live byte before its tree descent, and
# GapTree::descend() for the four lines of each hinted node of the path's
# bottom three (lib/path_hints.h) and for each next node's four: 16 at least.
# A bulk free to the tree asks ahead for each range's live byte
# (RangeCache::hold_all_locked(), two call sites), its hint slots (three, at
# each of Domain::prefetch_frees_locked()'s two call sites) and the nodes
# they name (GapTree::prefetch_path(), twelve). GCC 12 at -O2 (meson's
# debugoptimized, this project's default) dropped the first one without a word
# when it sat in an out-of-line helper; a default build then paid that cache
# miss on every free of a large domain. Reads the disassembly (objdump) of
# libiovam.so; x86-64 only (the instruction's name is the architecture's).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/disasm.sh"

failed=0
codegen_disasm check_prefetch "${1:-$root/build}"
declare -A want=(
	['iovam::detail::Domain::free(unsigned long)']=1
	['iovam::detail::GapTree::descend(unsigned long, iovam::detail::GapTree::Path&) const']=16
	['iovam::detail::GapTree::prefetch_path(unsigned long) const']=12
	['iovam::detail::Domain::prefetch_frees_locked(unsigned long const*, unsigned int, unsigned int) const']=6
	['iovam::detail::RangeCache::hold_all_locked(unsigned long const*, unsigned int, unsigned long, bool)']=2
)
for fn in "${!want[@]}"; do
	body=$(fn_body "$fn")
	if [ -z "$body" ]; then
		echo "FAIL $fn: not found in $lib"
		failed=$((failed + 1))
		continue
	fi
	n=$(grep -cE '\sprefetch' <<<"$body")
	if [ "$n" -lt "${want[$fn]}" ]; then
		echo "FAIL $fn: $n prefetch instructions, want ${want[$fn]} at least"
		failed=$((failed + 1))
	else
		echo "ok   $fn: $n prefetch instructions"
	fi
done
[ $failed -eq 0 ] && echo "check_prefetch: PASS" || echo "check_prefetch: $failed FAILED"
exit $((failed > 0))
