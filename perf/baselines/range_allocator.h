/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The interface every allocator under test offers, so one benchmark template
 * runs the same operations on iovam and on each baseline in the same process.
 * It is the domain's tree interface (iovam_alloc/free/reserve/find) in C++
 * shape; the failure reasons are collapsed to "no" because the benchmarks only
 * need to know whether an operation took effect.
 */
#ifndef IOVAM_PERF_RANGE_ALLOCATOR_H
#define IOVAM_PERF_RANGE_ALLOCATOR_H

#include <concepts>
#include <cstdint>
#include <optional>

namespace iovam::perf
{

/** An inclusive range of page frame numbers, as in the C API. */
struct PfnRange {
	uint64_t pfn_lo;
	uint64_t pfn_hi;
};

/** What a domain is built from (mirrors struct iovam_domain_conf). */
struct DomainShape {
	uint64_t granule = 4096;
	uint64_t start_pfn = 1;
	uint64_t end_pfn = 0;
	uint32_t n_caches = 0;
};

template <class A>
concept RangeAllocator = std::constructible_from<A, const DomainShape &> &&
        requires(A a, uint64_t pfn, uint64_t npages, uint64_t limit_pfn, bool size_aligned)
{
	/* Highest-fit (iovam, classic walk) or lowest-fit (first fit) range of
		 * npages at or below limit_pfn; the lowest pfn of the range. */
	{
		a.alloc(npages, limit_pfn, size_aligned)
		} -> std::same_as<std::optional<uint64_t>>;
	/* Free the allocated range containing pfn. */
	{
		a.free(pfn)
		} -> std::same_as<bool>;
	/* Reserve [pfn_lo, pfn_hi], merging with overlapping reserved ranges;
		 * refused if it overlaps an allocated range. */
	{
		a.reserve(pfn, pfn)
		} -> std::same_as<bool>;
	/* The allocated or reserved range containing pfn. */
	{
		a.find(pfn)
		} -> std::same_as<std::optional<PfnRange>>;
	/* Short label used in benchmark names and the report. */
	{
		A::kName
		} -> std::convertible_to<const char *>;
};

/** roundup_pow_of_two for npages >= 1 (size-aligned allocations align to it). */
constexpr uint64_t align_npages(uint64_t npages)
{
	uint64_t align = 1;
	while (align < npages) align <<= 1;
	return align;
}

} // namespace iovam::perf

#endif
