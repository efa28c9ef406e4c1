// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "domain.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <new>

#include "range_cache.h"

namespace iovam::detail {

namespace {

constexpr uint64_t kMaxPfnExclusive = 1ULL << 63;
// Markers erased per lock hold in a drain: bounds the hold time seen by the
// datapath (each erase is one O(log n) descent, well under a microsecond).
constexpr uint32_t kDrainBatch = 64;

uint64_t dma32_last_pfn_for(uint64_t granule) {
  uint64_t pages = (1ULL << 32) / granule;
  return pages == 0 ? 0 : pages - 1;
}

bool conf_valid(const iovam_domain_conf& c) {
  return c.granule >= 4096 && std::has_single_bit(c.granule) && c.start_pfn >= 1 &&
         c.end_pfn >= c.start_pfn && c.end_pfn < kMaxPfnExclusive && c.n_caches != UINT32_MAX;
}

}  // namespace

Domain::Domain(const iovam_domain_conf& conf) noexcept
    : conf_(conf), dma32_last_pfn_(dma32_last_pfn_for(conf.granule)), tree_(pool_) {}

Domain::~Domain() = default;

namespace {
std::atomic<uint32_t> g_create_fail_countdown{0};
}  // namespace

bool create_alloc_fails() noexcept {
  uint32_t n = g_create_fail_countdown.load(std::memory_order_relaxed);
  while (n != 0 && !g_create_fail_countdown.compare_exchange_weak(n, n - 1)) {
  }
  return n == 1;
}

void fail_create_alloc(uint32_t nth) noexcept { g_create_fail_countdown.store(nth); }

Domain* Domain::create(const iovam_domain_conf& conf, int* err) noexcept {
  if (!conf_valid(conf)) {
    *err = -EINVAL;
    return nullptr;
  }
  auto* d = create_alloc_fails() ? nullptr : new (std::nothrow) Domain(conf);
  if (d == nullptr) {
    *err = -ENOMEM;
    return nullptr;
  }
  if (!create_alloc_fails()) d->refill_pool();  // else: as if no node could be had
  if (d->tree_.init(conf.end_pfn) != 0) {
    delete d;
    *err = -ENOMEM;
    return nullptr;
  }
  d->cache_ = RangeCache::create(*d, conf.n_caches);
  if (!d->cache_) {
    delete d;
    *err = -ENOMEM;
    return nullptr;
  }
  if (!d->live_.init(conf.start_pfn, conf.end_pfn)) {
    delete d;
    *err = -ENOMEM;
    return nullptr;
  }
  iovam_fast_view& v = d->handle_.fast;
  v.lcores = reinterpret_cast<char*>(d->cache_->lcores());
  v.n_caches = conf.n_caches;
  v.end_pfn = conf.end_pfn;
  const uint64_t window = conf.end_pfn - conf.start_pfn;  // pages - 1
  d->fast_free_bound_ = std::min<uint64_t>(IOVAM_CACHE_MAX_PAGES, std::bit_floor(window + 1));
  v.free_max = d->fast_free_bound_;
  d->set_fast_window(true);
  d->handle_.impl = d;
  *err = 0;
  return d;
}

// ---------------------------------------------------------------------------
// Checked and unchecked fast frees

// Where cached ranges may lie: the live map's pages when checked (a range
// below them is never cached, so the map needs no byte for it), the whole
// window when not.
void Domain::set_fast_window(bool checked) noexcept {
  iovam_fast_view& v = handle_.fast;
  const uint64_t lo = checked ? live_.lo_pfn() : conf_.start_pfn;
  const uint64_t window = conf_.end_pfn - lo;  // pages - 1
  v.cache_lo_pfn = lo;
  for (uint32_t k = 0; k < RangeCache::kClasses; ++k) {
    uint64_t mask = (1ULL << k) - 1;
    v.span[k] = window >= mask ? window - mask : 0;  // unused when the class cannot fit
  }
  v.live = checked ? live_.bytes() : nullptr;
}

int Domain::set_checks(bool checked) noexcept {
  if (checked == this->checked()) return 0;
  {
    SpinGuard g(tree_lock_);
    if (live_ranges_ != 0 || deferred_ranges_ != 0) return -EBUSY;
  }
  // Unchecked mode left its ranges' bytes behind: start from zeros.
  if (checked) live_.clear();
  set_fast_window(checked);
  return 0;
}

bool Domain::tracked(uint64_t pfn_lo, uint64_t size) const noexcept {
  return checked() && size <= IOVAM_CACHE_MAX_PAGES && std::has_single_bit(size) &&
         (pfn_lo & (size - 1)) == 0 && live_.covers(pfn_lo);
}

// Cost: a compare and a byte store (the range is ours: no other writer).
void Domain::mark_live(uint64_t pfn_lo, uint64_t size) noexcept {
  if (tracked(pfn_lo, size))
    __atomic_store_n(live_.at(pfn_lo), static_cast<uint8_t>(std::countr_zero(size) + 1), __ATOMIC_RELAXED);
}

bool Domain::take_live(uint64_t pfn_lo, uint64_t size) noexcept {
  if (!tracked(pfn_lo, size)) return true;
  uint8_t* b = live_.at(pfn_lo);
  if (__atomic_load_n(b, __ATOMIC_RELAXED) != std::countr_zero(size) + 1) return false;
  __atomic_store_n(b, uint8_t{0}, __ATOMIC_RELAXED);
  return true;
}

// ---------------------------------------------------------------------------
// Node pool upkeep, outside the lock

void Domain::refill_pool() noexcept {
  uint32_t have = pool_.free_nodes();
  if (have >= NodePool::kLowWater) return;
  NodePool::Chain chain = pool_.alloc_chain(NodePool::kRefillTo - have);
  SpinGuard g(tree_lock_);
  pool_.splice(chain);
}

void Domain::trim_pool() noexcept {
  if (pool_.free_nodes() <= NodePool::kHighWater) return;
  NodePool::Chain excess;
  {
    SpinGuard g(tree_lock_);
    excess = pool_.detach_excess(NodePool::kRefillTo);
  }
  pool_.release(excess);
}

void Domain::fail_node_alloc(uint32_t one_in, uint64_t seed) noexcept {
  SpinGuard g(tree_lock_);
  pool_.fail_injection(one_in, seed);
}

// ---------------------------------------------------------------------------
// The 32-bit estimate

bool Domain::fails_32bit_estimate(uint64_t npages, uint64_t align, uint64_t hi_pfn) const noexcept {
  if (hi_pfn > dma32_last_pfn_) return false;
  // A smaller window and a stricter alignment can only fit less.
  return npages >= fail32_npages_ || (align > 1 && npages >= fail32_aligned_npages_);
}

void Domain::remember_32bit_failure(uint64_t npages, uint64_t align, uint64_t hi_pfn) noexcept {
  // Only a search that covered the whole 32-bit space says it is full.
  if (hi_pfn < dma32_last_pfn_ || dma32_last_pfn_ < conf_.start_pfn) return;
  uint64_t& est = align > 1 ? fail32_aligned_npages_ : fail32_npages_;
  est = std::min(est, npages);
}

void Domain::note_space_freed(uint64_t pfn_lo) noexcept {
  if (pfn_lo <= dma32_last_pfn_) {
    fail32_npages_ = UINT64_MAX;
    fail32_aligned_npages_ = UINT64_MAX;
  }
}

// ---------------------------------------------------------------------------
// Tree operations

int Domain::alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned, uint64_t* pfn_lo) noexcept {
  if (pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn) return -EINVAL;
  if (npages > kMaxPfnExclusive) return -ENOMEM;
  uint64_t align = size_aligned ? std::bit_ceil(npages) : 1;
  uint64_t hi_pfn = std::min(limit_pfn, conf_.end_pfn);
  if (pool_.needs_refill()) refill_pool();
  SpinGuard g(tree_lock_);
  int rc = alloc_locked(npages, align, hi_pfn, pfn_lo);
  // Under the lock, so that verify() never sees the range unmarked; the first
  // byte of a map page faults it in (once per 4096 pages of IOVA).
  if (rc == 0) mark_live(*pfn_lo, npages);
  return rc;
}

// Cost: one O(log n) descent for the hole, one for the carve; no allocation
// (nodes come from the pool), no syscall.
int Domain::alloc_locked(uint64_t npages, uint64_t align, uint64_t hi_pfn, uint64_t* pfn_lo) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  if (fails_32bit_estimate(npages, align, hi_pfn)) return -ENOMEM;
  int rc = tree_.allocate(npages, align, conf_.start_pfn, hi_pfn, Tag::kAllocated, pfn_lo);
  // A node shortage (-EAGAIN) is transient: report it and leave the estimate
  // alone (docs/DESIGN.md, L2: the kernel's maple v3 turned it into a permanent failure).
  if (rc == -ENOMEM) remember_32bit_failure(npages, align, hi_pfn);
  if (rc != 0) return rc;
  ++live_ranges_;
  live_pages_ += npages;
  return 0;
}

int Domain::free(uint64_t pfn) noexcept {
  SpinGuard g(tree_lock_);
  Segment seg;
  if (int rc = free_checked_locked(pfn, &seg); rc != 0) return rc;
  return free_locked(pfn);
}

// The caller's side of iovam_free()/iovam_free_deferred(): the ALLOCATED
// range containing pfn, which (checked mode) must not be sitting in a cache:
// a free_fast() already gave it back, and erasing it would let the tree and
// the cache both hand it out. Clears its live byte; *seg is the range.
int Domain::free_checked_locked(uint64_t pfn, Segment* seg) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  if (pfn > conf_.end_pfn) return -ENOENT;
  *seg = tree_.lookup_near(pfn);  // leaves the finger for the erase that follows
  if (seg->tag == Tag::kReserved) return -EPERM;
  if (seg->tag != Tag::kAllocated) return -ENOENT;
  return take_live(seg->pfn_lo, seg->pfn_hi - seg->pfn_lo + 1) ? 0 : -ENOENT;
}

// Erasing needs no node in this tree (it merges segments and frees nodes), so
// a free always completes at once and never has to leave a DEFERRED marker;
// free_deferred() is the lazy path that does.
int Domain::free_locked(uint64_t pfn) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  if (pfn > conf_.end_pfn) return -ENOENT;
  Segment seg = tree_.erase_if(pfn, Tag::kAllocated);
  if (seg.tag == Tag::kReserved) return -EPERM;
  if (seg.tag != Tag::kAllocated) return -ENOENT;
  --live_ranges_;
  live_pages_ -= seg.pfn_hi - seg.pfn_lo + 1;
  note_space_freed(seg.pfn_lo);
  return 0;
}

// The in-place store of docs/DESIGN.md, L1: re-tag the entry, touch no node. The range
// stays occupied for the allocator until maintain() erases the marker.
int Domain::free_deferred(uint64_t pfn) noexcept {
  SpinGuard g(tree_lock_);
  Segment seg;
  if (int rc = free_checked_locked(pfn, &seg); rc != 0) return rc;
  tree_.retag_occupied(pfn, Tag::kDeferred);
  --live_ranges_;
  live_pages_ -= seg.pfn_hi - seg.pfn_lo + 1;
  ++deferred_ranges_;
  deferred_lo_ = std::min(deferred_lo_, seg.pfn_lo);
  deferred_hi_ = std::max(deferred_hi_, seg.pfn_hi);
  return 0;
}

// A range the caller gave back with free_fast() is free to the caller: if
// one in [pfn_lo, pfn_hi] may be sitting in a cache, every cache is flushed
// (as alloc does on -ENOMEM) and the span looked at again; -EBUSY only over
// ranges still ALLOCATED (live) or DEFERRED after that.
int Domain::reserve(uint64_t pfn_lo, uint64_t pfn_hi) noexcept {
  if (pfn_lo > pfn_hi || pfn_hi > conf_.end_pfn) return -EINVAL;
  if (pool_.needs_refill()) refill_pool();
  for (bool flushed = false;; flushed = true) {
    {
      SpinGuard g(tree_lock_);
      uint64_t merged_reserved = 0;
      bool busy = false;
      for (uint64_t at = pfn_lo;;) {
        Segment seg = tree_.lookup(at);
        if (seg.tag == Tag::kDeferred) return -EBUSY;
        if (seg.tag == Tag::kAllocated) {
          // A live range: -EBUSY at once, no flush (a failed call changes nothing).
          if (flushed || !may_be_cached_locked(seg.pfn_lo, seg.pfn_hi)) return -EBUSY;
          busy = true;
        }
        if (seg.tag == Tag::kReserved) ++merged_reserved;
        if (seg.pfn_hi >= pfn_hi) break;
        at = seg.pfn_hi + 1;
      }
      if (!busy) {
        Segment merged;
        int rc = tree_.reserve(pfn_lo, pfn_hi, &merged);
        if (rc != 0) return rc;
        reserved_ranges_ = reserved_ranges_ - merged_reserved + 1;
        return 0;
      }
    }
    // Without the tree lock: a flush takes the lcore slow locks first.
    cache_->flush(IOVAM_CACHE_NONE);
  }
}

// Whether ALLOCATED [pfn_lo, pfn_hi] may be in a cache: checked, exactly
// when its live byte is clear; unchecked, whenever it has a cacheable shape.
bool Domain::may_be_cached_locked(uint64_t pfn_lo, uint64_t pfn_hi) const noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  const uint64_t size = pfn_hi - pfn_lo + 1;
  if (!std::has_single_bit(size) || size > IOVAM_CACHE_MAX_PAGES || (pfn_lo & (size - 1)) != 0 ||
      !in_cached_window(pfn_lo, size))
    return false;
  return !checked() || __atomic_load_n(live_.at(pfn_lo), __ATOMIC_RELAXED) == 0;
}

int Domain::find(uint64_t pfn, uint64_t* pfn_lo, uint64_t* pfn_hi) noexcept {
  if (pfn_lo == nullptr || pfn_hi == nullptr) return -EINVAL;
  if (pfn > conf_.end_pfn) return -ENOENT;
  SpinGuard g(tree_lock_);
  Segment seg = tree_.lookup(pfn);
  if (seg.tag != Tag::kAllocated && seg.tag != Tag::kReserved) return -ENOENT;
  *pfn_lo = seg.pfn_lo;
  *pfn_hi = seg.pfn_hi;
  return 0;
}

// ---------------------------------------------------------------------------
// Housekeeping

int Domain::drain_deferred() noexcept {
  uint64_t erased = 0;
  for (;;) {
    SpinGuard g(tree_lock_);
    for (uint32_t i = 0; i < kDrainBatch; ++i) {
      if (deferred_ranges_ == 0) {
        deferred_lo_ = UINT64_MAX;
        deferred_hi_ = 0;
        return static_cast<int>(std::min<uint64_t>(erased, INT_MAX));
      }
      std::optional<Segment> seg = tree_.next_tagged(deferred_lo_, Tag::kDeferred);
      assert(seg && seg->pfn_hi <= deferred_hi_);
      tree_.erase(seg->pfn_lo);
      --deferred_ranges_;
      deferred_lo_ = seg->pfn_hi + 1;
      note_space_freed(seg->pfn_lo);
      ++erased;
    }
  }
}

int Domain::maintain() noexcept {
  refill_pool();
  int erased = drain_deferred();
  cache_->trim_depots();
  trim_pool();
  refill_pool();
  return erased;
}

void Domain::stats(iovam_stats* st) noexcept {
  SpinGuard g(tree_lock_);
  st->live_ranges = live_ranges_;
  st->live_pages = live_pages_;
  st->reserved_ranges = reserved_ranges_;
  st->deferred_ranges = deferred_ranges_;
  st->cached_ranges = cache_->cached_ranges();
  st->tree_bytes = pool_.bytes();
  st->node_alloc_failures = pool_.failures();
}

int Domain::verify() noexcept {
  // Every lcore cache quiesced (their slow locks), the return batches held
  // off, then the tree lock, then the depots: the order of docs/DESIGN.md,
  // section 5. So no live byte and no cache or batch count moves meanwhile.
  cache_->quiesce_all();
  int rc;
  {
    SpinGuard g(batch_lock_);
    rc = verify_quiesced();
  }
  cache_->resume_all();
  return rc;
}

int Domain::verify_quiesced() noexcept {
  SpinGuard g(tree_lock_);
  GapTree::Census c;
  const char* why = nullptr;
  auto fail = [this](const char* w) {
    verify_error_ = w;
    return -EFAULT;
  };
  if (!tree_.verify(&c, &why)) return fail(why);
  const auto alloc = static_cast<int>(Tag::kAllocated);
  if (c.segments[alloc] != live_ranges_) return fail("live_ranges differs from the tree");
  if (c.pages[alloc] != live_pages_) return fail("live_pages differs from the tree");
  if (c.segments[static_cast<int>(Tag::kReserved)] != reserved_ranges_)
    return fail("reserved_ranges differs from the tree");
  if (c.segments[static_cast<int>(Tag::kDeferred)] != deferred_ranges_)
    return fail("deferred_ranges differs from the tree");
  if (c.nodes + pool_.free_nodes() != pool_.total_nodes()) return fail("node accounting");
  if (deferred_ranges_ > 0) {
    std::optional<Segment> first = tree_.next_tagged(0, Tag::kDeferred);
    if (!first || first->pfn_lo < deferred_lo_) return fail("DEFERRED marker below deferred_lo");
  }
  // The estimate may only claim what is true: no fit of its size below 4 GiB.
  if (fail32_npages_ != UINT64_MAX &&
      tree_.find_gap(fail32_npages_, 1, conf_.start_pfn, dma32_last_pfn_))
    return fail("32-bit estimate claims full but a hole fits");
  if (fail32_aligned_npages_ != UINT64_MAX &&
      tree_.find_gap(fail32_aligned_npages_, std::bit_ceil(fail32_aligned_npages_),
                     conf_.start_pfn, dma32_last_pfn_))
    return fail("32-bit aligned estimate claims full but a hole fits");
  if (const char* w = cache_->verify_locked(tree_)) return fail(w);
  if (const char* w = verify_live_map_locked()) return fail(w);
  verify_error_ = nullptr;
  return 0;
}

// With the caches quiesced (their verify found every cached range tracked,
// distinct, with a clear byte): every tracked ALLOCATED range's byte is its
// class + 1 (with a caller) or 0, the zeros are exactly the cached ranges,
// and (maps up to 64 Ki pages, scanned: verify runs after every test op) no
// byte is set anywhere else.
const char* Domain::verify_live_map_locked() const noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  if (!checked()) return nullptr;
  uint64_t live = 0, idle = 0, other = 0;
  tree_.for_each([&](const Segment& seg) {
    const uint64_t size = seg.pfn_hi - seg.pfn_lo + 1;
    if (seg.tag != Tag::kAllocated || !tracked(seg.pfn_lo, size)) return;
    const uint8_t b = __atomic_load_n(live_.at(seg.pfn_lo), __ATOMIC_RELAXED);
    if (b == 0)
      ++idle;
    else if (b == std::countr_zero(size) + 1)
      ++live;
    else
      ++other;
  });
  if (other != 0) return "live map: a range's byte holds another class";
  // Ranges in return batches are idle too (verify() holds batch_lock_), and
  // so are those a depot trim has taken out and not freed yet.
  if (idle != cache_->cached_or_in_flight_locked() + batched_ranges_.load(std::memory_order_relaxed))
    return "live map: an ALLOCATED range is neither live nor cached";
  if (live_.pages() <= (uint64_t{1} << 16)) {
    const uint8_t* b = live_.bytes();
    uint64_t set = 0;
    for (uint64_t i = 0; i < live_.pages(); ++i) set += b[i] != 0;
    if (set != live) return "live map: a byte is set outside a live range";
  }
  return nullptr;
}

uint8_t Domain::live_byte(uint64_t pfn) const noexcept {
  return checked() && live_.covers(pfn) ? __atomic_load_n(live_.at(pfn), __ATOMIC_RELAXED) : 0;
}

// ---------------------------------------------------------------------------
// Fast path: the cold halves

int Domain::alloc_fast_slow(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn,
                            uint64_t* pfn_lo) noexcept {
  if (pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn ||
      (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE))
    return -EINVAL;
  if (npages > kMaxPfnExclusive) return -ENOMEM;
  const bool cacheable = npages <= IOVAM_CACHE_MAX_PAGES;
  const uint64_t n = cacheable ? std::bit_ceil(npages) : npages;
  const uint64_t hi_pfn = std::min(limit_pfn, conf_.end_pfn);
  if (cacheable && cache_id != IOVAM_CACHE_NONE && hi_pfn - conf_.start_pfn >= n - 1 &&
      cache_->pop(cache_id, iovam_size_class_(npages), hi_pfn, pfn_lo))
    return 0;
  int rc = alloc(n, limit_pfn, true, pfn_lo);
  if (rc == -ENOMEM && cache_->cached_ranges() > 0) {
    // Space may be sitting in caches: return all of it and try once more.
    cache_->flush(IOVAM_CACHE_NONE);
    rc = alloc(n, limit_pfn, true, pfn_lo);
  }
  if (cache_id == IOVAM_CACHE_NONE || !cacheable) cache_->count_shared(true, false);
  return rc;
}

// The O(1) checks of every fast free: aligned to the rounded size, inside
// the window (npages > 2^63 first: std::bit_ceil of it is undefined).
bool Domain::fast_free_in_bounds(uint64_t pfn_lo, uint64_t npages) const noexcept {
  const uint64_t n = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
  return !(npages > kMaxPfnExclusive || (pfn_lo & (std::bit_ceil(npages) - 1)) != 0 ||
           pfn_lo < conf_.start_pfn || n - 1 > conf_.end_pfn - conf_.start_pfn ||
           pfn_lo > conf_.end_pfn - (n - 1));
}

// Whether a range of `size` pages at pfn_lo may go to (or come from) a cache.
bool Domain::in_cached_window(uint64_t pfn_lo, uint64_t size) const noexcept {
  const iovam_fast_view& v = handle_.fast;
  return pfn_lo >= v.cache_lo_pfn && pfn_lo - v.cache_lo_pfn <= v.span[std::countr_zero(size)];
}

// Why a free of `size` pages at pfn_lo is refused, or 0 if it is valid: a
// RESERVED pfn, free space or a DEFERRED range, another extent, or (checked)
// a range of that extent whose live byte is clear: it sits in a cache, so
// it was freed already.
int Domain::fast_free_lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  Segment seg = tree_.lookup(pfn_lo);
  if (seg.tag == Tag::kReserved) return -EPERM;
  if (seg.tag != Tag::kAllocated) return -ENOENT;
  if (seg.pfn_lo != pfn_lo || seg.pfn_hi - seg.pfn_lo + 1 != size) return -EINVAL;
  if (tracked(pfn_lo, size) &&
      __atomic_load_n(live_.at(pfn_lo), __ATOMIC_RELAXED) != std::countr_zero(size) + 1)
    return -ENOENT;
  return 0;
}

// Checked: a range for a cache is taken from the live map without the tree
// lock (the inline path found the magazine full or a flush under way); any
// other answer than "live, this size" is diagnosed in the tree. Ranges for
// the tree are looked up (every mode). Unchecked: a range for a cache passed
// the O(1) checks and is trusted.
int Domain::free_fast_slow(uint32_t cache_id, uint64_t pfn_lo, uint64_t npages) noexcept {
  if (npages == 0 || (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE)) return -EINVAL;
  if (!fast_free_in_bounds(pfn_lo, npages)) return -EINVAL;
  const uint64_t n = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
  const bool to_cache = npages <= fast_free_bound_ && cache_id != IOVAM_CACHE_NONE &&
                        in_cached_window(pfn_lo, n);
  if (to_cache && cache_->push(cache_id, iovam_size_class_(n), pfn_lo)) return 0;
  SpinGuard g(tree_lock_);
  if (int rc = fast_free_lookup_locked(pfn_lo, n); rc != 0 || to_cache)
    return rc != 0 ? rc : -ENOENT;  // to_cache here: the byte changed under us (a racing free)
  [[maybe_unused]] bool taken = take_live(pfn_lo, n);
  assert(taken);
  cache_->count_shared(false, false);
  return free_locked(pfn_lo);
}

// ---------------------------------------------------------------------------
// Bulk fast path: the cold halves. All or nothing, each range as the single
// call would get or check it.

// Cache pops first (one handshake), then the tree one range at a time, as
// alloc_fast_slow() does: each alloc() refills the node pool before it takes
// the lock, so a large bulk cannot drain the pool into a spurious -EAGAIN.
int Domain::alloc_fast_bulk_slow(uint32_t cache_id, uint64_t npages, uint64_t limit_pfn,
                                 uint64_t* pfn_lo, uint32_t n) noexcept {
  if (n == 0) return 0;
  if (pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn ||
      (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE))
    return -EINVAL;
  if (npages > kMaxPfnExclusive) return -ENOMEM;
  const bool cacheable = npages <= IOVAM_CACHE_MAX_PAGES;
  const uint64_t size = cacheable ? std::bit_ceil(npages) : npages;
  const uint64_t hi_pfn = std::min(limit_pfn, conf_.end_pfn);
  uint32_t got = 0;
  if (cacheable && cache_id != IOVAM_CACHE_NONE && hi_pfn - conf_.start_pfn >= size - 1)
    got = cache_->pop_bulk(cache_id, iovam_size_class_(npages), hi_pfn, pfn_lo, n);
  if (cache_id == IOVAM_CACHE_NONE || !cacheable) cache_->count_shared(true, false, n);
  for (; got < n; ++got) {
    int rc = alloc(size, limit_pfn, true, &pfn_lo[got]);
    if (rc == -ENOMEM && cache_->cached_ranges() > 0) {
      cache_->flush(IOVAM_CACHE_NONE);
      rc = alloc(size, limit_pfn, true, &pfn_lo[got]);
    }
    if (rc != 0) {
      // To the tree, not the cache: after -ENOMEM the caches were just
      // flushed for this space, and the caller must own nothing.
      give_back(pfn_lo, got, size);
      return rc;
    }
  }
  return 0;
}

// Bounded lock holds, as drain_deferred(): n is the caller's.
void Domain::give_back(const uint64_t* pfn_lo, uint32_t n, uint64_t size) noexcept {
  for (uint32_t i = 0; i < n;) {
    SpinGuard g(tree_lock_);
    for (uint32_t end = i + std::min<uint32_t>(n - i, kDrainBatch); i < end; ++i) {
      [[maybe_unused]] bool taken = take_live(pfn_lo[i], size);
      assert(taken && "a range this bulk allocated is live");
      [[maybe_unused]] int rc = free_locked(pfn_lo[i]);
      assert(rc == 0 && "a range this bulk allocated is ALLOCATED");
    }
  }
}

// Check pfn_lo[0..n) in order, as free_fast_slow() checks one, and claim
// each accepted range so that a repeat fails as it would once the first was
// freed: a tracked range by clearing its live byte, any other by marking it
// DEFERRED in place (no node, no change visible outside the lock). On an
// error the claims are undone and the first bad entry's error returned.
int Domain::claim_bulk_locked(const uint64_t* pfn_lo, uint32_t n, uint64_t npages) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  const uint64_t size = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
  for (uint32_t i = 0; i < n; ++i) {
    int rc = fast_free_in_bounds(pfn_lo[i], npages) ? fast_free_lookup_locked(pfn_lo[i], size) : -EINVAL;
    if (rc != 0) {
      unclaim_locked(pfn_lo, i, size);
      return rc;
    }
    if (tracked(pfn_lo[i], size))
      take_live(pfn_lo[i], size);
    else
      tree_.retag_occupied(pfn_lo[i], Tag::kDeferred);
  }
  return 0;
}

void Domain::unclaim_locked(const uint64_t* pfn_lo, uint32_t n, uint64_t size) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  for (uint32_t i = 0; i < n; ++i) {
    if (tracked(pfn_lo[i], size))
      mark_live(pfn_lo[i], size);
    else
      tree_.retag_occupied(pfn_lo[i], Tag::kAllocated);
  }
}

// free_locked() for a range claim_bulk_locked() marked DEFERRED.
void Domain::erase_claimed_locked(uint64_t pfn_lo) noexcept {
  IOVAM_ASSERT_HELD(tree_lock_);
  Segment seg = tree_.erase_if(pfn_lo, Tag::kDeferred);
  assert(seg.tag == Tag::kDeferred && seg.pfn_lo == pfn_lo);
  --live_ranges_;
  live_pages_ -= seg.pfn_hi - seg.pfn_lo + 1;
  note_space_freed(seg.pfn_lo);
}

// Ranges for a cache: checked, each taken from the live map without the tree
// lock, and only if one is refused are they all looked up (to name the first
// bad entry); unchecked, the O(1) checks (as the inline path checks them).
// Ranges for the tree are looked up, all of them under one lock hold before
// any is freed: O(n log N) with the lock held.
int Domain::free_fast_bulk_slow(uint32_t cache_id, const uint64_t* pfn_lo, uint32_t n,
                                uint64_t npages) noexcept {
  if (n == 0) return 0;
  if (pfn_lo == nullptr || npages == 0 || (cache_id >= conf_.n_caches && cache_id != IOVAM_CACHE_NONE))
    return -EINVAL;
  const uint64_t size = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
  bool to_cache = npages <= fast_free_bound_ && cache_id != IOVAM_CACHE_NONE;
  for (uint32_t i = 0; i < n; ++i) {
    if (!fast_free_in_bounds(pfn_lo[i], npages)) {
      to_cache = false;  // the lookup below names the error of the first bad entry
      break;
    }
    to_cache = to_cache && in_cached_window(pfn_lo[i], size);
  }
  if (to_cache && cache_->push_bulk(cache_id, iovam_size_class_(npages), pfn_lo, n)) return 0;
  // Some range is bad (or, for the caches, its byte changed under the first
  // try: a racing free): name the first bad one, or free them all to the tree.
  SpinGuard g(tree_lock_);
  if (int rc = claim_bulk_locked(pfn_lo, n, npages); rc != 0) return rc;
  for (uint32_t i = 0; i < n; ++i) {
    if (tracked(pfn_lo[i], size))
      free_locked(pfn_lo[i]);
    else
      erase_claimed_locked(pfn_lo[i]);
  }
  cache_->count_shared(false, false, n);
  return 0;
}

int Domain::cache_flush(uint32_t cache_id) noexcept {
  if (cache_id != IOVAM_CACHE_NONE && cache_id >= conf_.n_caches) return -EINVAL;
  uint64_t n = cache_->flush(cache_id);
  return static_cast<int>(std::min<uint64_t>(n, INT_MAX));
}

// Cost: the O(1) bounds and, checked, the live byte's load, compare and
// store (as the inline free_fast); the tree lock only to diagnose a refusal.
int Domain::take_for_batch(uint64_t pfn_lo, uint64_t npages) noexcept {
  IOVAM_ASSERT_HELD(batch_lock_);
  if (npages == 0 || !fast_free_in_bounds(pfn_lo, npages)) return -EINVAL;
  const uint64_t n = std::bit_ceil(npages);
  if (npages > fast_free_bound_ || !in_cached_window(pfn_lo, n)) return 1;
  if (take_live(pfn_lo, n)) {  // unchecked: trusted, as free_fast
    batched_ranges_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  SpinGuard g(tree_lock_);
  int rc = fast_free_lookup_locked(pfn_lo, n);
  return rc != 0 ? rc : -ENOENT;  // the byte changed under us: a racing free
}

int Domain::cache_stats(uint32_t cache_id, iovam_cache_stats* st) noexcept {
  if (st == nullptr || (cache_id != IOVAM_CACHE_NONE && cache_id >= conf_.n_caches)) return -EINVAL;
  cache_->read_stats(cache_id, st);
  return 0;
}

}  // namespace iovam::detail
