#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every C and C++ file is formatted as .clang-format says (clang-format 14):
#
#   tests/format/check_format.sh
#
# Prints "format: N files OK", or the files clang-format would change (with
# the first lines of each diff) and "format: M of N files not formatted", and
# exits 1. tests/format/reformat.sh fixes them.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/files.sh"
command -v clang-format >/dev/null || { echo "format: clang-format not installed" >&2; exit 1; }
[ -f "$root/.clang-format" ] || { echo "format: no .clang-format" >&2; exit 1; }

# Other versions break some lines differently: the style was set with 14 (Debian 12).
version=$(clang-format --version | grep -o 'version [0-9]*' | cut -d' ' -f2)
[ "$version" = 14 ] || echo "format: clang-format $version, not 14: differences may be the version's"
mapfile -t files < <(format_files)
[ ${#files[@]} -gt 0 ] || { echo "format: no files found" >&2; exit 1; }
bad=()
cd "$root" || exit 1
for f in "${files[@]}"; do
	if ! clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
		bad+=("$f")
		echo "format: $f"
		clang-format --style=file "$f" | diff -u "$f" - | sed -n '3,14p' | sed 's/^/    /'
	fi
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "format: ${#bad[@]} of ${#files[@]} files not formatted (tests/format/reformat.sh fixes them)"
	exit 1
fi
echo "format: ${#files[@]} files OK"
