#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Run Debian's unmodified dpdk-testpmd with iovam loaded as an EAL plugin:
# two net_null ports, io forwarding for SECONDS, mbufs from the "iovam"
# mempool ops. Prints testpmd's forwarding statistics, then, as the LAST line,
# the /iovam/stats telemetry JSON read through dpdk-telemetry.py.
#
#   examples/testpmd/run.sh [SECONDS] [--native]
#
# --native runs the same command without iovam (DPDK's default ring pool) for
# a throughput comparison; its last line is then {"native": ...}.
# Environment: IOVAM_BUILD_DIR (default <repo>/build), IOVAM_TESTPMD (default
# /usr/bin/dpdk-testpmd), and the plugin's own IOVAM_DMA_BITS, IOVAM_GRANULE,
# IOVAM_IOVA_BASE, IOVAM_IOVA_END, IOVAM_NO_IOMMU, IOVAM_NO_SERVICE, IOVAM_DYN_VIA_DPDK,
# IOVAM_UNMAP_QUEUE, IOVAM_MAX_DYN_MAPPINGS (see dpdk-glue/include/iovam_dpdk.h).
# Needs root.
set -euo pipefail

secs=10
native=0
for a in "$@"; do
	case "$a" in
	--native) native=1 ;;
	''|*[!0-9]*) echo "usage: $0 [SECONDS] [--native]" >&2; exit 2 ;;
	*) secs=$a ;;
	esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IOVAM_BUILD_DIR:-$root/build}
testpmd=${IOVAM_TESTPMD:-/usr/bin/dpdk-testpmd}
# dpdk-telemetry.py has a /usr/bin/python3 shebang; call that interpreter
# explicitly so a pyenv python3 earlier on PATH does not matter.
telemetry=(/usr/bin/python3 /usr/bin/dpdk-telemetry.py)

log() { echo "run.sh: $*" >&2; }

# Hugepages: 512 x 2 MiB and a hugetlbfs mount.
if [ "$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)" -lt 256 ]; then
	log "reserving 512 hugepages"
	echo 512 > /proc/sys/vm/nr_hugepages
fi
if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
	mkdir -p /dev/hugepages
	mount -t hugetlbfs nodev /dev/hugepages
fi

# Build if needed.
if [ ! -e "$build/dpdk-glue/libiovam_dpdk.so" ]; then
	log "building in $build"
	(cd "$root" && { [ -e "$build/build.ninja" ] || meson setup "$build"; } && ninja -C "$build") >&2
fi

prefix="iovam_testpmd_$$"
pid=
# In $TMPDIR (default /tmp). Everything this script creates goes on exit,
# whatever the exit (failure, Ctrl-C, a test runner's SIGTERM): testpmd if it
# still runs, the fifo and the output file, and what EAL leaves behind, the
# runtime directory and the hugepage files of our per-run --file-prefix.
tmp=$(mktemp -d -t iovam_testpmd.XXXXXX)
fifo=$tmp/stdin
out=$tmp/out
mkfifo "$fifo"
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp" "/var/run/dpdk/$prefix"
	rm -f /dev/hugepages/"$prefix"map_*
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

plugin=()
if [ "$native" = 0 ]; then
	# A bare library name found through LD_LIBRARY_PATH: EAL refuses -d
	# paths under world-writable directories.
	plugin=(-d libiovam_dpdk.so --mbuf-pool-ops-name iovam)
	export LD_LIBRARY_PATH="$build/dpdk-glue:$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# stdbuf: testpmd writes to a file; line buffering lets us see "Press enter".
# --no-pci: vdevs only, never touch the machine's own NICs.
# lcore 0: main (reads stdin), lcore 1: forwarding. Without a service lcore
# the iovam service runs from an EAL alarm.
# --socket-mem: 128 MiB preallocated, as production apps do; EAL never frees
# it, so iovam maps each VA-contiguous run of it as one DMA mapping.
stdbuf -oL -eL "$testpmd" -l 0-1 -n 1 --no-pci --socket-mem 128 --file-prefix "$prefix" "${plugin[@]}" \
	--vdev net_null0 --vdev net_null1 -- \
	--forward-mode=io --nb-cores=1 --total-num-mbufs=16384 <"$fifo" >"$out" 2>&1 &
pid=$!
exec 3>"$fifo" # keep the fifo open: testpmd waits for a line on it

# Wait until forwarding started (or testpmd died), then let it run.
for _ in $(seq 1 300); do
	grep -q "Press enter to exit" "$out" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q "Press enter to exit" "$out"; then
	cat "$out" >&2
	log "testpmd did not start"
	exit 1
fi
sleep "$secs"

json='{"native": 1}'
if [ "$native" = 0 ]; then
	json=$(echo /iovam/stats | "${telemetry[@]}" -f "$prefix" 2>/dev/null |
		grep -m1 '^{"/iovam/stats"' || true)
	[ -n "$json" ] || json='{"error": "no /iovam/stats from dpdk-telemetry.py"}'
fi

echo >&3 # "Press enter to exit"
exec 3>&-
wait "$pid" || true
pid=

grep -iE '^(IOVAM|testpmd: preferred mempool ops)' "$out" || true
# testpmd's forwarding statistics, from the first port's block to the end of
# the accumulated block.
awk '/Forward statistics for port/ {p=1} p {print} /Accumulated forward statistics/ {a=1} a && /^ *[+]+ *$/ {exit}' "$out"
rx=$(awk '/Accumulated forward statistics/ {a=1} a && /RX-packets:/ {print $2; exit}' "$out")
if [ -n "$rx" ]; then
	awk -v rx="$rx" -v s="$secs" 'BEGIN {printf "throughput: %.2f Mpps (RX-total over %d s)\n", rx / s / 1e6, s}'
fi
echo "$json"
# Fail (after printing) when the plugin did not answer or no pool used it.
case "$json" in
*'"initialised": 1'*) [[ "$json" != *'"pools": 0'* ]] ;;
'{"native": 1}') true ;;
*) false ;;
esac
