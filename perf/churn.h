/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The churn's step (bench_tree.cc, BM_Tree_Churn*), apart from Google
 * Benchmark so that perf/tests/test_churn.cc can run it: allocate one range,
 * then free a live range chosen at random one step ahead.
 *
 * The random choice costs the same for every allocator, and is made one step
 * ahead with its slot of live_pfns prefetched: at 1M live ranges that array
 * is 8 MiB, and reading a random element of it added a cache miss to every
 * allocator's pair (120-190 ns in alternated runs on the perf machine), where
 * a user frees an IOVA it already holds. So the range a step allocates is
 * never the one it frees (a 1-in-N difference).
 *
 * Google Benchmark calls a benchmark function more than once (to size the
 * run, then once per repetition). Each call makes a Churn, which continues the
 * layout's random sequence (Layout::churn_rng). Until 2026-11-27 each call
 * restarted its own generator, so it drew the same slots again; those held
 * the ranges the call before had allocated, and every call after the first
 * freed them in the order they were made, mostly in leaves still in cache: at
 * 1M live the 1-page churn's later repetitions took 385-440 ns against
 * 656-683 for the first.
 */
#ifndef IOVAM_PERF_CHURN_H
#define IOVAM_PERF_CHURN_H

#include <cstddef>
#include <cstdint>
#include <vector>

#include "check.h"
#include "layout.h"

namespace iovam::perf
{

/** What one step did. */
struct ChurnStep {
	bool allocated;         /* false: the allocation failed (counted, not skipped) */
	uint64_t allocated_pfn; /* pfn_lo of the range allocated, if it was */
	uint64_t freed_pfn;     /* pfn_lo of the live range freed */
};

template <RangeAllocator A>
class Churn
{
public:
	explicit Churn(Layout<A> &layout)
	        : layout_(layout), victim_(layout.churn_rng.below(layout.live_pfns.size()))
	{
	}

	[[gnu::always_inline]] ChurnStep step(uint64_t npages, bool size_aligned)
	{
		std::vector<uint64_t> &live = layout_.live_pfns;
		const auto pfn_lo =
		        layout_.allocator->alloc(npages, layout_.limit_pfn, size_aligned);
		if (pfn_lo) live.push_back(*pfn_lo);
		const uint64_t freed_pfn = live[victim_];
		check(layout_.allocator->free(freed_pfn), "free of a live range failed");
		live[victim_] = live.back();
		live.pop_back();
		victim_ = layout_.churn_rng.below(live.size());
		__builtin_prefetch(&live[victim_]);
		return ChurnStep{pfn_lo.has_value(), pfn_lo.value_or(0), freed_pfn};
	}

private:
	Layout<A> &layout_;
	size_t victim_;
};

} // namespace iovam::perf

#endif // IOVAM_PERF_CHURN_H
