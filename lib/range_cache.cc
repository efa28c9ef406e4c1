// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "range_cache.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hot_path.h"

namespace iovam::detail
{

uint32_t g_flush_req_idle = 0;

namespace
{

// How far ahead a bulk free to the tree asks for each range's live byte
// (hold_all_locked()): far enough that a memory latency (120-190 ns on the
// perf machine) passes meanwhile, each check taking tens of ns. The erases'
// pipeline is the tree's (TreeBackend::prefetch_frees_locked()).
constexpr uint32_t kLiveAhead = 8;

// Ranges a failed bulk gives back per tree lock hold: bounds the hold time
// the datapath sees, whatever n the caller passed.
constexpr uint32_t kGiveBackBatch = 64;

long membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0U, 0);
}

void register_membarrier_once()
{
	static std::once_flag once;
	std::call_once(once, [] {
		// Without membarrier the owner's plain store-then-load is not ordered
		// against a flusher: every lcore then takes the locked slow path.
		if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
			g_flush_req_idle = 1;
	});
}

// Make every other running thread of this process execute a full barrier:
// pairs with the owner's plain store-then-load in RangeCache::enter().
void heavy_barrier()
{
#if IOVAM_HANDSHAKE_SC
	// Both sides use seq_cst accesses: no barrier needed.
#else
	// Without membarrier (g_flush_req_idle), owners never use the handshake.
	if (g_flush_req_idle == 0) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
#endif
}

} // namespace

std::unique_ptr<RangeCache> RangeCache::create(TreeBackend &tree, const iovam_domain_conf &conf,
                                               iovam_fast_view *view) noexcept
{
	register_membarrier_once();
	const uint32_t n_caches = conf.n_caches;
	if (create_alloc_fails()) return nullptr;
	std::unique_ptr<RangeCache> rc(new (std::nothrow) RangeCache(tree, conf, view));
	if (!rc) return nullptr;
	const size_t n_mags = static_cast<size_t>(n_caches) * IOVAM_CACHE_CLASSES * 2 +
	                      IOVAM_CACHE_CLASSES * kDepotMax;
	if (create_alloc_fails()) return nullptr;
	rc->magazine_block_ = std::calloc(n_mags, sizeof(Magazine));
	if (rc->magazine_block_ == nullptr) return nullptr;
	if (n_caches > 0) {
		if (create_alloc_fails()) return nullptr;
		rc->lcores_ = new (std::nothrow) Lcore[n_caches];
		if (rc->lcores_ == nullptr) return nullptr;
	}
	if (!rc->live_.init(conf.start_pfn, conf.end_pfn)) return nullptr;
	auto *mag = static_cast<Magazine *>(rc->magazine_block_);
	for (uint32_t c = 0; c < n_caches; ++c) {
		__atomic_store_n(&rc->lcores_[c].pub.flush_req, g_flush_req_idle, __ATOMIC_RELAXED);
		for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
			rc->lcores_[c].pub.loaded[k] = mag++;
			rc->lcores_[c].prev[k] = mag++;
		}
	}
	for (auto &depot : rc->home_.cls) {
		for (uint32_t i = 0; i < kDepotMax; ++i) depot.empty[i] = mag++;
		depot.empty_count = kDepotMax;
	}
	rc->nodes_[0].store(&rc->home_, std::memory_order_relaxed);
	view->lcores = reinterpret_cast<char *>(rc->lcores_);
	view->n_caches = n_caches;
	view->end_pfn = conf.end_pfn;
	const uint64_t window = conf.end_pfn - conf.start_pfn; // pages - 1
	rc->fast_free_bound_ =
	        std::min<uint64_t>(IOVAM_CACHE_MAX_PAGES, std::bit_floor(window + 1));
	view->free_max = rc->fast_free_bound_;
	rc->set_window(true);
	return rc;
}

RangeCache::~RangeCache()
{
	// Ranges still cached are ALLOCATED in the tree, which the domain frees whole.
	delete[] lcores_;
	std::free(magazine_block_);
}

// ---------------------------------------------------------------------------
// Which ranges are cached: the window, the checked mode's live map

// Where cached ranges may lie: the live map's pages when checked (a range
// below them is never cached, so the map needs no byte for it), the whole
// window when not.
void RangeCache::set_window(bool checked) noexcept
{
	const uint64_t lo = checked ? live_.lo_pfn() : conf_.start_pfn;
	const uint64_t window = conf_.end_pfn - lo; // pages - 1
	view_->cache_lo_pfn = lo;
	for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
		uint64_t mask = (1ULL << k) - 1;
		view_->span[k] =
		        window >= mask ? window - mask : 0; // unused when the class cannot fit
	}
	view_->live = checked ? live_.bytes() : nullptr;
}

void RangeCache::set_checked(bool checked) noexcept
{
	if (checked == this->checked()) return;
	// Unchecked mode left its ranges' bytes behind: start from zeros.
	if (checked) live_.clear();
	set_window(checked);
}

bool RangeCache::tracked(uint64_t pfn_lo, uint64_t size) const noexcept
{
	return checked() && size <= IOVAM_CACHE_MAX_PAGES && std::has_single_bit(size) &&
	       (pfn_lo & (size - 1)) == 0 && live_.covers(pfn_lo);
}

// Cost: a compare and a byte store (the range is ours: no other writer).
IOVAM_HOT void RangeCache::mark_live(uint64_t pfn_lo, uint64_t size) noexcept
{
	if (tracked(pfn_lo, size))
		__atomic_store_n(live_.at(pfn_lo), static_cast<uint8_t>(std::countr_zero(size) + 1),
		                 __ATOMIC_RELAXED);
}

IOVAM_HOT bool RangeCache::take_live(uint64_t pfn_lo, uint64_t size) noexcept
{
	if (!tracked(pfn_lo, size)) return true;
	uint8_t *b = live_.at(pfn_lo);
	if (__atomic_load_n(b, __ATOMIC_RELAXED) != std::countr_zero(size) + 1) return false;
	__atomic_store_n(b, uint8_t{0}, __ATOMIC_RELAXED);
	return true;
}

// Cost: a compare, a load (its line requested by prefetch_live()) and a store.
IOVAM_HOT uint64_t RangeCache::take_live_at(uint64_t pfn_lo) noexcept
{
	if (!checked() || !live_.covers(pfn_lo)) return 0;
	uint8_t *b = live_.at(pfn_lo);
	const uint8_t v = __atomic_load_n(b, __ATOMIC_RELAXED);
	if (v == 0) return 0;
	__atomic_store_n(b, uint8_t{0}, __ATOMIC_RELAXED);
	return uint64_t{1} << (v - 1);
}

bool RangeCache::may_hold_locked(uint64_t pfn_lo, uint64_t pfn_hi) const noexcept
{
	IOVAM_ASSERT_HELD(tree_.lock());
	const uint64_t size = pfn_hi - pfn_lo + 1;
	if (!std::has_single_bit(size) || size > IOVAM_CACHE_MAX_PAGES ||
	    (pfn_lo & (size - 1)) != 0 || !in_cached_window(pfn_lo, size))
		return false;
	return !checked() || __atomic_load_n(live_.at(pfn_lo), __ATOMIC_RELAXED) == 0;
}

// Whether a range of `size` pages at pfn_lo may go to (or come from) a cache.
bool RangeCache::in_cached_window(uint64_t pfn_lo, uint64_t size) const noexcept
{
	return pfn_lo >= view_->cache_lo_pfn &&
	       pfn_lo - view_->cache_lo_pfn <= view_->span[std::countr_zero(size)];
}

// The O(1) checks of every fast free: aligned to the rounded size, inside
// the window (npages > 2^63 first: std::bit_ceil of it is undefined).
bool RangeCache::fast_free_in_bounds(uint64_t pfn_lo, uint64_t npages) const noexcept
{
	const uint64_t n = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
	return !(npages > kMaxPfnExclusive || (pfn_lo & (std::bit_ceil(npages) - 1)) != 0 ||
	         pfn_lo < conf_.start_pfn || n - 1 > conf_.end_pfn - conf_.start_pfn ||
	         pfn_lo > conf_.end_pfn - (n - 1));
}

// Why a free of `size` pages at pfn_lo is refused, or 0 if it is valid: the
// tree's answer (a RESERVED pfn, free space or a DEFERRED range, another
// extent), or (checked) a range of that extent whose live byte is clear: it
// sits in a cache, so it was freed already.
int RangeCache::free_lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept
{
	if (int rc = tree_.lookup_locked(pfn_lo, size); rc != 0) return rc;
	if (tracked(pfn_lo, size) &&
	    __atomic_load_n(live_.at(pfn_lo), __ATOMIC_RELAXED) != std::countr_zero(size) + 1)
		return -ENOENT;
	return 0;
}

// ---------------------------------------------------------------------------
// The fast path's out-of-line halves: the whole ladder after the inline hit.
// All or nothing, each range as the single call (n = 1) would get or check it.

// Cache pops first (one handshake), then the tree one range at a time: each
// tree allocation refills the node pool before it takes the lock, so a large
// bulk cannot drain the pool into a spurious -EAGAIN.
int RangeCache::alloc_fast_bulk_slow(uint32_t c, uint64_t npages, uint64_t limit_pfn,
                                     uint64_t *pfn_lo, uint32_t n) noexcept
{
	if (n == 0) return 0;
	if (pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn || !cache_id_ok(c))
		return -EINVAL;
	if (npages > kMaxPfnExclusive) return -ENOMEM;
	const bool cacheable = npages <= IOVAM_CACHE_MAX_PAGES;
	const uint64_t size = cacheable ? std::bit_ceil(npages) : npages;
	const uint64_t hi_pfn = std::min(limit_pfn, conf_.end_pfn);
	uint32_t got = 0;
	if (cacheable && c != IOVAM_CACHE_NONE && hi_pfn - conf_.start_pfn >= size - 1)
		got = pop_bulk(c, iovam_size_class_(npages), hi_pfn, pfn_lo, n);
	if (c == IOVAM_CACHE_NONE || !cacheable) count_shared(true, false, n);
	for (; got < n; ++got) {
		if (int rc = alloc_from_tree(size, limit_pfn, &pfn_lo[got]); rc != 0) {
			// To the tree, not the cache: after -ENOMEM the caches were just
			// flushed for this space, and the caller must own nothing.
			give_back(pfn_lo, got, size);
			return rc;
		}
	}
	return 0;
}

// A miss: the tree; on -ENOMEM, space may be sitting in caches: every cache
// is flushed and the tree tried once more (docs/DESIGN.md, L8).
int RangeCache::alloc_from_tree(uint64_t size, uint64_t limit_pfn, uint64_t *pfn_lo) noexcept
{
	int rc = tree_.alloc(size, limit_pfn, pfn_lo);
	if (rc == -ENOMEM && cached_ranges() > 0) {
		flush(IOVAM_CACHE_NONE);
		rc = tree_.alloc(size, limit_pfn, pfn_lo);
	}
	return rc;
}

// Bounded lock holds: n is the caller's.
void RangeCache::give_back(const uint64_t *pfn_lo, uint32_t n, uint64_t size) noexcept
{
	for (uint32_t i = 0; i < n;) {
		SpinGuard g(tree_.lock());
		for (uint32_t end = i + std::min<uint32_t>(n - i, kGiveBackBatch); i < end; ++i) {
			[[maybe_unused]] bool taken = take_live(pfn_lo[i], size);
			assert(taken && "a range this bulk allocated is live");
			tree_.free_locked(pfn_lo[i]);
		}
	}
}

// Ranges for a cache: checked, each taken from the live map without the tree
// lock, and only if one is refused are they all looked up (to name the first
// bad entry); unchecked, the O(1) checks (as the inline path checks them).
// Ranges for the tree are checked and held, all of them under one lock hold
// before any is freed, then erased: O(n log N) with the lock held, one
// descent per tracked range (the erase) and three per other range.
int RangeCache::free_fast_bulk_slow(uint32_t c, const uint64_t *pfn_lo, uint32_t n,
                                    uint64_t npages) noexcept
{
	if (n == 0) return 0;
	if (pfn_lo == nullptr || npages == 0 || !cache_id_ok(c)) return -EINVAL;
	const uint64_t size = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
	bool to_cache = npages <= fast_free_bound_ && c != IOVAM_CACHE_NONE;
	for (uint32_t i = 0; i < n; ++i) {
		if (!fast_free_in_bounds(pfn_lo[i], npages)) {
			to_cache = false; // the lookup below names the error of the first bad entry
			break;
		}
		to_cache = to_cache && in_cached_window(pfn_lo[i], size);
	}
	if (to_cache && push_bulk(c, iovam_size_class_(npages), pfn_lo, n)) return 0;
	// Some range is bad (or, for the caches, its byte changed under the first
	// try: a racing free): name the first bad one, or free them all to the tree.
	SpinGuard g(tree_.lock());
	// Past the caches' reach only: below, the prefetches would be calls
	// for nothing (+7 % per range at 1K live).
	const bool ahead = tree_.prefetch_pays_locked();
	if (int rc = hold_all_locked(pfn_lo, n, npages, ahead); rc != 0) return rc;
	for (uint32_t i = 0; i < n; ++i) {
		if (ahead) tree_.prefetch_frees_locked(pfn_lo, n, i);
		if (tracked(pfn_lo[i], size))
			tree_.free_locked(pfn_lo[i]);
		else
			tree_.free_held_locked(pfn_lo[i]);
	}
	count_shared(false, false, n);
	return 0;
}

// Check pfn_lo[0..n) in order, as a single free checks one, and hold each
// accepted range so that a repeat fails as it would once the first was
// freed. A tracked range is checked and held by taking its live byte: the
// byte says "live, this size" exactly when pfn_lo starts one ALLOCATED range
// of that size that no cache holds (verify_live_map_locked() checks the map
// for it, and iovam_free_fast() trusts it the same way), so it needs no
// descent; only a refused one is looked up, to name its error. Until
// 2026-11-28 every range was looked up too, and a bulk of 127 random 1-page
// ranges at 1M live took 470 ns per range against 317 for single frees
// (BM_Free_TreeBulk127 and BM_Free_TreeSingles127; 346 against 321 now). Any
// other range is looked up and held in the tree (TreeBackend::hold_locked).
// On an error the holds are undone and the first bad entry's error returned.
int RangeCache::hold_all_locked(const uint64_t *pfn_lo, uint32_t n, uint64_t npages,
                                bool ahead) noexcept
{
	IOVAM_ASSERT_HELD(tree_.lock());
	const uint64_t size = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
	// ahead: the live bytes' misses overlap (each is a random line of the map).
	for (uint32_t i = 0; i < std::min(n, ahead ? kLiveAhead : 0); ++i) prefetch_live(pfn_lo[i]);
	for (uint32_t i = 0; i < n; ++i) {
		if (ahead && i + kLiveAhead < n) prefetch_live(pfn_lo[i + kLiveAhead]);
		int rc = -EINVAL;
		if (fast_free_in_bounds(pfn_lo[i], npages)) {
			const bool by_byte = tracked(pfn_lo[i], size);
			if (by_byte && take_live(pfn_lo[i], size)) continue;
			rc = free_lookup_locked(pfn_lo[i], size);
			if (rc == 0 && !by_byte) {
				tree_.hold_locked(pfn_lo[i], true);
				continue;
			}
			if (rc == 0)
				rc = -ENOENT; // the byte changed since take_live(): a racing free
		}
		release_held_locked(pfn_lo, i, size);
		return rc;
	}
	return 0;
}

void RangeCache::release_held_locked(const uint64_t *pfn_lo, uint32_t n, uint64_t size) noexcept
{
	IOVAM_ASSERT_HELD(tree_.lock());
	for (uint32_t i = 0; i < n; ++i) {
		if (tracked(pfn_lo[i], size))
			mark_live(pfn_lo[i], size);
		else
			tree_.hold_locked(pfn_lo[i], false);
	}
}

int RangeCache::flush_checked(uint32_t c) noexcept
{
	if (!cache_id_ok(c)) return -EINVAL;
	return static_cast<int>(std::min<uint64_t>(flush(c), INT_MAX));
}

// Cost: the O(1) bounds and, checked, the live byte's load, compare and
// store (as the inline free_fast); the tree lock only to diagnose a refusal.
int RangeCache::take_for_batch(uint64_t pfn_lo, uint64_t npages) noexcept
{
	IOVAM_ASSERT_HELD(batch_lock_);
	if (npages == 0 || !fast_free_in_bounds(pfn_lo, npages)) return -EINVAL;
	const uint64_t n = std::bit_ceil(npages);
	if (npages > fast_free_bound_ || !in_cached_window(pfn_lo, n)) return 1;
	if (take_live(pfn_lo, n)) { // unchecked: trusted, as free_fast
		batched_ranges_.fetch_add(1, std::memory_order_relaxed);
		return 0;
	}
	SpinGuard g(tree_.lock());
	int rc = free_lookup_locked(pfn_lo, n);
	return rc != 0 ? rc : -ENOENT; // the byte changed under us: a racing free
}

// ---------------------------------------------------------------------------
// Slow paths of the owner: the rest of the magazine ladder

bool RangeCache::pop_locked_or_handshaken(Lcore &l, uint32_t cls, uint64_t hi_pfn,
                                          uint64_t *pfn) noexcept
{
	const uint64_t last_ok = hi_pfn - ((1ULL << cls) - 1);
	if (mag_pop(l.pub.loaded[cls], last_ok, pfn)) return true;
	if (l.prev[cls]->size > 0) {
		std::swap(l.pub.loaded[cls], l.prev[cls]);
		if (mag_pop(l.pub.loaded[cls], last_ok, pfn)) return true;
	}
	if (l.pub.loaded[cls]->size != 0) return false; // holds only ranges above the limit
	NodeDepots &own = depots_for(l.node);
	Depot &d = own.cls[cls];
	Magazine *full = nullptr;
	{
		SpinGuard g(d.lock);
		if (d.full_count > 0) {
			full = d.full[--d.full_count];
			d.empty[d.empty_count++] = l.pub.loaded[cls];
			add_depot(
			        own,
			        0 - full->size); // with the move, under the lock: verify() reads both
		}
	}
	if (full != nullptr)
		l.pub.loaded[cls] = full;
	else if (!take_from_other_node(l, cls))
		return false;
	bump(l.cached_adjust, l.pub.loaded[cls]->size);
	return mag_pop(l.pub.loaded[cls], last_ok, pfn);
}

// The own node's depot was empty: copy the ranges of another node's full
// magazine into this cache's empty loaded one (its magazines stay on its
// node; the other node keeps its magazine, now empty). Nodes are tried from
// the next one up, round. Cost: on one node, a load and a compare; else per
// node with depots its class lock, and a copy of up to 1 KiB on a hit.
bool RangeCache::take_from_other_node(Lcore &l, uint32_t cls) noexcept
{
	const uint32_t n = n_nodes_.load(std::memory_order_acquire);
	Magazine *mine = l.pub.loaded[cls];
	for (uint32_t i = 1; i < n; ++i) {
		NodeDepots *nd = node_depots((l.node + i) % n);
		if (nd == nullptr) continue;
		Depot &d = nd->cls[cls];
		SpinGuard g(d.lock);
		if (d.full_count == 0) continue;
		Magazine *full = d.full[--d.full_count];
		std::memcpy(mine->pfn, full->pfn, full->size * sizeof(full->pfn[0]));
		mine->size = full->size;
		full->size = 0;
		d.empty[d.empty_count++] = full;
		add_depot(*nd, 0 - mine->size);
		return true;
	}
	return false;
}

template <typename Step>
auto RangeCache::as_owner(Lcore &l, Step &&step) noexcept -> decltype(step())
{
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

void RangeCache::push_locked_or_handshaken(Lcore &l, uint32_t cls, uint64_t pfn) noexcept
{
	Magazine *&loaded = l.pub.loaded[cls];
	if (loaded->size == IOVAM_MAG_SIZE) {
		if (l.prev[cls]->size < IOVAM_MAG_SIZE) {
			std::swap(loaded, l.prev[cls]);
		} else {
			NodeDepots &own = depots_for(l.node);
			Depot &d = own.cls[cls];
			Magazine *empty = nullptr;
			const uint64_t moved = loaded->size; // read before another lcore may own it
			{
				SpinGuard g(d.lock);
				if (d.empty_count > 0) {
					empty = d.empty[--d.empty_count];
					d.full[d.full_count++] = loaded;
					add_depot(own, moved);
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

// One handshake for the whole bulk: a flusher waits at most n ladder steps.
// The hit counters move with the magazines (cached = free_hits - alloc_hits +
// cached_adjust), and the live map with both, inside the handshake or the
// slow lock: a quiesced verify() sees all three moves or none.
uint32_t RangeCache::pop_bulk(uint32_t c, uint32_t cls, uint64_t hi_pfn, uint64_t *pfn,
                              uint32_t n) noexcept
{
	Lcore &l = lcores_[c];
	uint32_t got = as_owner(l, [&] {
		uint32_t i = 0;
		while (i < n && pop_locked_or_handshaken(l, cls, hi_pfn, &pfn[i]))
			mark_live(pfn[i++], 1ULL << cls);
		bump(l.pub.alloc_hits, i);
		return i;
	});
	if (got < n) bump(l.alloc_misses, n - got); // the rest goes to the tree
	return got;
}

bool RangeCache::push_bulk(uint32_t c, uint32_t cls, const uint64_t *pfn, uint32_t n) noexcept
{
	Lcore &l = lcores_[c];
	return as_owner(l, [&] {
		const uint64_t size = 1ULL << cls;
		uint32_t taken = 0;
		while (taken < n && take_live(pfn[taken], size)) ++taken;
		if (taken < n) {
			while (taken-- > 0) mark_live(pfn[taken], size);
			return false;
		}
		for (uint32_t i = 0; i < n; ++i) push_locked_or_handshaken(l, cls, pfn[i]);
		bump(l.pub.free_hits, n);
		return true;
	});
}

bool RangeCache::put_to_depot(uint32_t node, uint32_t cls, Magazine *m) noexcept
{
	const uint64_t n = m->size;
	if (n == 0) return true;
	NodeDepots &nd = depots_for(node);
	Depot &d = nd.cls[cls];
	{
		SpinGuard g(d.lock);
		Magazine *to = nullptr;
		if (d.full_count > 0 && d.full[d.full_count - 1]->size + n <= IOVAM_MAG_SIZE) {
			to = d.full[d.full_count - 1]; // top it up: the lcores take whole magazines
		} else if (d.empty_count > 0) {
			to = d.empty[--d.empty_count];
			d.full[d.full_count++] = to;
		}
		if (to != nullptr) {
			std::memcpy(&to->pfn[to->size], m->pfn, n * sizeof(m->pfn[0]));
			to->size += n;
			add_depot(nd, n); // with the move, under the lock: verify() reads both
			m->size = 0;
		}
	}
	if (m->size == 0) {
		count_shared(false, true, n);
		return true;
	}
	free_to_tree(m); // the depot is full: the lcores have plenty
	count_shared(false, false, n);
	return false;
}

// Takes the tree lock: callers hold no depot lock (the lock order is
// docs/DESIGN.md, section 5: lcore slow locks, tree, depots).
void RangeCache::free_to_tree(Magazine *m, std::atomic<uint64_t> *in_flight) noexcept
{
	SpinGuard g(tree_.lock());
	for (uint64_t i = 0; i < m->size; ++i) tree_.free_locked(m->pfn[i]);
	if (in_flight != nullptr) in_flight->fetch_sub(m->size, std::memory_order_relaxed);
	m->size = 0;
}

// ---------------------------------------------------------------------------
// Flushing, from any thread

void RangeCache::request(Lcore &l) noexcept
{
	__atomic_store_n(&l.pub.flush_req, 1,
	                 IOVAM_HANDSHAKE_SC ? __ATOMIC_SEQ_CST : __ATOMIC_RELAXED);
}

void RangeCache::wait_idle(Lcore &l) noexcept
{
	while (__atomic_load_n(&l.pub.in_use,
	                       IOVAM_HANDSHAKE_SC ? __ATOMIC_SEQ_CST : __ATOMIC_ACQUIRE) != 0)
		__builtin_ia32_pause();
}

void RangeCache::release(Lcore &l) noexcept
{
	__atomic_store_n(&l.pub.flush_req, g_flush_req_idle, __ATOMIC_RELEASE);
}

uint64_t RangeCache::flush_one_quiesced(Lcore &l) noexcept
{
	uint64_t n = 0;
	for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
		n += l.pub.loaded[k]->size + l.prev[k]->size;
		free_to_tree(l.pub.loaded[k]);
		free_to_tree(l.prev[k]);
	}
	bump(l.cached_adjust, 0 - n);
	return n;
}

void RangeCache::quiesce_all() noexcept
{
	for (uint32_t c = 0; c < n_caches_; ++c) {
		lcores_[c].slow_lock.lock(); // index order: flushers never deadlock
		request(lcores_[c]);
	}
	heavy_barrier();
	for (uint32_t c = 0; c < n_caches_; ++c) wait_idle(lcores_[c]);
}

void RangeCache::resume_all() noexcept
{
	for (uint32_t c = n_caches_; c-- > 0;) {
		release(lcores_[c]);
		lcores_[c].slow_lock.unlock();
	}
}

uint64_t RangeCache::flush(uint32_t c) noexcept
{
	uint64_t n = 0;
	if (c != IOVAM_CACHE_NONE) {
		Lcore &l = lcores_[c];
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
	for_each_node([&](uint32_t, NodeDepots &nd) {
		for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k)
			while (drain_one(nd, k, 0, &n)) {}
	});
	return n;
}

// Give one full magazine of depot d back to the tree if it holds more than
// `keep`. The magazine is "in flight" between the two locked sections, so
// verify() can account for it; the tree lock is never taken under d.lock.
bool RangeCache::drain_one(NodeDepots &nd, uint32_t cls, uint32_t keep, uint64_t *n) noexcept
{
	Depot &d = nd.cls[cls];
	Magazine *m;
	{
		SpinGuard g(d.lock);
		if (d.full_count <= keep) return false;
		m = d.full[--d.full_count];
		++d.in_flight;
		in_flight_ranges_.fetch_add(m->size, std::memory_order_relaxed);
		add_depot(nd, 0 - m->size);
	}
	*n += m->size;
	free_to_tree(m, &in_flight_ranges_);
	SpinGuard g(d.lock);
	d.empty[d.empty_count++] = m;
	--d.in_flight;
	return true;
}

void RangeCache::trim_depots() noexcept
{
	uint64_t n = 0;
	for_each_node([&](uint32_t, NodeDepots &nd) {
		for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k)
			while (drain_one(nd, k, kDepotKeep, &n)) {}
	});
}

// ---------------------------------------------------------------------------
// Statistics and verification

int RangeCache::depot_ranges(uint32_t node) const noexcept
{
	const NodeDepots *nd = node_depots(node);
	return nd != nullptr ? static_cast<int>(nd->cached.load(std::memory_order_relaxed))
	                     : -ENOENT;
}

uint64_t RangeCache::cached_ranges() const noexcept
{
	uint64_t n = 0;
	for_each_node([&](uint32_t, const NodeDepots &nd) {
		n += nd.cached.load(std::memory_order_relaxed);
	});
	for (uint32_t c = 0; c < n_caches_; ++c) n += lcores_[c].cached();
	return n;
}

void RangeCache::count_shared(bool alloc, bool hit, uint64_t by) noexcept
{
	auto &ctr = hit ? shared_hits_[alloc ? 0 : 1] : shared_misses_[alloc ? 0 : 1];
	ctr.fetch_add(by,
	              std::memory_order_relaxed); // the shared path is not the per-lcore fast path
}

int RangeCache::stats_checked(uint32_t c, iovam_cache_stats *st) const noexcept
{
	if (st == nullptr || !cache_id_ok(c)) return -EINVAL;
	if (c == IOVAM_CACHE_NONE) {
		st->alloc_hits = shared_hits_[0].load(std::memory_order_relaxed);
		st->alloc_misses = shared_misses_[0].load(std::memory_order_relaxed);
		st->free_hits = shared_hits_[1].load(std::memory_order_relaxed);
		st->free_misses = shared_misses_[1].load(std::memory_order_relaxed);
		st->cached_ranges = 0;
		for_each_node([&](uint32_t, const NodeDepots &nd) {
			st->cached_ranges += nd.cached.load(std::memory_order_relaxed);
		});
		return 0;
	}
	const Lcore &l = lcores_[c];
	st->alloc_hits = l.hits(true);
	st->alloc_misses = l.alloc_misses.load(std::memory_order_relaxed);
	st->free_hits = l.hits(false);
	st->free_misses = l.free_misses.load(std::memory_order_relaxed);
	st->cached_ranges = l.cached();
	return 0;
}

const char *RangeCache::verify_locked(const GapTree &tree, Segment pending) const noexcept
{
	IOVAM_ASSERT_HELD(tree_.lock());
	IOVAM_ASSERT_HELD(batch_lock_);
	// Every depot at once (a trim may run on any of them meanwhile), under the
	// tree lock (docs/DESIGN.md, section 5). Nothing takes the tree lock while
	// holding a depot lock. No node's depots appear meanwhile: place() waits
	// for the quiesced caches' slow locks before it publishes them.
	lock_all_depots();
	const char *err = verify_magazines_locked(tree, pending);
	if (err == nullptr) err = verify_live_map_locked(tree, pending);
	unlock_all_depots();
	return err;
}

// In node order, then class order.
void RangeCache::lock_all_depots() const noexcept
{
	for_each_node([](uint32_t, NodeDepots &nd) {
		for (Depot &d : nd.cls) d.lock.lock();
	});
}

void RangeCache::unlock_all_depots() const noexcept
{
	for_each_node([](uint32_t, NodeDepots &nd) {
		for (Depot &d : nd.cls) d.lock.unlock();
	});
}

// With the caches quiesced (verify_magazines_locked() found every cached
// range tracked, distinct, with a clear byte): every tracked ALLOCATED
// range's byte is its class + 1 (with a caller) or 0, the zeros are exactly
// the cached, batched and in-flight ranges, and (maps up to 64 Ki pages,
// scanned: verify runs after every test op) no byte is set anywhere else.
const char *RangeCache::verify_live_map_locked(const GapTree &tree, Segment pending) const noexcept
{
	if (!checked()) return nullptr;
	uint64_t live = 0, idle = 0, other = 0;
	bool pending_marked = false;
	tree.for_each([&](const Segment &seg) {
		const uint64_t size = seg.pfn_hi - seg.pfn_lo + 1;
		if (seg.tag != Tag::kAllocated || !tracked(seg.pfn_lo, size)) return;
		const uint8_t b = __atomic_load_n(live_.at(seg.pfn_lo), __ATOMIC_RELAXED);
		if (seg.pfn_lo == pending.pfn_lo && seg.pfn_hi == pending.pfn_hi) {
			pending_marked = b != 0; // free: neither live nor idle in a cache
			return;
		}
		if (b == 0)
			++idle;
		else if (b == std::countr_zero(size) + 1)
			++live;
		else
			++other;
	});
	if (other != 0) return "live map: a range's byte holds another class";
	if (pending_marked) return "live map: the pending free is marked live";
	// Ranges in return batches are idle too (verify() holds batch_lock_), and
	// so are those a depot trim has taken out and not freed yet.
	if (idle != cached_ranges() + in_flight_ranges_.load(std::memory_order_relaxed) +
	                    batched_ranges_.load(std::memory_order_relaxed))
		return "live map: an ALLOCATED range is neither live nor cached";
	if (live_.pages() <= (uint64_t{1} << 16)) {
		const uint8_t *b = live_.bytes();
		uint64_t set = 0;
		for (uint64_t i = 0; i < live_.map_bytes(); ++i) set += b[i] != 0;
		if (set != live) return "live map: a byte is set outside a live range";
	}
	return nullptr;
}

const char *RangeCache::verify_magazines_locked(const GapTree &tree, Segment pending) const noexcept
{
	uint64_t total = cached_ranges();
	if (total == 0) return nullptr;
	auto *seen = static_cast<uint64_t *>(std::malloc(total * sizeof(uint64_t)));
	if (seen == nullptr) return "verify: out of memory";
	uint64_t n = 0;
	const char *err = nullptr;
	auto check = [&](const Magazine *m, uint32_t cls) {
		for (uint64_t i = 0; i < m->size && err == nullptr; ++i) {
			uint64_t pfn = m->pfn[i];
			if (pfn > tree.max_pfn()) {
				err = "cached range outside the domain";
				break;
			}
			Segment s = tree.lookup(pfn);
			if (s.tag != Tag::kAllocated || s.pfn_lo != pfn ||
			    s.pfn_hi - s.pfn_lo + 1 != (1ULL << cls))
				err = "cached range is not an ALLOCATED range of its class";
			else if (pending.pfn_lo <= pending.pfn_hi && pfn == pending.pfn_lo)
				err = "cached range is the domain's pending free";
			else if (tracked(pfn, 1ULL << cls) &&
			         __atomic_load_n(live_.at(pfn), __ATOMIC_RELAXED) != 0)
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
		for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
			check(lcores_[c].pub.loaded[k], k);
			check(lcores_[c].prev[k], k);
			per_lcore += lcores_[c].pub.loaded[k]->size + lcores_[c].prev[k]->size;
		}
		if (err == nullptr && per_lcore != lcores_[c].cached())
			err = "lcore cached count differs from its magazines";
	}
	for_each_node([&](uint32_t, const NodeDepots &nd) {
		uint64_t in_depots = 0;
		for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES && err == nullptr; ++k) {
			const Depot &d = nd.cls[k];
			if (d.full_count + d.empty_count + d.in_flight != kDepotMax)
				err = "depot lost a magazine";
			for (uint32_t i = 0; i < d.full_count; ++i) {
				check(d.full[i], k);
				in_depots += d.full[i]->size;
			}
		}
		if (err == nullptr && in_depots != nd.cached.load(std::memory_order_relaxed))
			err = "a node's depot count differs from its magazines";
	});
	if (err == nullptr && n != total) err = "cached_ranges differs from the magazines";
	if (err == nullptr) {
		std::sort(seen, seen + n);
		if (std::adjacent_find(seen, seen + n) != seen + n) err = "a range is cached twice";
	}
	std::free(seen);
	return err;
}

} // namespace iovam::detail
