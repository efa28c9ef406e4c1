/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Baseline (b): a linear first fit over an ordered map.
 *
 * The shape of QEMU's iova_tree_alloc_map (util/iova-tree.c): walk the mapped
 * ranges in address order from the lowest one and take the first hole at or
 * above start_pfn that holds the request and ends at or below limit_pfn. No
 * cached position and no gap annotations: every allocation costs the number
 * of ranges below the first fitting hole.
 *
 * Written from the algorithm's description for comparison only. Not
 * thread-safe.
 */
#ifndef IOVAM_PERF_FIRST_FIT_ALLOCATOR_H
#define IOVAM_PERF_FIRST_FIT_ALLOCATOR_H

#include <cstdint>
#include <optional>

#include "range_allocator.h"
#include "range_map.h"

namespace iovam::perf
{

class FirstFitAllocator
{
public:
	static constexpr const char *kName = "first_fit";

	explicit FirstFitAllocator(const DomainShape &shape);

	std::optional<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned);
	bool free(uint64_t pfn);
	bool reserve(uint64_t pfn_lo, uint64_t pfn_hi);
	std::optional<PfnRange> find(uint64_t pfn) const;

	size_t size() const { return ranges_.size(); }

	/**
	 * Setup only, never timed: insert [pfn_lo, pfn_lo + npages) directly.
	 * Filling a first-fit map through alloc() costs O(n^2) (each call walks
	 * every range already there), which would make 2M-range layouts take
	 * hours; the benchmarks place the ranges where alloc() would have put
	 * them (bottom up) instead.
	 * @return false if the range overlaps one already present.
	 */
	bool place(uint64_t pfn_lo, uint64_t npages);

private:
	RangeMap ranges_;
	uint64_t start_pfn_;
	uint64_t end_pfn_;
};

static_assert(RangeAllocator<FirstFitAllocator>);

} // namespace iovam::perf

#endif
