// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "range_cache.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "domain.h"

namespace iovam::detail {

uint32_t g_flush_req_idle = 0;

namespace {

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0U, 0); }

void register_membarrier_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Without membarrier the owner's plain store-then-load is not ordered
    // against a flusher: every lcore then takes the locked slow path.
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) g_flush_req_idle = 1;
  });
}

// Make every other running thread of this process execute a full barrier:
// pairs with the owner's plain store-then-load in RangeCache::enter().
void heavy_barrier() {
#if IOVAM_HANDSHAKE_SC
  // Both sides use seq_cst accesses: no barrier needed.
#else
  // Without membarrier (g_flush_req_idle), owners never use the handshake.
  if (g_flush_req_idle == 0) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
#endif
}

}  // namespace

std::unique_ptr<RangeCache> RangeCache::create(Domain& d, uint32_t n_caches) noexcept {
  register_membarrier_once();
  if (create_alloc_fails()) return nullptr;
  std::unique_ptr<RangeCache> rc(new (std::nothrow) RangeCache(d, n_caches));
  if (!rc) return nullptr;
  const size_t n_mags = static_cast<size_t>(n_caches) * kClasses * 2 + kClasses * kDepotMax;
  if (create_alloc_fails()) return nullptr;
  rc->magazine_block_ = std::calloc(n_mags, sizeof(Magazine));
  if (rc->magazine_block_ == nullptr) return nullptr;
  if (n_caches > 0) {
    if (create_alloc_fails()) return nullptr;
    rc->lcores_ = new (std::nothrow) Lcore[n_caches];
    if (rc->lcores_ == nullptr) return nullptr;
  }
  auto* mag = static_cast<Magazine*>(rc->magazine_block_);
  for (uint32_t c = 0; c < n_caches; ++c) {
    __atomic_store_n(&rc->lcores_[c].pub.flush_req, g_flush_req_idle, __ATOMIC_RELAXED);
    for (uint32_t k = 0; k < kClasses; ++k) {
      rc->lcores_[c].pub.loaded[k] = mag++;
      rc->lcores_[c].prev[k] = mag++;
    }
  }
  for (auto& depot : rc->depots_) {
    for (uint32_t i = 0; i < kDepotMax; ++i) depot.empty[i] = mag++;
    depot.empty_count = kDepotMax;
  }
  return rc;
}

RangeCache::~RangeCache() {
  // Ranges still cached are ALLOCATED in the tree, which the domain frees whole.
  delete[] lcores_;
  std::free(magazine_block_);
}

// ---------------------------------------------------------------------------
// Slow paths of the owner: the rest of the magazine ladder

bool RangeCache::pop_locked_or_handshaken(Lcore& l, uint32_t cls, uint64_t hi_pfn,
                                          uint64_t* pfn) noexcept {
  const uint64_t last_ok = hi_pfn - ((1ULL << cls) - 1);
  if (mag_pop(l.pub.loaded[cls], last_ok, pfn)) return true;
  if (l.prev[cls]->size > 0) {
    std::swap(l.pub.loaded[cls], l.prev[cls]);
    if (mag_pop(l.pub.loaded[cls], last_ok, pfn)) return true;
  }
  if (l.pub.loaded[cls]->size != 0) return false;  // holds only ranges above the limit
  Depot& d = depots_[cls];
  Magazine* full = nullptr;
  {
    SpinGuard g(d.lock);
    if (d.full_count == 0) return false;
    full = d.full[--d.full_count];
    d.empty[d.empty_count++] = l.pub.loaded[cls];
    add_depot(0 - full->size);  // with the move, under the lock: verify() reads both
  }
  l.pub.loaded[cls] = full;
  bump(l.cached_adjust, full->size);
  return mag_pop(full, last_ok, pfn);
}

template <typename Step>
auto RangeCache::as_owner(Lcore& l, Step&& step) noexcept -> decltype(step()) {
  if (enter(l)) {
    if constexpr (std::is_void_v<decltype(step())>) {
      step();
      leave(l);
    } else {
      auto r = step();
      leave(l);
      return r;
    }
  } else {
    SpinGuard g(l.slow_lock);
    return step();
  }
}

// The hit counters move with the magazines (cached = free_hits - alloc_hits +
// cached_adjust), so they are bumped inside the handshake or the slow lock:
// a quiesced verify() sees both or neither.
bool RangeCache::pop(uint32_t c, uint32_t cls, uint64_t hi_pfn, uint64_t* pfn) noexcept {
  Lcore& l = lcores_[c];
  bool hit = as_owner(l, [&] {
    bool got = pop_locked_or_handshaken(l, cls, hi_pfn, pfn);
    if (got) {
      domain_.mark_live(*pfn, 1ULL << cls);
      bump(l.pub.alloc_hits);
    }
    return got;
  });
  if (!hit) bump(l.alloc_misses);
  return hit;
}

void RangeCache::push_locked_or_handshaken(Lcore& l, uint32_t cls, uint64_t pfn) noexcept {
  Magazine*& loaded = l.pub.loaded[cls];
  if (loaded->size == kMagSize) {
    if (l.prev[cls]->size < kMagSize) {
      std::swap(loaded, l.prev[cls]);
    } else {
      Depot& d = depots_[cls];
      Magazine* empty = nullptr;
      const uint64_t moved = loaded->size;  // read before another lcore may own it
      {
        SpinGuard g(d.lock);
        if (d.empty_count > 0) {
          empty = d.empty[--d.empty_count];
          d.full[d.full_count++] = loaded;
          add_depot(moved);
        }
      }
      if (empty != nullptr) {
        bump(l.cached_adjust, 0 - moved);
        loaded = empty;
      } else {
        // The depot is full too: this magazine goes back to the tree.
        bump(l.cached_adjust, 0 - loaded->size);
        free_to_tree(loaded);
        bump(l.free_misses);
      }
    }
  }
  loaded->pfn[loaded->size++] = pfn;
}

bool RangeCache::push(uint32_t c, uint32_t cls, uint64_t pfn) noexcept {
  Lcore& l = lcores_[c];
  return as_owner(l, [&] {
    if (!domain_.take_live(pfn, 1ULL << cls)) return false;
    push_locked_or_handshaken(l, cls, pfn);
    bump(l.pub.free_hits);
    return true;
  });
}

// One handshake for the whole bulk: a flusher waits at most n ladder steps.
uint32_t RangeCache::pop_bulk(uint32_t c, uint32_t cls, uint64_t hi_pfn, uint64_t* pfn,
                              uint32_t n) noexcept {
  Lcore& l = lcores_[c];
  uint32_t got = as_owner(l, [&] {
    uint32_t i = 0;
    while (i < n && pop_locked_or_handshaken(l, cls, hi_pfn, &pfn[i])) domain_.mark_live(pfn[i++], 1ULL << cls);
    bump(l.pub.alloc_hits, i);
    return i;
  });
  if (got < n) bump(l.alloc_misses, n - got);  // the rest goes to the tree
  return got;
}

bool RangeCache::push_bulk(uint32_t c, uint32_t cls, const uint64_t* pfn, uint32_t n) noexcept {
  Lcore& l = lcores_[c];
  return as_owner(l, [&] {
    const uint64_t size = 1ULL << cls;
    uint32_t taken = 0;
    while (taken < n && domain_.take_live(pfn[taken], size)) ++taken;
    if (taken < n) {
      while (taken-- > 0) domain_.mark_live(pfn[taken], size);
      return false;
    }
    for (uint32_t i = 0; i < n; ++i) push_locked_or_handshaken(l, cls, pfn[i]);
    bump(l.pub.free_hits, n);
    return true;
  });
}

bool RangeCache::put_to_depot(uint32_t cls, Magazine* m) noexcept {
  const uint64_t n = m->size;
  if (n == 0) return true;
  Depot& d = depots_[cls];
  {
    SpinGuard g(d.lock);
    Magazine* to = nullptr;
    if (d.full_count > 0 && d.full[d.full_count - 1]->size + n <= kMagSize) {
      to = d.full[d.full_count - 1];  // top it up: the lcores take whole magazines
    } else if (d.empty_count > 0) {
      to = d.empty[--d.empty_count];
      d.full[d.full_count++] = to;
    }
    if (to != nullptr) {
      std::memcpy(&to->pfn[to->size], m->pfn, n * sizeof(m->pfn[0]));
      to->size += n;
      add_depot(n);  // with the move, under the lock: verify() reads both
      m->size = 0;
    }
  }
  if (m->size == 0) {
    count_shared(false, true, n);
    return true;
  }
  free_to_tree(m);  // the depot is full: the lcores have plenty
  count_shared(false, false, n);
  return false;
}

// Takes the tree lock: callers hold no depot lock (the lock order is
// docs/DESIGN.md, section 5: lcore slow locks, tree, depots).
void RangeCache::free_to_tree(Magazine* m, std::atomic<uint64_t>* in_flight) noexcept {
  SpinGuard g(domain_.tree_lock());
  for (uint64_t i = 0; i < m->size; ++i) {
    [[maybe_unused]] int rc = domain_.free_locked(m->pfn[i]);
    assert(rc == 0 && "a cached range is ALLOCATED in the tree");
  }
  if (in_flight != nullptr) in_flight->fetch_sub(m->size, std::memory_order_relaxed);
  m->size = 0;
}

// ---------------------------------------------------------------------------
// Flushing, from any thread

void RangeCache::request(Lcore& l) noexcept {
  __atomic_store_n(&l.pub.flush_req, 1, IOVAM_HANDSHAKE_SC ? __ATOMIC_SEQ_CST : __ATOMIC_RELAXED);
}

void RangeCache::wait_idle(Lcore& l) noexcept {
  while (__atomic_load_n(&l.pub.in_use, IOVAM_HANDSHAKE_SC ? __ATOMIC_SEQ_CST : __ATOMIC_ACQUIRE) != 0)
    __builtin_ia32_pause();
}

void RangeCache::release(Lcore& l) noexcept {
  __atomic_store_n(&l.pub.flush_req, g_flush_req_idle, __ATOMIC_RELEASE);
}

uint64_t RangeCache::flush_one_quiesced(Lcore& l) noexcept {
  uint64_t n = 0;
  for (uint32_t k = 0; k < kClasses; ++k) {
    n += l.pub.loaded[k]->size + l.prev[k]->size;
    free_to_tree(l.pub.loaded[k]);
    free_to_tree(l.prev[k]);
  }
  bump(l.cached_adjust, 0 - n);
  return n;
}

void RangeCache::quiesce_all() noexcept {
  for (uint32_t c = 0; c < n_caches_; ++c) {
    lcores_[c].slow_lock.lock();  // index order: flushers never deadlock
    request(lcores_[c]);
  }
  heavy_barrier();
  for (uint32_t c = 0; c < n_caches_; ++c) wait_idle(lcores_[c]);
}

void RangeCache::resume_all() noexcept {
  for (uint32_t c = n_caches_; c-- > 0;) {
    release(lcores_[c]);
    lcores_[c].slow_lock.unlock();
  }
}

uint64_t RangeCache::flush(uint32_t c) noexcept {
  uint64_t n = 0;
  if (c != IOVAM_CACHE_NONE) {
    Lcore& l = lcores_[c];
    SpinGuard g(l.slow_lock);
    request(l);
    heavy_barrier();
    wait_idle(l);
    n = flush_one_quiesced(l);
    release(l);
    return n;
  }
  quiesce_all();
  for (uint32_t i = 0; i < n_caches_; ++i) n += flush_one_quiesced(lcores_[i]);
  resume_all();
  for (uint32_t k = 0; k < kClasses; ++k)
    while (drain_one(depots_[k], 0, &n)) {
    }
  return n;
}

// Give one full magazine of depot d back to the tree if it holds more than
// `keep`. The magazine is "in flight" between the two locked sections, so
// verify() can account for it; the tree lock is never taken under d.lock.
bool RangeCache::drain_one(Depot& d, uint32_t keep, uint64_t* n) noexcept {
  Magazine* m;
  {
    SpinGuard g(d.lock);
    if (d.full_count <= keep) return false;
    m = d.full[--d.full_count];
    ++d.in_flight;
    in_flight_ranges_.fetch_add(m->size, std::memory_order_relaxed);
    add_depot(0 - m->size);
  }
  *n += m->size;
  free_to_tree(m, &in_flight_ranges_);
  SpinGuard g(d.lock);
  d.empty[d.empty_count++] = m;
  --d.in_flight;
  return true;
}

void RangeCache::trim_depots() noexcept {
  uint64_t n = 0;
  for (uint32_t k = 0; k < kClasses; ++k)
    while (drain_one(depots_[k], kDepotKeep, &n)) {
    }
}

// ---------------------------------------------------------------------------
// Statistics and verification

uint64_t RangeCache::cached_or_in_flight_locked() const noexcept {
  IOVAM_ASSERT_HELD(domain_.tree_lock());
  auto& depots = const_cast<Depot(&)[kClasses]>(depots_);
  for (Depot& d : depots) d.lock.lock();
  const uint64_t n = cached_ranges() + in_flight_ranges_.load(std::memory_order_relaxed);
  for (uint32_t k = kClasses; k-- > 0;) depots[k].lock.unlock();
  return n;
}

uint64_t RangeCache::cached_ranges() const noexcept {
  uint64_t n = depot_cached_.load(std::memory_order_relaxed);
  for (uint32_t c = 0; c < n_caches_; ++c) n += lcores_[c].cached();
  return n;
}

void RangeCache::count_shared(bool alloc, bool hit, uint64_t by) noexcept {
  auto& ctr = hit ? shared_hits_[alloc ? 0 : 1] : shared_misses_[alloc ? 0 : 1];
  ctr.fetch_add(by, std::memory_order_relaxed);  // the shared path is not the per-lcore fast path
}

void RangeCache::read_stats(uint32_t c, iovam_cache_stats* st) const noexcept {
  if (c == IOVAM_CACHE_NONE) {
    st->alloc_hits = shared_hits_[0].load(std::memory_order_relaxed);
    st->alloc_misses = shared_misses_[0].load(std::memory_order_relaxed);
    st->free_hits = shared_hits_[1].load(std::memory_order_relaxed);
    st->free_misses = shared_misses_[1].load(std::memory_order_relaxed);
    st->cached_ranges = depot_cached_.load(std::memory_order_relaxed);
    return;
  }
  const Lcore& l = lcores_[c];
  st->alloc_hits = l.hits(true);
  st->alloc_misses = l.alloc_misses.load(std::memory_order_relaxed);
  st->free_hits = l.hits(false);
  st->free_misses = l.free_misses.load(std::memory_order_relaxed);
  st->cached_ranges = l.cached();
}

const char* RangeCache::verify_locked(const GapTree& tree) const noexcept {
  // Every depot at once (a trim may run on any of them meanwhile), in class
  // order under the tree lock (docs/DESIGN.md, section 5). Nothing takes the
  // tree lock while holding a depot lock.
  auto& depots = const_cast<Depot(&)[kClasses]>(depots_);
  for (Depot& d : depots) d.lock.lock();
  const char* err = verify_depots_locked(tree);
  for (uint32_t k = kClasses; k-- > 0;) depots[k].lock.unlock();
  return err;
}

const char* RangeCache::verify_depots_locked(const GapTree& tree) const noexcept {
  uint64_t total = cached_ranges();
  if (total == 0) return nullptr;
  auto* seen = static_cast<uint64_t*>(std::malloc(total * sizeof(uint64_t)));
  if (seen == nullptr) return "verify: out of memory";
  uint64_t n = 0;
  const char* err = nullptr;
  auto check = [&](const Magazine* m, uint32_t cls) {
    for (uint64_t i = 0; i < m->size && err == nullptr; ++i) {
      uint64_t pfn = m->pfn[i];
      if (pfn > tree.max_pfn()) {
        err = "cached range outside the domain";
        break;
      }
      Segment s = tree.lookup(pfn);
      if (s.tag != Tag::kAllocated || s.pfn_lo != pfn || s.pfn_hi - s.pfn_lo + 1 != (1ULL << cls))
        err = "cached range is not an ALLOCATED range of its class";
      else if (domain_.live_byte(pfn) != 0)
        err = "cached range is marked live (with a caller)";
      else if (n == total)
        err = "more ranges in caches than counted";
      else
        seen[n++] = pfn;
    }
  };
  uint64_t per_lcore = 0;
  for (uint32_t c = 0; c < n_caches_ && err == nullptr; ++c) {
    per_lcore = 0;
    for (uint32_t k = 0; k < kClasses; ++k) {
      check(lcores_[c].pub.loaded[k], k);
      check(lcores_[c].prev[k], k);
      per_lcore += lcores_[c].pub.loaded[k]->size + lcores_[c].prev[k]->size;
    }
    if (err == nullptr && per_lcore != lcores_[c].cached())
      err = "lcore cached count differs from its magazines";
  }
  uint64_t in_depots = 0;
  for (uint32_t k = 0; k < kClasses && err == nullptr; ++k) {
    const Depot& d = depots_[k];
    if (d.full_count + d.empty_count + d.in_flight != kDepotMax) err = "depot lost a magazine";
    for (uint32_t i = 0; i < d.full_count; ++i) {
      check(d.full[i], k);
      in_depots += d.full[i]->size;
    }
  }
  if (err == nullptr && in_depots != depot_cached_.load(std::memory_order_relaxed))
    err = "depot cached count differs from its magazines";
  if (err == nullptr && n != total) err = "cached_ranges differs from the magazines";
  if (err == nullptr) {
    std::sort(seen, seen + n);
    if (std::adjacent_find(seen, seen + n) != seen + n) err = "a range is cached twice";
  }
  std::free(seen);
  return err;
}

}  // namespace iovam::detail
