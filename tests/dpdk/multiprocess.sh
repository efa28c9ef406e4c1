#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Debian's secondary-process tools against Debian's unmodified dpdk-testpmd
# running iovam as a plugin (-d libiovam_dpdk.so --mbuf-pool-ops-name iovam,
# two net_null ports forwarding): dpdk-proc-info --stats, --show-mempool (the
# list dump and the named pool), dpdk-dumpcap -a duration:3 and dpdk-pdump,
# each once without and once with -d libiovam_dpdk.so in the secondary.
#
#   tests/dpdk/multiprocess.sh [--native] [proc-info|capture]
#
# Every tool must exit by itself (dpdk-pdump runs until SIGINT, as it is meant
# to: it gets one after 3 s and must exit cleanly then); `timeout` only turns
# a hang into a failure. The output is checked: the iovam pool is seen as a
# ring pool (never "iovam", never another driver's ops), with its full size
# in use + available (within 1 %: two reads while testpmd forwards); the ports' counters move; dumpcap and pdump report.
# Each tool's last line is printed. Then testpmd must still forward and exit
# cleanly, and /iovam/stats must show the pool.
#
# --native runs the same with testpmd without iovam, for comparison.
# proc-info runs only the dpdk-proc-info steps, capture only dumpcap and pdump.
#
# dumpcap and pdump create their capture pool with "ring_mp_mc" by name in
# their own ops table, and testpmd fills it through its own table at that
# index. Debian's dpdk-testpmd links librte_mempool_dpaa, so its table is
# shifted by one against the tools' (ring_mp_mc is index 3 there, 2 in the
# tools; index 2 is dpaa2 in testpmd): natively, without iovam, dumpcap then
# makes testpmd call the dpaa2 driver and exit. The capture steps therefore
# first ask dpdk-proc-info which ops it sees for testpmd's pool; unless that
# is ring_mp_mc (the tables agree) they are not run and the script exits 77
# (a skip, never a pass).
# Environment: IOVAM_BUILD_DIR (default <repo>/build). Needs root, hugepages.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IOVAM_BUILD_DIR:-$root/build}
native=0
tools=all
for a in "$@"; do
	case "$a" in
	--native) native=1 ;;
	proc-info|capture) tools=$a ;;
	*) echo "usage: $0 [--native] [proc-info|capture]" >&2; exit 2 ;;
	esac
done
export LD_LIBRARY_PATH="$build/dpdk-glue:$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

prefix="iovam_mp13_$$"
tmp=$(mktemp -d /tmp/iovam_mp.XXXXXX)
testpmd_pid=
failures=0

cleanup() {
	if [ -n "$testpmd_pid" ] && kill -0 "$testpmd_pid" 2>/dev/null; then
		kill -INT "$testpmd_pid" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$testpmd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$testpmd_pid" 2>/dev/null
	fi
	[ -n "${IOVAM_MP_KEEP:-}" ] && cp -r "$tmp" "$IOVAM_MP_KEEP"
	rm -rf "$tmp" "/var/run/dpdk/$prefix"
	rm -f /dev/hugepages/"$prefix"map_* /dev/hugepages/"$prefix"-*
}
trap cleanup EXIT

say() { echo "multiprocess: $*"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

plugin=()
[ "$native" = 0 ] && plugin=(-d libiovam_dpdk.so --mbuf-pool-ops-name iovam)
# --stats-period: testpmd forwards until SIGINT (no stdin needed); 3600 s
# keeps it from printing meanwhile. --no-pci: vdevs only.
/usr/bin/dpdk-testpmd -l 0-1 -n 1 --no-pci --socket-mem 64 --file-prefix "$prefix" \
	"${plugin[@]}" --vdev net_null0 --vdev net_null1 -- \
	--forward-mode=io --nb-cores=1 --total-num-mbufs=8192 --stats-period 3600 \
	>"$tmp/testpmd.out" 2>&1 </dev/null &
testpmd_pid=$!
for _ in $(seq 1 300); do
	grep -q "Start automatic packet forwarding\|io packet forwarding" "$tmp/testpmd.out" && break
	kill -0 "$testpmd_pid" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q "io packet forwarding" "$tmp/testpmd.out" || ! kill -0 "$testpmd_pid" 2>/dev/null; then
	cat "$tmp/testpmd.out"
	say "FAIL: testpmd did not start"
	exit 1
fi
sleep 1
pool=$(grep -o "mb_pool_[0-9]*" "$tmp/testpmd.out" | head -1)
pool=${pool:-mb_pool_0}

# run NAME EXPECTED_RC SECONDS CMD...: the tool's output in $tmp/NAME.out,
# its last line printed; a timeout is a failure, whatever it printed.
run() {
	local name=$1 secs=$2
	shift 2
	timeout -k 5 "$secs" "$@" >"$tmp/$name.out" 2>&1 </dev/null
	local rc=$?
	local last
	last=$(grep -v '^[[:space:]]*$' "$tmp/$name.out" | tail -1)
	say "$name: rc=$rc, last line: $last"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "$name did not exit by itself within ${secs} s"
		return 1
	fi
	if [ "$rc" != 0 ]; then
		tail -20 "$tmp/$name.out"
		fail "$name exited with $rc"
		return 1
	fi
	return 0
}

eal_common=(--file-prefix "$prefix" --log-level=lib.eal:warning)
capture_ok=1
if [ "$tools" = capture ]; then
	seen=$(timeout 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" -- --show-mempool="$pool" \
		2>/dev/null </dev/null | sed -n 's/.*ops_name \([^ ]*\)$/\1/p')
	if [ "$seen" != ring_mp_mc ]; then
		say "capture: NOT RUN: the tools see testpmd's $pool (ring_mp_mc there) as" \
			"'${seen:-nothing}': their ops tables disagree (Debian's testpmd links" \
			"librte_mempool_dpaa), and a capture would make testpmd run another driver's ops"
		capture_ok=0
	fi
fi
for with in 0 1; do
	[ "$tools" = capture ] && [ "$capture_ok" = 0 ] && break
	sec=()
	tag=without
	if [ "$with" = 1 ]; then
		sec=(-d libiovam_dpdk.so)
		tag=with
	fi

	if [ "$tools" != capture ]; then
	# Port statistics: both ports' counters are read from shared memory.
	if run "proc-info-stats-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"${sec[@]}" -- --stats; then
		n=$(grep -c "NIC statistics for port" "$tmp/proc-info-stats-$tag-plugin.out")
		rx=$(awk '/RX-packets:/ {print $2; exit}' "$tmp/proc-info-stats-$tag-plugin.out")
		[ "$n" = 2 ] && [ "${rx:-0}" -gt 0 ] ||
			fail "proc-info --stats: $n port blocks, RX-packets ${rx:-none}"
	fi

	# Every pool dumped (this calls each pool's get_count through its ops).
	if run "proc-info-mempools-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"${sec[@]}" -- --show-mempool; then
		f=$tmp/proc-info-mempools-$tag-plugin.out
		# name, ops name, size, populated size, common pool count per pool
		awk '/^mempool </ {name=$2} /^  size=/ {split($0,a,"="); size=a[2]}
		     /^  populated_size=/ {split($0,a,"="); pop=a[2]}
		     /^  ops_name:/ {ops=$2}
		     /^  common_pool_count=/ {split($0,a,"="); print name, ops, size, pop, a[2]}' \
			"$f" >"$tmp/pools"
		grep -q "$pool" "$tmp/pools" || fail "--show-mempool: no $pool in the dump"
		while read -r name ops size pop count; do
			say "  pool $name ops $ops size $size populated $pop common_pool_count $count"
			case "$ops" in
			'<ring_mp_mc>'|'<ring_sp_sc>'|'<ring_mp_sc>'|'<ring_sp_mc>') ;;
			*) fail "pool $name seen with ops $ops" ;;
			esac
			[ "$pop" = "$size" ] && [ "$count" -le "$size" ] ||
				fail "pool $name: common_pool_count $count, size $size, populated $pop"
		done <"$tmp/pools"
	fi

	# The named pool: avail + in use == size.
	if run "proc-info-pool-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"${sec[@]}" -- --show-mempool="$pool"; then
		f=$tmp/proc-info-pool-$tag-plugin.out
		size=$(sed -n 's/.*- Size \([0-9]*\) Cache.*/\1/p' "$f")
		avail=$(sed -n 's/.*avail (\([0-9]*\)), in use (\([0-9]*\)).*/\1/p' "$f")
		inuse=$(sed -n 's/.*avail (\([0-9]*\)), in use (\([0-9]*\)).*/\2/p' "$f")
		ops=$(sed -n 's/.*ops_name \([^ ]*\)$/\1/p' "$f")
		say "  $pool: size ${size:-?} avail ${avail:-?} in use ${inuse:-?} ops ${ops:-?}"
		# Two separate reads while testpmd forwards: their sum moves by a
		# few bursts, never by more than 1 % of the pool.
		sum=$((${avail:-0} + ${inuse:-0}))
		[ -n "$size" ] && [ -n "$avail" ] && [ "$avail" -le "$size" ] &&
			[ "$inuse" -le "$size" ] && [ $((sum * 100)) -ge $((size * 99)) ] &&
			[ $((sum * 100)) -le $((size * 101)) ] ||
			fail "$pool: avail ${avail:-?} + in use ${inuse:-?} far from size ${size:-?}"
		case "$ops" in
		ring_mp_mc|ring_sp_sc|ring_mp_sc|ring_sp_mc) ;;
		*) fail "$pool seen with ops ${ops:-none}" ;;
		esac
	fi

	fi
	[ "$tools" = proc-info ] && continue

	# Capture from a port whose mbufs come from the iovam pool. dumpcap
	# builds its own EAL arguments (no -d): the plugin comes by LD_PRELOAD,
	# and registers its ops at the same point of rte_eal_init() as with -d.
	preload=()
	[ "$with" = 1 ] && preload=(env LD_PRELOAD=libiovam_dpdk.so)
	if run "dumpcap-$tag-plugin" 30 "${preload[@]}" /usr/bin/dpdk-dumpcap \
		--file-prefix="$prefix" -i net_null0 -a duration:3 -w "$tmp/cap-$tag.pcapng"; then
		grep -q "Packets received/dropped on interface 'net_null0'" \
			"$tmp/dumpcap-$tag-plugin.out" || fail "dumpcap: no capture summary"
		[ -s "$tmp/cap-$tag.pcapng" ] || fail "dumpcap: no pcapng file"
	fi

	# pdump: runs until SIGINT; must then exit cleanly with its statistics.
	rm -f "$tmp/pdump-$tag.pcap"
	/usr/bin/dpdk-pdump "${eal_common[@]}" "${sec[@]}" -- \
		--pdump "port=0,queue=*,rx-dev=$tmp/pdump-$tag.pcap" \
		>"$tmp/pdump-$tag-plugin.out" 2>&1 </dev/null &
	pdump_pid=$!
	sleep 3
	kill -INT "$pdump_pid" 2>/dev/null
	rc=124
	for _ in $(seq 1 100); do
		if ! kill -0 "$pdump_pid" 2>/dev/null; then
			wait "$pdump_pid"
			rc=$?
			break
		fi
		sleep 0.1
	done
	last=$(grep -v '^[[:space:]]*$' "$tmp/pdump-$tag-plugin.out" | tail -1)
	say "pdump-$tag-plugin: rc=$rc, last line: $last"
	if [ "$rc" = 124 ]; then
		kill -KILL "$pdump_pid" 2>/dev/null
		fail "pdump did not exit within 10 s of SIGINT"
	elif [ "$rc" != 0 ]; then
		tail -20 "$tmp/pdump-$tag-plugin.out"
		fail "pdump exited with $rc"
	else
		grep -q "PDUMP DEBUG STATS" "$tmp/pdump-$tag-plugin.out" || fail "pdump: no statistics"
	fi
done

# The primary survived all of it: still forwarding, iovam still answering.
kill -0 "$testpmd_pid" 2>/dev/null || fail "testpmd died"
if [ "$native" = 0 ]; then
	json=$(echo /iovam/stats | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f "$prefix" \
		2>/dev/null | grep -m1 '^{"/iovam/stats"' || true)
	say "/iovam/stats: $json"
	case "$json" in
	*'"initialised": 1'*) [[ "$json" != *'"pools": 0'* ]] || fail "/iovam/stats: no pool" ;;
	*) fail "no /iovam/stats from testpmd" ;;
	esac
fi
kill -INT "$testpmd_pid"
rc=124
for _ in $(seq 1 100); do
	if ! kill -0 "$testpmd_pid" 2>/dev/null; then
		wait "$testpmd_pid"
		rc=$?
		break
	fi
	sleep 0.1
done
testpmd_pid=
rx=$(awk '/Accumulated forward statistics/ {a=1} a && /RX-packets:/ {print $2; exit}' \
	"$tmp/testpmd.out")
say "testpmd: rc=$rc, accumulated RX-packets ${rx:-none}"
[ "$rc" = 0 ] && [ "${rx:-0}" -gt 0 ] || fail "testpmd did not exit cleanly after forwarding"

say "$([ "$native" = 1 ] && echo native || echo iovam) primary, $tools: $failures failure(s)"
[ "$failures" = 0 ] || exit 1
[ "$capture_ok" = 1 ] || exit 77
