#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite, from a fresh Debian 12 machine (needs root):
#
#   tests/run_all.sh [--quick]
#
#  1. installs the Debian packages and reserves hugepages (scripts/setup-debian.sh)
#  2. builds with warnings as errors and runs every meson test: unit, model,
#     stress, the DPDK glue on real EAL (hugepages, vdevs), the examples;
#     compiles the public headers as consumers do (tests/headers)
#  3. an ASan+UBSan build runs the core's unit, model and stress tests and the
#     glue's tests in every EAL mode
#  4. a TSan build runs the stress test and the glue's tests; an -O0 build
#     compiles
#  5. meson install + a C and a C++ program built with pkg-config iovam
#  6. the fuzzer for 60 s (tests/fuzz/run.sh), if present
#  7. perf/run --smoke
#  8. the VFIO test in a qemu guest (tests/vm/run.sh)
#
# --quick skips 6-8. Each step's verdict is printed; the last line is
# "tests: N passed, N failed" over every meson test and script step.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = --quick ] && quick=1
logdir=$root/build-logs
mkdir -p "$logdir"
passed=0
failed=0
failures=()
start_s=$(date +%s)
say() { echo "run_all [$(($(date +%s) - start_s))s] $*"; }

# A script step counts as one test.
step() {
	local name=$1
	shift
	say "$name: $*"
	if "$@" >"$logdir/$name.log" 2>&1; then
		passed=$((passed + 1))
		say "$name: PASS"
	else
		failed=$((failed + 1))
		failures+=("$name")
		say "$name: FAIL (last lines of $logdir/$name.log follow)"
		tail -40 "$logdir/$name.log"
	fi
}

# A meson test run counts each of its tests.
meson_tests() {
	local name=$1 dir=$2
	shift 2
	say "$name: meson test -C $dir $*"
	meson test -C "$dir" --print-errorlogs "$@" >"$logdir/$name.log" 2>&1
	local rc=$?
	local ok fail
	ok=$(awk '/^Ok:/ {print $2}' "$logdir/$name.log")
	fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/ {s += $2} END {print s + 0}' "$logdir/$name.log")
	grep -E '^ *[0-9]+/[0-9]+ ' "$logdir/$name.log" | sed 's/^/    /'
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0}))
	if [ $rc -ne 0 ] || [ "${ok:-0}" = 0 ]; then
		[ "${fail:-0}" -gt 0 ] || failed=$((failed + 1))
		failures+=("$name")
		say "$name: FAIL"
		grep -B5 -A40 -E 'FAILED|Failure|ERROR|SUMMARY' "$logdir/$name.log" | tail -80
	else
		say "$name: PASS (${ok} tests)"
	fi
}

build() {
	local dir=$1
	shift
	{ [ -f "$dir/build.ninja" ] || meson setup "$dir" -Dwerror=true "$@"; } && ninja -C "$dir"
}

step setup scripts/setup-debian.sh || true
[ "$failed" = 0 ] || { say "setup failed: nothing else can run"; echo "tests: $passed passed, $failed failed"; exit 1; }

# 2. Main build: every test, DPDK ones included (they must not skip).
step build build build --buildtype=debugoptimized -Ddpdk=enabled -Dtests=enabled -Dperf=enabled
meson_tests meson build --num-processes 1
# The public headers as consumers compile them (gcc/clang, C/C++, -O2/-O3).
step headers tests/headers/check_headers.sh
# The libraries export exactly their version.map (nm -D).
step exports tests/headers/check_exports.sh build

# 3-4. Sanitizers: the core, and the glue on a real EAL in its 7 memory modes
# (our code is instrumented, Debian's DPDK is not).
step build-asan build build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
	-Db_lundef=false -Ddpdk=enabled -Dperf=disabled
IOVAM_MODEL_OPS_SCALE=0.25 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson_tests asan build-asan --suite unit --suite stress --suite dpdk-glue \
	--timeout-multiplier 4
step build-tsan build build-tsan --buildtype=debugoptimized -Db_sanitize=thread \
	-Ddpdk=enabled -Dperf=disabled
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	meson_tests tsan build-tsan --suite stress --suite dpdk-glue --timeout-multiplier 4

# An unoptimised build compiles too (inline functions are emitted at -O0).
step build-debug build build-debug --buildtype=debug -Ddpdk=enabled -Dperf=disabled -Dtests=disabled

# 5. Installed library and pkg-config.
step install tests/install/check_install.sh build

if [ "$quick" = 0 ]; then
	[ -x tests/fuzz/run.sh ] && step fuzz tests/fuzz/run.sh 60
	step perf-smoke perf/run --smoke --out "$root/build-logs/perf-smoke"
	# The guest runs this build's libiovam_dpdk (no second glue build).
	step vm env IOVAM_BUILD_DIR="$root/build" tests/vm/run.sh
	[ -f "$logdir/vm.log" ] && tail -1 "$logdir/vm.log"
fi

say "done in $(($(date +%s) - start_s)) s${failures[*]:+; failed: ${failures[*]}}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
