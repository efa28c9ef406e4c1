/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * BM_Fast_*, BM_Lazy_* and BM_Free_*: iovam paths that have no counterpart
 * in the baselines (the per-lcore magazine cache and its bulk calls, deferred
 * erase, the bulk free to the tree). The report
 * compares them with the tree pairs of all three allocators at the same
 * number of live ranges.
 */
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_config.h"
#include "fixture_cache.h"
#include "iovam.h"
#include "iovam_allocator.h"
#include "layout.h"

namespace iovam::perf
{
namespace
{

/* The fast-path figure the magazine issue tracks: cache 0, 1 page. */
constexpr uint32_t kCacheId = 0;
/* Burst lengths (second argument): within one magazine, about a kernel
 * magazine (127 entries), and several magazines (depot and tree refills). */
const std::vector<int64_t> kBurstPairs = {16, 128, 1024};
/* Lazy frees between two iovam_maintain() calls, as a service core would batch. */
constexpr uint64_t kMaintainEvery = 64;

/* The fragmented layout of state.range(0) live ranges on a domain of
 * Allocator, with one cache: the C API refuses cache ids >= n_caches. */
template <typename Allocator>
Layout<Allocator> &one_cache_layout(const std::string &name, benchmark::State &state)
{
	const auto live = static_cast<uint64_t>(state.range(0));
	return FixtureCache::get<Layout<Allocator>>(fixture_key(name, state, 1), [&] {
		return std::shared_ptr<Layout<Allocator>>(make_fragmented<Allocator>(live, 50, 1));
	});
}

Layout<IovamAllocator> &fast_layout(const std::string &name, benchmark::State &state)
{
	return one_cache_layout<IovamAllocator>(name, state);
}

/* The same domain in unchecked mode (iovam_domain_set_checks(d, 0) before
 * anything is allocated): the fast free trusts its range, as the kernel's
 * free_iova_fast() does. Against BM_Fast_Pair1Page (checked, the default):
 * what the live-map check costs a pair. */
class UncheckedIovamAllocator : public IovamAllocator
{
public:
	explicit UncheckedIovamAllocator(const DomainShape &shape) : IovamAllocator(shape)
	{
		check(iovam_domain_set_checks(domain(), 0) == 0, "iovam_domain_set_checks failed");
	}
};

void set_rate(benchmark::State &state, uint64_t pairs_per_iteration)
{
	state.counters["pairs_per_s"] =
	        benchmark::Counter(static_cast<double>(state.iterations() * pairs_per_iteration),
	                           benchmark::Counter::kIsRate);
	state.counters["ns_per_pair"] =
	        benchmark::Counter(static_cast<double>(state.iterations() * pairs_per_iteration),
	                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

/* One alloc_fast + free_fast of one page an iteration. */
template <typename Allocator>
void run_fast_pairs(benchmark::State &state, Layout<Allocator> &layout, uint32_t cache_id)
{
	iovam_domain *d = layout.allocator->domain();
	for (auto _ : state) {
		uint64_t pfn_lo = 0;
		check(iovam_alloc_fast(d, cache_id, 1, layout.limit_pfn, &pfn_lo) == 0,
		      "iovam_alloc_fast failed");
		benchmark::DoNotOptimize(pfn_lo);
		check(iovam_free_fast(d, cache_id, pfn_lo, 1) == 0, "iovam_free_fast failed");
	}
	set_rate(state, 1);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

void bm_fast_pair_1page(benchmark::State &state, const std::string &name)
{
	run_fast_pairs(state, fast_layout(name, state), kCacheId);
}

void bm_fast_pair_1page_unchecked(benchmark::State &state, const std::string &name)
{
	run_fast_pairs(state, one_cache_layout<UncheckedIovamAllocator>(name, state), kCacheId);
}

/* An unregistered thread: no magazine, the shared path. */
void bm_fast_pair_shared(benchmark::State &state, const std::string &name)
{
	run_fast_pairs(state, fast_layout(name, state), IOVAM_CACHE_NONE);
}

/* burst allocations, then their frees: what a DPDK burst of mbufs does. */
void bm_fast_burst(benchmark::State &state, const std::string &name)
{
	auto &layout = fast_layout(name, state);
	iovam_domain *d = layout.allocator->domain();
	std::vector<uint64_t> pfns(static_cast<size_t>(state.range(1)));
	for (auto _ : state) {
		for (auto &pfn_lo : pfns)
			check(iovam_alloc_fast(d, kCacheId, 1, layout.limit_pfn, &pfn_lo) == 0,
			      "iovam_alloc_fast failed");
		benchmark::DoNotOptimize(pfns.data());
		for (const auto pfn_lo : pfns)
			check(iovam_free_fast(d, kCacheId, pfn_lo, 1) == 0,
			      "iovam_free_fast failed");
	}
	set_rate(state, pfns.size());
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

/* Ranges per bulk call in the bulk-versus-singles pair: a DPDK burst. */
constexpr unsigned int kBulkRanges = 32;

/* kBulkRanges ranges in one iovam_alloc_fast_bulk() and back in one
 * iovam_free_fast_bulk(); ns_per_pair is per range. Against
 * BM_Fast_Singles32: the same ranges through 32 single calls each way. */
void bm_fast_bulk32(benchmark::State &state, const std::string &name)
{
	auto &layout = fast_layout(name, state);
	iovam_domain *d = layout.allocator->domain();
	uint64_t pfns[kBulkRanges];
	for (auto _ : state) {
		check(iovam_alloc_fast_bulk(d, kCacheId, 1, layout.limit_pfn, pfns, kBulkRanges) ==
		              0,
		      "iovam_alloc_fast_bulk failed");
		benchmark::DoNotOptimize(pfns);
		check(iovam_free_fast_bulk(d, kCacheId, pfns, kBulkRanges, 1) == 0,
		      "iovam_free_fast_bulk failed");
	}
	set_rate(state, kBulkRanges);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

void bm_fast_singles32(benchmark::State &state, const std::string &name)
{
	auto &layout = fast_layout(name, state);
	iovam_domain *d = layout.allocator->domain();
	uint64_t pfns[kBulkRanges];
	for (auto _ : state) {
		for (auto &pfn_lo : pfns)
			check(iovam_alloc_fast(d, kCacheId, 1, layout.limit_pfn, &pfn_lo) == 0,
			      "iovam_alloc_fast failed");
		benchmark::DoNotOptimize(pfns);
		for (const auto pfn_lo : pfns)
			check(iovam_free_fast(d, kCacheId, pfn_lo, 1) == 0,
			      "iovam_free_fast failed");
	}
	set_rate(state, kBulkRanges);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

/* Ranges per call of the bulk free to the tree: a kernel magazine's worth,
 * what a magazine flush to the tree frees under one lock hold. */
constexpr uint32_t kTreeBulkRanges = 127;

/* kTreeBulkRanges live 1-page ranges chosen at random, freed to the tree in
 * one iovam_free_fast_bulk(.., IOVAM_CACHE_NONE, ..) (kBulk) or, as its
 * baseline, one iovam_free() each. At 1M live each range's leaf is a cache
 * miss of its own. Only the frees are timed (ns_per_pair is per range freed);
 * the ranges are then allocated again, outside the timing, so that the
 * layout keeps its size. */
template <bool kBulk>
void bm_free_to_tree(benchmark::State &state, const std::string &name)
{
	auto &layout = fast_layout(name, state);
	iovam_domain *d = layout.allocator->domain();
	PfnVector &live = layout.live_pfns;
	check(live.size() > kTreeBulkRanges, "free to tree: too few live ranges");
	uint64_t pfns[kTreeBulkRanges];
	double free_ns = 0;
	for (auto _ : state) {
		for (auto &pfn_lo : pfns) {
			const size_t victim = layout.churn_rng.below(live.size());
			pfn_lo = live[victim];
			live[victim] = live.back();
			live.pop_back();
		}
		const auto start = std::chrono::steady_clock::now();
		if (kBulk) {
			check(iovam_free_fast_bulk(d, IOVAM_CACHE_NONE, pfns, kTreeBulkRanges, 1) ==
			              0,
			      "iovam_free_fast_bulk failed");
		} else {
			for (const auto pfn_lo : pfns)
				check(iovam_free(d, pfn_lo) == 0, "iovam_free failed");
		}
		free_ns += std::chrono::duration<double, std::nano>(
		                   std::chrono::steady_clock::now() - start)
		                   .count();
		for (uint32_t i = 0; i < kTreeBulkRanges; ++i) {
			const auto pfn_lo = layout.allocator->alloc(1, layout.limit_pfn, false);
			check(pfn_lo.has_value(), "free to tree: the allocation back failed");
			live.push_back(*pfn_lo);
		}
	}
	state.counters["ns_per_pair"] =
	        free_ns / static_cast<double>(state.iterations() * kTreeBulkRanges);
	state.counters["live_ranges"] = static_cast<double>(live.size());
}

/* alloc + lazy free, with the markers erased by iovam_maintain() every
 * kMaintainEvery pairs, the maintain call timed as part of the work. */
void bm_lazy_free(benchmark::State &state, const std::string &name)
{
	auto &layout = fast_layout(name, state);
	iovam_domain *d = layout.allocator->domain();
	uint64_t since_maintain = 0;
	for (auto _ : state) {
		uint64_t pfn_lo = 0;
		check(iovam_alloc(d, 1, layout.limit_pfn, false, &pfn_lo) == 0,
		      "iovam_alloc failed");
		check(iovam_free_deferred(d, pfn_lo) == 0, "iovam_free_deferred failed");
		if (++since_maintain == kMaintainEvery) {
			check(iovam_maintain(d) >= 0, "iovam_maintain failed");
			since_maintain = 0;
		}
	}
	/* Leave no markers behind for the next call on this layout. */
	check(iovam_maintain(d) >= 0, "iovam_maintain failed");
	set_rate(state, 1);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

using BenchFn = void (*)(benchmark::State &, const std::string &);

void add(const std::string &name, BenchFn fn, const BenchConfig &config,
         const std::vector<int64_t> &bursts = {})
{
	auto *bench = benchmark::RegisterBenchmark(
	        name.c_str(), [fn, name](benchmark::State &state) { fn(state, name); });
	if (bursts.empty())
		bench->ArgsProduct({config.fast_live_ranges})->ArgNames({"live"});
	else
		bench->ArgsProduct({config.fast_live_ranges, bursts})->ArgNames({"live", "burst"});
	bench->MinTime(config.min_time_s)->Unit(benchmark::kNanosecond);
}

} // namespace

void register_iovam_benchmarks(const BenchConfig &config)
{
	add("BM_Fast_Pair1Page<iovam>", bm_fast_pair_1page, config);
	add("BM_Fast_Pair1PageUnchecked<iovam>", bm_fast_pair_1page_unchecked, config);
	add("BM_Fast_PairShared<iovam>", bm_fast_pair_shared, config);
	add("BM_Fast_Burst<iovam>", bm_fast_burst, config, kBurstPairs);
	add("BM_Fast_Bulk32<iovam>", bm_fast_bulk32, config);
	add("BM_Fast_Singles32<iovam>", bm_fast_singles32, config);
	add("BM_Lazy_FreeDeferred<iovam>", bm_lazy_free, config);
	add("BM_Free_TreeBulk127<iovam>", bm_free_to_tree<true>, config);
	add("BM_Free_TreeSingles127<iovam>", bm_free_to_tree<false>, config);
}

} // namespace iovam::perf
