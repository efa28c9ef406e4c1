/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam's tree path (the C API, as an application links it) behind the
 * benchmarks' RangeAllocator interface, so the same templates time iovam and
 * the baselines.
 */
#ifndef IOVAM_PERF_IOVAM_ALLOCATOR_H
#define IOVAM_PERF_IOVAM_ALLOCATOR_H

#include <cerrno>
#include <cstdint>
#include <optional>

#include "iovam.h"

#include "baselines/range_allocator.h"
#include "check.h"

namespace iovam::perf
{

class IovamAllocator
{
public:
	static constexpr const char *kName = "iovam";

	explicit IovamAllocator(const DomainShape &shape)
	{
		const iovam_domain_conf conf{shape.granule, shape.start_pfn, shape.end_pfn,
		                             shape.n_caches};
		domain_ = iovam_domain_create(&conf);
		check(domain_ != nullptr, "iovam_domain_create failed");
	}
	~IovamAllocator() { iovam_domain_destroy(domain_); }
	IovamAllocator(const IovamAllocator &) = delete;
	IovamAllocator &operator=(const IovamAllocator &) = delete;

	/* -EAGAIN means the node pool ran dry under the lock; an application
	 * calls iovam_maintain() and retries, so that cost is part of a pair. */
	std::optional<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned)
	{
		uint64_t pfn_lo = 0;
		int rc = iovam_alloc(domain_, npages, limit_pfn, size_aligned, &pfn_lo);
		if (rc == -EAGAIN) {
			(void)iovam_maintain(domain_);
			rc = iovam_alloc(domain_, npages, limit_pfn, size_aligned, &pfn_lo);
		}
		if (rc != 0) return std::nullopt;
		return pfn_lo;
	}

	bool free(uint64_t pfn) { return iovam_free(domain_, pfn) == 0; }

	bool reserve(uint64_t pfn_lo, uint64_t pfn_hi)
	{
		int rc = iovam_reserve(domain_, pfn_lo, pfn_hi);
		if (rc == -EAGAIN) {
			(void)iovam_maintain(domain_);
			rc = iovam_reserve(domain_, pfn_lo, pfn_hi);
		}
		return rc == 0;
	}

	std::optional<PfnRange> find(uint64_t pfn) const
	{
		PfnRange range{};
		if (iovam_find(domain_, pfn, &range.pfn_lo, &range.pfn_hi) != 0)
			return std::nullopt;
		return range;
	}

	iovam_domain *domain() const { return domain_; }

private:
	iovam_domain *domain_ = nullptr;
};

static_assert(RangeAllocator<IovamAllocator>);

} // namespace iovam::perf

#endif
