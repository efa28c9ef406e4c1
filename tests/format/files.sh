# SPDX-License-Identifier: BSD-3-Clause
# Sourced by check_format.sh and reformat.sh: the C and C++ files the style
# covers, every git-tracked *.c, *.cc and *.h (there is no third-party code),
# one per line, relative to the repository root ($root).
format_files() {
	git -C "$root" ls-files -- '*.c' '*.cc' '*.h'
}
