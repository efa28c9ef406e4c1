/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/*
 * The public headers as an application compiles them (check_headers.sh
 * builds this as C and as C++ with gcc and clang, -Wall -Wextra -Werror,
 * -O2 and -O3): every inline call with constant arguments (the optimizer
 * sees each branch's value, e.g. npages 64 on the cached path) and with
 * variable ones.
 */
#include <stdint.h>

#include "iovam.h"
#include "iovam_dpdk.h"

int consumer_constant_args(struct iovam_domain *d);
int consumer_variable_args(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                           uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n);

int consumer_constant_args(struct iovam_domain *d)
{
	static const uint64_t sizes[] = {0, 1, 2, 3, 32, 33, 64, 1000, UINT64_MAX};
	uint64_t pfn = 0, pfns[64] = {0};
	int rc = 0;
	unsigned int i;

	rc |= iovam_alloc_fast(d, 0, 1, UINT64_MAX, &pfn);
	rc |= iovam_free_fast(d, 0, pfn, 1);
	rc |= iovam_free_fast(d, 0, pfn, 64); /* > 32 pages: the tree */
	rc |= iovam_free_fast(d, 0, pfn, 33);
	rc |= iovam_free_fast(d, 0, pfn, 0);
	rc |= iovam_free_fast(d, 0, pfn, UINT64_MAX);
	rc |= iovam_free_fast(d, IOVAM_CACHE_NONE, pfn, 64);
	rc |= iovam_alloc_fast(d, 0, 64, UINT64_MAX, &pfn);
	rc |= iovam_alloc_fast(d, 0, 0, UINT64_MAX, &pfn);
	rc |= iovam_alloc_fast(d, IOVAM_CACHE_NONE, UINT64_MAX, 0, &pfn);
	rc |= iovam_alloc_fast(d, 0, 1, 1, (uint64_t *)0);
	rc |= iovam_alloc_fast_bulk(d, 0, 1, UINT64_MAX, pfns, 32);
	rc |= iovam_alloc_fast_bulk(d, 0, 64, UINT64_MAX, pfns, 64);
	rc |= iovam_alloc_fast_bulk(d, 0, 1, UINT64_MAX, pfns, 0);
	rc |= iovam_free_fast_bulk(d, 0, pfns, 32, 1);
	rc |= iovam_free_fast_bulk(d, 0, pfns, 64, 64);
	rc |= iovam_free_fast_bulk(d, 0, pfns, 0, 1);
	rc |= iovam_free_fast_bulk(d, 0, pfns, 1, UINT64_MAX);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
		rc |= iovam_alloc_fast(d, 1, sizes[i], UINT64_MAX, &pfn);
		rc |= iovam_free_fast(d, 1, pfn, sizes[i]);
		rc |= iovam_alloc_fast_bulk(d, 1, sizes[i], UINT64_MAX, pfns, 8);
		rc |= iovam_free_fast_bulk(d, 1, pfns, 8, sizes[i]);
	}
	return rc;
}

int consumer_variable_args(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                           uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n)
{
	int rc = 0;
	rc |= iovam_alloc_fast(d, cache_id, npages, limit_pfn, pfn_lo);
	rc |= iovam_free_fast(d, cache_id, *pfn_lo, npages);
	rc |= iovam_alloc_fast_bulk(d, cache_id, npages, limit_pfn, pfn_lo, n);
	rc |= iovam_free_fast_bulk(d, cache_id, pfn_lo, n, npages);
	return rc;
}
