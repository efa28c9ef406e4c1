#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite, from a fresh Debian 12 machine (needs root):
#
#   tests/run_all.sh [--quick]
#
#  1. installs the Debian packages and reserves hugepages (scripts/setup-debian.sh)
#  2. builds with warnings as errors and runs every meson test: unit, model,
#     stress, the DPDK glue on real EAL (hugepages, vdevs), the examples;
#     compiles the public headers as consumers do (tests/headers); checks
#     the formatting (tests/format)
#  3. an ASan+UBSan build runs the core's unit, model and stress tests and the
#     glue's tests in every EAL mode
#  4. a TSan build runs the stress test and the glue's tests; an -O0 build
#     compiles
#  5. meson install into a temporary prefix + a C and a C++ program built
#     with pkg-config iovam (and iovam-dpdk), then removed
#  6. the fuzzer for 60 s (tests/fuzz/run.sh), if present
#  7. perf/run --smoke
#  8. the VFIO test in a qemu guest (tests/vm/run.sh), and the two-node NUMA
#     guest (tests/vm/numa.sh)
#  9. the machine as it was: nothing new in /usr/local, /var/run/dpdk,
#     /dev/hugepages or /tmp (last line before the verdict: "clean: ...")
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

# Leftovers: the suite leaves the machine as it found it. What the project
# could leave behind is listed after setup (its Debian packages and hugepage
# reservation are intended) and again at the end; a new line is a leftover.
#   /usr/local       every file and link, recursively; *iovam* files with their
#                    mtime, so that an install over an old copy counts too
#   /var/run/dpdk,   every entry that no live process maps or listens on: a DPDK
#   /dev/hugepages   program running beside the suite is not a leftover, and
#                    ours have all exited when the check runs
#   /tmp             entries named like ours (*iovam*, rte*, *dpdk*, *testpmd*):
#                    other programs share /tmp. The suite also runs with TMPDIR
#                    set to a directory of its own (mktemp, compilers, meson and
#                    our scripts and tests use it): whatever is left there counts.
leftovers_dirs=(/usr/local /var/run/dpdk /dev/hugepages /tmp)
leftovers_list() {
	case $1 in
	/usr/local) find /usr/local ! -type d ! -iname '*iovam*'
		find /usr/local -iname '*iovam*' -printf '%p %T@\n' ;;
	/tmp) find /tmp -mindepth 1 -maxdepth 1 \( -iname '*iovam*' -o -name 'rte*' \
		-o -iname '*dpdk*' -o -iname '*testpmd*' \) ;;
	*) find "$1" -mindepth 1 -maxdepth 1 ;;
	esac 2>/dev/null | LC_ALL=C sort
}
leftovers_snapshot() {
	local d
	for d in "${leftovers_dirs[@]}"; do leftovers_list "$d" >"$logdir/leftovers.before${d//\//_}"; done
	leftovers_had_rundir=0
	[ -d /var/run/dpdk ] && leftovers_had_rundir=1
	suite_tmp=$(mktemp -d /tmp/iovam_suite.XXXXXX)
	export TMPDIR=$suite_tmp
	trap 'rm -rf "$suite_tmp"' EXIT
}
leftovers_check() {
	local d new n total=0 summary="" in_use=$logdir/leftovers.in-use e r
	# Mapped files (/proc shows /run for /var/run) and bound unix sockets.
	{ cat /proc/[0-9]*/maps 2>/dev/null | awk '{print $6}'; awk 'NR > 1 {print $8}' /proc/net/unix; } |
		LC_ALL=C sort -u >"$in_use"
	# EAL creates /var/run/dpdk itself; the suite takes it back if it made it.
	[ "$leftovers_had_rundir" = 1 ] || rmdir /var/run/dpdk 2>/dev/null
	for d in "${leftovers_dirs[@]}"; do
		new=$(leftovers_list "$d" | LC_ALL=C comm -13 "$logdir/leftovers.before${d//\//_}" -)
		if [ "$d" = /var/run/dpdk ] || [ "$d" = /dev/hugepages ]; then
			new=$(for e in $new; do
				r=$(realpath -m "$e")
				grep -qsF -e "$r/" -e "$e/" "$in_use" || grep -qsxF -e "$r" -e "$e" -e "$r (deleted)" "$in_use" ||
					echo "$e"
			done)
		fi
		[ "$d" = /tmp ] && new=$(echo "$new" | grep -vxF "$suite_tmp"; find "$suite_tmp" -mindepth 1 -maxdepth 1)
		n=$(echo "$new" | grep -c .)
		[ "$n" = 0 ] || { echo "$d: $n new:"; echo "$new" | sed 's/^/    /'; }
		total=$((total + n))
		summary+="${summary:+, }$d +$n"
	done
	rm -rf "$suite_tmp"
	unset TMPDIR
	echo "clean: $summary"
	[ "$total" = 0 ]
}

step setup scripts/setup-debian.sh || true
[ "$failed" = 0 ] || { say "setup failed: nothing else can run"; echo "tests: $passed passed, $failed failed"; exit 1; }
leftovers_snapshot

# 2. Main build: every test, DPDK ones included (they must not skip).
step build build build --buildtype=debugoptimized -Ddpdk=enabled -Dtests=enabled -Dperf=enabled \
	-Dtest_hooks=true
meson_tests meson build --num-processes 1
# The public headers as consumers compile them (gcc/clang, C/C++, -O2/-O3).
step headers tests/headers/check_headers.sh
# The libraries export exactly their version.map (nm -D).
step exports tests/headers/check_exports.sh build
# The prefetches of a free's live byte and of each node are in that -O2 build.
step prefetch tests/codegen/check_prefetch.sh build
# A leaf's pivots move 8 bytes at a time, never through memmove (store forwarding).
step leaf-moves tests/codegen/check_leaf_moves.sh build
# Every C and C++ file as .clang-format says (tests/format/reformat.sh fixes).
step format tests/format/check_format.sh

# 3-4. Sanitizers: the core, and the glue on a real EAL in its 7 memory modes
# (our code is instrumented, Debian's DPDK is not).
step build-asan build build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
	-Db_lundef=false -Ddpdk=enabled -Dperf=disabled -Dtest_hooks=true
IOVAM_MODEL_OPS_SCALE=0.25 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson_tests asan build-asan --suite unit --suite stress --suite dpdk-glue \
	--timeout-multiplier 4
step build-tsan build build-tsan --buildtype=debugoptimized -Db_sanitize=thread \
	-Ddpdk=enabled -Dperf=disabled -Dtest_hooks=true
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	meson_tests tsan build-tsan --suite stress --suite dpdk-glue --timeout-multiplier 4

# An unoptimised build compiles too (inline functions are emitted at -O0).
step build-debug build build-debug --buildtype=debug -Ddpdk=enabled -Dperf=disabled -Dtests=disabled

# 5. Installed library and pkg-config, in a temporary prefix (nothing system-wide).
step install tests/install/check_install.sh

if [ "$quick" = 0 ]; then
	[ -x tests/fuzz/run.sh ] && step fuzz tests/fuzz/run.sh 60
	step perf-smoke perf/run --smoke --out "$root/build-logs/perf-smoke"
	# The guest runs this build's libiovam_dpdk (no second glue build).
	step vm env IOVAM_BUILD_DIR="$root/build" tests/vm/run.sh
	[ -f "$logdir/vm.log" ] && tail -1 "$logdir/vm.log"
	# Two NUMA nodes in a guest (~70 s on these builds): perf's and the glue's placement.
	step vm-numa env IOVAM_BUILD_DIR="$root/build" IOVAM_PERF_BUILD_DIR="$root/build-perf" \
		tests/vm/numa.sh
	[ -f "$logdir/vm-numa.log" ] && tail -1 "$logdir/vm-numa.log"
fi

# 9. Nothing left behind (see leftovers_check).
step clean leftovers_check
tail -1 "$logdir/clean.log"

say "done in $(($(date +%s) - start_s)) s${failures[*]:+; failed: ${failures[*]}}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
