// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// The C API: argument checks that need no domain state, then the C++ domain.
#include <cerrno>

#include "domain.h"
#include "hot_path.h"
#include "iovam.h"
#include "iovam_test.h"

#define IOVAM_EXPORT extern "C" __attribute__((visibility("default")))

using iovam::detail::Domain;

namespace
{
inline Domain *dom(iovam_domain *d)
{
	return Domain::of(d);
}
} // namespace

IOVAM_EXPORT iovam_domain *iovam_domain_create(const iovam_domain_conf *conf)
{
	if (conf == nullptr) {
		errno = EINVAL;
		return nullptr;
	}
	int err = 0;
	Domain *d = Domain::create(*conf, &err);
	if (d == nullptr) {
		errno = -err;
		return nullptr;
	}
	return d->handle();
}

IOVAM_EXPORT void iovam_domain_destroy(iovam_domain *d)
{
	if (d != nullptr) delete dom(d);
}

IOVAM_EXPORT IOVAM_HOT int iovam_alloc(iovam_domain *d, uint64_t npages, uint64_t limit_pfn,
                                       bool size_aligned, uint64_t *pfn_lo)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->alloc(npages, limit_pfn, size_aligned, pfn_lo);
}

IOVAM_EXPORT IOVAM_HOT int iovam_free(iovam_domain *d, uint64_t pfn)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->free(pfn);
}

IOVAM_EXPORT int iovam_free_deferred(iovam_domain *d, uint64_t pfn)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->free_deferred(pfn);
}

IOVAM_EXPORT int iovam_reserve(iovam_domain *d, uint64_t pfn_lo, uint64_t pfn_hi)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->reserve(pfn_lo, pfn_hi);
}

IOVAM_EXPORT int iovam_find(iovam_domain *d, uint64_t pfn, uint64_t *pfn_lo, uint64_t *pfn_hi)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->find(pfn, pfn_lo, pfn_hi);
}

// The inline fast path's out-of-line halves.
IOVAM_EXPORT int iovam_alloc_fast_slow(iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                       uint64_t limit_pfn, uint64_t *pfn_lo)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().alloc_fast_slow(cache_id, npages, limit_pfn, pfn_lo);
}

IOVAM_EXPORT int iovam_free_fast_slow(iovam_domain *d, uint32_t cache_id, uint64_t pfn_lo,
                                      uint64_t npages)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().free_fast_slow(cache_id, pfn_lo, npages);
}

IOVAM_EXPORT int iovam_alloc_fast_bulk_slow(iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                            uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().alloc_fast_bulk_slow(cache_id, npages, limit_pfn, pfn_lo, n);
}

IOVAM_EXPORT int iovam_free_fast_bulk_slow(iovam_domain *d, uint32_t cache_id,
                                           const uint64_t *pfn_lo, unsigned int n, uint64_t npages)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().free_fast_bulk_slow(cache_id, pfn_lo, n, npages);
}

IOVAM_EXPORT int iovam_cache_flush(iovam_domain *d, uint32_t cache_id)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().flush_checked(cache_id);
}

IOVAM_EXPORT int iovam_maintain(iovam_domain *d)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->maintain();
}

IOVAM_EXPORT int iovam_stats_get(iovam_domain *d, iovam_stats *st)
{
	if (d == nullptr || st == nullptr) return -EINVAL;
	dom(d)->stats(st);
	return 0;
}

IOVAM_EXPORT int iovam_cache_stats_get(iovam_domain *d, uint32_t cache_id, iovam_cache_stats *st)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->cache().stats_checked(cache_id, st);
}

IOVAM_EXPORT int iovam_domain_conf_get(iovam_domain *d, iovam_domain_conf *conf)
{
	if (d == nullptr || conf == nullptr) return -EINVAL;
	*conf = dom(d)->conf();
	return 0;
}

IOVAM_EXPORT int iovam_domain_set_checks(iovam_domain *d, uint32_t flags)
{
	if (d == nullptr || (flags & ~IOVAM_CHECK_FAST_FREE) != 0) return -EINVAL;
	return dom(d)->set_checks((flags & IOVAM_CHECK_FAST_FREE) != 0);
}

IOVAM_EXPORT int iovam_verify(iovam_domain *d)
{
	if (d == nullptr) return -EINVAL;
	return dom(d)->verify();
}

IOVAM_EXPORT const char *iovam_verify_error(iovam_domain *d)
{
	if (d == nullptr) return "NULL domain";
	const char *e = dom(d)->verify_error();
	return e != nullptr ? e : "";
}

IOVAM_EXPORT void iovam_test_fail_node_alloc(iovam_domain *d, uint32_t one_in, uint64_t seed)
{
	if (d != nullptr) dom(d)->fail_node_alloc(one_in, seed);
}

IOVAM_EXPORT void iovam_test_fail_create_alloc(uint32_t nth)
{
	iovam::detail::fail_create_alloc(nth);
}

IOVAM_EXPORT uint64_t iovam_test_pending_takes(iovam_domain *d)
{
	return d != nullptr ? dom(d)->pending_takes() : 0;
}

IOVAM_EXPORT void iovam_test_prefetch_free(iovam_domain *d, uint64_t pfn, int stage)
{
	if (d != nullptr && (stage == 0 || stage == 1)) dom(d)->prefetch_free_unlocked(pfn, stage);
}
