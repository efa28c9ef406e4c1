#!/usr/bin/env bash
# VFIO test with real (emulated) NICs: boots one qemu guest per NIC model, with an emulated
# Intel VT-d that enforces DMA mappings, binds two NICs to vfio-pci and runs DPDK on them.
# This host's kernel has no VFIO, hence the guest (TCG: /dev/kvm cannot boot a stock kernel here).
#
# In each guest (see guest.sh):
#   testpmd         unmodified Debian dpdk-testpmd, io forwarding between the two ports
#   probe_positive  negative_probe --mode=positive: patterned frames port 0 -> 1, every byte checked
#   iovam_probe     probe.c with the iovam glue: iovam mbuf pool in a 32-bit DMA window and
#                   application buffers mapped with iovam_dpdk_map(), every byte checked
#   testpmd_iovam   unmodified testpmd with -d libiovam_dpdk.so --mbuf-pool-ops-name iovam
#   probe_negative  negative_probe --mode=negative: one frame gets an unmapped buf_iova; the DMAR
#                   fault and/or the lost frame must be seen (proves this test can fail). It runs
#                   after the positive steps, and its faults are not counted in dmar_faults.
#   iovam_stale     probe.c --mode=stale: a buffer sent with the IOVA of a completed
#                   iovam_dpdk_unmap() must fault (the glue's own negative control); a buffer
#                   whose unmap failed (injected) must still arrive while its IOVA is held, and
#                   fault after the service's retry unmapped it.
# The three iovam steps need the glue (dpdk-glue/meson.build, built privately or IOVAM_BUILD_DIR);
# without it every model FAILs, unless VM_REQUIRE_IOVAM=0 (then they are skipped, said on stderr).
#
# Last line: "VM: e1000e=PASS virtio=PASS negative_control=DETECTED dmar_faults=0"
# (FAIL / MISSED where it is so); exit 0 only for that all-good line.
#
# Environment: GUEST_TIMEOUT (s, per guest, default 150), MODELS (default "e1000e virtio"),
#              KEEP_RUNS (run folders kept in tests/vm/cache/runs, default 3),
#              PROBE_COUNT, IOVAM_PROBE_COUNT, IOVAM_PROBE_DYN, IOVAM_DMA_BITS, TESTPMD_SECONDS,
#              STEP_TIMEOUT (passed to guest.sh, see there),
#              VM_STEPS (experiments: the positive steps to run instead of all),
#              VM_TEARDOWN_STRICT=0 (glue errors after the devices were detached at teardown, and
#              a failing iovam_dpdk_fini() there, are reported as warnings instead of failing),
#              VM_REQUIRE_IOVAM=0 (test without the glue if missing), IOVAM_BUILD_DIR (use this
#              meson build tree instead of the private one in tests/vm/cache/iovam-build).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="$HERE/cache"
GUEST_TIMEOUT="${GUEST_TIMEOUT:-150}"
MODELS="${MODELS:-e1000e virtio}"
KEEP_RUNS="${KEEP_RUNS:-3}"
# Fixed PCI addresses on the q35 root bus, so the guest knows which devices to give to vfio-pci.
NIC_BDFS="0000:00:03.0,0000:00:04.0"
# Packets each port must have received and sent in testpmd's run for it to count as moving.
MIN_TESTPMD_PKTS=1000
# Kernel log line of a VT-d DMA fault: "DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr"
DMAR_RE='DMAR: \[DMA (Read|Write)'

log() { echo "vm: $*" >&2; }

# Builds a probe on the host against Debian's DPDK; it runs in the guest from the share.
build_probe() {
    local src="$1" out="$2"
    # shellcheck disable=SC2046  # pkg-config output is a list of flags
    gcc -O2 -g -Wall -Wextra -o "$out" "$src" $(pkg-config --cflags --libs libdpdk)
}

# Builds libiovam_dpdk.so in a private meson tree (always current with the sources; incremental
# after the first time) unless IOVAM_BUILD_DIR names one. Prints the build dir.
# Returns 2 when there is no glue to build yet, 1 when the build failed.
build_glue() {
    local dir="${IOVAM_BUILD_DIR:-$CACHE/iovam-build}"
    if [[ -z "${IOVAM_BUILD_DIR:-}" ]]; then
        [[ -f "$REPO/dpdk-glue/meson.build" ]] || return 2
        if [[ ! -f "$dir/build.ninja" ]]; then
            meson setup "$dir" "$REPO" -Dtests=disabled -Dperf=disabled -Dtest_hooks=true >"$CACHE/iovam-build.log" 2>&1 ||
                { rm -rf "$dir"; return 1; }
        fi
        # Only the glue and what it links: the rest of the tree is not this test's business.
        meson compile -C "$dir" iovam_dpdk >>"$CACHE/iovam-build.log" 2>&1 ||
            ninja -C "$dir" >>"$CACHE/iovam-build.log" 2>&1 || return 1
    fi
    [[ -n "$(find "$dir" -name libiovam_dpdk.so -print -quit)" ]] || return 1
    echo "$dir"
}

# Puts the glue and the iovam probe into $1/bin and $1/lib (lib: under the bare name
# libiovam_dpdk.so, the name testpmd's -d looks up on LD_LIBRARY_PATH).
stage_glue() {
    local staging="$1" dir="$2" so libdirs
    so="$(find "$dir" -name libiovam_dpdk.so -print -quit)"
    libdirs="$(find "$dir" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
    # shellcheck disable=SC2046  # pkg-config output is a list of flags
    gcc -O2 -g -Wall -Wextra -DIOVAM_DPDK_TEST_HOOKS -o "$staging/bin/probe" "$HERE/probe.c" \
        -I"$REPO/dpdk-glue/include" -I"$REPO/lib/include" -L"$(dirname "$so")" -liovam_dpdk \
        $(pkg-config --cflags --libs libdpdk)
    mkdir -p "$staging/lib"
    cp -L "$so" "$staging/lib/libiovam_dpdk.so"
    echo "$libdirs" >"$staging/libdirs"
}

# Copies into $share/lib the libraries a share program needs that the image does not have.
ship_missing_libs() {
    local share="$1" image="$2" prog lib gpath
    shift 2
    mkdir -p "$share/lib"
    for prog in "$@"; do
        while read -r lib; do
            gpath="$lib"
            case "$lib" in /lib/* | /lib64/*) gpath="/usr$lib" ;; esac
            grep -qxF "$gpath" "$image/files.txt" || cp -nL "$lib" "$share/lib/"
        done < <(LD_LIBRARY_PATH="${SHIP_LIBDIRS:-}" ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
    done
}

# qemu -device arguments for the two NICs of a model, on one qemu hub (they see each other's
# frames; there is no host network at all).
nic_args() {
    local model="$1" i dev
    for i in 0 1; do
        case "$model" in
            e1000e) dev="e1000e" ;;
            # Modern-only virtio with VIRTIO_F_ACCESS_PLATFORM: its DMA goes through the IOMMU.
            virtio) dev="virtio-net-pci,disable-legacy=on,iommu_platform=on" ;;
            *) log "unknown NIC model $model"; return 1 ;;
        esac
        echo "-netdev hubport,id=n$i,hubid=0"
        echo "-device $dev,netdev=n$i,bus=pcie.0,addr=$((3 + i)),romfile=,mac=52:54:00:00:00:0$((i + 1))"
    done
}

# Boots one guest with the share $2 and waits for it (bounded by GUEST_TIMEOUT).
# Returns qemu's status (124/137 when the guest had to be killed).
boot_guest() {
    local model="$1" share="$2" image="$3" console="$4" rc=0
    # shellcheck disable=SC2046  # nic_args prints one argument pair per line
    timeout --kill-after=10 "$GUEST_TIMEOUT" qemu-system-x86_64 \
        -nodefaults -no-user-config -display none -no-reboot \
        -machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
        -device intel-iommu,intremap=on,caching-mode=on \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "console=ttyS0 loglevel=4 panic=-1 intel_iommu=on hugepagesz=2M hugepages=256 vm_nics=$NIC_BDFS" \
        -serial stdio \
        $(nic_args "$model") \
        -fsdev "local,id=fs0,path=$share,security_model=none" \
        -device virtio-9p-pci,fsdev=fs0,mount_tag=share,addr=5 \
        </dev/null >"$console" 2>&1 || rc=$?
    return "$rc"
}

# Number of DMAR fault lines in a kernel log file (0 if the file is missing).
dmar_count() {
    if [[ -f "$1" ]]; then grep -cE "$DMAR_RE" "$1" || true; else echo 0; fi
}

# testpmd moved packets: it exited 0, used the model's PMD through VFIO for both NICs, and each
# port received and sent at least MIN_TESTPMD_PKTS. Prints why not, otherwise nothing.
# $1: out folder, $2: step (testpmd or testpmd_iovam), $3: the model's PMD name.
check_testpmd() {
    local out="$1" step="$2" pmd="$3" log="$1/$2.log" port rx tx when
    [[ "$(cat "$out/$step.rc" 2>/dev/null)" == 0 ]] || { echo "$step exit $(cat "$out/$step.rc" 2>/dev/null || echo none)"; return; }
    grep -q 'EAL: Using IOMMU type 1' "$log" || { echo "$step: VFIO type1 not used"; return; }
    [[ "$(grep -c "Probe PCI driver: $pmd " "$log")" == 2 ]] || { echo "$step: $pmd did not probe both NICs"; return; }
    for port in 0 1; do
        # "Forward statistics for port N" block: next lines hold RX-packets and TX-packets.
        rx="$(awk -v p="port $port " '$0 ~ "Forward statistics for " p {f=1} f && /RX-packets:/ {print $2; exit}' "$log")"
        tx="$(awk -v p="port $port " '$0 ~ "Forward statistics for " p {f=1} f && /TX-packets:/ {print $2; exit}' "$log")"
        if ((${rx:-0} < MIN_TESTPMD_PKTS || ${tx:-0} < MIN_TESTPMD_PKTS)); then
            echo "$step: port $port rx=${rx:-none} tx=${tx:-none} < $MIN_TESTPMD_PKTS"
            return
        fi
        echo "$step port $port rx=$rx tx=$tx" >>"$out/summary"
    done
    [[ "$step" == testpmd_iovam ]] || return 0
    # The plugin must have initialised itself with real VFIO mapping and given testpmd's pool
    # its ops; without these lines testpmd may have run on plain DPDK memory.
    grep -q 'preferred mempool ops selected: iovam' "$log" || { echo "$step: iovam mempool ops not selected"; return; }
    grep -q 'IOVAM: IOVA window' "$log" || { echo "$step: glue did not initialise"; return; }
    grep 'IOVAM: DMA mapping:' "$log" | grep -vq 'no-IOMMU' || { echo "$step: glue not mapping through VFIO"; return; }
    check_iovam_telemetry "$out/$step.telemetry" || return 0
    # Any glue error counts; say whether it came while forwarding or at testpmd's teardown
    # (after "Shutting down port": devices detached, a different bug than wrong DMA).
    # VM_TEARDOWN_STRICT=0 only reports errors at teardown (while running they always fail).
    when="$(awk '/Shutting down port/ {t=1} /IOVAM: .*failed/ {print (t ? "at teardown" : "while running"); exit}' "$log")"
    if [[ "$when" == "at teardown" && "${VM_TEARDOWN_STRICT:-1}" == 0 ]]; then
        echo "$step WARNING (VM_TEARDOWN_STRICT=0): glue error at teardown: $(grep -m1 'IOVAM: .*failed' "$log")" >>"$out/summary"
    elif [[ -n "$when" ]]; then
        echo "$step: glue error $when: $(grep -m1 'IOVAM: .*failed' "$log")"
    fi
}

# The glue's telemetry read from inside the running testpmd: the glue mapped through VFIO without
# failures, and testpmd's mbuf pool got IOVAs inside the DMA window (below 2^IOVAM_DMA_BITS).
# Prints why not and returns 1.
check_iovam_telemetry() {
    local f="$1" key pool lo hi limit=$((1 << ${IOVAM_DMA_BITS:-32}))
    [[ -s "$f" ]] || { echo "testpmd_iovam: no telemetry reply"; return 1; }
    for key in '"no_iommu":0' '"dma_failures":0' '"mem_event_failures":0'; do
        tr -d ' ' <"$f" | grep -qF "$key" || { echo "testpmd_iovam telemetry: want $key: $(head -c 600 "$f")"; return 1; }
    done
    tr -d ' ' <"$f" | grep -qE '"pools":[1-9]' || { echo "testpmd_iovam telemetry: no iovam pool"; return 1; }
    tr -d ' ' <"$f" | grep -qE '"mappings":[1-9]' || { echo "testpmd_iovam telemetry: no mappings"; return 1; }
    # /iovam/pools: {"name":[iova_lo,iova_hi,runs,objects],...}; testpmd's pool is mb_pool_0.
    pool="$(tr -d ' ' <"$f" | grep -oE '"mb_pool_0":\[[0-9]+,[0-9]+,[0-9]+,[0-9]+\]' | head -n 1)"
    [[ -n "$pool" ]] || { echo "testpmd_iovam telemetry: mb_pool_0 not an iovam pool"; return 1; }
    IFS=, read -r lo hi _ <<<"$(sed 's/.*\[//; s/\]//' <<<"$pool")"
    if ((hi >= limit || lo >= hi)); then
        echo "testpmd_iovam: mb_pool_0 IOVAs [$lo, $hi] not inside the $((${IOVAM_DMA_BITS:-32}))-bit window"
        return 1
    fi
    echo "testpmd_iovam mb_pool_0 iova [$(printf '0x%x' "$lo"), $(printf '0x%x' "$hi")]" >>"$(dirname "$f")/summary"
}

# The probe's verdict line: "PROBE: mode=... result=X" -> X (or "none").
probe_result() {
    local line
    line="$(grep '^PROBE:' "$1" 2>/dev/null | tail -1)"
    echo "${line:-$(basename "$1" .log): no PROBE line}" >>"$(dirname "$1")/summary"
    sed -n 's/.* result=\([A-Z]*\).*/\1/p' <<<"$line" | grep . || echo none
}

# Why a positive step failed, or nothing if it passed.
check_step() {
    local out="$1" step="$2" pmd="$3"
    case "$step" in
        testpmd | testpmd_iovam) check_testpmd "$out" "$step" "$pmd" ;;
        *) [[ "$(probe_result "$out/$step.log")" == PASS ]] || echo "$step: $(tail -n 1 "$out/summary")" ;;
    esac
}

# Whether a negative-control step caught its deliberate DMA error: the probe saw the frame lost
# or damaged, or the kernel logged a DMAR fault during the step. An ERROR (the probe could not
# run, or good frames were lost too) is no detection. $1: out folder, $2: step, $3: the dmesg
# snapshot before the step.
neg_detected() {
    local out="$1" step="$2" before="$3" res faults
    res="$(probe_result "$out/$step.log")"
    faults=$(($(dmar_count "$out/$step.dmesg") - $(dmar_count "$before")))
    echo "$step DMAR faults=$faults" >>"$out/summary"
    [[ "$res" == DETECTED || ( "$res" == MISSED && "$faults" -gt 0 ) ]]
}

# Runs one model's guest and sets RESULT_<model>, NEG_<model>, FAULTS_<model>.
# $4: the positive steps, $5: the negative-control steps, which run after them.
run_model() {
    local model="$1" image="$2" runs="$3" steps="$4" neg_steps="$5" share console rc=0 why="" pmd step
    local faults_pos last
    share="$runs/$model"
    console="$runs/$model.console"
    mkdir -p "$share/out"
    chmod 755 "$share" # EAL refuses plugins (-d) from world-writable places; keep it strict
    cp "$HERE/guest.sh" "$share/guest.sh"
    cp -r "$runs/staging/bin" "$runs/staging/lib" "$share/"
    SHIP_LIBDIRS="$(cat "$runs/staging/libdirs" 2>/dev/null || true)" \
        ship_missing_libs "$share" "$image" "$share"/bin/* "$share"/lib/*
    printf 'STEPS="%s %s"\nNICS=%s\n' "$steps" "$neg_steps" "$NIC_BDFS" >"$share/job.env"
    # qemu 7.2's e1000e silently drops TX buffers that cross a page boundary onto guest-physical
    # pages that are not adjacent (see probe.c): page-crossing application buffers on virtio only.
    [[ "$model" != virtio ]] || echo "IOVAM_PROBE_CROSS_PAGE=1" >>"$share/job.env"
    # Tuning knobs of guest.sh, passed through when set (for experiments; CI uses the defaults).
    local v
    for v in PROBE_COUNT IOVAM_PROBE_COUNT IOVAM_PROBE_DYN IOVAM_DMA_BITS TESTPMD_SECONDS STEP_TIMEOUT \
        VM_TEARDOWN_STRICT; do
        if [[ -n "${!v:-}" ]]; then printf '%s=%q\n' "$v" "${!v}" >>"$share/job.env"; fi
    done
    log "$model: booting guest, steps: $steps, then $neg_steps (timeout ${GUEST_TIMEOUT}s)"
    boot_guest "$model" "$share" "$image" "$console" || rc=$?
    local out="$share/out"
    case "$model" in e1000e) pmd=net_e1000_em ;; virtio) pmd=net_virtio ;; esac
    if ((rc != 0)); then
        why="qemu exit $rc (124/137: guest timed out)"
    elif ! grep -q 'IOVAM-INIT: poweroff' "$console"; then
        why="guest did not finish: $(grep -m1 'IOVAM-INIT: FAILED' "$console" || echo 'no poweroff')"
    fi
    local guest_failed="$why" r
    # Every step is judged even after one failed, so one run shows all that is wrong.
    for step in $steps; do
        if [[ -z "$guest_failed" ]]; then
            r="$(check_step "$out" "$step" "$pmd")" || true # its output is the verdict
            [[ -z "$r" ]] || why+="${why:+; }$r"
        fi
        last="$step"
    done
    # Faults up to the end of the positive steps are real failures; the negative step's are wanted.
    faults_pos="$(dmar_count "$out/$last.dmesg")"
    [[ "$faults_pos" == 0 ]] || why+="${why:+; }$faults_pos DMAR faults in the positive steps"
    printf -v "FAULTS_$model" '%s' "$faults_pos"
    if [[ -z "$why" ]]; then
        printf -v "RESULT_$model" PASS
    else
        printf -v "RESULT_$model" FAIL
        log "$model: FAIL: $why"
        if [[ -n "$guest_failed" ]]; then
            log "$model: console tail ($console):"
            tail -n 30 "$console" >&2 || true
        fi
    fi
    # Every negative-control step must catch its error; each is judged on its own faults.
    local neg=DETECTED before="$out/$last.dmesg"
    for step in $neg_steps; do
        neg_detected "$out" "$step" "$before" || neg=MISSED
        before="$out/$step.dmesg"
    done
    printf -v "NEG_$model" '%s' "$neg"
    log "$model: $(tr '\n' ';' <"$out/summary" 2>/dev/null)"
}

# Keeps the newest KEEP_RUNS run folders for post-mortems, removes older ones.
prune_runs() {
    local runs_root="$1"
    ls -1dt "$runs_root"/run.* 2>/dev/null | tail -n +"$((KEEP_RUNS + 1))" | xargs -r rm -rf
}

main() {
    local t0=$SECONDS image runs model line all_ok=1 neg=DETECTED faults=0 steps glue_dir rc=0
    local glue_fail=""
    image="$("$HERE/build_image.sh" | tail -n 1)"
    mkdir -p "$CACHE/runs"
    runs="$(mktemp -d "$CACHE/runs/run.XXXXXX")"
    log "run folder $runs (image built/checked in $((SECONDS - t0))s)"
    mkdir -p "$runs/staging/bin" "$runs/staging/lib"
    build_probe "$HERE/negative_probe.c" "$runs/staging/bin/negative_probe"
    gcc -O2 -Wall -Wextra -o "$runs/staging/bin/telemetry_query" "$HERE/telemetry_query.c"
    steps="testpmd probe_positive"
    local neg_steps="probe_negative"
    glue_dir="$(build_glue)" || rc=$?
    log "glue build step done at $((SECONDS - t0))s"
    case "$rc" in
        0)
            if stage_glue "$runs/staging" "$glue_dir"; then
                steps+=" iovam_probe testpmd_iovam"
                neg_steps+=" iovam_stale"
                log "iovam glue from $glue_dir: iovam_probe, testpmd_iovam and iovam_stale run"
            else
                glue_fail="tests/vm/probe.c does not build against the glue in $glue_dir"
            fi ;;
        2)
            log "iovam glue NOT tested: dpdk-glue/meson.build does not exist yet"
            [[ "${VM_REQUIRE_IOVAM:-1}" != 1 ]] || glue_fail="glue missing (VM_REQUIRE_IOVAM=0 tests without it)" ;;
        *)
            glue_fail="iovam glue build failed (see $CACHE/iovam-build.log, or IOVAM_BUILD_DIR)"
            tail -n 20 "$CACHE/iovam-build.log" >&2 || true ;;
    esac
    # Experiments only: run other positive steps (a subset makes the verdict partial, see log).
    if [[ -n "${VM_STEPS:-}" ]]; then
        steps="$VM_STEPS"
        log "VM_STEPS overrides the steps: this run does not test everything"
    fi
    line="VM:"
    for model in $MODELS; do
        run_model "$model" "$image" "$runs" "$steps" "$neg_steps"
        local r n f
        r="RESULT_$model"; n="NEG_$model"; f="FAULTS_$model"
        if [[ -n "$glue_fail" ]]; then
            log "$model: FAIL: $glue_fail"
            printf -v "$r" FAIL
        fi
        line+=" $model=${!r}"
        [[ "${!r}" == PASS ]] || all_ok=0
        [[ "${!n}" == DETECTED ]] || neg=MISSED
        faults=$((faults + ${!f}))
    done
    line+=" negative_control=$neg dmar_faults=$faults"
    prune_runs "$CACHE/runs"
    log "wall time $((SECONDS - t0))s"
    # Only the full all-good line succeeds: a subset of models or steps is an experiment.
    [[ "$line" == "VM: e1000e=PASS virtio=PASS negative_control=DETECTED dmar_faults=0" &&
        -z "${VM_STEPS:-}" ]] || all_ok=0
    echo "$line"
    ((all_ok)) || return 1
}

# Sourcing the file (to re-judge a kept run folder by hand) defines the functions only.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
