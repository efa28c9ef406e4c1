#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build the libFuzzer target for the iovam C API and fuzz it:
#
#   tests/fuzz/run.sh [SECONDS]        (default 60)
#
# Builds build-fuzz/fuzz_api with clang++ (libFuzzer + ASan + UBSan, lib/
# compiled in directly, asserts on), copies tests/fuzz/corpus/ to
# build-fuzz/corpus/, runs libFuzzer on one core for SECONDS, and prints as its
# last line
#
#   fuzz: execs=N crashes=C seconds=S
#
# C counts crash, leak, timeout and out-of-memory artifacts (written to
# build-fuzz/artifacts/); the exit status is non-zero if C > 0 or the build or
# run failed. Environment: FUZZ_JOBS (default 1) parallel fuzzing processes,
# CXX (default clang++), FUZZ_EXTRA_FLAGS extra compile flags,
# FUZZ_REV a git revision whose lib/ to fuzz instead of the working tree's,
# FUZZ_BUILD_DIR (default build-fuzz) where to build and run.
set -uo pipefail

seconds=${1:-60}
case $seconds in '' | *[!0-9]* | 0) echo "usage: $0 [SECONDS >= 1]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${CXX:-clang++}
jobs=${FUZZ_JOBS:-1}

summary() { echo "fuzz: execs=$1 crashes=$2 seconds=$3"; }

# clang and libFuzzer's runtime (libclang-rt-14-dev on Debian 12).
have_libfuzzer() {
	command -v "$cxx" >/dev/null 2>&1 || return 1
	echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
		"$cxx" -x c++ -fsanitize=fuzzer - -o /dev/null >/dev/null 2>&1
}
if ! have_libfuzzer; then
	echo "fuzz: installing clang libclang-rt-14-dev" >&2
	if [ "$(id -u)" = 0 ]; then
		{ apt-get install -y --no-install-recommends clang libclang-rt-14-dev ||
			{ apt-get update && apt-get install -y --no-install-recommends clang libclang-rt-14-dev; }; } >&2
	else
		{ sudo apt-get install -y --no-install-recommends clang libclang-rt-14-dev; } >&2
	fi
	have_libfuzzer || { echo "fuzz: no working clang++ with libFuzzer" >&2; summary 0 0 0; exit 1; }
fi

mkdir -p "$out"
src=$root
if [ -n "${FUZZ_REV:-}" ]; then
	rev=$(git -C "$root" rev-parse --short "$FUZZ_REV") || { summary 0 0 0; exit 1; }
	# Keyed by the content of lib/ and the reference model: commits elsewhere reuse it.
	key=$(git -C "$root" rev-parse --short "$rev:lib")-$(git -C "$root" rev-parse --short "$rev:tests/unit/reference_model.h")
	src=$out/src-$key
	if [ ! -d "$src" ]; then
		mkdir -p "$src.tmp" && git -C "$root" archive "$rev" lib tests/unit/reference_model.h | tar -x -C "$src.tmp" &&
			mv "$src.tmp" "$src" || { summary 0 0 0; exit 1; }
	fi
	echo "fuzz: lib/ of $rev" >&2
fi
# The library's sources, as lib/meson.build lists them.
srcs=$(sed -n "/^iovam_sources = files(/,/)/p" "$src/lib/meson.build" | grep -o "'[a-z_0-9]*\.cc'" | tr -d "'")
[ -n "$srcs" ] || srcs="gap_tree.cc node_pool.cc domain.cc range_cache.cc iovam_c_api.cc"
# Coverage feedback from iovam's code only (lib/, and the inline fast path of
# iovam.h compiled into the harness): not from the harness and its std::map
# model, nor the standard library's templates (std::sort in verify() was most
# of the time).
# (Mangled names: src: entries match a translation unit, not a header.)
printf 'fun:%s\n' '_ZSt*' '_ZNSt*' '_ZNKSt*' '_ZN9__gnu_cxx*' '_ZNK9__gnu_cxx*' '_ZN12_GLOBAL__N_1*' \
	'_ZNK12_GLOBAL__N_1*' '_ZN5iovam4test*' '_ZNK5iovam4test*' LLVMFuzzerTestOneInput >"$out/coverage_ignore.txt"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fsanitize-coverage-ignorelist="$out/coverage_ignore.txt"
	-fno-omit-frame-pointer -fno-exceptions -fno-rtti -I"$src/lib" -I"$src/lib/include" -I"$src/tests/unit"
	${FUZZ_EXTRA_FLAGS:-})
bin=$out/fuzz_api
# Rebuild when a source or the flags changed; objects in parallel is not worth
# it on a shared 2-core machine: one compiler at a time.
stamp=$out/.flags
inputs=("$here/fuzz_api.cc" "$here/run.sh" "$src/tests/unit/reference_model.h" "$src"/lib/*.h "$src"/lib/include/*.h)
for s in $srcs; do inputs+=("$src/lib/$s"); done
need=0
[ -x "$bin" ] || need=1
[ "$(cat "$stamp" 2>/dev/null)" = "$cxx ${flags[*]}" ] || need=1
for f in "${inputs[@]}"; do [ "$f" -nt "$bin" ] && need=1; done
if [ $need = 1 ]; then
	echo "fuzz: building $bin" >&2
	objs=()
	for s in $srcs; do
		o=$out/${s%.cc}.o
		"$cxx" "${flags[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" -c "$src/lib/$s" -o "$o" || { summary 0 0 0; exit 1; }
		objs+=("$o")
	done
	"$cxx" "${flags[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" -c "$here/fuzz_api.cc" -o "$out/fuzz_api.o" &&
		"$cxx" "${flags[@]}" "$out/fuzz_api.o" "${objs[@]}" -lpthread -o "$bin.tmp" && mv "$bin.tmp" "$bin" ||
		{ summary 0 0 0; exit 1; }
	echo "$cxx ${flags[*]}" >"$stamp"
fi

# A fresh copy of the seed corpus (libFuzzer adds to it; the repo's stays small).
rm -rf "$out/corpus" "$out/artifacts"
mkdir -p "$out/corpus" "$out/artifacts"
cp "$here"/corpus/* "$out/corpus/" 2>/dev/null || true
# The reproducers of known bugs run as seeds too (skipped calls unless fixed and unskipped).
for f in "$here"/crashes/*; do case $f in *.md) ;; *) [ -f "$f" ] && cp "$f" "$out/corpus/"; esac; done
log=$out/fuzz.log
echo "fuzz: running $bin for ${seconds}s (log $log)" >&2
start=$(date +%s)
args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=20 -rss_limit_mb=2048 -max_len=8192
	-artifact_prefix="$out/artifacts/" "$out/corpus")
if [ "$jobs" -gt 1 ]; then
	"$bin" "${args[@]}" -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 >"$log" 2>&1
else
	"$bin" "${args[@]}" >"$log" 2>&1
fi
rc=$?
elapsed=$(($(date +%s) - start))
grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY|FUZZ MISMATCH)' "$log" | tail -25 >&2
execs=$(awk '/^stat::number_of_executed_units:/ {s += $2} END {print s + 0}' "$log")
if [ "$execs" = 0 ]; then
	# -fork mode prints no stat:: lines: take the last status line's count.
	execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
	execs=${execs:-0}
fi
crashes=$(find "$out/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
if [ "$crashes" -gt 0 ]; then
	echo "fuzz: artifacts:" >&2
	ls -l "$out/artifacts" >&2
	grep -m1 -A30 -E 'FUZZ MISMATCH|==[0-9]+==ERROR|runtime error' "$log" >&2
fi
status=0
[ "$crashes" -gt 0 ] && status=1
# libFuzzer exits non-zero on a crash; anything else (no stats) is a failure too.
if [ $rc -ne 0 ] && [ "$crashes" = 0 ]; then
	echo "fuzz: libFuzzer exited with $rc (see $log)" >&2
	status=1
fi
[ "$execs" -gt 0 ] || status=1
summary "$execs" "$crashes" "$elapsed"
exit $status
