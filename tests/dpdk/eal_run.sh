#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs a DPDK program with a --file-prefix of its own, then removes what EAL
# leaves behind, however the program ended (pass, failure, crash, or meson's
# timeout, which sends SIGTERM to the test's process group):
#
#   tests/dpdk/eal_run.sh NAME PROGRAM [ARGS...]
#
# runs PROGRAM --file-prefix=iovam_NAME_<pid> ARGS..., exits with its status,
# and removes the runtime directory <runtime>/dpdk/<prefix> and the hugepage
# files <hugetlbfs mount>/<prefix>map_* (each holds a hugepage until deleted).
# The meson tests that start an EAL run through it.
set -uo pipefail

name=${1:?usage: eal_run.sh NAME PROGRAM [ARGS...]}
prog=${2:?usage: eal_run.sh NAME PROGRAM [ARGS...]}
shift 2
prefix=iovam_${name}_$$
# shellcheck source=eal_prefix.sh
. "$(dirname "${BASH_SOURCE[0]}")/eal_prefix.sh"
child=

cleanup() {
	if [ -n "$child" ]; then # we were interrupted: the program goes first
		kill "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	eal_prefix_remove "$prefix"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# In the background, so that a signal reaches the trap at once (bash runs
# traps only between commands; wait returns on a signal).
"$prog" "--file-prefix=$prefix" "$@" &
child=$!
wait "$child"
rc=$?
child=
exit $rc
