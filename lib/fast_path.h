// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_FAST_PATH_H
#define IOVAM_FAST_PATH_H

// The inlined fast path of iovam_alloc_fast()/iovam_free_fast(): argument
// checks, the size class, and a magazine pop or push. Everything else is in
// the out-of-line *_slow functions (domain.cc).

#include <cerrno>

#include "domain.h"
#include "range_cache.h"

namespace iovam::detail {

// Size class (ceil(log2(npages))) for 1 <= npages <= 32, by table: one load.
inline constexpr uint8_t kSizeClass[IOVAM_CACHE_MAX_PAGES + 1] = {
    0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
// The rounded size minus one (the alignment mask) for 1 <= npages <= 32.
inline constexpr uint64_t kSizeMask[IOVAM_CACHE_MAX_PAGES + 1] = {
    0, 0, 1, 3, 3, 7, 7, 7, 7, 15, 15, 15, 15, 15, 15, 15, 15,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31};
static_assert(IOVAM_CACHE_MAX_PAGES == 32 && RangeCache::kClasses == 6);

inline uint32_t size_class(uint64_t npages) noexcept { return kSizeClass[npages]; }

// The whole fast path on a magazine hit, as it compiles: 3 compares for the
// arguments, a table load, the lcore's slot, then RangeCache::pop_loaded().
// Anything else (bad arguments, an empty magazine, a flush in progress, a
// range above the limit, the shared path) is alloc_fast_slow().
inline int Domain::alloc_fast(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn,
                              uint64_t* pfn_lo) noexcept {
  if (__builtin_expect(cache_id < fast_n_caches_ && npages - 1 < IOVAM_CACHE_MAX_PAGES &&
                           pfn_lo != nullptr,
                       1) &&
      RangeCache::pop_loaded(fast_lcores_[cache_id], size_class(npages), kSizeMask[npages],
                             limit_pfn, pfn_lo))
    return 0;
  return alloc_fast_slow(cache_id, npages, limit_pfn, pfn_lo);
}

// On a hit: 3 compares for the arguments, 2 for O(1) range sanity (natural
// alignment, inside the window), then RangeCache::push_loaded(). The range is
// trusted to be one alloc_fast returned, as rte_mempool_put trusts its
// objects, unless IOVAM_CHECK_FAST_FREE is on: then fast_free_max_ is 0 and
// every call takes free_fast_slow(), which looks the range up.
inline int Domain::free_fast(uint32_t cache_id, uint64_t pfn_lo, uint64_t npages) noexcept {
  if (__builtin_expect(cache_id < fast_n_caches_ && npages - 1 < fast_free_max_, 1)) {
    const uint32_t cls = size_class(npages);
    const uint64_t mask = kSizeMask[npages];
    if (__builtin_expect((pfn_lo & mask) == 0 && pfn_lo - conf_.start_pfn <= fast_span_[cls], 1) &&
        RangeCache::push_loaded(fast_lcores_[cache_id], cls, pfn_lo))
      return 0;
  }
  return free_fast_slow(cache_id, pfn_lo, npages);
}

}  // namespace iovam::detail

#endif  // IOVAM_FAST_PATH_H
