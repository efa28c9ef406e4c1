/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * BM_Fast_* and BM_Lazy_*: iovam paths that have no counterpart in the
 * baselines (the per-lcore magazine cache and its bulk calls, deferred
 * erase). The report
 * compares them with the tree pairs of all three allocators at the same
 * number of live ranges.
 */
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
}

} // namespace iovam::perf
