/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "first_fit_allocator.h"

#include <algorithm>
#include <iterator>

namespace iovam::perf
{

FirstFitAllocator::FirstFitAllocator(const DomainShape &shape)
        : start_pfn_(shape.start_pfn), end_pfn_(shape.end_pfn)
{
}

/*
 * One in-order pass from the lowest range: the hole before each range is
 * tried in turn. The pass stops at the first fit, or as soon as the candidate
 * no longer fits below limit_pfn (all later holes are higher still).
 */
std::optional<uint64_t> FirstFitAllocator::alloc(uint64_t npages, uint64_t limit_pfn,
                                                 bool size_aligned)
{
	if (npages == 0 || limit_pfn < start_pfn_) return std::nullopt;
	limit_pfn = std::min(limit_pfn, end_pfn_);
	const uint64_t align = size_aligned ? align_npages(npages) : 1;
	uint64_t cursor_pfn = start_pfn_; /* lowest pfn not known to be occupied */
	auto above = ranges_.begin();
	for (; above != ranges_.end(); ++above) {
		if (above->second.pfn_hi < cursor_pfn) continue; /* reserved below start_pfn */
		const uint64_t pfn_lo = (cursor_pfn + align - 1) & ~(align - 1);
		if (pfn_lo > limit_pfn || limit_pfn - pfn_lo + 1 < npages) return std::nullopt;
		if (pfn_lo + npages - 1 < above->first) {
			ranges_.emplace_hint(above, pfn_lo, RangeEntry{pfn_lo + npages - 1, false});
			return pfn_lo;
		}
		cursor_pfn = above->second.pfn_hi + 1;
	}
	const uint64_t pfn_lo = (cursor_pfn + align - 1) & ~(align - 1);
	if (pfn_lo > limit_pfn || limit_pfn - pfn_lo + 1 < npages) return std::nullopt;
	ranges_.emplace_hint(ranges_.end(), pfn_lo, RangeEntry{pfn_lo + npages - 1, false});
	return pfn_lo;
}

bool FirstFitAllocator::place(uint64_t pfn_lo, uint64_t npages)
{
	const uint64_t pfn_hi = pfn_lo + npages - 1;
	auto above = ranges_.upper_bound(pfn_hi);
	if (above != ranges_.begin() && std::prev(above)->second.pfn_hi >= pfn_lo) return false;
	ranges_.emplace_hint(above, pfn_lo, RangeEntry{pfn_hi, false});
	return true;
}

bool FirstFitAllocator::free(uint64_t pfn)
{
	const auto it = range_containing(ranges_, pfn);
	if (it == ranges_.end() || it->second.reserved) return false;
	ranges_.erase(it);
	return true;
}

bool FirstFitAllocator::reserve(uint64_t pfn_lo, uint64_t pfn_hi)
{
	if (pfn_lo > pfn_hi || pfn_hi > end_pfn_) return false;
	const auto span = reserve_span(ranges_, ranges_.end(), pfn_lo, pfn_hi);
	if (!span) return false;
	ranges_.erase(span->first, span->last);
	ranges_.emplace_hint(span->last, span->pfn_lo, RangeEntry{span->pfn_hi, true});
	return true;
}

std::optional<PfnRange> FirstFitAllocator::find(uint64_t pfn) const
{
	const auto it = range_containing(ranges_, pfn);
	if (it == ranges_.end()) return std::nullopt;
	return PfnRange{it->first, it->second.pfn_hi};
}

} // namespace iovam::perf
