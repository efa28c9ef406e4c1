#!/bin/sh
# shellcheck shell=dash disable=SC2086  # busybox ash
# Runs inside the two-node test guest (tests/vm/numa.sh), started by the initramfs /init as
# /share/guest.sh. Results in /share/out: <step>.log and <step>.rc per step, nodes.txt.
#   perf   the programs `perf/run --smoke` runs, with its flags (bash, python and ninja are not
#          in the guest: the host writes the report from these outputs with perf/report.py):
#          the baselines' model test, Google Benchmark --smoke, the thread runs compact and
#          spread over the nodes (TBB arenas per node), latency and memory. No callgrind.
#   glue   numa_probe: the DPDK glue with one lcore per node (-l 0,1: CPU 0 on node 0, CPU 1
#          on node 1), caches and pools checked with move_pages(2).
set -u
OUT=/share/out
export LD_LIBRARY_PATH=/share/lib
export PATH=/share/bin:$PATH
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
P="$OUT/perf"
mkdir -p "$P"

step_perf() {
    iovam_perf_test_baselines || return 1
    iovam_perf_bench --smoke --benchmark_out="$P/bench.json" --benchmark_out_format=json \
        >"$P/bench.txt" || return 1
    iovam_perf_threads --smoke >"$P/threads.json" || return 1
    iovam_perf_threads --smoke --spread >"$P/threads_spread.json" || return 1
    for impl in iovam classic_walk first_fit; do
        iovam_perf_latency --impl $impl --live 16384 --calls 20000 --layout fragmented \
            >"$P/latency_${impl}_fragmented.json" || return 1
        iovam_perf_latency --impl $impl --live 16384 --calls 0 --layout packed \
            >"$P/latency_${impl}_packed.json" || return 1
    done
}

step_glue() {
    numa_probe -l 0,1 -n 1 --file-prefix np --no-pci --log-level=lib.iovam:info
}

if [ "${1:-}" = --step ]; then
    "step_$2"
    exit $?
fi

uptime_s() { cut -d' ' -f1 /proc/uptime; }

cat /sys/devices/system/node/online >"$OUT/nodes.txt"
for n in /sys/devices/system/node/node*; do
    echo "$(basename "$n"): cpus $(cat "$n/cpulist"), $(grep -h HugePages_Total "$n/meminfo" | tr -s ' ')"
done >>"$OUT/nodes.txt"
cat "$OUT/nodes.txt"
for step in perf glue; do
    echo "GUEST: step $step start at $(uptime_s)s"
    # A function cannot run under timeout(1): run this script's step in a child shell.
    timeout -s KILL "$STEP_TIMEOUT" sh "$0" --step "$step" >"$OUT/$step.log" 2>&1
    rc=$?
    echo "$rc" >"$OUT/$step.rc"
    tail -n 4 "$OUT/$step.log"
    echo "GUEST: step $step rc=$rc at $(uptime_s)s"
done
