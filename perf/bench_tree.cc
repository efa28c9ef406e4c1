/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * BM_Tree_*: the tree path (alloc + free pairs, reserve, find) on iovam and on
 * both baselines, same layouts, same request sequences, same run. Names are
 * BM_Tree_<Scenario><impl>/live:N[/occ_pct:P]; perf/report.py pairs them up.
 */
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "baselines/cached_walk_allocator.h"
#include "baselines/first_fit_allocator.h"
#include "bench_config.h"
#include "churn.h"
#include "fixture_cache.h"
#include "iovam_allocator.h"
#include "layout.h"

namespace iovam::perf
{
namespace
{

/*
 * The timed loop of every pair scenario: one alloc and, if it succeeded, its
 * free. Failed allocations are part of the workload (a nearly full 32-bit
 * space) and are counted, not skipped.
 */
template <RangeAllocator A>
void run_pairs(benchmark::State &state, A &a, const SizeSequence &sizes, uint64_t limit_pfn,
               bool size_aligned)
{
	size_t i = 0;
	uint64_t failures = 0;
	for (auto _ : state) {
		const auto pfn_lo = a.alloc(sizes[i++], limit_pfn, size_aligned);
		if (pfn_lo) {
			benchmark::DoNotOptimize(*pfn_lo);
			check(a.free(*pfn_lo), "free of a fresh range failed");
		} else {
			++failures;
		}
	}
	state.counters["failed_allocs"] = benchmark::Counter(static_cast<double>(failures),
	                                                     benchmark::Counter::kAvgIterations);
	state.counters["pairs_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
	                                                   benchmark::Counter::kIsRate);
}

template <RangeAllocator A>
Layout<A> &fragmented(const std::string &name, benchmark::State &state, uint32_t n_caches = 0)
{
	const auto live = static_cast<uint64_t>(state.range(0));
	const auto occupancy_pct = static_cast<uint64_t>(state.range(1));
	return FixtureCache::get<Layout<A>>(fixture_key(name, state, 2), [&] {
		return std::shared_ptr<Layout<A>>(
		        make_fragmented<A>(live, occupancy_pct, n_caches));
	});
}

template <RangeAllocator A>
void bm_pair_1page(benchmark::State &state, const std::string &name)
{
	auto &layout = fragmented<A>(name, state);
	run_pairs(state, *layout.allocator, SizeSequence::constant(1), layout.limit_pfn, false);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

/* Sizes 1..4 on 1-page-granular holes: a classic walk passes every hole too
 * small for the request before it finds one that fits. */
template <RangeAllocator A>
void bm_pair_mixed(benchmark::State &state, const std::string &name)
{
	auto &layout = fragmented<A>(name, state);
	run_pairs(state, *layout.allocator, SizeSequence::uniform(1, 4), layout.limit_pfn, false);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

template <RangeAllocator A>
void bm_pair_aligned(benchmark::State &state, const std::string &name)
{
	auto &layout = fragmented<A>(name, state);
	run_pairs(state, *layout.allocator, SizeSequence::uniform(1, 4), layout.limit_pfn, true);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
}

/* 32-bit-limited requests of 1..4 units on a packed 32-bit space with one
 * unit-sized hole in 64: larger requests mostly fail, which is where the
 * kernel's walk passes every range (twice, with the retry) before it learns
 * the failed size, and forgets it at the next free below 4 GiB. */
template <RangeAllocator A>
void bm_pair_limit32(benchmark::State &state, const std::string &name)
{
	const auto live = static_cast<uint64_t>(state.range(0));
	auto &layout = FixtureCache::get<Layout<A>>(fixture_key(name, state, 1), [&] {
		return std::shared_ptr<Layout<A>>(make_full_32bit<A>(live));
	});
	run_pairs(state, *layout.allocator, SizeSequence::uniform(1, 4, layout.unit_npages),
	          layout.limit_pfn, false);
	state.counters["live_ranges"] = static_cast<double>(layout.live_pfns.size());
	state.counters["unit_npages"] = static_cast<double>(layout.unit_npages);
}

/* Reserve one free page per iteration (the holes of the fragmented layout,
 * in random order); the layout is rebuilt, untimed, when they run out. */
template <RangeAllocator A>
void bm_reserve(benchmark::State &state, const std::string &name)
{
	struct Fixture {
		std::unique_ptr<Layout<A>> layout;
		size_t next_hole = 0;
	};
	const auto live = static_cast<uint64_t>(state.range(0));
	auto make = [&] {
		auto fixture = std::make_shared<Fixture>();
		fixture->layout = make_fragmented<A>(live, 50);
		return fixture;
	};
	auto *fixture = &FixtureCache::get<Fixture>(fixture_key(name, state, 1), make);
	for (auto _ : state) {
		if (fixture->next_hole == fixture->layout->hole_pfns.size()) {
			state.PauseTiming();
			FixtureCache::drop();
			fixture = &FixtureCache::get<Fixture>(fixture_key(name, state, 1), make);
			state.ResumeTiming();
		}
		const uint64_t pfn = fixture->layout->hole_pfns[fixture->next_hole++];
		check(fixture->layout->allocator->reserve(pfn, pfn), "reserve of a hole failed");
	}
	state.counters["live_ranges"] = static_cast<double>(live);
}

template <RangeAllocator A>
void bm_find(benchmark::State &state, const std::string &name)
{
	auto &layout = fragmented<A>(name, state);
	const auto &pfns = layout.live_pfns;
	size_t i = 0;
	for (auto _ : state) {
		const auto range = layout.allocator->find(pfns[i]);
		benchmark::DoNotOptimize(range);
		i = i + 1 == pfns.size() ? 0 : i + 1;
	}
	state.counters["live_ranges"] = static_cast<double>(pfns.size());
}

/*
 * The workloads that hurt a gap search (not picked to flatter it):
 *
 * NearFit: N 2-page holes, each starting at an odd pfn between live pages
 * (4-page period: live, hole, hole, live), free space below them. A 2-page
 * size-aligned request fits none of the holes although each is long enough,
 * so a search that trusts hole lengths alone enters every subtree on the way
 * down to the free space: O(N) per call.
 */
template <RangeAllocator A>
std::unique_ptr<Layout<A>> make_near_fit(uint64_t holes)
{
	const uint64_t total = 4 * holes;
	const uint64_t start_pfn = kLimit32Pfn + 1; /* even: the period starts aligned */
	const DomainShape shape{kGranuleBytes, start_pfn, start_pfn + total + kSlackPages - 1, 0};
	auto layout = std::make_unique<Layout<A>>();
	layout->allocator = std::make_unique<A>(shape);
	layout->limit_pfn = shape.end_pfn;
	auto pfns = fill(*layout->allocator, shape, 1, total, shape.end_pfn);
	std::sort(pfns.begin(), pfns.end());
	const uint64_t base = pfns.front(); /* even for every allocator's placement */
	for (uint64_t pfn : pfns) {
		const uint64_t phase = (pfn - base) % 4;
		if (phase == 1 || phase == 2) {
			check(layout->allocator->free(pfn), "layout: free failed");
			if (phase == 1) layout->hole_pfns.push_back(pfn);
		} else {
			layout->live_pfns.push_back(pfn);
		}
	}
	return layout;
}

template <RangeAllocator A>
void bm_near_fit(benchmark::State &state, const std::string &name)
{
	const auto holes = static_cast<uint64_t>(state.range(0));
	auto &layout = FixtureCache::get<Layout<A>>(fixture_key(name, state, 1), [&] {
		return std::shared_ptr<Layout<A>>(make_near_fit<A>(holes));
	});
	run_pairs(state, *layout.allocator, SizeSequence::constant(2), layout.limit_pfn, true);
	state.counters["near_fit_holes"] = static_cast<double>(layout.hole_pfns.size());
}

/*
 * Churn on a fragmented space ("allocate 2N pages, free half at random"):
 * each iteration allocates one range and frees one live range chosen at
 * random (fixed seed; churn.h), so the live set stays at N and the frees land
 * all over the tree, as they do under real traffic: most descents miss the
 * cache at 1M live ranges.
 *
 * The timed pairs are the first N / 2 on the layout as built, at every N: a
 * round of N / 2 pairs, then (untimed) the layout is built afresh and the
 * next round repeats them. Why: a top-down allocator's churn moves. Its front
 * descends, more of the random frees land above it, and the pending free
 * takes those back without an erase, so iovam's pair costs several times
 * less late in the churn than early (perf/churn_phases.cc has the curve). A
 * phase is a number of pairs per live range, so every N is timed in the same
 * one and the growth from 1K to 1M is that of N alone. Until 2026-11-28 the
 * timed run was as many pairs as 0.2 s took: the first half million at 1M,
 * but some 6000 rounds of the live set at 1K, late in a churn that had
 * converged (32 ns there against about 175 for its first N / 2 pairs); and
 * before that the calls continued one layout, so the timed run fell wherever
 * the sizing runs had left the churn (41 ns at 1M in one run, 343-355 in
 * others of the same hour). The walks cost so much more per pair at 1M that
 * their timed run ends inside the first round.
 */
template <RangeAllocator A>
void run_churn(benchmark::State &state, const SizeSequence &sizes, bool size_aligned)
{
	const auto live = static_cast<uint64_t>(state.range(0));
	const auto occupancy_pct = static_cast<uint64_t>(state.range(1));
	const uint64_t round_pairs = std::max<uint64_t>(live / 2, 1);
	std::unique_ptr<Layout<A>> layout;
	std::optional<Churn<A>> churn;
	auto build = [&] {
		churn.reset();
		layout.reset(); // one layout resident at a time
		FixtureCache::drop();
		layout = make_fragmented<A>(live, occupancy_pct);
		churn.emplace(*layout);
	};
	build();
	size_t i = 0;
	uint64_t failures = 0, in_round = 0;
	for (auto _ : state) {
		if (in_round == round_pairs) [[unlikely]] {
			state.PauseTiming();
			build();
			state.ResumeTiming();
			in_round = 0;
		}
		failures += !churn->step(sizes[i++], size_aligned).allocated;
		++in_round;
	}
	state.counters["failed_allocs"] = benchmark::Counter(static_cast<double>(failures),
	                                                     benchmark::Counter::kAvgIterations);
	state.counters["live_ranges"] = static_cast<double>(layout->live_pfns.size());
}

/* Size-aligned 1, 2, 4, 8 pages in turn: the DMA API's default. */
template <RangeAllocator A>
void bm_churn_aligned(benchmark::State &state, const std::string &)
{
	static const SizeSequence sizes = [] {
		SizeSequence seq = SizeSequence::constant(1);
		for (size_t i = 0; i < SizeSequence::kLength; ++i)
			seq.set(i, uint64_t{1} << (i % 4));
		return seq;
	}();
	run_churn<A>(state, sizes, true);
}

/* Unaligned single pages: the cost of a random descent. */
template <RangeAllocator A>
void bm_churn_1page(benchmark::State &state, const std::string &)
{
	run_churn<A>(state, SizeSequence::constant(1), false);
}

using BenchFn = void (*)(benchmark::State &, const std::string &);

void add(const std::string &name, BenchFn fn, const std::vector<std::vector<int64_t>> &args,
         const std::vector<std::string> &arg_names, const BenchConfig &config)
{
	benchmark::RegisterBenchmark(name.c_str(),
	                             [fn, name](benchmark::State &state) { fn(state, name); })
	        ->ArgsProduct(args)
	        ->ArgNames(arg_names)
	        ->MinTime(config.min_time_s)
	        ->Unit(benchmark::kNanosecond);
}

/* Scenario-major order: the three allocators of one scenario run back to back,
 * so they see the same background load from other users of the machine. */
template <RangeAllocator A>
void register_scenario(int scenario, const BenchConfig &config)
{
	const std::string impl = std::string("<") + A::kName + ">";
	const auto &live = config.live_ranges;
	const auto &occ = config.occupancy_pct;
	switch (scenario) {
	case 0:
		add("BM_Tree_Pair1Page" + impl, bm_pair_1page<A>, {live, occ}, {"live", "occ_pct"},
		    config);
		break;
	case 1:
		add("BM_Tree_PairMixed" + impl, bm_pair_mixed<A>, {live, occ}, {"live", "occ_pct"},
		    config);
		break;
	case 2:
		add("BM_Tree_PairAligned" + impl, bm_pair_aligned<A>, {live, {50}},
		    {"live", "occ_pct"}, config);
		break;
	case 3:
		add("BM_Tree_PairLimit32" + impl, bm_pair_limit32<A>, {live}, {"live"}, config);
		break;
	case 4: add("BM_Tree_Reserve" + impl, bm_reserve<A>, {live}, {"live"}, config); break;
	case 5:
		add("BM_Tree_Find" + impl, bm_find<A>, {live, {50}}, {"live", "occ_pct"}, config);
		break;
	case 6: add("BM_Tree_NearFit" + impl, bm_near_fit<A>, {live}, {"live"}, config); break;
	case 7:
		add("BM_Tree_ChurnAligned" + impl, bm_churn_aligned<A>, {live, {50}},
		    {"live", "occ_pct"}, config);
		break;
	default:
		add("BM_Tree_Churn1Page" + impl, bm_churn_1page<A>, {live, {50}},
		    {"live", "occ_pct"}, config);
		break;
	}
}

constexpr int kScenarios = 9;

} // namespace

void register_tree_benchmarks(const BenchConfig &config)
{
	for (int scenario = 0; scenario < kScenarios; ++scenario) {
		register_scenario<IovamAllocator>(scenario, config);
		register_scenario<CachedWalkAllocator>(scenario, config);
		register_scenario<FirstFitAllocator>(scenario, config);
	}
}

} // namespace iovam::perf
