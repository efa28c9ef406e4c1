#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The functions that move a leaf's pivots call no memmove or memcpy:
#
#   tests/codegen/check_leaf_moves.sh [BUILD_DIR]
#
# An allocation that splits a FREE segment moves the pivots after it up, and
# the free that follows moves them back. memmove's 16- and 32-byte loads
# over pivots stored 8 bytes at a time just before cannot take their data
# from the store buffer, and wait; that made the 1-page pair of the perf
# suite 72 ns against 54 (lib/gap_tree.cc, move_pivots()). GCC turns a plain
# copy loop into a memmove call (-ftree-loop-distribute-patterns), so the
# loop hides its values from it; this check keeps it that way at the build's
# optimisation level. Reads the disassembly (objdump) of libiovam.so; x86-64
# only.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/disasm.sh"

failed=0
codegen_disasm check_leaf_moves "${1:-$root/build}"
functions=(
	'iovam::detail::GapTree::allocate(unsigned long, unsigned long, unsigned long, unsigned long, iovam::detail::Tag, unsigned long*)'
	'iovam::detail::GapTree::carve(iovam::detail::GapTree::Path&, unsigned long, unsigned long, iovam::detail::Tag)'
	'iovam::detail::GapTree::replace_segment(iovam::detail::GapTree::Path&, iovam::detail::GapTree::Run const&, iovam::detail::GapTree::Stash&)'
	'iovam::detail::GapTree::erase_looked_up(iovam::detail::Tag)'
	'iovam::detail::GapTree::absorb_next(unsigned long)'
)
for fn in "${functions[@]}"; do
	body=$(fn_body "$fn")
	if [ -z "$body" ]; then
		echo "FAIL $fn: not found in $lib"
		failed=$((failed + 1))
		continue
	fi
	calls=$(grep -E '\scall.*<(memmove|memcpy)' <<<"$body" | wc -l)
	if [ "$calls" -ne 0 ]; then
		echo "FAIL $fn: $calls calls to memmove or memcpy"
		failed=$((failed + 1))
	else
		echo "ok   $fn: no memmove or memcpy call"
	fi
done
[ $failed -eq 0 ] && echo "check_leaf_moves: PASS" || echo "check_leaf_moves: $failed FAILED"
exit $((failed > 0))
