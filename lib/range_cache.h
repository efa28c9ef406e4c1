// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_RANGE_CACHE_H
#define IOVAM_RANGE_CACHE_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "cache_placement.h"
#include "gap_tree.h"
#include "iovam.h"
#include "live_map.h"
#include "spin_lock.h"
#include "tree_backend.h"

namespace iovam::detail
{

// Per-lcore range caches in front of the gap tree: Bonwick and Adams,
// "Magazines and Vmem" (USENIX 2001), as the kernel's iova_rcache does it.
//
//   lcore c:  loaded[k] | prev[k]     one pair per size class k (2^k pages)
//                  \       /           no lock, no atomic read-modify-write
//   depot[node][k]: full magazines    one set per NUMA node, each its own
//                    |                 short lock, bounded
//                    |                 (own node first, then a copy from
//                    |                 another node's, then the tree)
//   gap tree (TreeBackend)            misses, overflow, trims, flushes
//
// RangeCache owns the whole fast-path ladder: the argument checks, the
// rounding to a size class, which ranges are cached (the cached window, the
// checked mode's live map), the magazines and depots, and the flush-and-retry
// after -ENOMEM. The inline hit is in iovam.h; the *_fast_slow functions
// below are everything else. It reaches the tree only through TreeBackend
// (tree_backend.h).
//
// A cached range stays ALLOCATED in the tree: the cache only decides who may
// hand it out next. All magazines are allocated when the domain is created
// (docs/DESIGN.md, L7: all-or-nothing, so the fast path has no NULL checks): every lcore
// owns two per class, and each depot owns kDepotMax spares that it trades
// against full ones, so no path ever needs a new magazine.
//
// Flushing another lcore's cache (iovam_cache_flush(IOVAM_CACHE_NONE), the
// retry after -ENOMEM, verify) runs beside its owner, yet the owner's fast
// path may not pay for an atomic RMW or a fence. We use an asymmetric
// Dekker handshake: the owner marks itself in_use with a plain store and then
// reads flush_req; the flusher sets flush_req, issues membarrier(2)
// (PRIVATE_EXPEDITED: a full barrier on every running thread of the process),
// then waits for in_use == 0. Either the owner sees the request and takes the
// cache's slow lock, or the flusher sees the owner and waits for it. Without
// membarrier(2) (before Linux 4.14) every lcore takes the locked slow path.
class RangeCache
{
public:
	// The magazine geometry is iovam.h's (IOVAM_CACHE_CLASSES size classes of
	// 1 .. 32 pages, IOVAM_MAG_SIZE pfns a magazine): the inline fast path
	// reads the same structures.
	using Magazine = iovam_magazine;
	static_assert(sizeof(Magazine) == 1024,
	              "a magazine is 1 KiB, as the kernel's IOVA_MAG_SIZE");
	// Full magazines per depot (kernel MAX_GLOBAL_MAGS), and what
	// iovam_maintain() trims back to.
	static constexpr uint32_t kDepotMax = 32;
	static constexpr uint32_t kDepotKeep = 8;

	struct alignas(IOVAM_LCORE_STRIDE) Lcore {
		// in_use (owner-written), flush_req (flusher-written), loaded[], and the
		// owner's hit counters: accessed with __atomic builtins on both sides.
		iovam_lcore_fast pub{};
		Magazine *prev[IOVAM_CACHE_CLASSES];
		// Counters: one writer each (the owner, or a flusher while the owner is
		// quiesced), load + store. alloc_hits counts ranges popped from these
		// magazines, free_hits ranges pushed; cached_adjust the slow paths'
		// transfers (depot, tree), so that the fast path keeps one counter:
		// cached = free_hits - alloc_hits + cached_adjust.
		std::atomic<uint64_t> alloc_misses{0}, free_misses{0}, cached_adjust{0};
		// Taken by the owner only when a flush is pending; by flushers always.
		SpinLock slow_lock;
		// The NUMA node whose depots this cache exchanges with first: its
		// iovam_cache_set_node() node, 0 when never placed. Written by place()
		// while the owner does not run; read by the owner's slow path.
		uint32_t node = 0;

		uint64_t hits(bool alloc) const noexcept
		{
			return __atomic_load_n(alloc ? &pub.alloc_hits : &pub.free_hits,
			                       __ATOMIC_RELAXED);
		}
		uint64_t cached() const noexcept
		{
			return hits(false) - hits(true) +
			       cached_adjust.load(std::memory_order_relaxed);
		}
	};
	static_assert(sizeof(Lcore) == IOVAM_LCORE_STRIDE, "the inline fast path strides by 256");

	struct alignas(64) Depot {
		SpinLock lock;
		uint32_t full_count = 0;
		uint32_t empty_count = 0;
		uint32_t in_flight = 0; // taken out by a trim or flush, on its way to the tree
		Magazine *full[kDepotMax];
		Magazine *empty[kDepotMax];
	};

	// The depots of one NUMA node, one per class, and the ranges they hold.
	// Node 0's are in the domain's block (made at creation: a domain nobody
	// places has these only); another node's come with the first cache placed
	// on it, from that cache's allocator on that node, magazines included, so
	// its magazines never leave the node: a cache takes another node's ranges
	// by copying them into its own magazine.
	struct NodeDepots {
		Depot cls[IOVAM_CACHE_CLASSES];
		alignas(64) std::atomic<uint64_t> cached{0}; // written under a class lock
	};
	static_assert(std::is_trivially_destructible_v<NodeDepots>, "freed as raw memory");

	// nullptr on ENOMEM; every magazine and the live map exist on success.
	// Fills *view, the inline fast path's read-only view (iovam.h), which must
	// outlive the cache (it is the domain handle's head).
	static std::unique_ptr<RangeCache> create(TreeBackend &tree, const iovam_domain_conf &conf,
	                                          iovam_fast_view *view) noexcept;
	~RangeCache();

	uint32_t n_caches() const noexcept { return n_caches_; }

	// --- the fast path's out-of-line halves (iovam.h): same contracts --------
	// A single call is the bulk call with n = 1: one ladder, one set of checks.
	int alloc_fast_slow(uint32_t c, uint64_t npages, uint64_t limit_pfn,
	                    uint64_t *pfn_lo) noexcept
	{
		return alloc_fast_bulk_slow(c, npages, limit_pfn, pfn_lo, 1);
	}
	int free_fast_slow(uint32_t c, uint64_t pfn_lo, uint64_t npages) noexcept
	{
		return free_fast_bulk_slow(c, &pfn_lo, 1, npages);
	}
	[[gnu::noinline, gnu::cold]] int alloc_fast_bulk_slow(uint32_t c, uint64_t npages,
	                                                      uint64_t limit_pfn, uint64_t *pfn_lo,
	                                                      uint32_t n) noexcept;
	[[gnu::noinline, gnu::cold]] int free_fast_bulk_slow(uint32_t c, const uint64_t *pfn_lo,
	                                                     uint32_t n, uint64_t npages) noexcept;
	// iovam_cache_flush() and iovam_cache_stats_get(): -EINVAL on a bad id.
	int flush_checked(uint32_t c) noexcept;
	int stats_checked(uint32_t c, iovam_cache_stats *st) const noexcept;

	// --- the checked mode's live map (live_map.h) -----------------------------
	bool checked() const noexcept { return view_->live != nullptr; }
	// Switch modes; the domain has checked that no range is allocated.
	void set_checked(bool checked) noexcept;
	// A range's transitions (no-ops for ranges the map does not record):
	// mark_live() when it goes to a caller; take_live() is a free's
	// check-and-clear, false when the byte does not say "live, this size".
	// A range's owner is its byte's only writer: no lock, no RMW.
	void mark_live(uint64_t pfn_lo, uint64_t size) noexcept;
	bool take_live(uint64_t pfn_lo, uint64_t size) noexcept;
	// A free's check-and-clear by the byte alone: the size of the live range
	// that starts at pfn_lo, its byte cleared; 0 if the byte does not say one
	// does (unchecked, outside the map, not its first page, cached, free...).
	// A set byte is exact: only mark_live() sets one, at the first page of an
	// ALLOCATED range of that class, and a free or a fast free clears it
	// before the range goes anywhere (verify_live_map_locked() checks both).
	uint64_t take_live_at(uint64_t pfn_lo) noexcept;
	// A free's hint, before its tree lookup: the byte take_live() will read if
	// pfn is its range's first page (usually). On a large domain that byte is
	// a cache miss of its own; requested early, it overlaps the descent's.
	// Always inlined: GCC 12 at -O2 (the default debugoptimized build) finds
	// an out-of-line function whose only effect is a prefetch pure, and drops
	// every call to it.
	[[gnu::always_inline]] void prefetch_live(uint64_t pfn) const noexcept
	{
		if (checked() && live_.covers(pfn)) __builtin_prefetch(live_.at(pfn), 1);
	}
	// Whether ALLOCATED [pfn_lo, pfn_hi] may sit in a cache: checked, exactly
	// when its live byte is clear; unchecked, whenever it has a cacheable
	// shape (iovam_reserve() flushes then). Requires the tree lock.
	bool may_hold_locked(uint64_t pfn_lo, uint64_t pfn_hi) const noexcept;

	// --- return batches (return_batch.h) --------------------------------------
	// A batch takes a range (npages <= IOVAM_CACHE_MAX_PAGES) from its caller,
	// as iovam_free_fast() would: 0 when the batch may hold it (checked: its
	// live byte was "live, this size" and is now clear; the range counts as
	// batched until batch_released()), 1 when the caches never hold it
	// (outside the cached window: free it to the tree), or the errno
	// iovam_free_fast() answers, with nothing changed. Requires batch_lock().
	int take_for_batch(uint64_t pfn_lo, uint64_t npages) noexcept;
	// Held by a return batch's add and flush, and by verify(): a batch's
	// transitions (live byte, batched count, depot) are atomic to verify().
	SpinLock &batch_lock() noexcept { return batch_lock_; }
	void batch_released(uint64_t n) noexcept
	{
		batched_ranges_.fetch_sub(n, std::memory_order_relaxed);
	}
	// Give the m->size ranges of class cls in m to the depot, appended to its
	// top full magazine if they fit there, else copied into an empty one; if
	// the depot has no empty magazine left, to the tree. Empties m (the
	// caller's own memory: no magazine changes hands). Returns true if they
	// went to the depot. Cost: the depot lock and a copy of up to 1 KiB; the
	// tree lock and m->size frees when the depot is full.
	// The depot is node `node`'s (node 0's when no cache was placed there).
	bool put_to_depot(uint32_t node, uint32_t cls, Magazine *m) noexcept;

	// --- housekeeping ---------------------------------------------------------
	// Return cache c's ranges (every cache's and the depots' for
	// IOVAM_CACHE_NONE) to the tree. Returns how many. Takes no tree lock on
	// entry: call it holding none (the order is docs/DESIGN.md, section 5).
	uint64_t flush(uint32_t c) noexcept;
	// Give depot magazines above kDepotKeep back to the tree.
	void trim_depots() noexcept;
	uint64_t cached_ranges() const noexcept;

	// iovam_cache_set_node() (cache_placement.cc): cache c's own magazines
	// replaced by a block allocated on `node` (0 <= node < IOVAM_NUMA_MAX_NODES),
	// and the node's depots made on it if they do not exist. 0, -EBUSY,
	// -ENOMEM, nothing changed on error. Calls are serialized.
	int place(uint32_t c, int node, const iovam_cache_mem *mem) noexcept;
	// Ranges in node's depots; -ENOENT when the node has none.
	int depot_ranges(uint32_t node) const noexcept;
	int node_of(uint32_t c) const noexcept { return placement_.node_of(c); }

	// Stop every owner (take all slow locks, handshake), for verify; then the
	// caller may read every magazine until resume().
	void quiesce_all() noexcept;
	void resume_all() noexcept;
	// With quiesce_all(), batch_lock() and the tree lock held: every cached
	// range is ALLOCATED in the tree with its class size, none is cached twice,
	// the counters match the magazines, and (checked) the live map agrees with
	// the tree: an ALLOCATED cacheable range is live, cached, batched or on
	// its way from a depot to the tree. nullptr, or what is broken.
	// `pending`: the domain's pending free (domain.h), ALLOCATED in the tree
	// but free to everyone (pfn_lo > pfn_hi: none); its live byte must be clear.
	const char *verify_locked(const GapTree &tree, Segment pending) const noexcept;

private:
	RangeCache(TreeBackend &tree, const iovam_domain_conf &conf, iovam_fast_view *view) noexcept
	        : tree_(tree), conf_(conf), n_caches_(conf.n_caches), view_(view)
	{
	}
	bool cache_id_ok(uint32_t c) const noexcept
	{
		return c < n_caches_ || c == IOVAM_CACHE_NONE;
	}
	bool tracked(uint64_t pfn_lo, uint64_t size) const noexcept;
	bool in_cached_window(uint64_t pfn_lo, uint64_t size) const noexcept;
	bool fast_free_in_bounds(uint64_t pfn_lo, uint64_t npages) const noexcept;
	void set_window(bool checked) noexcept;
	int free_lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept;
	int alloc_from_tree(uint64_t size, uint64_t limit_pfn, uint64_t *pfn_lo) noexcept;
	void give_back(const uint64_t *pfn_lo, uint32_t n, uint64_t size) noexcept;
	int hold_all_locked(const uint64_t *pfn_lo, uint32_t n, uint64_t npages,
	                    bool ahead) noexcept;
	void release_held_locked(const uint64_t *pfn_lo, uint32_t n, uint64_t size) noexcept;

	uint32_t pop_bulk(uint32_t c, uint32_t cls, uint64_t hi_pfn, uint64_t *pfn,
	                  uint32_t n) noexcept;
	bool push_bulk(uint32_t c, uint32_t cls, const uint64_t *pfn, uint32_t n) noexcept;
	bool pop_locked_or_handshaken(Lcore &l, uint32_t cls, uint64_t hi_pfn,
	                              uint64_t *pfn) noexcept;
	void push_locked_or_handshaken(Lcore &l, uint32_t cls, uint64_t pfn) noexcept;
	static bool mag_pop(Magazine *m, uint64_t last_ok_pfn, uint64_t *pfn) noexcept;
	// in_flight: ranges counted as on their way to the tree, uncounted under
	// the tree lock together with their frees (drain_one()).
	void free_to_tree(Magazine *m, std::atomic<uint64_t> *in_flight = nullptr) noexcept;
	bool drain_one(NodeDepots &nd, uint32_t cls, uint32_t keep, uint64_t *n) noexcept;
	bool take_from_other_node(Lcore &l, uint32_t cls) noexcept;
	void publish_node(uint32_t node, void *block) noexcept;
	// Node k's depots, nullptr when no cache was placed on k (k > 0).
	NodeDepots *node_depots(uint32_t k) const noexcept
	{
		return nodes_[k].load(std::memory_order_acquire);
	}
	NodeDepots &depots_for(uint32_t k) const noexcept
	{
		NodeDepots *nd = node_depots(k);
		return nd != nullptr ? *nd : *nodes_[0].load(std::memory_order_relaxed);
	}
	// Every node's depots, in node order; f(node, depots).
	template <typename F>
	void for_each_node(F &&f) const noexcept
	{
		const uint32_t n = n_nodes_.load(std::memory_order_acquire);
		for (uint32_t k = 0; k < n; ++k)
			if (NodeDepots *nd = node_depots(k)) f(k, *nd);
	}
	void lock_all_depots() const noexcept;
	void unlock_all_depots() const noexcept;
	uint64_t flush_one_quiesced(Lcore &l) noexcept;
	const char *verify_magazines_locked(const GapTree &tree, Segment pending) const noexcept;
	const char *verify_live_map_locked(const GapTree &tree, Segment pending) const noexcept;
	void count_shared(bool alloc, bool hit, uint64_t by = 1) noexcept;
	void request(Lcore &l) noexcept;
	static void release(Lcore &l) noexcept;
	static void wait_idle(Lcore &l) noexcept;
	static inline bool enter(Lcore &l) noexcept;
	static inline void leave(Lcore &l) noexcept;
	// Run step() as the owner of l's magazines: inside the handshake, or under
	// l's slow lock when a flusher asked (it drains under that lock). Returns
	// what step() returns.
	template <typename Step>
	static auto as_owner(Lcore &l, Step &&step) noexcept -> decltype(step());
	// A counter with one writer (the lcore's owner, or a flusher while the owner
	// is quiesced): load + store, no RMW.
	static void bump(std::atomic<uint64_t> &ctr, uint64_t by = 1) noexcept
	{
		ctr.store(ctr.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
	}
	static void bump(uint64_t &ctr, uint64_t by = 1) noexcept { iovam_count_n_(&ctr, by); }
	// A node's depot count has many writers, all off the per-lcore fast path.
	static void add_depot(NodeDepots &nd, uint64_t by) noexcept
	{
		nd.cached.fetch_add(by, std::memory_order_relaxed);
	}

	TreeBackend &tree_;
	const iovam_domain_conf conf_;
	const uint32_t n_caches_;
	iovam_fast_view *const view_;
	// Largest npages free_fast may cache: 32, less in a window under 32 pages
	// (no range of a larger class can exist there).
	uint64_t fast_free_bound_ = 0;
	// Checked mode's live map (view_->live points into it when on).
	LiveMap live_;
	Lcore *lcores_ = nullptr;        // n_caches_ of them
	void *magazine_block_ = nullptr; // every magazine but other nodes', one allocation
	NodeDepots home_;                // node 0's
	// Per node its depots (nodes_[0] = &home_), and 1 + the highest node that
	// has them. Set by place() (under place_lock_), read anywhere; never
	// unset before destruction.
	std::atomic<NodeDepots *> nodes_[IOVAM_NUMA_MAX_NODES]{};
	std::atomic<uint32_t> n_nodes_{1};
	SpinLock place_lock_;
	// Ranges of magazines a trim or flush took out of a depot and has not
	// freed yet: ALLOCATED in the tree, in no cache (verify_live_map_locked()).
	std::atomic<uint64_t> in_flight_ranges_{0};
	// Ranges held by return batches: neither live nor cached. Changed under
	// batch_lock_, which verify() holds so that it sees them exactly.
	std::atomic<uint64_t> batched_ranges_{0};
	SpinLock batch_lock_;
	std::atomic<uint64_t> shared_hits_[2]{}, shared_misses_[2]{}; // [0] alloc, [1] free
	// Node-placed magazine blocks: destroyed after the body of ~RangeCache.
	CachePlacement placement_;
};

// Test hook (iovam_test_fail_create_alloc): true when the allocation about to
// be made while creating a domain is the one chosen to fail.
bool create_alloc_fails() noexcept;

// The flush_req value that means "no flush": 0, or 1 (always take the slow,
// locked path) when membarrier(2) is unavailable.
extern uint32_t g_flush_req_idle;

#ifdef IOVAM_TSAN_
#define IOVAM_HANDSHAKE_SC 1
#else
#define IOVAM_HANDSHAKE_SC 0
#endif

inline bool RangeCache::enter(Lcore &l) noexcept
{
	return iovam_lcore_enter_(&l.pub) != 0;
}
inline void RangeCache::leave(Lcore &l) noexcept
{
	iovam_lcore_leave_(&l.pub);
}

inline bool RangeCache::mag_pop(Magazine *m, uint64_t last_ok_pfn, uint64_t *pfn) noexcept
{
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

} // namespace iovam::detail

#endif // IOVAM_RANGE_CACHE_H
