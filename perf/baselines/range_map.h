/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The ordered map both baselines keep their ranges in (pfn_lo -> pfn_hi and
 * whether it is reserved), and the two lookups they share: the range holding
 * a pfn, and the ranges a reservation merges.
 */
#ifndef IOVAM_PERF_RANGE_MAP_H
#define IOVAM_PERF_RANGE_MAP_H

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>

namespace iovam::perf
{

struct RangeEntry {
	uint64_t pfn_hi;
	bool reserved;
};

/* Keyed by pfn_lo; ranges never overlap, so this orders them fully. */
using RangeMap = std::map<uint64_t, RangeEntry>;

/** The range holding pfn, or ranges.end(). */
template <typename Map>
auto range_containing(Map &ranges, uint64_t pfn) -> decltype(ranges.end())
{
	auto it = ranges.upper_bound(pfn);
	if (it == ranges.begin()) return ranges.end();
	--it;
	return it->second.pfn_hi >= pfn ? it : ranges.end();
}

/** The ranges [first, last) that reserving [pfn_lo, pfn_hi] overlaps, and
 * the bounds of their union with it. */
struct ReserveSpan {
	RangeMap::iterator first, last;
	uint64_t pfn_lo, pfn_hi;
};

/**
 * What reserving [pfn_lo, pfn_hi] merges, looking no further than stop;
 * nothing if it overlaps an allocated range (the C API's -EBUSY).
 */
inline std::optional<ReserveSpan> reserve_span(RangeMap &ranges, RangeMap::iterator stop,
                                               uint64_t pfn_lo, uint64_t pfn_hi)
{
	ReserveSpan span{ranges.upper_bound(pfn_lo), {}, pfn_lo, pfn_hi};
	if (span.first != ranges.begin() && std::prev(span.first)->second.pfn_hi >= pfn_lo)
		--span.first;
	for (span.last = span.first; span.last != stop && span.last->first <= pfn_hi; ++span.last) {
		if (!span.last->second.reserved) return std::nullopt;
		span.pfn_lo = std::min(span.pfn_lo, span.last->first);
		span.pfn_hi = std::max(span.pfn_hi, span.last->second.pfn_hi);
	}
	return span;
}

} // namespace iovam::perf

#endif
