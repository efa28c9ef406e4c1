#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The plugin's environment, as a user meets it: an unmodified dpdk-testpmd
# with -d libiovam_dpdk.so --mbuf-pool-ops-name iovam and a bad IOVAM_*
# variable must stop with one line naming the variable, its value and what
# it accepts; IOVAM_DISABLE=1 must say that iovam is off.
#
#   tests/dpdk/plugin_env.sh [BUILD_DIR]      (needs root and hugepages)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
testpmd=${IOVAM_TESTPMD:-/usr/bin/dpdk-testpmd}
[ -e "$build/dpdk-glue/libiovam_dpdk.so" ] || { echo "no $build/dpdk-glue/libiovam_dpdk.so"; exit 1; }
[ -x "$testpmd" ] || { echo "no $testpmd"; exit 1; }
failed=0
n=0

# run NAME EXPECT_EXIT(nonzero|any) PATTERN... -- ENV...
check() {
	local name=$1 pattern=$2
	shift 2
	local prefix="iovam_i12_env_$$_$n" out
	n=$((n + 1))
	out=$(env -u IOVAM_DISABLE "$@" LD_LIBRARY_PATH="$build/dpdk-glue:$build/lib" \
		timeout 60 "$testpmd" -l 0-1 --no-pci --in-memory -m 64 --file-prefix "$prefix" \
		--vdev net_null0 -d libiovam_dpdk.so --mbuf-pool-ops-name iovam \
		-- --total-num-mbufs=2048 </dev/null 2>&1)
	local rc=$?
	rm -rf "/var/run/dpdk/$prefix"
	if [ $rc -ne 0 ] && grep -qF -- "$pattern" <<<"$out"; then
		echo "ok   $name: exit $rc, \"$(grep -F -- "$pattern" <<<"$out" | head -1)\""
	else
		echo "FAIL $name: exit $rc, no line with \"$pattern\"; output:"
		tail -15 <<<"$out"
		failed=$((failed + 1))
	fi
}

check "not a number" 'IOVAM_DMA_BITS="abc" is not valid: it accepts 20..64' IOVAM_DMA_BITS=abc
check "granule 3" 'IOVAM_GRANULE="3" is not valid: it accepts a power of two >= 4096' IOVAM_GRANULE=3
check "octal-looking end" 'IOVAM_DMA_BITS="077" is not valid' IOVAM_DMA_BITS=077
check "negative" 'IOVAM_UNMAP_QUEUE="-1" is not valid' IOVAM_UNMAP_QUEUE=-1
check "flag 2" 'IOVAM_NO_SERVICE="2" is not valid: it accepts 0 or 1' IOVAM_NO_SERVICE=2
check "base above end" 'IOVAM_IOVA_BASE=0x20000000, IOVAM_IOVA_END=0x10000000' \
	IOVAM_NO_IOMMU=1 IOVAM_IOVA_BASE=0x20000000 IOVAM_IOVA_END=0x10000000
check "disable value" 'IOVAM_DISABLE="yes" is not valid: it accepts 1 (iovam off) or 0' IOVAM_DISABLE=yes
check "disabled" 'IOVAM_DISABLE=1: iovam is off' IOVAM_DISABLE=1

echo "plugin env: $((n - failed)) of $n cases gave their message"
[ "$failed" = 0 ]
