/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam_perf_latency: per-call latency of the tree path and memory per live
 * range, for one allocator per process (so resident-memory deltas do not see
 * another allocator's freed heap).
 *
 * Latency: timestamps (cycle_clock.h: rdtscp) around each single alloc and each single
 * free on a fragmented layout (1 page, then sizes 1..4). The domain lock is
 * taken and released inside the call, so the call latency is an upper bound
 * of the lock hold time (it adds the call, the lock handover and the clock
 * reads, whose cost is reported as timer_overhead_ns).
 *
 * Memory: tree_bytes from iovam_stats_get (iovam only) and the resident-set
 * delta from /proc/self/statm, both per live range, on the fragmented layout
 * (2N allocated, N freed: the freed half's nodes count if not returned) and
 * on a packed one (N adjacent single pages, nothing freed).
 *
 * Usage: iovam_perf_latency --impl iovam|classic_walk|first_fit --live N
 *        [--calls K] [--layout fragmented|packed]
 * Prints one JSON object on stdout.
 */
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "baselines/cached_walk_allocator.h"
#include "cycle_clock.h"
#include "baselines/first_fit_allocator.h"
#include "iovam.h"
#include "iovam_allocator.h"
#include "layout.h"
#include "proc_statm.h"

namespace iovam::perf
{
namespace
{

using Clock = std::chrono::steady_clock;

struct Options {
	std::string impl = "iovam";
	std::string layout = "fragmented";
	uint64_t live = 1 << 20;
	uint64_t calls = 200000;
};

struct Percentiles {
	double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};

Percentiles percentiles(std::vector<double> ns)
{
	Percentiles p;
	if (ns.empty()) return p;
	std::sort(ns.begin(), ns.end());
	auto at = [&](double q) {
		return ns[static_cast<size_t>(q * static_cast<double>(ns.size() - 1))];
	};
	p.p50 = at(0.50);
	p.p90 = at(0.90);
	p.p99 = at(0.99);
	p.p999 = at(0.999);
	p.max = ns.back();
	double sum = 0;
	for (double v : ns) sum += v;
	p.mean = sum / static_cast<double>(ns.size());
	return p;
}

const CycleClock &cycle_clock()
{
	static const CycleClock clock;
	return clock;
}

double ns_between(uint64_t tick0, uint64_t tick1)
{
	return cycle_clock().to_ns(tick1 - tick0);
}

/* The smallest interval two back-to-back clock reads can show. */
double timer_overhead_ns()
{
	double best = 1e9;
	for (int i = 0; i < 10000; ++i) {
		const uint64_t t0 = CycleClock::now();
		const uint64_t t1 = CycleClock::now();
		best = std::min(best, ns_between(t0, t1));
	}
	return best;
}

void print_percentiles(const char *key, const Percentiles &p)
{
	std::printf("    \"%s\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
	            "\"max\": %.0f, \"mean\": %.1f}",
	            key, p.p50, p.p90, p.p99, p.p999, p.max, p.mean);
}

template <RangeAllocator A>
void time_calls(A &a, uint64_t limit_pfn, const SizeSequence &sizes, uint64_t calls,
                const char *label, bool last)
{
	std::vector<double> alloc_ns;
	std::vector<double> free_ns;
	alloc_ns.reserve(calls);
	free_ns.reserve(calls);
	uint64_t failures = 0;
	for (uint64_t i = 0; i < calls; ++i) {
		const uint64_t t0 = CycleClock::now();
		const auto pfn_lo = a.alloc(sizes[i], limit_pfn, false);
		const uint64_t t1 = CycleClock::now();
		alloc_ns.push_back(ns_between(t0, t1));
		if (!pfn_lo) {
			++failures;
			continue;
		}
		const uint64_t t2 = CycleClock::now();
		const bool freed = a.free(*pfn_lo);
		const uint64_t t3 = CycleClock::now();
		check(freed, "free failed");
		free_ns.push_back(ns_between(t2, t3));
	}
	std::printf("  \"%s\": {\n    \"calls\": %llu, \"failed_allocs\": %llu,\n", label,
	            static_cast<unsigned long long>(calls),
	            static_cast<unsigned long long>(failures));
	print_percentiles("alloc_ns", percentiles(std::move(alloc_ns)));
	std::printf(",\n");
	print_percentiles("free_ns", percentiles(std::move(free_ns)));
	std::printf("\n  }%s\n", last ? "" : ",");
}

/*
 * The layout of make_fragmented (or N packed pages), built here so that the
 * resident-set delta covers the allocator only: the benchmark's own pfn
 * vector is allocated and touched before the first snapshot.
 */
template <RangeAllocator A>
std::unique_ptr<Layout<A>> build_measured(const Options &opt, uint64_t *rss_delta_bytes)
{
	const bool packed = opt.layout == "packed";
	const DomainShape shape = fragmented_shape(opt.live, packed ? 100 : 50);
	const uint64_t total =
	        packed ? opt.live : shape.end_pfn - shape.start_pfn + 1 - kSlackPages;
	std::vector<uint64_t> pfns(total, 0);
	auto layout = std::make_unique<Layout<A>>();
	layout->limit_pfn = shape.end_pfn;
	layout->live_pfns.assign(opt.live, 0);

	const uint64_t rss_before = resident_bytes();
	layout->allocator = std::make_unique<A>(shape);
	fill_into(*layout->allocator, shape, 1, std::span<uint64_t>(pfns), shape.end_pfn);
	const uint64_t n_free = total - opt.live;
	if (n_free > 0) {
		SeededRandom rng(kPerfSeed);
		rng.shuffle(pfns);
		for (uint64_t i = 0; i < n_free; ++i)
			check(layout->allocator->free(pfns[i]), "layout: free failed");
	}
	const uint64_t rss_after = resident_bytes();
	*rss_delta_bytes = rss_after - std::min(rss_after, rss_before);
	std::copy(pfns.begin() + static_cast<ptrdiff_t>(n_free), pfns.end(),
	          layout->live_pfns.begin());
	return layout;
}

template <RangeAllocator A>
int run(const Options &opt)
{
	const auto t0 = Clock::now();
	uint64_t rss_delta_bytes = 0;
	auto layout = build_measured<A>(opt, &rss_delta_bytes);
	const double setup_s = std::chrono::duration<double>(Clock::now() - t0).count();
	const double live = static_cast<double>(layout->live_pfns.size());

	std::printf("{\n  \"impl\": \"%s\", \"layout\": \"%s\", \"live_ranges\": %.0f, "
	            "\"setup_s\": %.3f,\n",
	            A::kName, opt.layout.c_str(), live, setup_s);
	std::printf("  \"rss_delta_bytes\": %llu, \"rss_bytes_per_range\": %.1f,\n",
	            static_cast<unsigned long long>(rss_delta_bytes),
	            static_cast<double>(rss_delta_bytes) / live);
	if constexpr (std::is_same_v<A, IovamAllocator>) {
		iovam_stats st{};
		check(iovam_stats_get(layout->allocator->domain(), &st) == 0, "stats_get failed");
		std::printf("  \"tree_bytes\": %llu, \"tree_bytes_per_range\": %.1f,\n",
		            static_cast<unsigned long long>(st.tree_bytes),
		            static_cast<double>(st.tree_bytes) / live);
	}
	std::printf("  \"timer_overhead_ns\": %.1f, \"ns_per_tick\": %.4f,\n", timer_overhead_ns(),
	            cycle_clock().ns_per_tick());
	if (opt.calls == 0) {
		std::printf("  \"latency_1page\": null\n}\n");
		return 0;
	}
	time_calls(*layout->allocator, layout->limit_pfn, SizeSequence::constant(1), opt.calls,
	           "latency_1page", false);
	time_calls(*layout->allocator, layout->limit_pfn, SizeSequence::uniform(1, 4), opt.calls,
	           "latency_mixed", true);
	std::printf("}\n");
	return 0;
}

Options parse(int argc, char **argv)
{
	Options opt;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (std::strcmp(argv[i], "--impl") == 0)
			opt.impl = argv[i + 1];
		else if (std::strcmp(argv[i], "--layout") == 0)
			opt.layout = argv[i + 1];
		else if (std::strcmp(argv[i], "--live") == 0)
			opt.live = std::strtoull(argv[i + 1], nullptr, 0);
		else if (std::strcmp(argv[i], "--calls") == 0)
			opt.calls = std::strtoull(argv[i + 1], nullptr, 0);
	}
	return opt;
}

} // namespace
} // namespace iovam::perf

int main(int argc, char **argv)
{
	using namespace iovam::perf;
	const Options opt = parse(argc, argv);
	if (opt.impl == IovamAllocator::kName) return run<IovamAllocator>(opt);
	if (opt.impl == CachedWalkAllocator::kName) return run<CachedWalkAllocator>(opt);
	if (opt.impl == FirstFitAllocator::kName) return run<FirstFitAllocator>(opt);
	std::fprintf(stderr, "unknown --impl %s\n", opt.impl.c_str());
	return 2;
}
