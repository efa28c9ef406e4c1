#!/bin/sh
# shellcheck shell=dash disable=SC2046,SC2086  # busybox ash; EAL/command lists split on purpose
# Runs inside the test guest (busybox sh), started by the initramfs /init from the 9p share.
# The host writes /share/job.env (STEPS, NICS, ...) and reads the results from /share/out:
#   <step>.log  the step's output   <step>.rc  its exit status   <step>.dmesg  kernel log after it
# Every step has its own timeout so one hung DPDK process cannot eat the guest's whole budget.
set -u
. /share/job.env
OUT=/share/out
# Programs and libraries the host put in the share (the probes, the iovam glue).
export LD_LIBRARY_PATH=/share/lib
export PATH=/share/bin:$PATH
STEP_TIMEOUT="${STEP_TIMEOUT:-90}"

# EAL arguments shared by all steps: both NICs, two lcores, a private hugepage file prefix.
eal_args() {
    local a=""
    for bdf in $(echo "$NICS" | tr ',' ' '); do a="$a -a $bdf"; done
    echo "-l 0-1 -n 1 --file-prefix $1 $a"
}

# Unmodified Debian testpmd, io forwarding between the two ports with a first burst sent on each:
# the two NICs share a qemu hub, so the bursts circulate and every packet is DMA'd through the
# IOMMU on RX and TX. testpmd stops and prints its statistics when stdin gets a newline.
# $1: file prefix, $2: extra EAL arguments, $3: telemetry commands to send half-way through
# (replies in $OUT/<step>.telemetry, one JSON line each).
run_testpmd() {
    local secs="${TESTPMD_SECONDS:-8}" i=0
    (
        # Forwarding starts after EAL init, pool creation and port start, which take seconds
        # under TCG: count the forwarding time (and query telemetry) only from then on. testpmd's
        # stdout is a file (block-buffered), so ask its telemetry whether port 1 has received.
        # A testpmd that died (or was killed by the step timeout) ends the wait.
        while [ $i -lt 60 ]; do
            sleep 1
            i=$((i + 1))
            pidof dpdk-testpmd >/dev/null || break
            telemetry_query "$1" /ethdev/stats,1 2>/dev/null | grep -q '"ipackets":[1-9]' && break
        done
        sleep $((secs / 2))
        if [ -n "${3:-}" ]; then telemetry_query "$1" $3 >"$OUT/$step.telemetry" 2>&1; fi
        sleep $((secs - secs / 2))
        echo
    ) | timeout -s KILL "$STEP_TIMEOUT" dpdk-testpmd $(eal_args "$1") $2 -- \
            --forward-mode=io --tx-first --nb-cores=1 --rxd=512 --txd=512 --total-num-mbufs=8192
}

step_testpmd() { run_testpmd tp ""; }

# The same unmodified testpmd with the iovam glue loaded as an EAL plugin: its mbuf pool gets
# iovam's mempool ops, so every packet buffer has an IOVA from iovam's 32-bit window. The glue's
# telemetry shows which IOVAs the pool got and whether any mapping failed. --socket-mem
# preallocates 64 MiB, which EAL never frees: the glue maps it as one VFIO mapping per
# VA-contiguous run (not one per 2 MiB page), and the pool lives in it.
step_testpmd_iovam() {
    (
        export IOVAM_DMA_BITS="${IOVAM_DMA_BITS:-32}"
        run_testpmd ti "--socket-mem 64 -d libiovam_dpdk.so --mbuf-pool-ops-name iovam --log-level=lib.iovam:info" \
            "/iovam/stats /iovam/pools"
    )
}

step_probe_positive() {
    timeout -s KILL "$STEP_TIMEOUT" negative_probe $(eal_args pp) -- --mode=positive \
        --count="${PROBE_COUNT:-2000}"
}

# Must run last: its DMAR fault is wanted, and must not be blamed on a later step.
step_probe_negative() {
    timeout -s KILL "$STEP_TIMEOUT" negative_probe $(eal_args pn) -- --mode=negative \
        --count="${PROBE_COUNT:-2000}"
}

# The iovam probe (probe.c): iovam mbuf pool in a 32-bit DMA window + dynamic mappings.
step_iovam_probe() {
    (
        export IOVAM_DMA_BITS="${IOVAM_DMA_BITS:-32}"
        timeout -s KILL "$STEP_TIMEOUT" probe $(eal_args ip) --log-level=lib.iovam:info -- \
            --count="${IOVAM_PROBE_COUNT:-3000}" --dyn="${IOVAM_PROBE_DYN:-512}" \
            --dyn-cross-page="${IOVAM_PROBE_CROSS_PAGE:-0}" --teardown-strict="${VM_TEARDOWN_STRICT:-1}"
    )
}

# The glue's negative control (probe.c --mode=stale): a buffer sent with the IOVA of a completed
# iovam_dpdk_unmap() must fault. Runs after the positive steps, like probe_negative.
step_iovam_stale() {
    (
        export IOVAM_DMA_BITS="${IOVAM_DMA_BITS:-32}"
        timeout -s KILL "$STEP_TIMEOUT" probe $(eal_args is) --log-level=lib.iovam:info -- \
            --mode=stale
    )
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

for step in $STEPS; do
    echo "GUEST: step $step start at $(uptime_s)s"
    "step_$step" >"$OUT/$step.log" 2>&1
    rc=$?
    echo "$rc" >"$OUT/$step.rc"
    tail -n 4 "$OUT/$step.log"
    echo "GUEST: step $step rc=$rc at $(uptime_s)s"
    dmesg >"$OUT/$step.dmesg"
done
