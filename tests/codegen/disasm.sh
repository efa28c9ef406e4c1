# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the tests/codegen checks: the disassembly of a build's
# libiovam.so, and one function's body in it. x86-64 only (the checks name
# x86 instructions).
#
#   . "$here/disasm.sh"
#   codegen_disasm CHECK_NAME BUILD_DIR   # sets $lib and $disasm, or exits 1
#   body=$(fn_body 'ns::fn(args)')        # empty if the function is not there

codegen_disasm() {
	local check=$1 build=$2
	lib=$build/lib/libiovam.so
	if [ "$(uname -m)" != x86_64 ]; then
		echo "FAIL $check: x86-64 only, this is $(uname -m)"
		exit 1
	fi
	[ -f "$lib" ] || { echo "FAIL $check: no $lib"; exit 1; }
	disasm=$(objdump -d --no-show-raw-insn -C "$lib") || { echo "FAIL objdump $lib"; exit 1; }
}

fn_body() {
	awk -v f="<$1>:" 'index($0, f) {on = 1; next} on && /^$/ {exit} on' <<<"$disasm"
}
