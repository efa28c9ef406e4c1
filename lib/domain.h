// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_DOMAIN_H
#define IOVAM_DOMAIN_H

#include <cstdint>
#include <atomic>
#include <memory>

#include "gap_tree.h"
#include "iovam.h"
#include "node_pool.h"
#include "range_cache.h"
#include "spin_lock.h"
#include "tree_backend.h"

namespace iovam::detail
{
class Domain;
} // namespace iovam::detail

// The C handle: the fast path's read-only view (iovam.h reads it inline),
// then the domain it belongs to.
struct iovam_domain {
	iovam_fast_view fast;
	iovam::detail::Domain *impl;
};

namespace iovam::detail
{

// An IOVA domain: the gap tree behind one lock, the counters and the 32-bit
// free-space knowledge it guards, the DEFERRED markers waiting for a drain,
// and in front the per-lcore range caches (range_cache.h), which own the fast
// path and reach the tree through the TreeBackend calls below.
//
// Error policy: no exceptions; every public function returns 0 / a count or a
// negative errno and changes nothing when it fails.
void fail_create_alloc(uint32_t nth) noexcept;

class Domain final : private TreeBackend
{
public:
	// NULL with *err = -EINVAL or -ENOMEM on failure; all-or-nothing.
	static Domain *create(const iovam_domain_conf &conf, int *err) noexcept;
	~Domain();
	Domain(const Domain &) = delete;
	Domain &operator=(const Domain &) = delete;

	int alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned,
	          uint64_t *pfn_lo) noexcept;
	int free(uint64_t pfn) noexcept;
	int free_deferred(uint64_t pfn) noexcept;
	int reserve(uint64_t pfn_lo, uint64_t pfn_hi) noexcept;
	int find(uint64_t pfn, uint64_t *pfn_lo, uint64_t *pfn_hi) noexcept;
	int maintain() noexcept;
	void stats(iovam_stats *st) noexcept;
	int verify() noexcept;
	const char *verify_error() const noexcept { return verify_error_; }
	void fail_node_alloc(uint32_t one_in, uint64_t seed) noexcept;
	// Allocations that took back the pending free (iovam_test.h).
	uint64_t pending_takes() noexcept;
	// The test hook iovam_test_prefetch_free(): no lock, the caller is the
	// domain's only user. Stage 0 asks for pfn's live byte and hints' slots,
	// stage 1 reads the slots and asks for the nodes they name.
	void prefetch_free_unlocked(uint64_t pfn, int stage) const noexcept;
	// Checked (the default) or unchecked fast frees; see live_map.h. Only
	// while no range is allocated: -EBUSY otherwise (a range allocated in one
	// mode would be misjudged in the other). Not concurrently with other calls.
	int set_checks(bool checked) noexcept;

	iovam_domain *handle() noexcept { return &handle_; }
	// The fast path (iovam_*_fast_slow, cache flush and stats, return batches).
	RangeCache &cache() noexcept { return *cache_; }
	static Domain *of(iovam_domain *h) noexcept { return h->impl; }
	const iovam_domain_conf &conf() const noexcept { return conf_; }

private:
	explicit Domain(const iovam_domain_conf &conf) noexcept;
	// TreeBackend: the caches' only way into the tree (tree_backend.h).
	int alloc(uint64_t size, uint64_t limit_pfn, uint64_t *pfn_lo) noexcept override
	{
		return alloc(size, limit_pfn, true, pfn_lo);
	}
	SpinLock &lock() noexcept override { return tree_lock_; }
	int lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept override;
	void free_locked(uint64_t pfn_lo) noexcept override;
	void hold_locked(uint64_t pfn_lo, bool held) noexcept override;
	void free_held_locked(uint64_t pfn_lo) noexcept override;
	bool prefetch_pays_locked() const noexcept override;
	void prefetch_frees_locked(const uint64_t *pfn_lo, uint32_t n,
	                           uint32_t i) const noexcept override;

	// Allocate npages aligned to align at or below hi_pfn and count it (the
	// estimate first: docs/DESIGN.md, L2, L3). Requires tree_lock_.
	int alloc_locked(uint64_t npages, uint64_t align, uint64_t hi_pfn,
	                 uint64_t *pfn_lo) noexcept;
	// The accounting of an erased ALLOCATED (or held) range. Requires tree_lock_.
	void count_freed_locked(const Segment &seg) noexcept;
	void refill_pool() noexcept;
	void trim_pool() noexcept;
	void trim_hints() noexcept;
	int drain_deferred() noexcept;
	int verify_quiesced() noexcept;
	void note_space_freed(uint64_t pfn_lo) noexcept;
	bool fails_32bit_estimate(uint64_t npages, uint64_t align, uint64_t hi_pfn) const noexcept;
	void remember_32bit_failure(uint64_t npages, uint64_t align, uint64_t hi_pfn) noexcept;
	int free_checked_locked(uint64_t pfn, Segment *seg) noexcept;
	// The pending free (below). Each requires tree_lock_.
	bool pending_holds(uint64_t pfn) const noexcept
	{
		return pfn >= pending_lo_ && pfn <= pending_hi_;
	}
	void flush_pending_locked() noexcept
	{
		if (pending_lo_ <= pending_hi_) flush_pending_slow();
	}
	void flush_pending_slow() noexcept;
	bool take_pending_locked(uint64_t npages, uint64_t align, uint64_t hi_pfn,
	                         uint64_t *pfn_lo) noexcept;

	iovam_domain handle_{};
	const iovam_domain_conf conf_;
	// Last pfn whose IOVA fits 32 bits; requests limited at or below it are
	// "32-bit requests" (kernel: dma_32bit_pfn - 1).
	const uint64_t dma32_last_pfn_;

	SpinLock tree_lock_;
	// --- everything below is guarded by tree_lock_ -------------------------
	NodePool pool_; // before tree_: the tree returns its nodes on destruction
	GapTree tree_;
	uint64_t live_ranges_ = 0;
	uint64_t live_pages_ = 0;
	// The pending free: the range the last free() released, counted free
	// (live_ranges_, live_pages_, its live byte, the 32-bit estimate) but
	// still ALLOCATED in the tree; empty when pending_lo_ > pending_hi_. The
	// next allocation that it answers exactly takes it back without touching
	// the tree (take_pending_locked()): a free and an allocation of the same
	// range, the life of a mapping, then cost neither an erase nor a carve.
	// Every other call that changes the tree first erases it
	// (flush_pending_locked()); the others treat it as free (find(),
	// lookup_locked(), verify()). So until then nothing has moved the tree's
	// finger off it, and its erase needs no descent (GapTree::erase_looked_up())
	// when the free looked it up; a free of a live cacheable range from its
	// first page knows it by its live byte and does not look (a random free
	// at 1M ranges: a descent with a cache miss or two, saved when the
	// allocation takes the range back).
	uint64_t pending_lo_ = 1;
	uint64_t pending_hi_ = 0;
	// The free found it in the tree (the finger is on it), not by its live
	// byte alone (RangeCache::take_live_at(): no tree lookup at all).
	bool pending_looked_up_ = false;
	uint64_t pending_takes_ = 0;
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
	const char *verify_error_ = nullptr;

	std::unique_ptr<RangeCache> cache_;
};

} // namespace iovam::detail

#endif // IOVAM_DOMAIN_H
