#!/bin/sh
# Runs inside the test guest (busybox sh), started by the initramfs /init from the 9p share.
# The host writes /share/job.env (STEPS, NICS, ...) and reads the results from /share/out:
#   <step>.log  the step's output        <step>.rc  its exit status
# Every step has its own timeout so one hung DPDK process cannot eat the guest's whole budget.
set -u
. /share/job.env
OUT=/share/out
# Programs and libraries the host put in the share (probes; later the iovam glue).
export LD_LIBRARY_PATH=/share/lib
export PATH=/share/bin:$PATH

# EAL arguments shared by all steps: both NICs, two lcores, a private hugepage file prefix.
eal_args() {
    local a=""
    for bdf in $(echo "$NICS" | tr ',' ' '); do a="$a -a $bdf"; done
    echo "-l 0-1 -n 1 --file-prefix $1 $a"
}

# Unmodified Debian testpmd, io forwarding between the two ports with a first burst sent on each:
# the two NICs share a qemu hub, so the burst circulates and every packet is DMA'd through
# the IOMMU on RX and TX. testpmd stops and prints its statistics when stdin gets a newline.
step_testpmd() {
    (sleep "${TESTPMD_SECONDS:-8}"; echo) |
        timeout -s KILL "${STEP_TIMEOUT:-90}" dpdk-testpmd $(eal_args tp) ${TESTPMD_EAL_EXTRA:-} -- \
            --forward-mode=io --tx-first --nb-cores=1 --rxd=512 --txd=512 \
            --total-num-mbufs=8192 ${TESTPMD_EXTRA:-}
}

step_probe_positive() {
    timeout -s KILL "${STEP_TIMEOUT:-90}" negative_probe $(eal_args pp) -- --mode=positive \
        --count="${PROBE_COUNT:-2000}"
}

step_probe_negative() {
    timeout -s KILL "${STEP_TIMEOUT:-90}" negative_probe $(eal_args pn) -- --mode=negative \
        --count="${PROBE_COUNT:-2000}"
}

for step in $STEPS; do
    echo "GUEST: step $step start"
    "step_$step" >"$OUT/$step.log" 2>&1
    rc=$?
    echo "$rc" >"$OUT/$step.rc"
    tail -n 4 "$OUT/$step.log"
    echo "GUEST: step $step rc=$rc"
    # Kernel log after each step, so a fault can be blamed on the step that caused it.
    dmesg >"$OUT/$step.dmesg"
done
