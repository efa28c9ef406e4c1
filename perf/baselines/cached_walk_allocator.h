/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Baseline (a): the classic top-down walk with a cached position.
 *
 * The shape of the Linux IOVA allocator before its maple-tree conversion
 * (drivers/iommu/iova.c, __alloc_and_insert_iova_range): ranges in an ordered
 * tree with an anchor above the address space; an allocation starts at a
 * cached node (one for requests limited to 32 bits, one for the rest) and walks
 * towards lower addresses until the hole between two neighbours fits. If that
 * fails it retries once from limit_pfn down to where the first pass started;
 * a failed 32-bit request records its size (max32_alloc_npages) so that later
 * 32-bit requests of that size or more fail at once, until any range below the
 * 32-bit boundary is freed.
 *
 * Written from the algorithm's description for comparison only, on std::map
 * (a red-black tree, like the kernel's rbtree). Not thread-safe: the
 * multi-thread runs wrap it in a mutex, as the kernel wraps it in a spinlock.
 */
#ifndef IOVAM_PERF_CACHED_WALK_ALLOCATOR_H
#define IOVAM_PERF_CACHED_WALK_ALLOCATOR_H

#include <cstdint>
#include <optional>

#include "range_allocator.h"
#include "range_map.h"

namespace iovam::perf
{

class CachedWalkAllocator
{
public:
	static constexpr const char *kName = "classic_walk";

	explicit CachedWalkAllocator(const DomainShape &shape);

	std::optional<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned);
	bool free(uint64_t pfn);
	bool reserve(uint64_t pfn_lo, uint64_t pfn_hi);
	std::optional<PfnRange> find(uint64_t pfn) const;

	/** Number of ranges in the tree (allocated + reserved), anchor excluded. */
	size_t size() const { return ranges_.size() - 1; }

private:
	using Iter = RangeMap::iterator;

	Iter containing(uint64_t pfn);
	Iter walk_down(Iter from, uint64_t high_pfn_excl, uint64_t low_pfn, uint64_t npages,
	               uint64_t align_mask, uint64_t *pfn_lo);
	void update_cache_on_insert(Iter inserted);
	void update_cache_on_erase(Iter erased);

	RangeMap ranges_;
	Iter anchor_;   /* sentinel above every pfn: the walk always has a start */
	Iter cached_;   /* where requests above the 32-bit boundary start */
	Iter cached32_; /* where 32-bit-limited requests start */
	uint64_t start_pfn_;
	uint64_t end_pfn_;
	uint64_t dma32_pfn_; /* first pfn at or above 4 GiB */
	uint64_t max32_alloc_npages_;
};

static_assert(RangeAllocator<CachedWalkAllocator>);

} // namespace iovam::perf

#endif
