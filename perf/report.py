#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Turn one perf/run output folder into results.json, summary.md and plots.

Ratios: baseline / iovam for times and bytes, iovam / baseline for rates,
so a ratio above 1 always means iovam is better.
Run with /usr/bin/python3 (Debian's, which has matplotlib).
"""
import argparse
import datetime
import glob
import json
import math
import statistics
import os
import re

NAME_RE = re.compile(r"^BM_(?P<component>[A-Za-z0-9]+)_(?P<scenario>\w+)<(?P<impl>\w+)>(?P<args>(/.*)?)$")
IMPLS = ["iovam", "classic_walk", "first_fit"]
BASELINES = ["classic_walk", "first_fit"]


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def parse_benchmarks(gb):
    """{(component, scenario, args-tuple): {impl: ns per iteration}}"""
    table = {}
    for b in (gb or {}).get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        m = NAME_RE.match(b.get("run_name") or b["name"])
        if not m:
            continue
        args = tuple((k, int(v)) for k, v in
                     (a.split(":") for a in m.group("args").split("/") if a)
                     if k != "min_time" and k != "repeats")
        key = (m.group("component"), m.group("scenario"), args)
        # CPU time: less disturbed than wall time by other users of the machine
        # (single-threaded benchmarks; Google Benchmark rates use it too).
        ns = b["cpu_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        if "ns_per_pair" in b:
            ns = b["ns_per_pair"] * 1e9 if b["ns_per_pair"] < 1e-3 else b["ns_per_pair"]
        table.setdefault(key, {})[m.group("impl")] = ns
    return table


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M{unit}"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f} k{unit}"
    if abs(v) >= 100:
        return f"{v:.0f}{unit}"
    return f"{v:.1f}{unit}"


def ratio(iovam, base, higher_is_better=False):
    if iovam is None or base is None or iovam == 0 or base == 0:
        return None
    return iovam / base if higher_is_better else base / iovam


def args_label(args):
    return " ".join(f"{k}={v}" for k, v in args)


SCENARIO_ORDER = ["Pair1Page", "PairMixed", "PairAligned", "PairLimit32", "Reserve", "Find",
                  "NearFit", "ChurnAligned", "Churn1Page"]
PER_PAIR = ("Pair", "NearFit", "Churn")


def scenario_key(item):
    (component, scenario, args), _ = item
    d = dict(args)
    order = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    return (order, scenario, d.get("occ_pct", 0), d.get("live", 0))


def tree_rows(table):
    rows = []
    for (component, scenario, args), by_impl in sorted(table.items(), key=scenario_key):
        if component != "Tree":
            continue
        unit = "ns/pair" if scenario.startswith(PER_PAIR) else "ns/op"
        rows.append(row(f"Tree {scenario} {args_label(args)} ({unit})",
                        by_impl.get("iovam"), by_impl.get("classic_walk"), by_impl.get("first_fit")))
    return rows


def growth_rows(table):
    """Each tree scenario's cost at the most live ranges over its cost at the
    fewest, per allocator: how the cost grows with the live set (1K -> 1M in
    the full run). The ratio columns compare the growths (baseline / iovam)."""
    series = {}
    for (component, scenario, args), by_impl in table.items():
        if component != "Tree":
            continue
        d = dict(args)
        if "live" not in d:
            continue
        for impl, ns in by_impl.items():
            series.setdefault((scenario, d.get("occ_pct")), {}).setdefault(impl, []).append((d["live"], ns))
    rows = []
    for (scenario, occ), by_impl in sorted(series.items(), key=lambda kv: (
            SCENARIO_ORDER.index(kv[0][0]) if kv[0][0] in SCENARIO_ORDER else 99, kv[0][1] or 0)):
        growth, lives = {}, None
        for impl, points in by_impl.items():
            points.sort()
            if len(points) >= 2 and points[0][1]:
                growth[impl] = points[-1][1] / points[0][1]
                lives = (points[0][0], points[-1][0])
        if lives is None:
            continue
        label = f"Tree {scenario}" + (f" occ_pct={occ}" if occ else "")
        rows.append(row(f"{label}: growth {lives[0]:.0f} -> {lives[1]:.0f} live (x)",
                        growth.get("iovam"), growth.get("classic_walk"), growth.get("first_fit")))
    return rows


def row(figure, iovam, classic, first, higher_is_better=False, unit=""):
    return {
        "figure": figure,
        "iovam": iovam,
        "classic_walk": classic,
        "first_fit": first,
        "ratio_classic_walk": ratio(iovam, classic, higher_is_better),
        "ratio_first_fit": ratio(iovam, first, higher_is_better),
        "unit": unit,
    }


def machine_rows(table):
    """BM_Machine_*: what the machine charges for a random read that misses its
    caches (perf/bench_machine.cc), from the same run as the tree figures."""
    rows = []
    for (component, scenario, args), by_impl in sorted(
            table.items(), key=lambda kv: dict(kv[0][2]).get("bytes", 0)):
        if component != "Machine":
            continue
        mib = dict(args).get("bytes", 0) / (1 << 20)
        rows.append({"figure": f"{scenario}: one dependent read from a random line of {mib:g} MiB (ns)",
                     "ns": by_impl.get("machine")})
    return rows


def iovam_only_rows(table):
    """Fast path and lazy free against the tree pairs of the baselines."""
    rows = []
    for (component, scenario, args), by_impl in sorted(table.items()):
        if component in ("Tree", "Machine", "Free"):
            continue
        live = dict(args).get("live")
        tree = table.get(("Tree", "Pair1Page", (("live", live), ("occ_pct", 50))), {})
        rows.append(row(f"{component} {scenario} {args_label(args)} (ns/pair; baselines: tree pair)",
                        by_impl.get("iovam"), tree.get("classic_walk"), tree.get("first_fit")))
    return rows


def free_rows(table):
    """The bulk free to the tree against the same ranges freed one call each, same run."""
    rows = []
    for (component, scenario, args), by_impl in sorted(table.items()):
        if component != "Free" or not scenario.startswith("TreeBulk"):
            continue
        singles = table.get((component, scenario.replace("Bulk", "Singles", 1), args), {})
        bulk, one_by_one = by_impl.get("iovam"), singles.get("iovam")
        rows.append({"figure": f"{scenario[len('TreeBulk'):]} random live 1-page ranges, {args_label(args)} (ns per range)",
                     "bulk": bulk, "singles": one_by_one, "ratio": ratio(bulk, one_by_one)})
    return rows


def thread_rows(threads, label=""):
    """iovam workloads against the classic walk behind one mutex."""
    rows = []
    if not threads:
        return rows
    runs = threads.get("runs", [])
    by = {(r["workload"], r["threads"]): r for r in runs}
    counts = sorted({r["threads"] for r in runs})
    for workload in ("fast_pair", "fast_pipeline", "tree_pair"):
        if not any(r["workload"] == workload for r in runs):
            continue
        for n in counts:
            mine = by.get((workload, n), {})
            base = by.get(("classic_walk_mutex", n), {})
            rows.append(row(f"{label}{workload}, {n} thread(s), pairs/s wall (CPU share got: {fmt(mine.get('cpu_share'))})",
                            mine.get("pairs_per_s"), base.get("pairs_per_s"), None, higher_is_better=True))
            rows.append(row(f"{label}{workload}, {n} thread(s), pairs per thread-CPU-second",
                            mine.get("pairs_per_cpu_s"), base.get("pairs_per_cpu_s"), None,
                            higher_is_better=True))
        if len(counts) > 1:
            top = counts[-1]
            mine = by.get((workload, top), {})
            base = by.get(("classic_walk_mutex", top), {})
            rows.append(row(f"{label}{workload}, scaling {top} vs 1 thread(s), wall (x)",
                            mine.get("scaling"), base.get("scaling"), None, higher_is_better=True))
            rows.append(row(f"{label}{workload}, scaling {top} vs 1 thread(s), CPU-normalised (x)",
                            mine.get("cpu_scaling"), base.get("cpu_scaling"), None, higher_is_better=True))
    return rows


def placement_check(threads):
    """Mismatches between where each thread was asked to run and where the
    kernel says it ran and where its memory sat (sched_getcpu, move_pages):
    [] is a pass. Checked for every run: the thread's CPU is the one asked
    for, on the node asked for, and a fresh page it touched sits on that
    node. For fast_pair also its cache's loaded magazine (placed on the
    thread's node with iovam_cache_set_node, and never traded through the
    depot in alloc/free pairs on one cache). Not checked: fast_pipeline's
    magazines (they travel between caches through the one shared depot) and
    the cache slots (one array for all caches)."""
    problems = []
    for r in (threads or {}).get("runs", []):
        for t, (asked, got) in enumerate(zip(r.get("placement", []), r.get("where", []))):
            what = f"{r['workload']} {r['threads']} thread(s), thread {t}"
            if asked["numa_node"] < 0:
                continue  # no NUMA information: nothing to check
            if got["cpu"] != asked["cpu"]:
                problems.append(f"{what}: ran on CPU {got['cpu']}, asked {asked['cpu']}")
            if got["numa_node"] != asked["numa_node"]:
                problems.append(f"{what}: ran on node {got['numa_node']}, asked {asked['numa_node']}")
            keys = ["memory_node"] + (["magazine_node"] if r["workload"] == "fast_pair" else [])
            for key in keys:
                if got.get(key, -1) != asked["numa_node"]:
                    problems.append(f"{what}: {key} {got.get(key)}, thread on node {asked['numa_node']}")
    return problems


def placement_table(threads, label):
    """Per thread of the largest run of each workload: where it ran and
    where its memory sat, as read back from the kernel."""
    lines = []
    runs = (threads or {}).get("runs", [])
    if not runs:
        return lines
    top = max(r["threads"] for r in runs)
    for r in runs:
        if r["threads"] != top:
            continue
        for t, (asked, got) in enumerate(zip(r.get("placement", []), r.get("where", []))):
            lines.append(f"| {label}{r['workload']} | {t} | {asked['cpu']} / {asked['numa_node']} | "
                         f"{got['cpu']} / {got['numa_node']} | {got['memory_node']} | "
                         f"{got['cache_node'] if got['cache_node'] >= 0 else '—'} | "
                         f"{got['magazine_node'] if got['magazine_node'] >= 0 else '—'} |")
    return lines


def latency_rows(latency):
    rows = []
    frag = {l["impl"]: l for l in latency if l.get("layout") == "fragmented"}
    packed = {l["impl"]: l for l in latency if l.get("layout") == "packed"}
    if frag:
        live = next(iter(frag.values()))["live_ranges"]
        for which in ("latency_1page", "latency_mixed"):
            for op in ("alloc_ns", "free_ns"):
                for q in ("p50", "p99", "max"):
                    vals = {i: ((frag.get(i) or {}).get(which) or {}).get(op, {}).get(q) for i in IMPLS}
                    label = "1 page" if which == "latency_1page" else "sizes 1..4"
                    rows.append(row(f"call latency {op[:-3]} {q}, {label}, {live:.0f} live (ns)",
                                    vals["iovam"], vals["classic_walk"], vals["first_fit"]))
    for name, layouts in (("fragmented", frag), ("packed", packed)):
        if not layouts:
            continue
        live = next(iter(layouts.values()))["live_ranges"]
        rows.append(row(f"RSS bytes per live range, {name}, {live:.0f} live",
                        *(layouts.get(i, {}).get("rss_bytes_per_range") for i in IMPLS)))
        if "iovam" in layouts and "tree_bytes_per_range" in layouts["iovam"]:
            rows.append(row(f"tree_bytes per live range, {name}, {live:.0f} live",
                            layouts["iovam"]["tree_bytes_per_range"], None, None))
    return rows


def callgrind_rows(cg):
    if not cg or not cg.get("pairs"):
        return []
    per_pair = cg["instructions"] / cg["pairs"]
    loop = cg.get("harness_loop_instructions", 0) / cg["pairs"]
    if per_pair - loop < 1:
        # iovam.h's fast path is inline: it is compiled into the loop, so the
        # library's share cannot be told apart; the whole loop is the figure.
        rows = [row("instructions per alloc_fast+free_fast pair, inline fast path, loop included "
                    "(callgrind, target <= 60)", per_pair, None, None)]
    else:
        rows = [row("instructions per alloc_fast+free_fast pair, library only (callgrind, target <= 60)",
                    per_pair - loop, None, None),
                row("instructions per pair including the harness loop and calls (callgrind)",
                    per_pair, None, None)]
    native = cg.get("native") or {}
    if "ns_per_pair" in native:
        rows.append(row("fast pair, fixed loop outside Google Benchmark, one run (ns/pair)",
                        native["ns_per_pair"], None, None))
    return rows


def churn_phases_markdown(phases):
    """The 1-page churn from a fresh layout, per block of pairs (churn_phases.cc)."""
    if not phases or not phases.get("ns_per_pair"):
        return []
    ns = phases["ns_per_pair"]
    k = phases["pairs_per_block"]
    out = ["", f"### iovam 1-page churn from a fresh layout, {phases['live']} live, "
           f"occupancy {phases['occ_pct']} %: ns/pair per block of {k} pairs", "",
           "This cost falls as the churn goes on (more of the random frees lie above the "
           "allocation front, and the next allocation takes them back). BM_Tree_Churn1Page "
           f"times the first N / 2 pairs on a fresh layout at every N live (here the first "
           + f"{phases['live'] // 2:,}".replace(",", " ") + " pairs). `perf/churn_phases.cc` explains.",
           "",
           "| pairs before the block | ns/pair |", "|---|---|"]
    out += [f"| {i * k:,} | {v:.0f} |".replace(",", " ") for i, v in enumerate(ns)]
    return out


def churn_floor_markdown(floor):
    """The 1-page churn plain and with an oracle's prefetches (churn_floor.cc)."""
    if not floor or not floor.get("sizes"):
        return []
    out = ["", "### iovam 1-page churn with an oracle: how far hiding the free's misses could take it", "",
           f"The same churn (first N / 2 pairs from the layout as built, medians of alternated rounds), "
           f"plain and with an oracle that knows every victim ahead: it asks for the victim's live byte and "
           f"path hints' slots {floor['stage0_ahead']} pairs ahead and for the nodes they name "
           f"{floor['stage1_ahead']} pairs ahead. Where the oracle stays above a target, no scheme that "
           "overlaps a single free's misses with other work reaches it. `perf/churn_floor.cc` explains.",
           "", "| live ranges | plain (ns/pair) | oracle (ns/pair) |", "|---|---|---|"]
    out += [f"| {s['live']} | {s['plain_ns']:.0f} | {s['oracle_ns']:.0f} |" for s in floor["sizes"]]
    return out


def load_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip().startswith("{")]
    except OSError:
        return []


def dyn_map_rows(runs):
    """Median over repetitions of each bench_dyn_map configuration."""
    groups = {}
    for r in runs:
        key = (r["drain"], r["mapping_lcores"], r["rate_per_lcore"], r["strict"])
        groups.setdefault(key, []).append(r)
    order = {"alarm": 0, "service": 1, "self": 2}
    rows = []
    for key in sorted(groups, key=lambda k: (order.get(k[0], 9), k[1], -k[2] if k[2] else -10**12, k[3])):
        g = groups[key]
        med = lambda f: statistics.median(x[f] for x in g)
        rows.append({
            "drain": key[0], "mapping_lcores": key[1], "rate_per_lcore": key[2], "strict": key[3],
            "repetitions": len(g), "pair_ns_p50": med("pair_ns_p50"), "pair_ns_p99": med("pair_ns_p99"),
            "pair_ns_mean": med("pair_ns_mean"),
            "wall_ns_per_pair": med("wall_ns_per_pair") if key[2] == 0 else None,
            "magazine_hit_pct": med("magazine_hit_pct"),
            "sync_unmaps_per_mpair": statistics.median(
                1e6 * x["sync_unmaps"] / x["pairs"] if x["pairs"] else 0 for x in g),
            "returned_to_tree": med("returned_to_tree"),
        })
    return rows


DRAIN_LABEL = {
    "alarm": "EAL alarm thread (10 ms)",
    "service": "service lcore",
    "self": "the mapping lcore itself",
}


def dyn_map_markdown(rows, skipped, meta):
    lines = ["", "## DPDK: dynamic map+unmap pair in steady state (bench_dyn_map, no-IOMMU: no ioctl)", ""]
    if not rows:
        lines.append(f"Not run: {skipped or 'no results'}.")
        return lines
    lines += [
        "Bursts of 64 maps then their 64 unmaps per mapping lcore. pair ns: the map and unmap calls on the "
        "mapping lcore, median (p50) and p99 over bursts, median over repetitions; wall ns/pair: the whole "
        "machine's time per pair at full rate (drain included). Magazine hits: the mapping lcores' IOVA "
        "allocations served by their magazines (iovam cache_hits / (hits + misses)). Queue-full drains: "
        "unmaps that found their lcore's queue (1024) full and drained it themselves, per million pairs. "
        "Strict: every unmap completes its lcore's queue before returning (in no-IOMMU mode without the "
        "VFIO ioctl, which adds the kernel's unmap and IOTLB flush).",
    ]
    if meta:
        lines.append(f"Load average after the runs: {meta.get('load_after')} on {meta.get('cpus')} CPUs; "
                     "with 2 CPUs, the 2-lcore service runs put the service lcore on CPU 1 with a mapping lcore.")
    lines += [
        "",
        "| drain on | mapping lcores | rate per lcore | unmap | pair ns p50 | pair ns p99 | wall ns/pair | "
        "magazine hits | queue-full drains /M pairs | ranges to tree | runs |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {:.2f} % | {} | {} | {} |".format(
            DRAIN_LABEL.get(r["drain"], r["drain"]), r["mapping_lcores"],
            f"{r['rate_per_lcore'] // 1000}K pairs/s" if r["rate_per_lcore"] else "full",
            "strict" if r["strict"] else "lazy", fmt(r["pair_ns_p50"]), fmt(r["pair_ns_p99"]),
            fmt(r["wall_ns_per_pair"]) if r["wall_ns_per_pair"] is not None else "-",
            r["magazine_hit_pct"], fmt(r["sync_unmaps_per_mpair"]), fmt(r["returned_to_tree"]),
            r["repetitions"]))
    return lines


def markdown(sections, meta, topology, threads=None, threads_spread=None, machine=None, free=None):
    lines = [
        f"# iovam perf summary ({meta['mode']} run)",
        "",
        f"- date: {meta['date']}, git: {meta['git_rev']}",
    ]
    if topology:
        nodes = topology.get("numa_nodes", [])
        lines.append(f"- topology: {topology.get('packages')} package(s), {len(nodes)} NUMA node(s), "
                     f"{topology.get('cores')} core(s), {topology.get('pus')} PU(s); threads pinned one per core, "
                     "memory bound to the core's NUMA node (hwloc)")
    tbb = (threads or {}).get("tbb")
    if tbb:
        lines.append(f"- threads are TBB {tbb.get('version')} workers, one tbb::task_arena per NUMA node "
                     f"(constraints numa_id); TBB sees NUMA node ids {tbb.get('numa_nodes')} "
                     f"({'tbbbind loaded' if tbb.get('tbbbind') else 'tbbbind NOT loaded: arenas are not NUMA-bound'})")
    if threads:
        problems = placement_check(threads) + placement_check(threads_spread)
        lines.append(f"- placement: {'PASS' if not problems else 'FAIL'} (every thread's CPU and node, and the "
                     "node of its memory, read back with sched_getcpu and move_pages, against the request)"
                     + "".join(f"\n  - {p}" for p in problems[:20]))
    lines += [
        "- ratio = baseline / iovam for times and bytes, iovam / baseline for rates: **> 1 means iovam is better**",
        "- classic_walk: top-down walk from a cached node over std::map (Linux iova.c before the maple tree); "
        "first_fit: linear first fit over std::map (QEMU iova_tree_alloc_map)",
        "- call latency is measured from outside around single iovam_alloc/iovam_free calls (rdtscp; this VM's "
        "clock reads in 10 ns steps): it bounds the domain lock hold time from above (it adds the call, "
        "taking the lock and the clock reads); maxima include preemption by other processes",
        "- threads: the baseline column is the classic walk behind one std::mutex. Wall pairs/s depend on how much "
        "CPU other users leave us (CPU share); pairs per thread-CPU-second and the CPU-normalised scaling "
        "(pairs per CPU-second x threads, relative to 1 thread) show contention apart from time-sharing: exact for "
        "spinning waits, optimistic for a mutex whose waiters sleep",
        "- Google Benchmark figures are CPU time per iteration (wall time is in results.json); other engineers share this CPU: absolute figures are noisy, same-run ratios are the comparable figures",
    ]
    for title, rows in sections:
        if not rows:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            "| figure | iovam | classic_walk | first_fit | ratio vs classic_walk | ratio vs first_fit |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append("| {} | {} | {} | {} | {} | {} |".format(
                r["figure"], fmt(r["iovam"]), fmt(r["classic_walk"]), fmt(r["first_fit"]),
                fmt(r["ratio_classic_walk"]), fmt(r["ratio_first_fit"])))
    if machine:
        lines += [
            "",
            "## The machine: a random read that misses the caches (no allocator; the floor under the 1M figures)",
            "",
            "| figure | ns |",
            "|---|---:|",
        ] + [f"| {r['figure']} | {fmt(r['ns'])} |" for r in machine]
    if free:
        lines += [
            "",
            "## Freeing to the tree: one iovam_free_fast_bulk(IOVAM_CACHE_NONE) against one iovam_free() per range",
            "",
            "| figure | bulk | singles | ratio (singles / bulk) |",
            "|---|---:|---:|---:|",
        ] + [f"| {r['figure']} | {fmt(r['bulk'])} | {fmt(r['singles'])} | {fmt(r['ratio'])} |" for r in free]
    placement = placement_table(threads, "compact: " if threads_spread else "") + \
        placement_table(threads_spread, "spread: ")
    if placement:
        lines += [
            "",
            "## Where each thread ran and where its memory sat (largest thread count, read back from the kernel)",
            "",
            "| workload | thread | asked CPU / node | ran on CPU / node | its page's node | its cache slot's node | its magazine's node |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ] + placement
    return "\n".join(lines) + "\n"


def plot(table, threads, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["matplotlib missing: run with /usr/bin/python3"]
    written = []
    series = {}
    for (component, scenario, args), by_impl in table.items():
        if component != "Tree":
            continue
        d = dict(args)
        occ = d.get("occ_pct")
        series.setdefault((scenario, occ), {})
        for impl, ns in by_impl.items():
            series[(scenario, occ)].setdefault(impl, []).append((d["live"], ns))
    for (scenario, occ), by_impl in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        fig, ax = plt.subplots(figsize=(6, 4))
        for impl in IMPLS:
            pts = sorted(by_impl.get(impl, []))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("live ranges")
        ax.set_ylabel("ns per pair" if scenario.startswith(PER_PAIR) else "ns per op")
        ax.set_title(f"Tree {scenario}" + (f", occupancy {occ} %" if occ else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        name = f"tree_{scenario}" + (f"_occ{occ}" if occ else "") + ".png"
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=100)
        plt.close(fig)
        written.append(name)
    if threads and threads.get("runs"):
        fig, (ax_wall, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4))
        by_workload = {}
        for r in threads["runs"]:
            by_workload.setdefault(r["workload"], []).append(
                (r["threads"], r["pairs_per_s"], r.get("pairs_per_cpu_s", 0) * r["threads"]))
        for workload, pts in by_workload.items():
            pts.sort()
            ax_wall.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=workload)
            ax_cpu.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=workload)
        ticks = sorted({r["threads"] for r in threads["runs"]})
        ax_wall.set_title("pairs/s, wall clock")
        ax_cpu.set_title("CPU-normalised: pairs per thread-CPU-s x threads")
        for ax in (ax_wall, ax_cpu):
            ax.set_xlabel("threads (one per core, pinned, NUMA-bound)")
            ax.set_ylabel("pairs/s (all threads)")
            ax.set_yscale("log")
            ax.set_xticks(ticks)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "threads.png"), dpi=100)
        plt.close(fig)
        written.append("threads.png")
    return written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--git-rev", default="unknown")
    opt = ap.parse_args()

    gb = load_json(os.path.join(opt.out, "bench.json"), {})
    threads = load_json(os.path.join(opt.out, "threads.json"))
    threads_spread = load_json(os.path.join(opt.out, "threads_spread.json"))
    latency = [l for l in (load_json(p) for p in sorted(glob.glob(os.path.join(opt.out, "latency_*.json")))) if l]
    cg = load_json(os.path.join(opt.out, "callgrind.json"))
    phases = load_json(os.path.join(opt.out, "churn_phases.json"))
    floor = load_json(os.path.join(opt.out, "churn_floor.json"))
    dyn_runs = load_jsonl(os.path.join(opt.out, "dyn_map.jsonl"))
    dyn_rows = dyn_map_rows(dyn_runs)
    dyn_meta = load_json(os.path.join(opt.out, "dyn_map_meta.json"))
    try:
        with open(os.path.join(opt.out, "dyn_map.skipped")) as f:
            dyn_skipped = f.read().strip()
    except OSError:
        dyn_skipped = None
    table = parse_benchmarks(gb)
    meta = {
        "mode": opt.mode,
        "git_rev": opt.git_rev,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    sections = [
        ("Tree path: same scenarios on all three allocators", tree_rows(table)),
        ("Tree path: growth with the live set (cost at the most live ranges / at the fewest)",
         growth_rows(table)),
        ("iovam fast path and lazy free (baselines: their tree pair at the same live ranges, occupancy 50 %)",
         iovam_only_rows(table)),
        ("Threads: pinned one per core, each on its own cache",
         thread_rows(threads, "compact: " if threads_spread else "") +
         thread_rows(threads_spread, "spread: ")),
        ("Call latency (an upper bound of the lock hold time) and memory", latency_rows(latency)),
        ("Instructions", callgrind_rows(cg)),
    ]
    machine = machine_rows(table)
    free = free_rows(table)
    rows = [r for _, section in sections for r in section]
    plots = plot(table, threads, opt.out)
    topology = (threads or {}).get("topology")
    results = {
        "meta": meta,
        "topology": topology,
        "figures": rows,
        "machine": machine,
        "free_to_tree": free,
        "plots": plots,
        "google_benchmark": gb,
        "threads": threads,
        "threads_spread": threads_spread,
        "placement_problems": placement_check(threads) + placement_check(threads_spread),
        "latency_memory": latency,
        "callgrind": cg,
        "churn_phases": phases,
        "churn_floor": floor,
        "dyn_map": {"runs": dyn_runs, "medians": dyn_rows, "meta": dyn_meta, "skipped": dyn_skipped},
    }
    with open(os.path.join(opt.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)
    with open(os.path.join(opt.out, "summary.md"), "w") as f:
        f.write(markdown(sections, meta, topology, threads, threads_spread, machine, free))
        f.write("\n".join(churn_phases_markdown(phases)) + "\n")
        f.write("\n".join(churn_floor_markdown(floor)) + "\n")
        f.write("\n".join(dyn_map_markdown(dyn_rows, dyn_skipped, dyn_meta)) + "\n")
        if plots:
            f.write("\nPlots: " + ", ".join(f"[{p}]({p})" for p in plots) + "\n")


if __name__ == "__main__":
    main()
