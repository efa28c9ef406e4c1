#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Formats every C and C++ file in place as .clang-format says (the files
# tests/format/check_format.sh checks):
#
#   tests/format/reformat.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/files.sh"
command -v clang-format >/dev/null || { echo "reformat: clang-format not installed" >&2; exit 1; }
cd "$root"
mapfile -t files < <(format_files)
clang-format --style=file -i "${files[@]}"
echo "reformat: ${#files[@]} files"
