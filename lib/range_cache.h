// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_RANGE_CACHE_H
#define IOVAM_RANGE_CACHE_H

#include <atomic>
#include <cstdint>
#include <memory>

#include "gap_tree.h"
#include "iovam.h"
#include "spin_lock.h"

namespace iovam::detail {

class Domain;

// Per-lcore range caches in front of the gap tree: Bonwick and Adams,
// "Magazines and Vmem" (USENIX 2001), as the kernel's iova_rcache does it.
//
//   lcore c:  loaded[k] | prev[k]     one pair per size class k (2^k pages)
//                  \       /           no lock, no atomic read-modify-write
//   depot[k]: full magazines          its own short lock, bounded
//                    |
//   gap tree (Domain, tree lock)      misses, overflow, trims, flushes
//
// A cached range stays ALLOCATED in the tree: the cache only decides who may
// hand it out next. All magazines are allocated when the domain is created
// (seed 004: all-or-nothing, so the fast path has no NULL checks): every lcore
// owns two per class, and each depot owns kDepotMax spares that it trades
// against full ones, so no path ever needs a new magazine.
//
// Flushing another lcore's cache (iovam_cache_flush(IOVAM_CACHE_NONE), the
// retry after -ENOMEM, verify) must not race with its owner, yet the owner's
// fast path may not pay for an atomic RMW or a fence. We use an asymmetric
// Dekker handshake: the owner marks itself in_use with a plain store and then
// reads flush_req; the flusher sets flush_req, issues membarrier(2)
// (PRIVATE_EXPEDITED: a full barrier on every running thread of the process),
// then waits for in_use == 0. Either the owner sees the request and takes the
// cache's slow lock, or the flusher sees the owner and waits for it. Without
// membarrier the owner falls back to a full fence.
class RangeCache {
 public:
  // Size classes 1, 2, 4, ... 32 pages (the kernel's 6 classes); larger
  // requests are rare in a datapath and go to the tree.
  static constexpr uint32_t kClasses = 6;
  // 127 pfns + a size word = 1 KiB per magazine, as the kernel's IOVA_MAG_SIZE.
  static constexpr uint32_t kMagSize = 127;
  // Full magazines per depot (kernel MAX_GLOBAL_MAGS), and what
  // iovam_maintain() trims back to.
  static constexpr uint32_t kDepotMax = 32;
  static constexpr uint32_t kDepotKeep = 8;

  struct Magazine {
    uint64_t size;
    uint64_t pfn[kMagSize];
  };
  static_assert(sizeof(Magazine) == 1024, "a magazine is 1 KiB");

  // 256 bytes: the slot of lcore c is one shift away.
  struct alignas(256) Lcore {
    // Owner-written, flusher-read.
    std::atomic<uint32_t> in_use{0};
    // Flusher-written, owner-read.
    std::atomic<uint32_t> flush_req{0};
    // Taken by the owner only when a flush is pending; by flushers always.
    SpinLock slow_lock;
    Magazine* loaded[kClasses];
    Magazine* prev[kClasses];
    // Counters: owner-written with load+store (no RMW), read by anyone.
    // alloc_hits counts ranges popped from these magazines, free_hits ranges
    // pushed; cached_adjust the slow paths' transfers (depot, tree), so that
    // the fast path keeps one counter: cached = free_hits - alloc_hits + adjust.
    std::atomic<uint64_t> alloc_hits{0}, alloc_misses{0}, free_hits{0}, free_misses{0};
    std::atomic<uint64_t> cached_adjust{0};
    uint64_t cached() const noexcept {
      return free_hits.load(std::memory_order_relaxed) - alloc_hits.load(std::memory_order_relaxed) +
             cached_adjust.load(std::memory_order_relaxed);
    }
  };

  struct alignas(64) Depot {
    SpinLock lock;
    uint32_t full_count = 0;
    uint32_t empty_count = 0;
    Magazine* full[kDepotMax];
    Magazine* empty[kDepotMax];
  };

  // nullptr on ENOMEM; every magazine exists on success.
  static std::unique_ptr<RangeCache> create(Domain& d, uint32_t n_caches) noexcept;
  ~RangeCache();

  uint32_t n_caches() const noexcept { return n_caches_; }

  Lcore* lcores() const noexcept { return lcores_; }

  // Fast path: the top of lcore l's loaded magazine of class cls, if it ends
  // at or below limit_pfn. Cost on a hit: two stores and a load for the
  // handshake, the pop, a limit compare, one counter: about 20 instructions,
  // no lock, no atomic RMW, no syscall. False: take pop() instead.
  static inline bool pop_loaded(Lcore& l, uint32_t cls, uint64_t mask, uint64_t limit_pfn,
                                uint64_t* pfn) noexcept;
  // Fast path: push onto lcore l's loaded magazine if it has room.
  static inline bool push_loaded(Lcore& l, uint32_t cls, uint64_t pfn) noexcept;
  // The rest of the ladder (prev, depot), counting hits and misses. hi_pfn is
  // the caller's limit clamped to the domain.
  bool pop(uint32_t c, uint32_t cls, uint64_t hi_pfn, uint64_t* pfn) noexcept;
  void push(uint32_t c, uint32_t cls, uint64_t pfn) noexcept;

  // Return cache c's ranges (every cache's and the depots' for
  // IOVAM_CACHE_NONE) to the tree. Returns how many.
  uint64_t flush(uint32_t c) noexcept;
  // Give depot magazines above kDepotKeep back to the tree.
  void trim_depots() noexcept;
  uint64_t cached_ranges() const noexcept;
  void read_stats(uint32_t c, iovam_cache_stats* st) const noexcept;
  void count_shared(bool alloc, bool hit) noexcept;

  // Stop every owner (take all slow locks, handshake), for verify; then the
  // caller may read every magazine until resume().
  void quiesce_all() noexcept;
  void resume_all() noexcept;
  // With quiesce_all() and the tree lock held: every cached range is
  // ALLOCATED in the tree with its class size, and none is cached twice.
  const char* verify_locked(const GapTree& tree) const noexcept;

 private:
  RangeCache(Domain& d, uint32_t n_caches) noexcept : domain_(d), n_caches_(n_caches) {}
  bool pop_locked_or_handshaken(Lcore& l, uint32_t cls, uint64_t hi_pfn, uint64_t* pfn) noexcept;
  void push_locked_or_handshaken(Lcore& l, uint32_t cls, uint64_t pfn) noexcept;
  static bool mag_pop(Magazine* m, uint64_t last_ok_pfn, uint64_t* pfn) noexcept;
  void free_to_tree(Magazine* m, uint32_t cls) noexcept;
  uint64_t flush_one_quiesced(Lcore& l) noexcept;
  void request(Lcore& l) noexcept;
  static void wait_idle(Lcore& l) noexcept;
  static inline bool enter(Lcore& l) noexcept;
  static inline void leave(Lcore& l) noexcept;
  // A counter with one writer (the lcore's owner, or a flusher while the owner
  // is quiesced): load + store, no RMW.
  static void bump(std::atomic<uint64_t>& ctr, uint64_t by = 1) noexcept {
    ctr.store(ctr.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  // The depots' count has many writers, all off the per-lcore fast path.
  void add_depot(uint64_t by) noexcept { depot_cached_.fetch_add(by, std::memory_order_relaxed); }

  Domain& domain_;
  const uint32_t n_caches_;
  Lcore* lcores_ = nullptr;      // n_caches_ of them
  Depot depots_[kClasses];
  void* magazine_block_ = nullptr;  // every magazine, one allocation
  std::atomic<uint64_t> depot_cached_{0};
  std::atomic<uint64_t> shared_hits_[2]{}, shared_misses_[2]{};  // [0] alloc, [1] free
};

// The flush_req value that means "no flush": 0, or 1 (always take the slow,
// locked path) when membarrier(2) is unavailable.
extern uint32_t g_flush_req_idle;

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer does not model fences: there, both sides of the handshake
// use sequentially consistent accesses (a symmetric Dekker), which it does.
#define IOVAM_HANDSHAKE_SC 1
#else
#define IOVAM_HANDSHAKE_SC 0
#endif

inline bool RangeCache::enter(Lcore& l) noexcept {
#if IOVAM_HANDSHAKE_SC
  l.in_use.store(1, std::memory_order_seq_cst);
  if (l.flush_req.load(std::memory_order_seq_cst) != 0) {
#else
  l.in_use.store(1, std::memory_order_relaxed);
  // Keeps the compiler from moving the flag read above the store; the CPU
  // side of the ordering is the flusher's membarrier.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (__builtin_expect(l.flush_req.load(std::memory_order_acquire) != 0, 0)) {
#endif
    l.in_use.store(0, std::memory_order_release);
    return false;
  }
  return true;
}

inline void RangeCache::leave(Lcore& l) noexcept { l.in_use.store(0, std::memory_order_release); }

inline bool RangeCache::mag_pop(Magazine* m, uint64_t last_ok_pfn, uint64_t* pfn) noexcept {
  uint64_t n = m->size;
  if (n == 0) return false;
  uint64_t top = m->pfn[n - 1];
  if (__builtin_expect(top > last_ok_pfn, 0)) {
    // Some range in this magazine is above the caller's limit: look for one
    // that is not (the kernel's iova_magazine_pop does the same).
    uint64_t i = n - 1;
    while (i-- > 0)
      if (m->pfn[i] <= last_ok_pfn) break;
    if (i == UINT64_MAX) return false;
    top = m->pfn[i];
    m->pfn[i] = m->pfn[n - 1];
  }
  m->size = n - 1;
  *pfn = top;
  return true;
}

inline bool RangeCache::pop_loaded(Lcore& l, uint32_t cls, uint64_t mask, uint64_t limit_pfn,
                                   uint64_t* pfn) noexcept {
  if (__builtin_expect(!enter(l), 0)) return false;
  Magazine* m = l.loaded[cls];
  const uint64_t n = m->size;
  bool hit = false;
  if (__builtin_expect(n != 0, 1)) {
    const uint64_t top = m->pfn[n - 1];
    // A cached range lies inside the domain, so only the limit can exclude it
    // (a limit below start_pfn excludes every range: the slow path says EINVAL).
    if (__builtin_expect(top + mask <= limit_pfn, 1)) {
      m->size = n - 1;
      *pfn = top;
      bump(l.alloc_hits);
      hit = true;
    }
  }
  leave(l);
  return hit;
}

inline bool RangeCache::push_loaded(Lcore& l, uint32_t cls, uint64_t pfn) noexcept {
  if (__builtin_expect(!enter(l), 0)) return false;
  Magazine* m = l.loaded[cls];
  const uint64_t n = m->size;
  bool hit = false;
  if (__builtin_expect(n < kMagSize, 1)) {
    m->pfn[n] = pfn;
    m->size = n + 1;
    bump(l.free_hits);
    hit = true;
  }
  leave(l);
  return hit;
}

}  // namespace iovam::detail

#endif  // IOVAM_RANGE_CACHE_H
