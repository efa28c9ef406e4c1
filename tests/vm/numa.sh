#!/usr/bin/env bash
# Two NUMA nodes, proven in a qemu guest: this host has one node, so placement across nodes is
# tested in the tests/vm guest booted with two (-smp 2, one CPU and one memory backend per node).
# The guest is emulated (TCG): its timings are not figures; it proves placement, not speed.
#
# In the guest (numa_guest.sh):
#   perf  the programs of `perf/run --smoke` (the host writes the report from their outputs
#         with perf/report.py: the guest has no bash, python or ninja): TBB arenas per node,
#         threads compact and spread; the report's placement check compares every thread's CPU
#         and node, the node of a page it touched and of its cache's magazine (fast_pair), as
#         read back with sched_getcpu and move_pages(2), with the request.
#   glue  numa_probe.c: the DPDK glue with one lcore per node; caches and pools on their node
#         per move_pages(2), /iovam/numa per socket.
#
# Last line: "NUMA: nodes=2 perf=PASS placement=PASS glue=PASS" (FAIL where it is so);
# exit 0 only for that line.
#   perf=PASS       every perf program exited 0 and the report was written
#   placement=PASS  TBB saw both nodes (tbbbind), the 2-thread runs put one thread on each node,
#                   and the report's placement check found no mismatch in either run
#   glue=PASS       numa_probe printed result=PASS on a guest with 2 sockets and 2 lcores
# Environment: NUMA_GUEST_TIMEOUT (s, default 600), KEEP_RUNS (default 3), IOVAM_BUILD_DIR
# (the glue's meson build tree, as for run.sh), IOVAM_PERF_BUILD_DIR (the perf programs'
# release build tree, e.g. perf/run's build-perf; default a private one in tests/vm/cache).
# Run it with nice on a shared machine: TCG takes every CPU cycle it gets.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# run.sh's helpers (build_glue, ship_missing_libs, log); sourcing runs nothing.
# shellcheck source=run.sh
source "$HERE/run.sh"
NUMA_GUEST_TIMEOUT="${NUMA_GUEST_TIMEOUT:-600}"
MULTIARCH=x86_64-linux-gnu

# The perf programs, release, in a private build tree (as perf/run builds them), or in
# IOVAM_PERF_BUILD_DIR (perf/run's build-perf). Prints the build dir.
build_perf() {
    local dir="${IOVAM_PERF_BUILD_DIR:-$CACHE/perf-build}"
    if [[ ! -f "$dir/build.ninja" ]]; then
        meson setup "$dir" "$REPO" --buildtype=release -Dperf=enabled -Dtests=disabled \
            -Ddpdk=disabled >"$CACHE/perf-build.log" 2>&1 ||
            { [[ -n "${IOVAM_PERF_BUILD_DIR:-}" ]] || rm -rf "$dir"; return 1; }
    fi
    ninja -C "$dir" perf/iovam_perf_bench perf/iovam_perf_threads perf/iovam_perf_latency \
        perf/iovam_perf_test_baselines >>"$CACHE/perf-build.log" 2>&1 || return 1
    echo "$dir"
}

boot_numa_guest() {
    local share="$1" image="$2" console="$3" rc=0
    timeout --kill-after=10 "$NUMA_GUEST_TIMEOUT" qemu-system-x86_64 \
        -nodefaults -no-user-config -display none -no-reboot \
        -machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -smp 2 -m 1536 \
        -object memory-backend-ram,id=m0,size=768M -object memory-backend-ram,id=m1,size=768M \
        -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
        -device intel-iommu,intremap=on,caching-mode=on \
        -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
        -append "console=ttyS0 loglevel=4 panic=-1 intel_iommu=on hugepagesz=2M hugepages=256 vm_nics=" \
        -serial stdio \
        -fsdev "local,id=fs0,path=$share,security_model=none" \
        -device virtio-9p-pci,fsdev=fs0,mount_tag=share,addr=5 \
        </dev/null >"$console" 2>&1 || rc=$?
    return "$rc"
}

# Judges the two thread runs: TBB saw the nodes, 2-thread runs used both, no placement problem.
# Prints why not, or nothing.
judge_placement() {
    /usr/bin/python3 - "$1" <<'PY'
import json, os, sys
out = sys.argv[1]
why = []
for name in ("threads.json", "threads_spread.json"):
    try:
        t = json.load(open(os.path.join(out, name)))
    except (OSError, ValueError) as e:
        why.append(f"{name}: {e}")
        continue
    if not t.get("tbb", {}).get("tbbbind") or sorted(t["tbb"].get("numa_nodes", [])) != [0, 1]:
        why.append(f"{name}: TBB sees {t.get('tbb')}")
    if len(t["topology"]["numa_nodes"]) != 2:
        why.append(f"{name}: hwloc sees {len(t['topology']['numa_nodes'])} node(s)")
    for r in t["runs"]:
        if r["threads"] == 2 and sorted(w["numa_node"] for w in r["where"]) != [0, 1]:
            why.append(f"{name}: {r['workload']} 2 threads ran on nodes {[w['numa_node'] for w in r['where']]}")
r = json.load(open(os.path.join(out, "results.json")))
why += r.get("placement_problems", [])
print("; ".join(why))
PY
}

main() {
    local t0=$SECONDS image runs share console perf_dir glue_dir rc=0
    local nodes=0 perf=FAIL placement=FAIL glue=FAIL why
    image="$("$HERE/build_image.sh" | tail -n 1)"
    mkdir -p "$CACHE/runs"
    runs="$(mktemp -d "$CACHE/runs/numa.XXXXXX")"
    share="$runs/share"
    console="$runs/console"
    mkdir -p "$share/bin" "$share/lib" "$share/out"
    chmod 755 "$share"
    log "numa: run folder $runs"
    perf_dir="$(build_perf)" || { log "numa: perf build failed ($CACHE/perf-build.log)"; tail -20 "$CACHE/perf-build.log" >&2; return 1; }
    glue_dir="$(build_glue)" || { log "numa: glue build failed ($CACHE/iovam-build.log)"; return 1; }
    cp "$perf_dir"/perf/iovam_perf_{bench,threads,latency,test_baselines} "$share/bin/"
    local so
    so="$(find "$glue_dir" -name libiovam_dpdk.so -print -quit)"
    # shellcheck disable=SC2046  # pkg-config output is a list of flags
    gcc -O2 -g -Wall -Wextra -o "$share/bin/numa_probe" "$HERE/numa_probe.c" \
        -I"$REPO/dpdk-glue/include" -I"$REPO/lib/include" -L"$(dirname "$so")" \
        -L"$glue_dir/lib" -liovam_dpdk -liovam $(pkg-config --cflags --libs libdpdk)
    cp -L "$so" "$share/lib/libiovam_dpdk.so"
    # TBB dlopens tbbbind (ldd cannot see it); without it TBB knows no NUMA node.
    cp -L "/usr/lib/$MULTIARCH/libtbbbind_2_5.so.3" "$share/lib/"
    SHIP_LIBDIRS="$perf_dir/lib:$glue_dir/lib:$(dirname "$so")" \
        ship_missing_libs "$share" "$image" "$share"/bin/* "$share"/lib/*
    cp "$HERE/numa_guest.sh" "$share/guest.sh"
    log "numa: booting the two-node guest (timeout ${NUMA_GUEST_TIMEOUT}s)"
    boot_numa_guest "$share" "$image" "$console" || rc=$?
    log "numa: guest done at $((SECONDS - t0))s (qemu exit $rc)"
    local out="$share/out"
    grep -q 'IOVAM-INIT: poweroff' "$console" || log "numa: guest did not finish: $(tail -n 5 "$console")"
    [[ -f "$out/nodes.txt" ]] && nodes="$(head -n 1 "$out/nodes.txt" | awk -F- '{print ($2 == "" ? 1 : $2 + 1)}')"
    if [[ "$(cat "$out/perf.rc" 2>/dev/null)" == 0 ]] &&
        /usr/bin/python3 "$REPO/perf/report.py" --out "$out/perf" --mode smoke \
            --git-rev "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" >&2; then
        perf=PASS
        why="$(judge_placement "$out/perf")"
        if [[ -z "$why" ]]; then placement=PASS; else log "numa: placement: $why"; fi
    else
        log "numa: perf failed: $(tail -n 5 "$out/perf.log" 2>/dev/null)"
    fi
    if [[ "$(cat "$out/glue.rc" 2>/dev/null)" == 0 ]] &&
        grep -q '^NUMA_PROBE: sockets=2 lcores=2 result=PASS' "$out/glue.log"; then
        glue=PASS
    else
        log "numa: glue: $(grep -E '^(FAIL|NUMA_PROBE)' "$out/glue.log" 2>/dev/null | head -n 5)"
    fi
    log "numa: report $out/perf/summary.md; probe $out/glue.log; wall time $((SECONDS - t0))s"
    ls -1dt "$CACHE/runs"/numa.* 2>/dev/null | tail -n +"$((KEEP_RUNS + 1))" | xargs -r rm -rf
    local line="NUMA: nodes=$nodes perf=$perf placement=$placement glue=$glue"
    echo "$line"
    [[ "$line" == "NUMA: nodes=2 perf=PASS placement=PASS glue=PASS" ]]
}

main "$@"
