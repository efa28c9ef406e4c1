/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "cached_walk_allocator.h"

#include <algorithm>
#include <iterator>

namespace iovam::perf
{

namespace
{
/* The anchor's key: above every pfn a domain can hold (end_pfn < 2^63). */
constexpr uint64_t kAnchorPfn = UINT64_MAX;
} // namespace

CachedWalkAllocator::CachedWalkAllocator(const DomainShape &shape)
        : start_pfn_(shape.start_pfn), end_pfn_(shape.end_pfn),
          dma32_pfn_((uint64_t{1} << 32) / shape.granule)
{
	anchor_ = ranges_.emplace(kAnchorPfn, RangeEntry{kAnchorPfn, true}).first;
	cached_ = anchor_;
	cached32_ = anchor_;
	/* Nothing has failed yet: every 32-bit size may be tried. */
	max32_alloc_npages_ = dma32_pfn_;
}

/*
 * Walk from `from` towards lower pfns looking for npages (aligned by
 * align_mask) below high_pfn_excl and at or above low_pfn. Returns the range
 * just above the hole found (the insertion hint) and sets *pfn_lo, or end().
 * Cost: one step per range passed, which is what makes this shape O(n).
 */
CachedWalkAllocator::Iter CachedWalkAllocator::walk_down(Iter from, uint64_t high_pfn_excl,
                                                         uint64_t low_pfn, uint64_t npages,
                                                         uint64_t align_mask, uint64_t *pfn_lo)
{
	Iter curr = from;
	uint64_t high_pfn = high_pfn_excl;
	for (;;) {
		high_pfn = std::min(high_pfn, curr->first);
		Iter above = curr;
		if (high_pfn < npages) return ranges_.end();
		const uint64_t new_pfn = (high_pfn - npages) & align_mask;
		if (new_pfn < low_pfn) return ranges_.end();
		if (curr != ranges_.begin()) {
			--curr;
			if (new_pfn <= curr->second.pfn_hi)
				continue; /* overlaps the range below: keep walking */
		}
		*pfn_lo = new_pfn;
		return above;
	}
}

std::optional<uint64_t> CachedWalkAllocator::alloc(uint64_t npages, uint64_t limit_pfn,
                                                   bool size_aligned)
{
	if (npages == 0 || limit_pfn < start_pfn_) return std::nullopt;
	limit_pfn = std::min(limit_pfn, end_pfn_);
	const uint64_t limit_pfn_excl = limit_pfn + 1;
	const bool is_32bit = limit_pfn_excl <= dma32_pfn_;
	/* The kernel's shortcut: a 32-bit size that failed before fails again. */
	if (is_32bit && npages >= max32_alloc_npages_) return std::nullopt;
	const uint64_t align_mask = size_aligned ? ~(align_npages(npages) - 1) : ~uint64_t{0};

	const Iter start = is_32bit ? cached32_ : cached_;
	uint64_t pfn_lo = 0;
	Iter above = walk_down(start, limit_pfn_excl, start_pfn_, npages, align_mask, &pfn_lo);
	if (above == ranges_.end() && start->second.pfn_hi < limit_pfn) {
		/* The first pass never looked above the cached range: retry there,
		 * from the range at the limit down to the cached one. */
		const Iter at_limit = ranges_.lower_bound(limit_pfn_excl);
		above = walk_down(at_limit, limit_pfn_excl, start->second.pfn_hi + 1, npages,
		                  align_mask, &pfn_lo);
	}
	if (above == ranges_.end()) {
		/* The kernel records every failed size, 64-bit requests included,
		 * which then refuses 32-bit requests that might fit; recording 32-bit
		 * failures only keeps the baseline from failing more than it should. */
		if (is_32bit) max32_alloc_npages_ = npages;
		return std::nullopt;
	}
	const Iter inserted =
	        ranges_.emplace_hint(above, pfn_lo, RangeEntry{pfn_lo + npages - 1, false});
	update_cache_on_insert(inserted);
	return pfn_lo;
}

/* The next search starts where the last allocation landed (next fit, downwards). */
void CachedWalkAllocator::update_cache_on_insert(Iter inserted)
{
	if (inserted->second.pfn_hi < dma32_pfn_)
		cached32_ = inserted;
	else
		cached_ = inserted;
}

/*
 * A freed range at or above a cached position moves that position up past
 * it, so the hole is seen again; any free below 4 GiB forgets the failed
 * 32-bit size (the 2022 kernel behaviour, not only frees near the cache).
 */
void CachedWalkAllocator::update_cache_on_erase(Iter erased)
{
	const Iter next = std::next(erased);
	if (erased == cached32_ ||
	    (erased->second.pfn_hi < dma32_pfn_ && erased->first >= cached32_->first))
		cached32_ = next;
	if (erased->first < dma32_pfn_) max32_alloc_npages_ = dma32_pfn_;
	if (erased == cached_ || erased->first >= cached_->first) cached_ = next;
}

CachedWalkAllocator::Iter CachedWalkAllocator::containing(uint64_t pfn)
{
	const Iter it = range_containing(ranges_, pfn);
	return it == anchor_ ? ranges_.end() : it;
}

bool CachedWalkAllocator::free(uint64_t pfn)
{
	const Iter it = containing(pfn);
	if (it == ranges_.end() || it->second.reserved) return false;
	update_cache_on_erase(it);
	ranges_.erase(it);
	return true;
}

bool CachedWalkAllocator::reserve(uint64_t pfn_lo, uint64_t pfn_hi)
{
	if (pfn_lo > pfn_hi || pfn_hi > end_pfn_) return false;
	const auto span = reserve_span(ranges_, anchor_, pfn_lo, pfn_hi);
	if (!span) return false; /* overlaps an allocated range: -EBUSY */
	bool moves_cached = false;
	bool moves_cached32 = false;
	for (Iter it = span->first; it != span->last; ++it) {
		moves_cached |= it == cached_;
		moves_cached32 |= it == cached32_;
	}
	ranges_.erase(span->first, span->last);
	const Iter merged =
	        ranges_.emplace_hint(span->last, span->pfn_lo, RangeEntry{span->pfn_hi, true});
	if (moves_cached) cached_ = merged;
	if (moves_cached32) cached32_ = merged;
	return true;
}

std::optional<PfnRange> CachedWalkAllocator::find(uint64_t pfn) const
{
	const auto it = range_containing(ranges_, pfn);
	if (it == ranges_.end() || it->first == kAnchorPfn) return std::nullopt;
	return PfnRange{it->first, it->second.pfn_hi};
}

} // namespace iovam::perf
