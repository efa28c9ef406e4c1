// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_TREE_BACKEND_H
#define IOVAM_TREE_BACKEND_H

#include <cstdint>

#include "spin_lock.h"

namespace iovam::detail
{

// Every pfn of a domain is below this (iovam.h: end_pfn < 2^63), so a request
// for more pages cannot fit and rounding it up cannot overflow.
inline constexpr uint64_t kMaxPfnExclusive = uint64_t{1} << 63;

// What the range caches (range_cache.h) need from the tree below them, and
// nothing more: the domain (domain.h) implements it. The caches own the
// fast-path ladder (validation, rounding, which sizes are cached, the
// magazines and depots, flush-and-retry); they reach the tree only through
// these calls, all on their slow paths (a virtual call is noise there).
// docs/DESIGN.md, section 1 draws the layers; section 5 the locks.
class TreeBackend
{
public:
	// A size-aligned range of `size` pages at or below limit_pfn, as
	// iovam_alloc(size, limit_pfn, true): the node pool is refilled outside the
	// tree lock, and the range is marked live (RangeCache::mark_live) before
	// the lock is released. 0, -ENOMEM or -EAGAIN. Takes the tree lock.
	virtual int alloc(uint64_t size, uint64_t limit_pfn, uint64_t *pfn_lo) noexcept = 0;

	// The tree lock; every call below requires it.
	virtual SpinLock &lock() noexcept = 0;
	// 0 when [pfn_lo, pfn_lo + size) is one ALLOCATED range; else why not:
	// -EPERM RESERVED, -ENOENT free, DEFERRED or held, -EINVAL another extent.
	virtual int lookup_locked(uint64_t pfn_lo, uint64_t size) const noexcept = 0;
	// Free the ALLOCATED range at pfn_lo (whatever its live byte says: the
	// caller accounted for it). Cost: one O(log n) erase, no node needed.
	virtual void free_locked(uint64_t pfn_lo) noexcept = 0;
	// An all-or-nothing bulk free holds each range it has checked, so that a
	// repeat of it in the same bulk looks freed to lookup_locked(); then it
	// frees them all (free_held_locked) or, on a bad entry, releases them
	// (hold_locked(.., false)). A re-tag in place: no node, cannot fail.
	virtual void hold_locked(uint64_t pfn_lo, bool held) noexcept = 0;
	virtual void free_held_locked(uint64_t pfn_lo) noexcept = 0;
	// Whether the tree is past the caches' reach (GapTree::kHintMinHeight
	// levels), so that asking ahead for what a run of frees reads pays.
	virtual bool prefetch_pays_locked() const noexcept = 0;
	// Before the i-th of a run of frees of pfn_lo[0..n) in order
	// (free_locked() or free_held_locked()): ask ahead for what the later
	// ones read, so that their cache misses overlap. Hints only.
	virtual void prefetch_frees_locked(const uint64_t *pfn_lo, uint32_t n,
	                                   uint32_t i) const noexcept = 0;

protected:
	~TreeBackend() = default;
};

} // namespace iovam::detail

#endif // IOVAM_TREE_BACKEND_H
