/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// IovaWindow: the IOVAs the glue hands out, pfns [first_pfn, limit_pfn] of
// the domain (the configured window below the device's DMA mask), and the
// only code in the glue that reserves or allocates ranges in it.
//
// The rule for -EAGAIN lives here and nowhere else. -EAGAIN from the domain
// means its node pool could not supply a tree node: transient. The cold
// paths (reserve, alloc) run iovam_maintain() (refill the node pool, erase
// DEFERRED markers, trim the depots) and try once more; -EAGAIN again means
// no memory for nodes and is returned as -ENOMEM. The fast path never
// maintains (that can allocate): its -EAGAIN goes to the caller, and the
// service's next pass maintains (iovam_dpdk.h says so for iovam_dpdk_map).
//
// A window is a view: the domain and the bounds are fixed at init and owned
// by the Glue (Glue::window()); copies are cheap and never go stale.
#pragma once

#include <cerrno>
#include <cstdint>

#include "iovam.h"

namespace iovam::glue
{

class IovaWindow
{
public:
	IovaWindow() = default;
	IovaWindow(iovam_domain *dom, unsigned shift, uint64_t first_pfn, uint64_t limit_pfn)
	        : dom_(dom), shift_(shift), first_pfn_(first_pfn), limit_pfn_(limit_pfn)
	{
	}

	// The pfns of [lo, hi] (bytes, inclusive) at or below limit_pfn (what
	// lies above the window needs no keeping out). false: none.
	bool clip(uint64_t lo, uint64_t hi, uint64_t *pfn_lo, uint64_t *pfn_hi) const;

	// Keep [pfn_lo, pfn_hi] out of the domain (iovam_reserve, -EAGAIN rule
	// above). Cold path.
	int reserve(uint64_t pfn_lo, uint64_t pfn_hi) const;
	// Keep [lo, hi] (bytes, inclusive) out, clipped to the window; 0 when
	// nothing of it is inside. Cold path.
	int reserve_bytes(uint64_t lo, uint64_t hi) const;

	// A size-aligned range of npages pages at or below limit_pfn
	// (iovam_alloc, -EAGAIN rule above): its pages are then aligned to
	// their size, so the IOMMU can use superpages. Cold path.
	int alloc(uint64_t npages, uint64_t *pfn) const;
	// Give back a range from alloc(). Cold path.
	int free(uint64_t pfn) const { return iovam_free(dom_, pfn); }

	// Fast path: cache's magazines (iovam_alloc_fast), no maintenance.
	// Cost: iovam_alloc_fast's (a magazine pop when the cache is warm).
	// -ENOMEM also for a request larger than the window; -EAGAIN as is.
	int alloc_fast(uint32_t cache, uint64_t npages, uint64_t *pfn) const
	{
		int rc = iovam_alloc_fast(dom_, cache, npages, limit_pfn_, pfn);
		return rc == -EINVAL ? -ENOMEM : rc;
	}
	// [pfn, pfn + npages) lies inside the window (no overflow for any npages).
	bool contains(uint64_t pfn, uint64_t npages) const
	{
		return pfn >= first_pfn_ && npages <= limit_pfn_ && pfn <= limit_pfn_ - npages + 1;
	}

private:
	iovam_domain *dom_ = nullptr;
	unsigned shift_ = 12;
	uint64_t first_pfn_ = 0;
	uint64_t limit_pfn_ = 0; // inclusive
};

} // namespace iovam::glue
