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

// ceil(log2(npages)) for 1 <= npages <= 32.
inline uint32_t size_class(uint64_t npages) noexcept {
  return npages == 1 ? 0 : 64 - static_cast<uint32_t>(__builtin_clzll(npages - 1));
}

// Cost on a magazine hit: ~10 compares and branches, the pop (RangeCache::pop).
inline int Domain::alloc_fast(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn,
                              uint64_t* pfn_lo) noexcept {
  if (__builtin_expect(pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn ||
                           (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE),
                       0))
    return -EINVAL;
  if (__builtin_expect(npages <= IOVAM_CACHE_MAX_PAGES && cache_id != IOVAM_CACHE_NONE, 1)) {
    const uint32_t cls = size_class(npages);
    const uint64_t hi_pfn = limit_pfn < conf_.end_pfn ? limit_pfn : conf_.end_pfn;
    if (__builtin_expect(hi_pfn - conf_.start_pfn >= (1ULL << cls) - 1, 1) &&
        cache_->pop(cache_id, cls, hi_pfn, pfn_lo))
      return 0;
  }
  return alloc_fast_slow(cache_id, npages, limit_pfn, pfn_lo);
}

// Cost on a magazine hit: ~8 compares and branches, the push (RangeCache::push).
// The range is trusted to be one that alloc_fast returned, as rte_mempool_put
// trusts its objects, unless checks are on (iovam_domain_set_checks()).
inline int Domain::free_fast(uint32_t cache_id, uint64_t pfn_lo, uint64_t npages) noexcept {
  if (__builtin_expect(npages == 0 || (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE), 0))
    return -EINVAL;
  if (__builtin_expect(npages <= IOVAM_CACHE_MAX_PAGES && cache_id != IOVAM_CACHE_NONE &&
                           !check_fast_free_.load(std::memory_order_relaxed),
                       1)) {
    const uint32_t cls = size_class(npages);
    const uint64_t mask = (1ULL << cls) - 1;
    // O(1) sanity: naturally aligned and inside the window.
    if (__builtin_expect((pfn_lo & mask) != 0 || pfn_lo < conf_.start_pfn ||
                             pfn_lo > conf_.end_pfn - mask,
                         0))
      return -EINVAL;
    cache_->push(cache_id, cls, pfn_lo);
    return 0;
  }
  return free_fast_slow(cache_id, pfn_lo, npages);
}

}  // namespace iovam::detail

#endif  // IOVAM_FAST_PATH_H
