/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The address-space layouts the benchmarks run on, built the same way for
 * every allocator (outside timing):
 *
 * - fragmented: allocate T = live * 100 / occupancy_pct single pages, then
 *   free T - live of them chosen at random (fixed seed). With 50 % this is
 *   "allocate 2N pages, free half at random". The domain holds the T pages
 *   plus kSlackPages of free space that the allocator's own policy puts below
 *   them (top-down) or above them (first fit), so larger requests that fit no
 *   hole still succeed — after a classic walk has passed every hole.
 * - full_32bit: the space below 4 GiB packed with ranges of unit_npages
 *   pages (about `live` of them), then one range in 64 freed at random: a
 *   device limited to 32 bits on a nearly full 32-bit space.
 *
 * Each allocator fills the space where its alloc() would: top down for iovam
 * and the classic walk, bottom up for first fit (placed directly, see
 * FirstFitAllocator::place), and then frees the same allocation indices.
 */
#ifndef IOVAM_PERF_LAYOUT_H
#define IOVAM_PERF_LAYOUT_H

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "baselines/range_allocator.h"
#include "check.h"
#include "huge_page_allocator.h"
#include "seeded_random.h"

namespace iovam::perf
{

/** Free space left beside a fragmented layout: room for any 1..4-page request. */
inline constexpr uint64_t kSlackPages = 1024;
inline constexpr uint64_t kGranuleBytes = 4096;
/** limit_pfn of a device that addresses 32 bits: 4 GiB / granule - 1. */
inline constexpr uint64_t kLimit32Pfn = (uint64_t{1} << 32) / kGranuleBytes - 1;
/** A 48-bit IOMMU's space: the domain of the 32-bit layout reaches far above 4 GiB. */
inline constexpr uint64_t kEnd48Pfn = (uint64_t{1} << 48) / kGranuleBytes - 1;
/** One range in kFree32OneIn freed: "nearly full". */
inline constexpr uint64_t kFree32OneIn = 64;

template <RangeAllocator A>
struct Layout {
	std::unique_ptr<A> allocator;
	/* On huge pages (huge_page_allocator.h): the churns index them at random. */
	PfnVector live_pfns;      /* pfn_lo of each live range */
	PfnVector hole_pfns;      /* pfn_lo of each freed range */
	uint64_t unit_npages = 1; /* size of every range placed */
	uint64_t limit_pfn = 0;   /* what requests on this layout pass */
	/* Which live range a churn frees next (churn.h). It lives with the
	 * layout, not with one call of the benchmark: a call that restarted it
	 * would draw the same slots of live_pfns again, and those now hold the
	 * ranges the last call allocated, so its frees would follow that call's
	 * allocations in order instead of landing at random. */
	SeededRandom churn_rng{kPerfSeed ^ 0xc4u};
};

template <class A>
concept PlacesDirectly = requires(A a, uint64_t pfn)
{
	{
		a.place(pfn, pfn)
		} -> std::same_as<bool>;
};

/** Fill out.size() ranges of npages at or below limit_pfn; their pfn_lo in order. */
template <RangeAllocator A>
void fill_into(A &a, const DomainShape &shape, uint64_t npages, std::span<uint64_t> out,
               uint64_t limit_pfn)
{
	for (uint64_t i = 0; i < out.size(); ++i) {
		if constexpr (PlacesDirectly<A>) {
			const uint64_t pfn_lo = shape.start_pfn + i * npages;
			check(a.place(pfn_lo, npages), "layout: place failed");
			out[i] = pfn_lo;
		} else {
			const auto pfn_lo = a.alloc(npages, limit_pfn, false);
			check(pfn_lo.has_value(), "layout: fill alloc failed");
			out[i] = *pfn_lo;
		}
	}
}

template <RangeAllocator A>
std::vector<uint64_t> fill(A &a, const DomainShape &shape, uint64_t npages, uint64_t count,
                           uint64_t limit_pfn)
{
	std::vector<uint64_t> pfns(count);
	fill_into(a, shape, npages, std::span<uint64_t>(pfns), limit_pfn);
	return pfns;
}

/** Free a random share (fixed seed) of pfns; the rest stay live. */
template <RangeAllocator A>
void free_random(Layout<A> &layout, std::vector<uint64_t> pfns, uint64_t n_free, uint64_t seed)
{
	SeededRandom rng(seed);
	rng.shuffle(pfns);
	for (uint64_t i = 0; i < n_free; ++i)
		check(layout.allocator->free(pfns[i]), "layout: free failed");
	layout.hole_pfns.assign(pfns.begin(), pfns.begin() + static_cast<ptrdiff_t>(n_free));
	layout.live_pfns.assign(pfns.begin() + static_cast<ptrdiff_t>(n_free), pfns.end());
}

/*
 * The fragmented domain lies wholly above 4 GiB. Were it to straddle the
 * boundary, the classic walk would start every request above 4 GiB at its
 * 64-bit cached node and pass every range below 4 GiB (the kernel does the
 * same once its 64-bit space fills up): O(n) per call and O(n^2) to build a
 * layout. That is the 32-bit scenario's subject, not this one's.
 */
inline DomainShape fragmented_shape(uint64_t live, uint64_t occupancy_pct, uint32_t n_caches = 0)
{
	const uint64_t total = std::max(live + 1, live * 100 / occupancy_pct);
	const uint64_t start_pfn = kLimit32Pfn + 1;
	return DomainShape{kGranuleBytes, start_pfn, start_pfn + total + kSlackPages - 1, n_caches};
}

template <RangeAllocator A>
std::unique_ptr<Layout<A>> make_fragmented(uint64_t live, uint64_t occupancy_pct,
                                           uint32_t n_caches = 0)
{
	const DomainShape shape = fragmented_shape(live, occupancy_pct, n_caches);
	const uint64_t total = shape.end_pfn - shape.start_pfn + 1 - kSlackPages;
	auto layout = std::make_unique<Layout<A>>();
	layout->allocator = std::make_unique<A>(shape);
	layout->limit_pfn = shape.end_pfn;
	auto pfns = fill(*layout->allocator, shape, 1, total, shape.end_pfn);
	free_random(*layout, std::move(pfns), total - live, kPerfSeed);
	return layout;
}

template <RangeAllocator A>
std::unique_ptr<Layout<A>> make_full_32bit(uint64_t live)
{
	const DomainShape shape{kGranuleBytes, 1, kEnd48Pfn, 0};
	const uint64_t space_npages = kLimit32Pfn - shape.start_pfn + 1;
	const uint64_t unit_npages = std::max<uint64_t>(1, space_npages / live);
	const uint64_t count = space_npages / unit_npages;
	auto layout = std::make_unique<Layout<A>>();
	layout->allocator = std::make_unique<A>(shape);
	layout->unit_npages = unit_npages;
	layout->limit_pfn = kLimit32Pfn;
	auto pfns = fill(*layout->allocator, shape, unit_npages, count, kLimit32Pfn);
	free_random(*layout, std::move(pfns), std::max<uint64_t>(1, count / kFree32OneIn),
	            kPerfSeed ^ 32);
	return layout;
}

} // namespace iovam::perf

#endif
