/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "first_fit_allocator.h"

#include <algorithm>
#include <iterator>

namespace iovam::perf {

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
	if (npages == 0 || limit_pfn < start_pfn_)
		return std::nullopt;
	limit_pfn = std::min(limit_pfn, end_pfn_);
	const uint64_t align = size_aligned ? align_npages(npages) : 1;
	uint64_t cursor_pfn = start_pfn_; /* lowest pfn not known to be occupied */
	auto above = ranges_.begin();
	for (; above != ranges_.end(); ++above) {
		if (above->second.pfn_hi < cursor_pfn)
			continue; /* reserved below start_pfn */
		const uint64_t pfn_lo = (cursor_pfn + align - 1) & ~(align - 1);
		if (pfn_lo > limit_pfn || limit_pfn - pfn_lo + 1 < npages)
			return std::nullopt;
		if (pfn_lo + npages - 1 < above->first) {
			ranges_.emplace_hint(above, pfn_lo, Entry{pfn_lo + npages - 1, false});
			return pfn_lo;
		}
		cursor_pfn = above->second.pfn_hi + 1;
	}
	const uint64_t pfn_lo = (cursor_pfn + align - 1) & ~(align - 1);
	if (pfn_lo > limit_pfn || limit_pfn - pfn_lo + 1 < npages)
		return std::nullopt;
	ranges_.emplace_hint(ranges_.end(), pfn_lo, Entry{pfn_lo + npages - 1, false});
	return pfn_lo;
}

bool FirstFitAllocator::place(uint64_t pfn_lo, uint64_t npages)
{
	const uint64_t pfn_hi = pfn_lo + npages - 1;
	auto above = ranges_.upper_bound(pfn_hi);
	if (above != ranges_.begin() && std::prev(above)->second.pfn_hi >= pfn_lo)
		return false;
	ranges_.emplace_hint(above, pfn_lo, Entry{pfn_hi, false});
	return true;
}

FirstFitAllocator::Map::iterator FirstFitAllocator::containing(uint64_t pfn)
{
	auto it = ranges_.upper_bound(pfn);
	if (it == ranges_.begin())
		return ranges_.end();
	--it;
	return it->second.pfn_hi >= pfn ? it : ranges_.end();
}

bool FirstFitAllocator::free(uint64_t pfn)
{
	const auto it = containing(pfn);
	if (it == ranges_.end() || it->second.reserved)
		return false;
	ranges_.erase(it);
	return true;
}

bool FirstFitAllocator::reserve(uint64_t pfn_lo, uint64_t pfn_hi)
{
	if (pfn_lo > pfn_hi || pfn_hi > end_pfn_)
		return false;
	auto first = ranges_.upper_bound(pfn_lo);
	if (first != ranges_.begin() && std::prev(first)->second.pfn_hi >= pfn_lo)
		--first;
	uint64_t merged_lo = pfn_lo;
	uint64_t merged_hi = pfn_hi;
	auto last = first;
	for (; last != ranges_.end() && last->first <= pfn_hi; ++last) {
		if (!last->second.reserved)
			return false;
		merged_lo = std::min(merged_lo, last->first);
		merged_hi = std::max(merged_hi, last->second.pfn_hi);
	}
	ranges_.erase(first, last);
	ranges_.emplace_hint(last, merged_lo, Entry{merged_hi, true});
	return true;
}

std::optional<PfnRange> FirstFitAllocator::find(uint64_t pfn) const
{
	auto it = ranges_.upper_bound(pfn);
	if (it == ranges_.begin())
		return std::nullopt;
	--it;
	if (it->second.pfn_hi < pfn)
		return std::nullopt;
	return PfnRange{it->first, it->second.pfn_hi};
}

} // namespace iovam::perf
