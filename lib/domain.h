// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_DOMAIN_H
#define IOVAM_DOMAIN_H

#include <cstdint>
#include <atomic>
#include <memory>

#include "gap_tree.h"
#include "iovam.h"
#include "live_map.h"
#include "node_pool.h"
#include "range_cache.h"
#include "spin_lock.h"

namespace iovam::detail {
class Domain;
}  // namespace iovam::detail

// The C handle: the fast path's read-only view (iovam.h reads it inline),
// then the domain it belongs to.
struct iovam_domain {
  iovam_fast_view fast;
  iovam::detail::Domain* impl;
};

namespace iovam::detail {

// An IOVA domain: the gap tree behind one lock, the counters and the 32-bit
// free-space knowledge it guards, the DEFERRED markers waiting for a drain,
// and (in front) the per-lcore range caches.
//
// Error policy: no exceptions; every public function returns 0 / a count or a
// negative errno and changes nothing when it fails.
void fail_create_alloc(uint32_t nth) noexcept;

class Domain {
 public:
  // NULL with *err = -EINVAL or -ENOMEM on failure; all-or-nothing.
  static Domain* create(const iovam_domain_conf& conf, int* err) noexcept;
  ~Domain();
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  int alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned, uint64_t* pfn_lo) noexcept;
  int free(uint64_t pfn) noexcept;
  int free_deferred(uint64_t pfn) noexcept;
  int reserve(uint64_t pfn_lo, uint64_t pfn_hi) noexcept;
  int find(uint64_t pfn, uint64_t* pfn_lo, uint64_t* pfn_hi) noexcept;
  int maintain() noexcept;
  void stats(iovam_stats* st) noexcept;
  int verify() noexcept;
  const char* verify_error() const noexcept { return verify_error_; }
  void fail_node_alloc(uint32_t one_in, uint64_t seed) noexcept;

  iovam_domain* handle() noexcept { return &handle_; }
  RangeCache& range_cache() noexcept { return *cache_; }
  static Domain* of(iovam_domain* h) noexcept { return h->impl; }

  // Fast path through the per-lcore caches: the inline functions of iovam.h
  // on this domain's handle; the *_slow halves below do everything else.
  int alloc_fast(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn, uint64_t* pfn_lo) noexcept {
    return iovam_alloc_fast_inline_(&handle_, cache_id, npages, limit_pfn, pfn_lo);
  }
  int free_fast(uint32_t cache_id, uint64_t pfn_lo, uint64_t npages) noexcept {
    return iovam_free_fast_inline_(&handle_, cache_id, pfn_lo, npages);
  }
  [[gnu::noinline, gnu::cold]] int alloc_fast_slow(uint32_t cache_id, uint64_t npages,
                                                    uint64_t limit_pfn, uint64_t* pfn_lo) noexcept;
  [[gnu::noinline, gnu::cold]] int free_fast_slow(uint32_t cache_id, uint64_t pfn_lo,
                                                   uint64_t npages) noexcept;
  // The bulk fast path (iovam.h) and its out-of-line rest: all or nothing.
  int alloc_fast_bulk(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn, uint64_t* pfn_lo,
                      uint32_t n) noexcept {
    return iovam_alloc_fast_bulk_inline_(&handle_, cache_id, npages, limit_pfn, pfn_lo, n);
  }
  int free_fast_bulk(uint32_t cache_id, const uint64_t* pfn_lo, uint32_t n, uint64_t npages) noexcept {
    return iovam_free_fast_bulk_inline_(&handle_, cache_id, pfn_lo, n, npages);
  }
  [[gnu::noinline, gnu::cold]] int alloc_fast_bulk_slow(uint32_t cache_id, uint64_t npages,
                                                         uint64_t limit_pfn, uint64_t* pfn_lo,
                                                         uint32_t n) noexcept;
  [[gnu::noinline, gnu::cold]] int free_fast_bulk_slow(uint32_t cache_id, const uint64_t* pfn_lo,
                                                        uint32_t n, uint64_t npages) noexcept;
  int cache_flush(uint32_t cache_id) noexcept;
  int cache_stats(uint32_t cache_id, iovam_cache_stats* st) noexcept;
  // Checked (the default) or unchecked fast frees; see live_map.h. Only
  // while no range is allocated: -EBUSY otherwise (a range allocated in one
  // mode would be misjudged in the other). Not concurrently with other calls.
  int set_checks(bool checked) noexcept;
  bool checked() const noexcept { return handle_.fast.live != nullptr; }
  // pfn's live-map byte (0 unchecked or outside the map), for verify.
  uint8_t live_byte(uint64_t pfn) const noexcept;
  // The live map's transitions (checked mode; no-ops for ranges it does not
  // record). take_live() is a free's check-and-clear: false when the byte
  // does not say "live, this size" (the caller then diagnoses). A range's
  // owner is its byte's only writer: no lock, no read-modify-write.
  void mark_live(uint64_t pfn_lo, uint64_t size) noexcept;
  bool take_live(uint64_t pfn_lo, uint64_t size) noexcept;

  // The caches, for return batches (return_batch.cc).
  RangeCache& cache() noexcept { return *cache_; }
  // A return batch takes a range (npages <= IOVAM_CACHE_MAX_PAGES) from its
  // caller, as iovam_free_fast() would: 0 when the batch may hold it (checked
  // mode: its live byte was "live, this size" and is now clear; the range
  // counts as batched until batch_released()), 1 when the caches never hold
  // it (outside the cached window: free it to the tree), or the errno
  // iovam_free_fast() answers, with nothing changed.
  // Requires batch_lock().
  int take_for_batch(uint64_t pfn_lo, uint64_t npages) noexcept;
  // Held by a return batch's add and flush, and by verify(): a batch's
  // transitions (live byte, batched count, depot) are atomic to verify().
  // Taken before the tree and depot locks, never under them.
  SpinLock& batch_lock() noexcept { return batch_lock_; }
  void batch_released(uint64_t n) noexcept { batched_ranges_.fetch_sub(n, std::memory_order_relaxed); }

  const iovam_domain_conf& conf() const noexcept { return conf_; }
  uint64_t start_pfn() const noexcept { return conf_.start_pfn; }
  uint64_t end_pfn() const noexcept { return conf_.end_pfn; }
  uint64_t dma32_last_pfn() const noexcept { return dma32_last_pfn_; }

  // --- for the caches: tree operations under tree_lock_ ------------------
  SpinLock& tree_lock() noexcept { return tree_lock_; }
  // Allocate a size-aligned range of npages (a power of two) at or below
  // hi_pfn. Requires tree_lock_.
  int alloc_locked(uint64_t npages, uint64_t align, uint64_t hi_pfn, uint64_t* pfn_lo) noexcept;
  // Free the ALLOCATED range containing pfn, whatever its live-map byte says
  // (the caches' and give_back's ranges: already accounted). Requires tree_lock_.
  int free_locked(uint64_t pfn) noexcept;

 private:
  explicit Domain(const iovam_domain_conf& conf) noexcept;
  void refill_pool() noexcept;
  void trim_pool() noexcept;
  int drain_deferred() noexcept;
  int verify_quiesced() noexcept;
  void note_space_freed(uint64_t pfn_lo) noexcept;
  bool fails_32bit_estimate(uint64_t npages, uint64_t align, uint64_t hi_pfn) const noexcept;
  void remember_32bit_failure(uint64_t npages, uint64_t align, uint64_t hi_pfn) noexcept;
  bool fast_free_in_bounds(uint64_t pfn_lo, uint64_t npages) const noexcept;
  bool in_cached_window(uint64_t pfn_lo, uint64_t size) const noexcept;
  void set_fast_window(bool checked) noexcept;
  bool tracked(uint64_t pfn_lo, uint64_t size) const noexcept;
  int fast_free_lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept;
  int free_checked_locked(uint64_t pfn, Segment* seg) noexcept;
  bool may_be_cached_locked(uint64_t pfn_lo, uint64_t pfn_hi) const noexcept;
  const char* verify_live_map_locked() const noexcept;
  int claim_bulk_locked(const uint64_t* pfn_lo, uint32_t n, uint64_t npages) noexcept;
  void unclaim_locked(const uint64_t* pfn_lo, uint32_t n, uint64_t size) noexcept;
  void erase_claimed_locked(uint64_t pfn_lo) noexcept;
  void give_back(const uint64_t* pfn_lo, uint32_t n, uint64_t size) noexcept;

  iovam_domain handle_{};
  const iovam_domain_conf conf_;
  // Largest npages free_fast may cache: 32, less in a window under 32 pages
  // (no range of a larger class can exist there).
  uint64_t fast_free_bound_ = 0;
  // Checked mode's live map (handle_.fast.live points into it when on).
  LiveMap live_;
  // Ranges held by return batches: neither live nor cached. Changed under
  // batch_lock_, which verify() holds so that it sees them exactly.
  std::atomic<uint64_t> batched_ranges_{0};
  SpinLock batch_lock_;
  // Last pfn whose IOVA fits 32 bits; requests limited at or below it are
  // "32-bit requests" (kernel: dma_32bit_pfn - 1).
  const uint64_t dma32_last_pfn_;

  SpinLock tree_lock_;
  // --- everything below is guarded by tree_lock_ -------------------------
  NodePool pool_;    // before tree_: the tree returns its nodes on destruction
  GapTree tree_;
  uint64_t live_ranges_ = 0;
  uint64_t live_pages_ = 0;
  uint64_t reserved_ranges_ = 0;
  uint64_t deferred_ranges_ = 0;
  // Bounds of the DEFERRED markers, so a drain scans only that span.
  uint64_t deferred_lo_ = UINT64_MAX;
  uint64_t deferred_hi_ = 0;
  // The 32-bit free-space estimate (docs/DESIGN.md, L3; the kernel's max32_alloc_size): the
  // smallest request that found no room in the whole 32-bit space, unaligned
  // and size-aligned. A larger-or-equal 32-bit request fails at once. Reset
  // when ANY space below the boundary is freed or drained (the 2022 fix), and
  // never set by a transient node failure (docs/DESIGN.md, L2).
  uint64_t fail32_npages_ = UINT64_MAX;
  uint64_t fail32_aligned_npages_ = UINT64_MAX;
  const char* verify_error_ = nullptr;

  std::unique_ptr<RangeCache> cache_;
};

}  // namespace iovam::detail

#endif  // IOVAM_DOMAIN_H
