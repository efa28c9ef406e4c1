#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The public headers compile warning-free as a consumer compiles them:
#
#   tests/headers/check_headers.sh
#
# consumer.c (every inline call, constant and variable arguments) with gcc
# and clang, as C11 and C17 and as C++17 and C++20, at -O2 and -O3, with
# -Wall -Wextra -Werror; and the README's "Using the core from C" example,
# taken from README.md, with iovam.h alone. Prints one line per compile and
# exits non-zero if any fails or a compiler is missing.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
inc=(-I"$root/lib/include" -I"$root/dpdk-glue/include")
warn=(-Wall -Wextra -Werror)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
count=0

compile() { # label, then the command
	local label=$1
	shift
	count=$((count + 1))
	if "$@" 2>"$tmp/err"; then
		echo "ok   $label"
	else
		echo "FAIL $label: $*"
		cat "$tmp/err"
		failed=$((failed + 1))
	fi
}

# The README example: the lines of the first ```c block after the heading,
# includes first, the statements inside a function.
readme=$tmp/readme_core.c
awk '/^## Using the core from C/ { sec = 1; next }
     sec && /^```c/ { code = 1; next }
     code && /^```/ { exit }
     code { print }' "$root/README.md" >"$tmp/snippet"
if ! [ -s "$tmp/snippet" ]; then
	echo "FAIL README.md: no \"Using the core from C\" code block"
	exit 1
fi
{
	grep '^#include' "$tmp/snippet"
	echo 'int readme_core_example(void);'
	echo 'int readme_core_example(void) {'
	grep -v '^#include' "$tmp/snippet"
	echo 'return rc; }'
} >"$readme"

for cc in gcc clang; do
	if ! command -v "$cc" >/dev/null; then
		echo "FAIL $cc not installed (scripts/setup-debian.sh installs it)"
		failed=$((failed + 1))
		continue
	fi
	cxx=$([ "$cc" = gcc ] && echo g++ || echo clang++)
	for opt in -O2 -O3; do
		for std in c11 c17; do
			compile "$cc -std=$std $opt consumer.c" \
				"$cc" -std="$std" "$opt" "${warn[@]}" "${inc[@]}" -c "$here/consumer.c" -o "$tmp/c.o"
			compile "$cc -std=$std $opt README example" \
				"$cc" -std="$std" "$opt" "${warn[@]}" -I"$root/lib/include" -c "$readme" -o "$tmp/r.o"
		done
		for std in c++17 c++20; do
			compile "$cxx -std=$std $opt consumer.c" \
				"$cxx" -x c++ -std="$std" "$opt" "${warn[@]}" "${inc[@]}" -c "$here/consumer.c" -o "$tmp/cxx.o"
		done
	done
done

echo "headers: $((count - failed)) of $count compiles clean"
[ "$failed" = 0 ]
