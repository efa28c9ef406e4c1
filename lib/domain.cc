// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "domain.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <new>

#include "range_cache.h"
#include "hot_path.h"

namespace iovam::detail
{

namespace
{

// Markers erased per lock hold in a drain: bounds the hold time seen by the
// datapath (each erase is one O(log n) descent, well under a microsecond).
constexpr uint32_t kDrainBatch = 64;

uint64_t dma32_last_pfn_for(uint64_t granule)
{
	uint64_t pages = (1ULL << 32) / granule;
	return pages == 0 ? 0 : pages - 1;
}

bool conf_valid(const iovam_domain_conf &c)
{
	return c.granule >= 4096 && std::has_single_bit(c.granule) && c.start_pfn >= 1 &&
	       c.end_pfn >= c.start_pfn && c.end_pfn < kMaxPfnExclusive && c.n_caches != UINT32_MAX;
}

} // namespace

Domain::Domain(const iovam_domain_conf &conf) noexcept
        : conf_(conf), dma32_last_pfn_(dma32_last_pfn_for(conf.granule)), tree_(pool_)
{
}

Domain::~Domain() = default;

namespace
{
std::atomic<uint32_t> g_create_fail_countdown{0};
} // namespace

bool create_alloc_fails() noexcept
{
	uint32_t n = g_create_fail_countdown.load(std::memory_order_relaxed);
	while (n != 0 && !g_create_fail_countdown.compare_exchange_weak(n, n - 1)) {}
	return n == 1;
}

void fail_create_alloc(uint32_t nth) noexcept
{
	g_create_fail_countdown.store(nth);
}

Domain *Domain::create(const iovam_domain_conf &conf, int *err) noexcept
{
	if (!conf_valid(conf)) {
		*err = -EINVAL;
		return nullptr;
	}
	auto *d = create_alloc_fails() ? nullptr : new (std::nothrow) Domain(conf);
	if (d == nullptr) {
		*err = -ENOMEM;
		return nullptr;
	}
	if (!create_alloc_fails()) d->refill_pool(); // else: as if no node could be had
	if (d->tree_.init(conf.end_pfn) != 0) {
		delete d;
		*err = -ENOMEM;
		return nullptr;
	}
	d->cache_ = RangeCache::create(*d, conf, &d->handle_.fast);
	if (!d->cache_) {
		delete d;
		*err = -ENOMEM;
		return nullptr;
	}
	d->handle_.impl = d;
	*err = 0;
	return d;
}

int Domain::set_checks(bool checked) noexcept
{
	if (checked == cache_->checked()) return 0;
	{
		SpinGuard g(tree_lock_);
		if (live_ranges_ != 0 || deferred_ranges_ != 0) return -EBUSY;
		flush_pending_locked(); // a range of the other mode is no longer in the tree
	}
	cache_->set_checked(checked);
	return 0;
}

// ---------------------------------------------------------------------------
// Node pool upkeep, outside the lock

void Domain::refill_pool() noexcept
{
	uint32_t have = pool_.free_nodes();
	if (have >= NodePool::kLowWater) return;
	NodePool::Chain chain = pool_.alloc_chain(NodePool::kRefillTo - have);
	SpinGuard g(tree_lock_);
	pool_.splice(chain);
}

void Domain::trim_pool() noexcept
{
	if (pool_.free_nodes() <= NodePool::kHighWater) return;
	NodePool::Chain excess;
	{
		SpinGuard g(tree_lock_);
		excess = pool_.detach_excess(NodePool::kRefillTo);
	}
	pool_.release(excess);
}

void Domain::fail_node_alloc(uint32_t one_in, uint64_t seed) noexcept
{
	SpinGuard g(tree_lock_);
	pool_.fail_injection(one_in, seed);
}

uint64_t Domain::pending_takes() noexcept
{
	SpinGuard g(tree_lock_);
	return pending_takes_;
}

void Domain::prefetch_free_unlocked(uint64_t pfn, int stage) const noexcept
{
	if (stage == 0) {
		cache_->prefetch_live(pfn);
		tree_.prefetch_hints(pfn);
	} else {
		tree_.prefetch_path(pfn);
	}
}

// ---------------------------------------------------------------------------
// The 32-bit estimate

bool Domain::fails_32bit_estimate(uint64_t npages, uint64_t align, uint64_t hi_pfn) const noexcept
{
	if (hi_pfn > dma32_last_pfn_) return false;
	// A smaller window and a stricter alignment can only fit less.
	return npages >= fail32_npages_ || (align > 1 && npages >= fail32_aligned_npages_);
}

void Domain::remember_32bit_failure(uint64_t npages, uint64_t align, uint64_t hi_pfn) noexcept
{
	// Only a search that covered the whole 32-bit space says it is full.
	if (hi_pfn < dma32_last_pfn_ || dma32_last_pfn_ < conf_.start_pfn) return;
	uint64_t &est = align > 1 ? fail32_aligned_npages_ : fail32_npages_;
	est = std::min(est, npages);
}

void Domain::note_space_freed(uint64_t pfn_lo) noexcept
{
	if (pfn_lo <= dma32_last_pfn_) {
		fail32_npages_ = UINT64_MAX;
		fail32_aligned_npages_ = UINT64_MAX;
	}
}

// ---------------------------------------------------------------------------
// Tree operations

IOVAM_HOT int Domain::alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned,
                            uint64_t *pfn_lo) noexcept
{
	if (pfn_lo == nullptr || npages == 0 || limit_pfn < conf_.start_pfn) return -EINVAL;
	if (npages > kMaxPfnExclusive) return -ENOMEM;
	uint64_t align = size_aligned ? std::bit_ceil(npages) : 1;
	uint64_t hi_pfn = std::min(limit_pfn, conf_.end_pfn);
	if (pool_.needs_refill()) refill_pool();
	SpinGuard g(tree_lock_);
	int rc = 0;
	// One compare when there is none, or it is of another size (hi + 1 - lo == 0: none).
	if (pending_hi_ + 1 - pending_lo_ != npages ||
	    !take_pending_locked(npages, align, hi_pfn, pfn_lo)) {
		flush_pending_locked();
		rc = alloc_locked(npages, align, hi_pfn, pfn_lo);
	}
	// Under the lock, so that verify() never sees the range unmarked; the first
	// byte of a map page faults it in (once per 4096 pages of IOVA).
	if (rc == 0) cache_->mark_live(*pfn_lo, npages);
	return rc;
}

// Cost: one O(log n) descent for the hole, none when the tree's finger leaf
// is known to hold it (gap_tree.h, allocate()), and the carve on that path;
// no allocation (nodes come from the pool), no syscall.
[[gnu::always_inline]] inline int Domain::alloc_locked(uint64_t npages, uint64_t align,
                                                       uint64_t hi_pfn, uint64_t *pfn_lo) noexcept
{
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

// The range becomes the pending free: counted free at once, erased from the
// tree by the next operation unless the next allocation takes it back.
// Cost: a load and a store of the live byte when pfn is the first page of a
// live cacheable range (checked mode); else one O(log n) descent, none when
// the tree's finger leaf holds pfn. No erase here (the pending free before it,
// if any, is erased first). No allocation, no syscall.
IOVAM_HOT int Domain::free(uint64_t pfn) noexcept
{
	cache_->prefetch_live(pfn);
	SpinGuard g(tree_lock_);
	flush_pending_locked(); // one at a time, and a free of it again finds it FREE
	Segment seg;
	if (const uint64_t size = cache_->take_live_at(pfn); size != 0) {
		seg = Segment{pfn, pfn + size - 1, Tag::kAllocated};
		pending_looked_up_ = false;
	} else {
		if (int rc = free_checked_locked(pfn, &seg); rc != 0) return rc;
		pending_looked_up_ = true;
	}
	pending_lo_ = seg.pfn_lo;
	pending_hi_ = seg.pfn_hi;
	count_freed_locked(seg);
	return 0;
}

// The pending free's erase, deferred from free(): as that free would have done it.
IOVAM_HOT void Domain::flush_pending_slow() noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	// Nothing has changed the tree since that free's lookup, if it made one
	// (every call that would flushes first): the tree's finger is still on it.
	[[maybe_unused]] const Segment seg = pending_looked_up_
	                                             ? tree_.erase_looked_up(Tag::kAllocated)
	                                             : tree_.erase_if(pending_lo_, Tag::kAllocated);
	assert(seg.tag == Tag::kAllocated && seg.pfn_lo == pending_lo_ &&
	       seg.pfn_hi == pending_hi_);
	pending_lo_ = 1;
	pending_hi_ = 0;
}

// Whether the pending free is the exact answer to the request (npages aligned
// to align, from conf_.start_pfn to hi_pfn): then it is allocated again as it
// stands, ALLOCATED in the tree all along. It must be a fit as a whole, and
// the highest: every fit must be aligned to at least its size (one page, or
// size-aligned), so that each is the range itself or lies apart from it (an
// unaligned fit could straddle its end and a FREE neighbour, higher up), and
// the tree must know of no fit above it (GapTree::proven_no_fit_above()).
// Cost: a few compares and the request's finger's proof; no node is written.
IOVAM_HOT bool Domain::take_pending_locked(uint64_t npages, uint64_t align, uint64_t hi_pfn,
                                           uint64_t *pfn_lo) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	const uint64_t lo = pending_lo_, hi = pending_hi_;
	if (hi - lo + 1 != npages || align < npages || (lo & (align - 1)) != 0 || hi > hi_pfn ||
	    lo < conf_.start_pfn)
		return false;
	if (!tree_.proven_no_fit_above(npages, align, conf_.start_pfn, hi_pfn, lo)) return false;
	pending_lo_ = 1;
	pending_hi_ = 0;
	++pending_takes_;
	++live_ranges_;
	live_pages_ += npages;
	*pfn_lo = lo;
	return true;
}

// The caller's side of iovam_free()/iovam_free_deferred(): the ALLOCATED
// range containing pfn, which (checked mode) must not be sitting in a cache:
// a free_fast() already gave it back, and erasing it would let the tree and
// the cache both hand it out. Clears its live byte; *seg is the range.
[[gnu::always_inline]] inline int Domain::free_checked_locked(uint64_t pfn, Segment *seg) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	if (pfn > conf_.end_pfn) return -ENOENT;
	*seg = tree_.lookup_near(pfn); // leaves the finger for the erase that follows
	if (seg->tag == Tag::kReserved) return -EPERM;
	if (seg->tag != Tag::kAllocated) return -ENOENT;
	return cache_->take_live(seg->pfn_lo, seg->pfn_hi - seg->pfn_lo + 1) ? 0 : -ENOENT;
}

void Domain::count_freed_locked(const Segment &seg) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	--live_ranges_;
	live_pages_ -= seg.pfn_hi - seg.pfn_lo + 1;
	note_space_freed(seg.pfn_lo);
}

// Erasing needs no node in this tree (it merges segments and frees nodes), so
// a free always completes at once and never has to leave a DEFERRED marker;
// free_deferred() is the lazy path that does.
void Domain::free_locked(uint64_t pfn_lo) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	assert(!pending_holds(pfn_lo) && "lookup_locked() found it free");
	flush_pending_locked(); // the tree changes: its finger moves off the range
	Segment seg = tree_.erase_if(pfn_lo, Tag::kAllocated);
	assert(seg.tag == Tag::kAllocated && "only ALLOCATED ranges are freed");
	count_freed_locked(seg);
}

int Domain::lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	if (pending_holds(pfn_lo)) return -ENOENT; // free
	Segment seg = tree_.lookup(pfn_lo);
	if (seg.tag == Tag::kReserved) return -EPERM;
	if (seg.tag != Tag::kAllocated) return -ENOENT;
	if (seg.pfn_lo != pfn_lo || seg.pfn_hi - seg.pfn_lo + 1 != size) return -EINVAL;
	return 0;
}

// A held range is DEFERRED in place (no node, invisible to lookups) but still
// counted live: nothing outside the lock ever sees it (the bulk free that
// holds it frees or releases it before unlocking).
void Domain::hold_locked(uint64_t pfn_lo, bool held) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	assert(!pending_holds(pfn_lo) && "lookup_locked() found it free");
	flush_pending_locked(); // the tree changes: its finger moves off the range
	tree_.retag_occupied(pfn_lo, held ? Tag::kDeferred : Tag::kAllocated);
}

bool Domain::prefetch_pays_locked() const noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	return tree_.height() >= GapTree::kHintMinHeight;
}

// A software pipeline over a run of erases: the path hints' slots of the
// range kHintsAhead on, the nodes they name of the one kPathAhead on (its
// slots asked for kHintsAhead - kPathAhead erases before), then the caller's
// erase of this one, whose descent finds the bottom of its path in cache. At
// 1M live ranges each erase is otherwise a hint slot's and a leaf's cache
// miss one after the other (and two inner nodes' beside the leaf's). The
// distances are far enough that a memory latency (120-190 ns on the perf
// machine) passes meanwhile, an erase taking a hundred ns or more; 4/2, 12/4
// and 16/8 measured the same as 8/4.
void Domain::prefetch_frees_locked(const uint64_t *pfn_lo, uint32_t n, uint32_t i) const noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	constexpr uint32_t kHintsAhead = 8, kPathAhead = 4;
	if (i == 0) { // the pipeline fills
		for (uint32_t j = 0; j < std::min(n, kHintsAhead); ++j)
			tree_.prefetch_hints(pfn_lo[j]);
		for (uint32_t j = 0; j < std::min(n, kPathAhead); ++j)
			tree_.prefetch_path(pfn_lo[j]);
	}
	if (i + kHintsAhead < n) tree_.prefetch_hints(pfn_lo[i + kHintsAhead]);
	if (i + kPathAhead < n) tree_.prefetch_path(pfn_lo[i + kPathAhead]);
}

void Domain::free_held_locked(uint64_t pfn_lo) noexcept
{
	IOVAM_ASSERT_HELD(tree_lock_);
	assert(!pending_holds(pfn_lo) && "lookup_locked() found it free");
	flush_pending_locked(); // the tree changes: its finger moves off the range
	Segment seg = tree_.erase_if(pfn_lo, Tag::kDeferred);
	assert(seg.tag == Tag::kDeferred && seg.pfn_lo == pfn_lo);
	count_freed_locked(seg);
}

// The in-place store of docs/DESIGN.md, L1: re-tag the entry, touch no node. The range
// stays occupied for the allocator until maintain() erases the marker.
int Domain::free_deferred(uint64_t pfn) noexcept
{
	SpinGuard g(tree_lock_);
	flush_pending_locked();
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
int Domain::reserve(uint64_t pfn_lo, uint64_t pfn_hi) noexcept
{
	if (pfn_lo > pfn_hi || pfn_hi > conf_.end_pfn) return -EINVAL;
	if (pool_.needs_refill()) refill_pool();
	for (bool flushed = false;; flushed = true) {
		{
			SpinGuard g(tree_lock_);
			flush_pending_locked(); // the span is looked at as it is
			uint64_t merged_reserved = 0;
			bool busy = false, one_segment = false;
			for (uint64_t at = pfn_lo;;) {
				// The first lookup leaves the finger on the segment: the
				// common reserve, inside one segment, carves from there.
				Segment seg =
				        at == pfn_lo ? tree_.lookup_near(at) : tree_.lookup(at);
				if (seg.tag == Tag::kDeferred) return -EBUSY;
				if (seg.tag == Tag::kAllocated) {
					// A live range: -EBUSY at once, no flush (a failed call changes nothing).
					if (flushed ||
					    !cache_->may_hold_locked(seg.pfn_lo, seg.pfn_hi))
						return -EBUSY;
					busy = true;
				}
				if (seg.tag == Tag::kReserved) ++merged_reserved;
				if (seg.pfn_hi >= pfn_hi) {
					one_segment = at == pfn_lo;
					break;
				}
				at = seg.pfn_hi + 1;
			}
			if (!busy) {
				Segment merged;
				int rc = one_segment
				                 ? tree_.reserve_looked_up(pfn_lo, pfn_hi, &merged)
				                 : tree_.reserve(pfn_lo, pfn_hi, &merged);
				if (rc != 0) return rc;
				reserved_ranges_ = reserved_ranges_ - merged_reserved + 1;
				return 0;
			}
		}
		// Without the tree lock: a flush takes the lcore slow locks first.
		cache_->flush(IOVAM_CACHE_NONE);
	}
}

int Domain::find(uint64_t pfn, uint64_t *pfn_lo, uint64_t *pfn_hi) noexcept
{
	if (pfn_lo == nullptr || pfn_hi == nullptr) return -EINVAL;
	if (pfn > conf_.end_pfn) return -ENOENT;
	SpinGuard g(tree_lock_);
	if (pending_holds(pfn)) return -ENOENT; // free
	Segment seg = tree_.lookup(pfn);
	if (seg.tag != Tag::kAllocated && seg.tag != Tag::kReserved) return -ENOENT;
	*pfn_lo = seg.pfn_lo;
	*pfn_hi = seg.pfn_hi;
	return 0;
}

// ---------------------------------------------------------------------------
// Housekeeping

int Domain::drain_deferred() noexcept
{
	uint64_t erased = 0;
	for (;;) {
		SpinGuard g(tree_lock_);
		flush_pending_locked(); // maintenance leaves the tree as the frees left it
		for (uint32_t i = 0; i < kDrainBatch; ++i) {
			if (deferred_ranges_ == 0) {
				deferred_lo_ = UINT64_MAX;
				deferred_hi_ = 0;
				return static_cast<int>(std::min<uint64_t>(erased, INT_MAX));
			}
			std::optional<Segment> seg =
			        tree_.next_tagged(deferred_lo_, Tag::kDeferred);
			assert(seg && seg->pfn_hi <= deferred_hi_);
			tree_.erase(seg->pfn_lo);
			--deferred_ranges_;
			deferred_lo_ = seg->pfn_hi + 1;
			note_space_freed(seg->pfn_lo);
			++erased;
		}
	}
}

int Domain::maintain() noexcept
{
	refill_pool();
	int erased = drain_deferred();
	cache_->trim_depots();
	trim_pool();
	trim_hints();
	refill_pool();
	return erased;
}

// A tree that has shrunk below GapTree::kHintMinHeight reads its path hints
// no more until it grows back: their pages go back to the system.
void Domain::trim_hints() noexcept
{
	bool drop;
	{
		SpinGuard g(tree_lock_);
		drop = tree_.claim_idle_hints();
	}
	if (drop) tree_.drop_hints();
}

void Domain::stats(iovam_stats *st) noexcept
{
	const uint64_t hint_bytes = tree_.hint_bytes(); // a system call: not under the lock
	SpinGuard g(tree_lock_);
	st->live_ranges = live_ranges_;
	st->live_pages = live_pages_;
	st->reserved_ranges = reserved_ranges_;
	st->deferred_ranges = deferred_ranges_;
	st->cached_ranges = cache_->cached_ranges();
	st->tree_bytes = pool_.bytes() + hint_bytes;
	st->node_alloc_failures = pool_.failures();
}

int Domain::verify() noexcept
{
	// Every lcore cache quiesced (their slow locks), the return batches held
	// off, then the tree lock, then the depots: the order of docs/DESIGN.md,
	// section 5. So no live byte and no cache or batch count moves meanwhile.
	cache_->quiesce_all();
	int rc;
	{
		SpinGuard g(cache_->batch_lock());
		rc = verify_quiesced();
	}
	cache_->resume_all();
	return rc;
}

int Domain::verify_quiesced() noexcept
{
	SpinGuard g(tree_lock_);
	GapTree::Census c;
	const char *why = nullptr;
	auto fail = [this](const char *w) {
		verify_error_ = w;
		return -EFAULT;
	};
	if (!tree_.verify(&c, &why)) return fail(why);
	// The pending free is one ALLOCATED range of the tree, counted free.
	const Segment pending{pending_lo_, pending_hi_, Tag::kAllocated};
	const bool is_pending = pending_lo_ <= pending_hi_;
	if (is_pending) {
		const Segment seg = tree_.lookup(pending_lo_);
		if (seg.tag != Tag::kAllocated || seg.pfn_lo != pending_lo_ ||
		    seg.pfn_hi != pending_hi_)
			return fail("the pending free is not an ALLOCATED range of the tree");
	}
	const auto alloc = static_cast<int>(Tag::kAllocated);
	if (c.segments[alloc] != live_ranges_ + is_pending)
		return fail("live_ranges differs from the tree");
	if (c.pages[alloc] != live_pages_ + (is_pending ? pending_hi_ - pending_lo_ + 1 : 0))
		return fail("live_pages differs from the tree");
	if (c.segments[static_cast<int>(Tag::kReserved)] != reserved_ranges_)
		return fail("reserved_ranges differs from the tree");
	if (c.segments[static_cast<int>(Tag::kDeferred)] != deferred_ranges_)
		return fail("deferred_ranges differs from the tree");
	if (c.nodes + pool_.free_nodes() != pool_.total_nodes()) return fail("node accounting");
	if (deferred_ranges_ > 0) {
		std::optional<Segment> first = tree_.next_tagged(0, Tag::kDeferred);
		if (!first || first->pfn_lo < deferred_lo_)
			return fail("DEFERRED marker below deferred_lo");
	}
	// The estimate may only claim what is true: no fit of its size below 4 GiB.
	if (fail32_npages_ != UINT64_MAX &&
	    tree_.find_gap(fail32_npages_, 1, conf_.start_pfn, dma32_last_pfn_))
		return fail("32-bit estimate claims full but a hole fits");
	if (fail32_aligned_npages_ != UINT64_MAX &&
	    tree_.find_gap(fail32_aligned_npages_, std::bit_ceil(fail32_aligned_npages_),
	                   conf_.start_pfn, dma32_last_pfn_))
		return fail("32-bit aligned estimate claims full but a hole fits");
	if (const char *w =
	            cache_->verify_locked(tree_, is_pending ? pending : Segment{1, 0, Tag::kFree}))
		return fail(w);
	verify_error_ = nullptr;
	return 0;
}

} // namespace iovam::detail
