/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam_perf_threads: pairs/s from 1 to all cores, one thread per core: TBB
 * workers in one tbb::task_arena per NUMA node, each pinned to its core and
 * NUMA-bound with hwloc (topology.h). Each thread owns cache
 * cache_id = its index in a domain created with n_caches = thread count.
 * Workloads:
 *   fast_pair          iovam_alloc_fast + iovam_free_fast, 1 page (magazines)
 *   tree_pair          iovam_alloc + iovam_free, 1 page (the domain lock)
 *   fast_pipeline      thread t allocates bursts of 32 through cache t and
 *                      hands them to thread t+1 (ring), which frees them
 *                      through its own cache: ranges migrate between caches
 *                      through the depot, as mbufs do between RX and TX lcores
 *   classic_walk_mutex baseline (a) behind one std::mutex, as the kernel's
 *                      spinlock guards its rbtree
 * Prints one JSON object (TBB's NUMA view, hwloc's topology, runs) on stdout;
 * each run records, per thread, where it ran and where its memory sat as the
 * kernel reports it (sched_getcpu, move_pages through hwloc).
 *
 * Usage: iovam_perf_threads [--smoke] [--spread] [--seconds S] [--live N]
 */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include "baselines/cached_walk_allocator.h"
#include "iovam.h"
#include "iovam_numa.h"
#include "iovam_allocator.h"
#include "layout.h"
#include "spsc_ring.h"
#include "topology.h"

namespace iovam::perf
{
namespace
{

using Clock = std::chrono::steady_clock;

/* Where a thread ran and where its memory sat, as the kernel reports it at
 * the end of its window; -1: unknown (no NUMA information, or the memory is
 * not the thread's: tree and classic workloads have no cache). */
struct Where {
	int cpu = -1;
	int node = -1;          /* NUMA node of that CPU */
	int memory_node = -1;   /* a page the thread allocated and touched */
	int cache_node = -1;    /* its iovam cache's slot */
	int magazine_node = -1; /* its cache's loaded class-0 magazine */
};

struct Options {
	bool smoke = false;
	Placement placement = Placement::kCompact;
	double seconds = 0.5;
	uint64_t live = 1 << 16;
	int repetitions = 3;
};

/* A counter alone on its cache line: threads must not slow each other
 * down through the measurement itself. */
struct alignas(64) ThreadResult {
	uint64_t pairs = 0;
	double cpu_s = 0; /* this thread's CPU time in the window */
	std::string bind_error;
	Where where;
};

/* CPU time of the calling thread: on a machine shared with other users a
 * thread may get only part of its core, so pairs per CPU-second is the
 * figure that shows contention (spinning and cache-line transfers cost CPU)
 * apart from time-sharing. */
double thread_cpu_s()
{
	timespec ts{};
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Run {
	std::string workload;
	unsigned threads = 0;
	double pairs_per_s = 0;
	double pairs_per_cpu_s = 0; /* all pairs / all threads' CPU seconds */
	double cpu_share = 0;       /* CPU seconds got / (threads x window) */
	std::vector<double> per_thread_pairs_per_s;
	std::vector<ThreadPlacement> placement;
	std::vector<Where> where;
	std::string bind_errors;
};

/* Where the calling thread runs and where its memory sits, read back from
 * the kernel (sched_getcpu, move_pages through hwloc), not from the request:
 * a fresh page the thread touches after binding, and, for the iovam
 * workloads, its cache's slot and loaded class-0 magazine. */
Where where_now(const Topology &topo, iovam_domain *d, unsigned cache_id)
{
	Where w;
	const int cpu = sched_getcpu();
	w.cpu = cpu;
	w.node = cpu >= 0 ? topo.numa_of_cpu(static_cast<unsigned>(cpu)) : -1;
	const long page_bytes = sysconf(_SC_PAGESIZE);
	void *page = mmap(nullptr, static_cast<size_t>(page_bytes), PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page != MAP_FAILED) {
		*static_cast<volatile char *>(page) = 1; /* fault it in here */
		w.memory_node = topo.numa_of_memory(page);
		munmap(page, static_cast<size_t>(page_bytes));
	}
	if (d) {
		const auto *view = reinterpret_cast<const iovam_fast_view *>(d);
		const iovam_lcore_fast *slot = iovam_lcore_(view, cache_id);
		w.cache_node = topo.numa_of_memory(slot);
		const iovam_magazine *mag = __atomic_load_n(&slot->loaded[0], __ATOMIC_RELAXED);
		if (mag) w.magazine_node = topo.numa_of_memory(mag);
	}
	return w;
}

/* One measurement: threads bind, wait for the start flag, then loop `body`
 * (which returns the pairs it completed) until the stop flag; the window is
 * timed by the main thread.
 *
 * The threads are TBB workers: one tbb::task_arena per NUMA node, constrained
 * to it (tbb::task_arena::constraints, numa_id: tbbbind pins each worker that
 * joins the arena to the node's CPUs), with one slot per thread placed on
 * that node and none reserved for the main thread, which only times the
 * window. Inside its task each thread then pins itself to one core of the
 * node and binds its memory there (hwloc), so no two threads share a core.
 * Every task spins until all have started, so each takes its own worker:
 * global_control raises the worker count to the thread count (TBB's default
 * is one worker fewer than the CPUs). */
template <class Body>
Run measure(const Topology &topo, const Options &opt, unsigned n_threads, const char *workload,
            iovam_domain *d, Body body)
{
	Run run;
	run.workload = workload;
	run.threads = n_threads;
	run.placement = topo.place(n_threads, opt.placement);
	std::vector<ThreadResult> results(n_threads);
	std::atomic<unsigned> ready{0};
	std::atomic<unsigned> done{0};
	std::atomic<bool> start{false};
	std::atomic<bool> stop{false};
	tbb::global_control workers(tbb::global_control::max_allowed_parallelism, n_threads + 1);
	std::map<int, unsigned> threads_on_node;
	for (const auto &p : run.placement) ++threads_on_node[p.numa_os];
	std::map<int, std::unique_ptr<tbb::task_arena>> arenas;
	for (const auto &[node, count] : threads_on_node) {
		tbb::task_arena::constraints where;
		where.set_numa_id(topo.tbb_numa_id(node))
		        .set_max_concurrency(static_cast<int>(count));
		arenas[node] = std::make_unique<tbb::task_arena>(where, 0);
	}
	for (unsigned t = 0; t < n_threads; ++t) {
		arenas[run.placement[t].numa_os]->enqueue([&, t] {
			results[t].bind_error = topo.bind_current_thread(run.placement[t]);
			ready.fetch_add(1);
			while (!start.load(std::memory_order_acquire)) std::this_thread::yield();
			uint64_t pairs = 0;
			const double cpu0_s = thread_cpu_s();
			/* Check the flag every 64 pairs: a relaxed load per pair
			 * would cost more than the fast path's own work. */
			while (!stop.load(std::memory_order_relaxed)) {
				for (int i = 0; i < 64; ++i) pairs += body(t);
			}
			results[t].cpu_s = thread_cpu_s() - cpu0_s;
			results[t].pairs = pairs;
			results[t].where = where_now(topo, d, t);
			done.fetch_add(1, std::memory_order_release);
		});
	}
	while (ready.load() != n_threads) std::this_thread::yield();
	const auto t0 = Clock::now();
	start.store(true, std::memory_order_release);
	std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
	stop.store(true);
	while (done.load(std::memory_order_acquire) != n_threads) std::this_thread::yield();
	const double elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
	double cpu_s = 0;
	double pairs = 0;
	for (auto &r : results) {
		cpu_s += r.cpu_s;
		pairs += static_cast<double>(r.pairs);
		run.pairs_per_s += static_cast<double>(r.pairs) / elapsed_s;
		run.per_thread_pairs_per_s.push_back(static_cast<double>(r.pairs) / elapsed_s);
		run.where.push_back(r.where);
		run.bind_errors += r.bind_error;
	}
	run.pairs_per_cpu_s = cpu_s > 0 ? pairs / cpu_s : 0;
	run.cpu_share = cpu_s / (elapsed_s * n_threads);
	return run;
}

/* The median of a few repetitions: other users of the machine make single
 * runs noisy, and the median ignores one disturbed run. */
template <class Once>
Run median_of(int repetitions, Once once)
{
	std::vector<Run> runs;
	for (int i = 0; i < repetitions; ++i) runs.push_back(once());
	std::sort(runs.begin(), runs.end(),
	          [](const Run &a, const Run &b) { return a.pairs_per_s < b.pairs_per_s; });
	return runs[runs.size() / 2];
}

/* Each thread's cache gets its magazines on the thread's node
 * (iovam_cache_set_node with an hwloc allocator), as the DPDK glue does with
 * rte_zmalloc_socket for each lcore's socket. */
void place_caches(const Topology &topo, const Options &opt, iovam_domain *d, unsigned n_threads)
{
	const iovam_cache_mem mem{
	        [](void *arg, size_t bytes, int node) {
		        return static_cast<const Topology *>(arg)->alloc_on_node(bytes, node);
	        },
	        [](void *arg, void *p, size_t bytes) {
		        static_cast<const Topology *>(arg)->free_on_node(p, bytes);
	        },
	        const_cast<Topology *>(&topo)};
	const auto placement = topo.place(n_threads, opt.placement);
	for (unsigned t = 0; t < n_threads; ++t)
		if (placement[t].numa_os >= 0)
			check(iovam_cache_set_node(d, t, placement[t].numa_os, &mem) == 0,
			      "iovam_cache_set_node failed");
}

Run fast_pair(const Topology &topo, const Options &opt, unsigned n_threads)
{
	auto layout = make_fragmented<IovamAllocator>(opt.live, 50, n_threads);
	iovam_domain *d = layout->allocator->domain();
	place_caches(topo, opt, d, n_threads);
	const uint64_t limit_pfn = layout->limit_pfn;
	return median_of(opt.repetitions, [&] {
		return measure(topo, opt, n_threads, "fast_pair", d, [&](unsigned t) {
			uint64_t pfn_lo = 0;
			check(iovam_alloc_fast(d, t, 1, limit_pfn, &pfn_lo) == 0,
			      "alloc_fast failed");
			check(iovam_free_fast(d, t, pfn_lo, 1) == 0, "free_fast failed");
			return uint64_t{1};
		});
	});
}

/* Ranges handed on per step, and the most a thread frees per step (twice the
 * burst, so a consumer catches up after a pause). */
constexpr size_t kPipelineBurst = 32;

Run fast_pipeline(const Topology &topo, const Options &opt, unsigned n_threads)
{
	auto layout = make_fragmented<IovamAllocator>(opt.live, 50, n_threads);
	iovam_domain *d = layout->allocator->domain();
	place_caches(topo, opt, d, n_threads);
	const uint64_t limit_pfn = layout->limit_pfn;
	return median_of(opt.repetitions, [&] {
		/* Fresh rings per repetition; what is left in them when a run
		 * stops stays allocated until the domain is destroyed. */
		auto rings = std::make_unique<SpscRing[]>(n_threads);
		return measure(topo, opt, n_threads, "fast_pipeline", d, [&](unsigned t) {
			uint64_t burst[kPipelineBurst];
			uint64_t pairs = 0;
			for (auto &pfn_lo : burst)
				check(iovam_alloc_fast(d, t, 1, limit_pfn, &pfn_lo) == 0,
				      "alloc_fast failed");
			if (!rings[t].push(burst, kPipelineBurst)) {
				/* Consumer behind: free here rather than wait. */
				for (const auto pfn_lo : burst)
					check(iovam_free_fast(d, t, pfn_lo, 1) == 0,
					      "free_fast failed");
				pairs += kPipelineBurst;
			}
			uint64_t received[2 * kPipelineBurst];
			const size_t n = rings[(t + n_threads - 1) % n_threads].pop(
			        received, 2 * kPipelineBurst);
			for (size_t i = 0; i < n; ++i)
				check(iovam_free_fast(d, t, received[i], 1) == 0,
				      "free_fast failed");
			return pairs + n;
		});
	});
}

Run tree_pair(const Topology &topo, const Options &opt, unsigned n_threads)
{
	auto layout = make_fragmented<IovamAllocator>(opt.live, 50, n_threads);
	auto &a = *layout->allocator;
	const uint64_t limit_pfn = layout->limit_pfn;
	return median_of(opt.repetitions, [&] {
		return measure(topo, opt, n_threads, "tree_pair", nullptr, [&](unsigned) {
			const auto pfn_lo = a.alloc(1, limit_pfn, false);
			check(pfn_lo && a.free(*pfn_lo), "tree pair failed");
			return uint64_t{1};
		});
	});
}

Run classic_walk_mutex(const Topology &topo, const Options &opt, unsigned n_threads)
{
	auto layout = make_fragmented<CachedWalkAllocator>(opt.live, 50);
	auto &a = *layout->allocator;
	std::mutex lock;
	const uint64_t limit_pfn = layout->limit_pfn;
	return median_of(opt.repetitions, [&] {
		return measure(topo, opt, n_threads, "classic_walk_mutex", nullptr, [&](unsigned) {
			std::lock_guard guard(lock);
			const auto pfn_lo = a.alloc(1, limit_pfn, false);
			check(pfn_lo && a.free(*pfn_lo), "classic pair failed");
			return uint64_t{1};
		});
	});
}

std::string json_string(const std::string &s)
{
	std::string out = "\"";
	for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
	return out + "\"";
}

void print_run(const Run &run, const Run &one_thread, bool first)
{
	std::printf("%s\n    {\"workload\": \"%s\", \"threads\": %u, \"pairs_per_s\": %.0f, "
	            "\"scaling\": %.3f, \"pairs_per_cpu_s\": %.0f, \"cpu_share\": %.3f, "
	            "\"cpu_scaling\": %.3f, \"per_thread_pairs_per_s\": [",
	            first ? "" : ",", run.workload.c_str(), run.threads, run.pairs_per_s,
	            run.pairs_per_s / one_thread.pairs_per_s, run.pairs_per_cpu_s, run.cpu_share,
	            run.pairs_per_cpu_s * run.threads / one_thread.pairs_per_cpu_s);
	for (size_t i = 0; i < run.per_thread_pairs_per_s.size(); ++i)
		std::printf("%s%.0f", i ? ", " : "", run.per_thread_pairs_per_s[i]);
	std::printf("], \"placement\": [");
	for (size_t i = 0; i < run.placement.size(); ++i)
		std::printf("%s{\"core\": %u, \"cpu\": %u, \"numa_node\": %d}", i ? ", " : "",
		            run.placement[i].core_logical, run.placement[i].pu_os,
		            run.placement[i].numa_os);
	std::printf("], \"where\": [");
	for (size_t i = 0; i < run.where.size(); ++i) {
		const Where &w = run.where[i];
		std::printf("%s{\"cpu\": %d, \"numa_node\": %d, \"memory_node\": %d, "
		            "\"cache_node\": %d, \"magazine_node\": %d}",
		            i ? ", " : "", w.cpu, w.node, w.memory_node, w.cache_node,
		            w.magazine_node);
	}
	std::printf("], \"bind_errors\": %s}", json_string(run.bind_errors).c_str());
}

Options parse(int argc, char **argv)
{
	Options opt;
	for (int i = 1; i < argc; ++i) {
		if (std::strcmp(argv[i], "--smoke") == 0) {
			opt.smoke = true;
			opt.seconds = 0.1;
			opt.live = 1 << 12;
			opt.repetitions = 1;
		} else if (std::strcmp(argv[i], "--spread") == 0) {
			opt.placement = Placement::kSpread;
		} else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			opt.seconds = std::atof(argv[++i]);
		} else if (std::strcmp(argv[i], "--live") == 0 && i + 1 < argc) {
			opt.live = std::strtoull(argv[++i], nullptr, 0);
		} else {
			std::fprintf(stderr,
			             "usage: %s [--smoke] [--spread] [--seconds S] [--live N]\n",
			             argv[0]);
			std::exit(2);
		}
	}
	return opt;
}

} // namespace
} // namespace iovam::perf

int main(int argc, char **argv)
{
	using namespace iovam::perf;
	const Options opt = parse(argc, argv);
	const Topology topo;
	/* tbbbind answers with the nodes' ids; without it TBB knows no NUMA
	 * and answers one node, id -1 (automatic), and ignores numa_id. */
	const std::vector<tbb::numa_node_id> tbb_nodes = tbb::info::numa_nodes();
	const bool tbbbind = std::all_of(tbb_nodes.begin(), tbb_nodes.end(),
	                                 [](tbb::numa_node_id id) { return id >= 0; });
	std::string tbb_ids;
	for (const auto id : tbb_nodes)
		tbb_ids += (tbb_ids.empty() ? "" : ", ") + std::to_string(id);
	std::printf("{\n  \"tbb\": {\"version\": \"%s\", \"numa_nodes\": [%s], \"tbbbind\": %s},\n",
	            TBB_runtime_version(), tbb_ids.c_str(), tbbbind ? "true" : "false");
	std::printf("  \"topology\": %s,\n  \"placement\": \"%s\",\n  \"seconds_per_run\": %g,\n"
	            "  \"live_ranges\": %llu,\n  \"repetitions\": %d,\n  \"runs\": [",
	            topo.to_json().c_str(),
	            opt.placement == Placement::kCompact ? "compact" : "spread", opt.seconds,
	            static_cast<unsigned long long>(opt.live), opt.repetitions);
	bool first = true;
	using Workload = Run (*)(const Topology &, const Options &, unsigned);
	for (Workload workload : {fast_pair, fast_pipeline, tree_pair, classic_walk_mutex}) {
		Run one_thread;
		for (unsigned n = 1; n <= topo.cores(); ++n) {
			const Run run = workload(topo, opt, n);
			if (n == 1) one_thread = run;
			print_run(run, one_thread, first);
			first = false;
			std::fflush(stdout);
		}
	}
	std::printf("\n  ]\n}\n");
	return 0;
}
