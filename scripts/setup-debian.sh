#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install what iovam needs on Debian 12 (idempotent; needs root), and reserve
# hugepages for DPDK. Used by the Quick start, tests/run_all.sh and .ci/run.
#
#   scripts/setup-debian.sh [--no-hugepages]
set -euo pipefail

packages=(
	g++ gcc pkg-config meson ninja-build        # build
	libgtest-dev libgmock-dev                   # tests
	libbenchmark-dev libhwloc-dev libtbb-dev    # perf
	libtbbbind-2-5                              # perf: TBB's NUMA arenas (hwloc)
	python3-matplotlib valgrind                 # perf report, instruction counts
	dpdk dpdk-dev libdpdk-dev                   # dpdk-glue, testpmd, dpdk-telemetry.py
	clang libclang-rt-14-dev                    # libFuzzer
	clang-format                                # tests/format (version 14)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup-debian: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != --no-hugepages ]; then
	# 2 MiB pages for the DPDK tests and examples: each EAL process takes what it
	# touches, tests run one at a time.
	if [ "$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)" -lt 1024 ]; then
		echo 1024 > /proc/sys/vm/nr_hugepages
	fi
	if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
		mkdir -p /dev/hugepages
		mount -t hugetlbfs nodev /dev/hugepages
	fi
	total=$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)
	[ "$total" -ge 256 ] || { echo "setup-debian: only $total hugepages could be reserved" >&2; exit 1; }
fi
