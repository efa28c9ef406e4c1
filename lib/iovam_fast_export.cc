// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Exported copies of iovam.h's inline fast path, for callers that cannot
// inline it (other languages, dlsym, IOVAM_NO_INLINE_FAST_PATH). This file
// sees them as plain extern functions, so the symbol names do not clash with
// the static inline ones other files compile.
#define IOVAM_NO_INLINE_FAST_PATH 1
#include "iovam.h"

#define IOVAM_EXPORT extern "C" __attribute__((visibility("default")))

IOVAM_EXPORT int iovam_alloc_fast(iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                  uint64_t limit_pfn, uint64_t *pfn_lo)
{
	return iovam_alloc_fast_inline_(d, cache_id, npages, limit_pfn, pfn_lo);
}

IOVAM_EXPORT int iovam_free_fast(iovam_domain *d, uint32_t cache_id, uint64_t pfn_lo,
                                 uint64_t npages)
{
	return iovam_free_fast_inline_(d, cache_id, pfn_lo, npages);
}

IOVAM_EXPORT int iovam_alloc_fast_bulk(iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                       uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n)
{
	return iovam_alloc_fast_bulk_inline_(d, cache_id, npages, limit_pfn, pfn_lo, n);
}

IOVAM_EXPORT int iovam_free_fast_bulk(iovam_domain *d, uint32_t cache_id, const uint64_t *pfn_lo,
                                      unsigned int n, uint64_t npages)
{
	return iovam_free_fast_bulk_inline_(d, cache_id, pfn_lo, n, npages);
}
