/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The churn's step (bench_tree.cc, BM_Tree_Churn*), apart from Google
 * Benchmark so that perf/tests/test_churn.cc can run it: allocate one range,
 * then free a live range chosen at random kAhead steps ahead.
 *
 * The random choice costs the same for every allocator, and is made kAhead
 * steps ahead with its slot of live_pfns prefetched: at 1M live ranges that
 * array is 8 MiB, and reading a random element of it added a cache miss to
 * every allocator's pair (120-190 ns in alternated runs on the perf machine),
 * where a user frees an IOVA it already holds. Until 2026-11-28 the choice was
 * made one step ahead, which did not hide the miss: the next step reads the
 * slot right after its allocation, 60-80 ns after the prefetch, less than one
 * memory latency. In alternated runs at 1M live (14 rounds each, iovam, the
 * same build) the 1-page churn took 548-926 ns (median 716) one step ahead,
 * 497-834 (550) two steps ahead and 486-803 (594) four. So a victim is drawn
 * from the slots below the last kAhead, which the ranges allocated in the
 * last steps mostly fill: a k-in-N difference.
 *
 * Google Benchmark calls a benchmark function more than once (to size the
 * run, then once per repetition). Each call makes a Churn, which continues the
 * layout's random sequence (Layout::churn_rng); since 2026-11-28 BM_Tree_Churn*
 * builds its layout afresh for every round of N / 2 pairs (bench_tree.cc),
 * and the sequence starts afresh with it. Until 2026-11-27 each call
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
	/* Steps between drawing a victim and freeing it: enough to hide a memory
	 * latency behind the steps between, even at 1K live (about 120 ns per
	 * step). */
	static constexpr size_t kAhead = 4;

	explicit Churn(Layout<A> &layout) : layout_(layout)
	{
		PfnVector &live = layout.live_pfns;
		check(live.size() > 2 * kAhead, "churn: too few live ranges");
		/* A step pushes its range before it pops the victim's: room for one
		 * more, and its page touched, before anything is timed. Until
		 * 2026-11-28 a fresh layout's vector was full, so the first step
		 * reallocated it inside the timed loop: a new huge page, zeroed by
		 * its page fault, once per round of N / 2 pairs since the churns
		 * rebuild their layout every round (bench_tree.cc). At 1K live that
		 * was most of a pair: in two alternated rounds iovam's 1-page churn
		 * took 299 ns with it and 177 without, the classic walk's 601 and
		 * 498; at 8K 217 and 195; from 64K on the same. */
		live.reserve(live.size() + 1);
		live.push_back(0);
		live.pop_back();
		for (size_t &v : victims_) v = draw();
	}

	[[gnu::always_inline]] ChurnStep step(uint64_t npages, bool size_aligned)
	{
		PfnVector &live = layout_.live_pfns;
		const auto pfn_lo =
		        layout_.allocator->alloc(npages, layout_.limit_pfn, size_aligned);
		if (pfn_lo) live.push_back(*pfn_lo);
		/* Drawn below size - kAhead kAhead steps ago; the vector lost at most
		 * one range per step since (a failed allocation), so the slot is
		 * still live. */
		const size_t victim = victims_[next_];
		const uint64_t freed_pfn = live[victim];
		check(layout_.allocator->free(freed_pfn), "free of a live range failed");
		live[victim] = live.back();
		live.pop_back();
		victims_[next_] = draw();
		next_ = (next_ + 1) % kAhead;
		return ChurnStep{pfn_lo.has_value(), pfn_lo.value_or(0), freed_pfn};
	}

private:
	size_t draw()
	{
		const size_t v = layout_.churn_rng.below(layout_.live_pfns.size() - kAhead);
		__builtin_prefetch(&layout_.live_pfns[v]);
		return v;
	}

	Layout<A> &layout_;
	size_t victims_[kAhead];
	size_t next_ = 0;
};

} // namespace iovam::perf

#endif // IOVAM_PERF_CHURN_H
