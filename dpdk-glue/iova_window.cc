/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "iova_window.h"

#include <cerrno>

namespace iovam::glue
{

namespace
{

// The -EAGAIN rule (iova_window.h): maintain once, try once more.
template <class Op>
int with_maintenance(iovam_domain *dom, Op op)
{
	int rc = op();
	if (rc == -EAGAIN) {
		(void)iovam_maintain(dom);
		rc = op();
	}
	return rc == -EAGAIN ? -ENOMEM : rc;
}

} // namespace

bool IovaWindow::clip(uint64_t lo, uint64_t hi, uint64_t *pfn_lo, uint64_t *pfn_hi) const
{
	if (lo > hi || (lo >> shift_) > limit_pfn_) return false;
	*pfn_lo = lo >> shift_;
	*pfn_hi = (hi >> shift_) < limit_pfn_ ? hi >> shift_ : limit_pfn_;
	return true;
}

int IovaWindow::reserve(uint64_t pfn_lo, uint64_t pfn_hi) const
{
	return with_maintenance(dom_, [&] { return iovam_reserve(dom_, pfn_lo, pfn_hi); });
}

int IovaWindow::reserve_bytes(uint64_t lo, uint64_t hi) const
{
	uint64_t pfn_lo, pfn_hi;
	if (!clip(lo, hi, &pfn_lo, &pfn_hi)) return 0;
	return reserve(pfn_lo, pfn_hi);
}

int IovaWindow::alloc(uint64_t npages, uint64_t *pfn) const
{
	return with_maintenance(dom_,
	                        [&] { return iovam_alloc(dom_, npages, limit_pfn_, true, pfn); });
}

} // namespace iovam::glue
