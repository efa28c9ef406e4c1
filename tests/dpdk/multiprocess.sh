#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Debian's secondary-process tools against primaries that run iovam, each tool
# once without and once with libiovam_dpdk.so in the secondary:
#
#   tests/dpdk/multiprocess.sh [--native] proc-info|capture|testpmd-capture
#
# proc-info: Debian's unmodified dpdk-testpmd with iovam as a plugin (-d
#   libiovam_dpdk.so --mbuf-pool-ops-name iovam, two net_null ports
#   forwarding); dpdk-proc-info --stats, --show-mempool (the list dump and the
#   named pool). The iovam pool must be seen as a ring pool (never "iovam",
#   never another driver's ops), with its full size in use + available (within
#   1 %: two reads while testpmd forwards); the ports' counters must move.
#   Then testpmd must still forward and exit cleanly, and /iovam/stats must
#   show the pool.
# capture: examples/mp_primary (an iovam pool, rte_pdump_init(), forwarding
#   on two net_null ports); dpdk-proc-info must see its pool as ring_mp_mc
#   (the tables agree), then dpdk-dumpcap -a duration:3 and dpdk-pdump (3 s,
#   then SIGINT) capture port 0. Each capture file must hold packets (counted
#   block by block), and after each tool the primary must be alive and its
#   domain pass iovam_verify() (SIGUSR1; it answers "verify ok"). At the end
#   it must stop with every mbuf back in its pool and iovam_dpdk_fini() 0.
# testpmd-capture: a diagnostic, not a test (not in meson): dpdk-dumpcap
#   against Debian's dpdk-testpmd. Exits 0 if testpmd survived the capture,
#   1 if not, printing the evidence.
# --native runs the primary without iovam (testpmd without the plugin; for
#   capture, not available: mp_primary always runs iovam), for comparison.
#
# Every tool must exit by itself: dumpcap by its duration, pdump on the
# SIGINT it is meant to be stopped with (it gets one after 3 s); `timeout`
# only turns a hang into a failure, never into a pass. Each tool's last line
# is printed. Everything is removed at exit, whatever the exit: the primary,
# a running tool, the runtime directory, hugepage files, capture files.
#
# Why capture does not run against Debian's testpmd: a mempool's ops are an
# index into a table that each process fills from its own libraries. dumpcap
# and pdump create their capture pool with "ring_mp_mc" by name in their own
# table, and the primary copies packets into it through its table at that
# index. Debian's dpdk-testpmd links librte_mempool_dpaa, so its table is
# shifted by one against the tools' (ring_mp_mc is index 3 there, 2 in the
# tools; index 2 is dpaa2 in testpmd). Measured on Debian 12 (DPDK 22.11.11),
# natively, without iovam anywhere (testpmd-capture --native): dumpcap exits 0
# having captured nothing ("Packets captured: 0"), while testpmd logs
#   mempool/dpaa2: Failed to allocate IO portal, tid: 32047
#   fslmc: No software portal resource left
# thousands of times, then "process_portal_map(): Unknown error -19", and
# exits. The proc-info part checks the shift itself: dpdk-proc-info sees
# testpmd's ring_mp_mc pool as ring_sp_sc (index 3 in the tools' table) while
# testpmd links librte_mempool_dpaa, as ring_mp_mc should it stop.
# mp_primary links only what `pkg-config libdpdk` gives, no mempool driver,
# and prints its table at start.
# Environment: IOVAM_BUILD_DIR (default <repo>/build). Needs root, hugepages.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IOVAM_BUILD_DIR:-$root/build}
native=0
part=
for a in "$@"; do
	case "$a" in
	--native) native=1 ;;
	proc-info|capture|testpmd-capture) part=$a ;;
	*) part=usage ;;
	esac
done
if [ -z "$part" ] || [ "$part" = usage ] || { [ "$part" = capture ] && [ "$native" = 1 ]; }; then
	echo "usage: $0 [--native] proc-info|capture|testpmd-capture (capture: no --native)" >&2
	exit 2
fi
export LD_LIBRARY_PATH="$build/dpdk-glue:$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

prefix="iovam_mp13_$$"
# shellcheck source=eal_prefix.sh
. "$(dirname "${BASH_SOURCE[0]}")/eal_prefix.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iovam_mp.XXXXXX")
# dpdk-pdump's rx-dev path must stay short: a longer one is cut (the pcap
# vdev's arguments have a length limit) and the packets go to a file of the
# cut name. Under the suite's TMPDIR, $tmp is already 41 characters.
pcapdir=$(mktemp -d /tmp/iovam_pd.XXXXXX)
primary_pid=
failures=0

# stop PID: SIGINT, then SIGKILL after 5 s.
stop() {
	kill -INT "$1" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
}

cleanup() {
	[ -n "$primary_pid" ] && kill -0 "$primary_pid" 2>/dev/null && stop "$primary_pid"
	wait 2>/dev/null
	[ -n "${IOVAM_MP_KEEP:-}" ] && cp -r "$tmp" "$IOVAM_MP_KEEP"
	rm -rf "$tmp" "$pcapdir"
	eal_prefix_remove "$prefix"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

say() { echo "multiprocess: $*"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
# The last non-empty line of a tool's output (dumpcap redraws its packet
# count with carriage returns: each one ends a line here).
last_line() { tr '\r' '\n' <"$1" | grep -v '^[[:space:]]*$' | tail -1; }

# wait_for FILE PATTERN PID: until FILE holds PATTERN (0), or PID is gone or
# 30 s passed (1).
wait_for() {
	for _ in $(seq 1 300); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# run NAME SECONDS CMD...: the tool's output in $tmp/NAME.out, its last line
# printed; a timeout is a failure, whatever it printed.
run() {
	local name=$1 secs=$2
	shift 2
	timeout -k 5 "$secs" "$@" >"$tmp/$name.out" 2>&1 </dev/null
	local rc=$?
	say "$name: rc=$rc, last line: $(last_line "$tmp/$name.out")"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "$name did not exit by itself within ${secs} s"
		return 1
	fi
	if [ "$rc" != 0 ]; then
		tr '\r' '\n' <"$tmp/$name.out" | tail -20 | cut -c1-300
		fail "$name exited with $rc"
		return 1
	fi
	return 0
}

# packets FILE: the number of packets in a pcap or pcapng file, read block by
# block (a truncated or malformed file is an error: no output, status 1).
packets() {
	/usr/bin/python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
def fail(why):
	print(why, file=sys.stderr)
	sys.exit(1)
magic = data[:4]
if magic == b'\x0a\x0d\x0d\x0a':  # pcapng: blocks of type, length, body, length
	bom = data[8:12]
	e = '<' if bom == b'\x4d\x3c\x2b\x1a' else '>' if bom == b'\x1a\x2b\x3c\x4d' else None
	if e is None:
		fail('pcapng: bad byte-order magic')
	off, n = 0, 0
	while off < len(data):
		if off + 12 > len(data):
			fail('pcapng: truncated block header at %d' % off)
		btype, blen = struct.unpack_from(e + 'II', data, off)
		if blen < 12 or blen % 4 or off + blen > len(data) or \
		   struct.unpack_from(e + 'I', data, off + blen - 4)[0] != blen:
			fail('pcapng: bad block at %d' % off)
		if btype in (2, 3, 6):  # packet, simple packet, enhanced packet
			n += 1
		off += blen
	print(n)
elif magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
	e = '<' if magic[0] in (0xd4, 0x4d) else '>'
	off, n = 24, 0  # global header, then 16-byte record headers
	while off < len(data):
		if off + 16 > len(data):
			fail('pcap: truncated record header at %d' % off)
		incl = struct.unpack_from(e + 'I', data, off + 8)[0]
		if off + 16 + incl > len(data):
			fail('pcap: truncated record at %d' % off)
		off += 16 + incl
		n += 1
	print(n)
else:
	fail('neither pcap nor pcapng')
EOF
}

start_testpmd() {
	local plugin=()
	[ "$native" = 0 ] && plugin=(-d libiovam_dpdk.so --mbuf-pool-ops-name iovam)
	# --stats-period: testpmd forwards until SIGINT (no stdin needed); 3600 s
	# keeps it from printing meanwhile. --no-pci: vdevs only.
	/usr/bin/dpdk-testpmd -l 0-1 -n 1 --no-pci --socket-mem 64 --file-prefix "$prefix" \
		"${plugin[@]}" --vdev net_null0 --vdev net_null1 -- \
		--forward-mode=io --nb-cores=1 --total-num-mbufs=8192 --stats-period 3600 \
		>"$tmp/primary.out" 2>&1 </dev/null &
	primary_pid=$!
	if ! wait_for "$tmp/primary.out" "io packet forwarding" "$primary_pid"; then
		tail -30 "$tmp/primary.out"
		say "FAIL: testpmd did not start"
		exit 1
	fi
	sleep 1
	pool=$(grep -o "mb_pool_[0-9]*" "$tmp/primary.out" | head -1)
	pool=${pool:-mb_pool_0}
}

# 20000 packets/s: a few MB of capture per tool; 150 s bounds its life
# should this script be killed without its trap.
start_mp_primary() {
	"$build/examples/mp_primary" -l 0 -n 1 --no-pci -m 128 --file-prefix "$prefix" \
		--vdev net_null0 --vdev net_null1 -- 150 20000 \
		>"$tmp/primary.out" 2>&1 </dev/null &
	primary_pid=$!
	if ! wait_for "$tmp/primary.out" "mp_primary: ready" "$primary_pid"; then
		tail -30 "$tmp/primary.out"
		say "FAIL: mp_primary did not start"
		exit 1
	fi
	grep "mp_primary: ops table\|mp_primary: pool" "$tmp/primary.out" | sed 's/^/  /'
	pool=mp_primary_pool
}

# The primary is alive and (mp_primary) its domain passes iovam_verify().
check_primary() {
	local after=$1
	if ! kill -0 "$primary_pid" 2>/dev/null; then
		tail -5 "$tmp/primary.out"
		fail "the primary died after $after"
		return
	fi
	[ "$part" = capture ] || return
	local before
	before=$(grep -c "mp_primary: verify" "$tmp/primary.out")
	kill -USR1 "$primary_pid"
	for _ in $(seq 1 50); do
		[ "$(grep -c "mp_primary: verify" "$tmp/primary.out")" -gt "$before" ] && break
		sleep 0.1
	done
	local line
	line=$(grep "mp_primary: verify" "$tmp/primary.out" | tail -n +$((before + 1)) | head -1)
	say "  after $after: ${line:-no answer}"
	[[ "$line" == "mp_primary: verify ok"* ]] || fail "the primary's verify after $after"
}

# proc-info --show-mempool=POOL: the ops name the tool sees, and avail + in
# use against the size. Sets $seen_ops.
check_pool() {
	local f=$tmp/$1.out
	local size avail inuse
	size=$(sed -n 's/.*- Size \([0-9]*\) Cache.*/\1/p' "$f")
	avail=$(sed -n 's/.*avail (\([0-9]*\)), in use (\([0-9]*\)).*/\1/p' "$f")
	inuse=$(sed -n 's/.*avail (\([0-9]*\)), in use (\([0-9]*\)).*/\2/p' "$f")
	seen_ops=$(sed -n 's/.*ops_name \([^ ]*\)$/\1/p' "$f")
	say "  $pool: size ${size:-?} avail ${avail:-?} in use ${inuse:-?} ops ${seen_ops:-?}"
	# Two separate reads while the primary forwards: their sum moves by a
	# few bursts, never by more than 1 % of the pool.
	local sum=$((${avail:-0} + ${inuse:-0}))
	[ -n "$size" ] && [ -n "$avail" ] && [ "$avail" -le "$size" ] &&
		[ "$inuse" -le "$size" ] && [ $((sum * 100)) -ge $((size * 99)) ] &&
		[ $((sum * 100)) -le $((size * 101)) ] ||
		fail "$pool: avail ${avail:-?} + in use ${inuse:-?} far from size ${size:-?}"
}

eal_common=(--file-prefix "$prefix" --log-level=lib.eal:warning)

proc_info_steps() { # $1: with|without, $2...: the secondary's extra EAL arguments
	local tag=$1
	shift
	# Port statistics: both ports' counters are read from shared memory.
	if run "proc-info-stats-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"$@" -- --stats; then
		local n rx
		n=$(grep -c "NIC statistics for port" "$tmp/proc-info-stats-$tag-plugin.out")
		rx=$(awk '/RX-packets:/ {print $2; exit}' "$tmp/proc-info-stats-$tag-plugin.out")
		[ "$n" = 2 ] && [ "${rx:-0}" -gt 0 ] ||
			fail "proc-info --stats: $n port blocks, RX-packets ${rx:-none}"
	fi

	# Every pool dumped (this calls each pool's get_count through its ops).
	if run "proc-info-mempools-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"$@" -- --show-mempool; then
		local f=$tmp/proc-info-mempools-$tag-plugin.out
		# name, ops name, size, populated size, common pool count per pool
		awk '/^mempool </ {name=$2} /^  size=/ {split($0,a,"="); size=a[2]}
		     /^  populated_size=/ {split($0,a,"="); pop=a[2]}
		     /^  ops_name:/ {ops=$2}
		     /^  common_pool_count=/ {split($0,a,"="); print name, ops, size, pop, a[2]}' \
			"$f" >"$tmp/pools"
		grep -q "$pool" "$tmp/pools" || fail "--show-mempool: no $pool in the dump"
		local name ops size pop count
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

	# The named pool: avail + in use == size; testpmd's ops seen through
	# the tools' table, shifted by one where testpmd links a mempool driver.
	if run "proc-info-pool-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"$@" -- --show-mempool="$pool"; then
		check_pool "proc-info-pool-$tag-plugin"
		# (Read whole first: grep -q on a pipe would end readelf early,
		# which pipefail counts as a failure.)
		local expect=ring_mp_mc needed
		needed=$(readelf -d /usr/bin/dpdk-testpmd) || fail "readelf -d /usr/bin/dpdk-testpmd"
		[[ "$needed" == *"NEEDED"*"[librte_mempool_dpaa."* ]] && expect=ring_sp_sc
		[ "$seen_ops" = "$expect" ] ||
			fail "testpmd's ring_mp_mc pool seen as ${seen_ops:-nothing}, expected $expect"
		[ "$expect" = ring_sp_sc ] && say "  testpmd links librte_mempool_dpaa: its" \
			"ring_mp_mc pool is seen as $seen_ops through the tools' ops table (shifted by one)"
	fi
}

capture_steps() { # $1: with|without
	local tag=$1 sec=() preload=()
	if [ "$tag" = with ]; then
		sec=(-d libiovam_dpdk.so)
		# dumpcap builds its own EAL arguments (no -d): the plugin comes
		# by LD_PRELOAD, and registers its ops at the same point of
		# rte_eal_init() as with -d (after every driver's).
		preload=(env LD_PRELOAD=libiovam_dpdk.so)
	fi

	# The tables agree: the tool sees the primary's pool as ring_mp_mc.
	if run "proc-info-pool-$tag-plugin" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" \
		"${sec[@]}" -- --show-mempool="$pool"; then
		check_pool "proc-info-pool-$tag-plugin"
		[ "$seen_ops" = ring_mp_mc ] ||
			fail "mp_primary's pool seen as ${seen_ops:-nothing}: the ops tables disagree"
	fi

	local cap=$tmp/dumpcap-$tag.pcapng n
	if run "dumpcap-$tag-plugin" 30 "${preload[@]}" /usr/bin/dpdk-dumpcap \
		--file-prefix="$prefix" -i net_null0 -a duration:3 -w "$cap"; then
		say "  $(tr '\r' '\n' <"$tmp/dumpcap-$tag-plugin.out" | grep "Packets received/dropped")"
		if n=$(packets "$cap"); then
			say "  $cap: $n packets"
			[ "$n" -gt 0 ] || fail "dumpcap: no packet in $cap"
		else
			fail "dumpcap: $cap is not a complete capture file"
		fi
	fi
	rm -f "$cap"
	check_primary "dumpcap $tag the plugin"

	# pdump runs until SIGINT, and must then exit cleanly with its
	# statistics. --preserve-status: pdump's own status, not timeout's
	# (137, a failure, if it still runs 10 s after the SIGINT).
	cap=$pcapdir/$tag.pcap
	if run "pdump-$tag-plugin" 20 timeout --preserve-status -s INT -k 10 3 /usr/bin/dpdk-pdump \
		"${eal_common[@]}" --no-pci "${sec[@]}" -- \
		--pdump "port=0,queue=*,rx-dev=$cap"; then
		grep -q "PDUMP DEBUG STATS" "$tmp/pdump-$tag-plugin.out" || fail "pdump: no statistics"
		say "  $(grep "packets transmitted to vdev" "$tmp/pdump-$tag-plugin.out" | tr -s '\t ' ' ')"
		if n=$(packets "$cap"); then
			say "  $cap: $n packets"
			[ "$n" -gt 0 ] || fail "pdump: no packet in $cap"
		else
			fail "pdump: $cap is not a complete capture file"
		fi
	fi
	rm -f "$pcapdir"/*
	check_primary "pdump $tag the plugin"
}

# stop_primary: SIGINT, then it must exit by itself within 10 s. Sets $rc.
stop_primary() {
	kill -INT "$primary_pid"
	rc=124
	for _ in $(seq 1 100); do
		if ! kill -0 "$primary_pid" 2>/dev/null; then
			wait "$primary_pid"
			rc=$?
			break
		fi
		sleep 0.1
	done
	[ "$rc" = 124 ] && kill -KILL "$primary_pid"
	primary_pid=
}

case "$part" in
proc-info)
	start_testpmd
	proc_info_steps without
	proc_info_steps with -d libiovam_dpdk.so
	check_primary "proc-info"
	if [ "$native" = 0 ]; then
		json=$(echo /iovam/stats | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f "$prefix" \
			2>/dev/null | grep -m1 '^{"/iovam/stats"' || true)
		say "/iovam/stats: $json"
		case "$json" in
		*'"initialised": 1'*) [[ "$json" != *'"pools": 0'* ]] || fail "/iovam/stats: no pool" ;;
		*) fail "no /iovam/stats from testpmd" ;;
		esac
	fi
	stop_primary
	rx=$(awk '/Accumulated forward statistics/ {a=1} a && /RX-packets:/ {print $2; exit}' \
		"$tmp/primary.out")
	say "testpmd: rc=$rc, accumulated RX-packets ${rx:-none}"
	[ "$rc" = 0 ] && [ "${rx:-0}" -gt 0 ] || fail "testpmd did not exit cleanly after forwarding"
	;;
capture)
	start_mp_primary
	capture_steps without
	capture_steps with
	stop_primary
	say "mp_primary: rc=$rc, last lines:"
	grep "mp_primary: stopped\|mp_primary: verify .*at exit\|iovam_dpdk_fini" \
		"$tmp/primary.out" | sed 's/^/  /'
	[ "$rc" = 0 ] && grep -q "iovam_dpdk_fini 0: OK" "$tmp/primary.out" ||
		fail "mp_primary did not stop cleanly"
	;;
testpmd-capture)
	start_testpmd
	if run "proc-info-pool" 30 /usr/bin/dpdk-proc-info "${eal_common[@]}" -- \
		--show-mempool="$pool"; then
		check_pool proc-info-pool
		say "testpmd: '$(grep -o 'preferred mempool ops selected: .*' "$tmp/primary.out" |
			head -1)'; the tools see its $pool as $seen_ops"
	fi
	run dumpcap 30 /usr/bin/dpdk-dumpcap --file-prefix="$prefix" -i net_null0 \
		-a duration:3 -w "$tmp/testpmd.pcapng"
	say "  $(tr '\r' '\n' <"$tmp/dumpcap.out" | grep "Packets captured" | cut -c1-60)"
	sleep 1
	n=$(grep -c "Failed to allocate IO portal" "$tmp/primary.out")
	if kill -0 "$primary_pid" 2>/dev/null; then
		stop_primary
		say "testpmd survived the capture (exit $rc); dpaa2 portal errors: $n"
		[ "$rc" = 0 ] || fail "testpmd did not exit cleanly"
	else
		wait "$primary_pid"
		say "testpmd exited during the capture (status $?); dpaa2 portal errors: $n; its log:"
		primary_pid=
		grep -m3 -v '^[[:space:]]*$' <(grep -A2 -m1 "Failed to allocate IO portal" \
			"$tmp/primary.out") | sed 's/^/  /'
		say "  last line: $(last_line "$tmp/primary.out")"
		fail "Debian's dpdk-testpmd does not survive a capture by Debian's dpdk-dumpcap"
	fi
	;;
esac

say "$([ "$native" = 1 ] && echo native || echo iovam) primary, $part: $failures failure(s)"
[ "$failures" = 0 ] || exit 1
