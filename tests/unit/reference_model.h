// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_TESTS_REFERENCE_MODEL_H
#define IOVAM_TESTS_REFERENCE_MODEL_H

// The simplest correct IOVA allocator: occupied ranges in a std::map, free
// space found by a linear walk. Tests mirror every domain operation on it:
// the model test (tests/unit/model_test.cc), the fuzz target
// (tests/fuzz/fuzz_api.cc) and the stress test's final state
// (tests/stress/stress_test.cc). It also knows which of its ALLOCATED ranges
// sit in a cache (freed with iovam_free_fast(), still ALLOCATED in the tree)
// and what a checked fast free of a pfn must return.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "iovam.h"

namespace iovam::test
{

enum class RefTag { kAllocated, kReserved, kDeferred };

// The pages a fast-path allocation of npages occupies: its size class (a
// power of two) up to IOVAM_CACHE_MAX_PAGES, npages itself above.
inline uint64_t fast_size_pages(uint64_t npages)
{
	return npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
}

// A range whose size and alignment a cache could hold.
inline bool cacheable_shape(uint64_t lo, uint64_t hi)
{
	const uint64_t size = hi - lo + 1;
	return size <= IOVAM_CACHE_MAX_PAGES && std::has_single_bit(size) && lo % size == 0;
}

// Up to count pfns of owned (pfn -> npages given to alloc_fast) whose ranges
// have first's size, from first on and wrapping around, looking at no more
// than 4 * count + 64 entries: the size may be rare among many.
inline std::vector<uint64_t>
same_size_fast_ranges(const std::map<uint64_t, uint64_t> &owned,
                      std::map<uint64_t, uint64_t>::const_iterator first, uint32_t count)
{
	std::vector<uint64_t> pfns;
	const uint64_t size = fast_size_pages(first->second);
	auto it = first;
	for (uint32_t steps = 0; pfns.size() < count && steps < 4 * count + 64; ++steps) {
		if (fast_size_pages(it->second) == size) pfns.push_back(it->first);
		if (++it == owned.end()) it = owned.begin();
		if (it == first) break;
	}
	return pfns;
}

struct RefRange {
	uint64_t hi;
	RefTag tag;
};

class ReferenceModel
{
public:
	ReferenceModel(uint64_t start_pfn, uint64_t end_pfn) : start_(start_pfn), end_(end_pfn) {}

	std::map<uint64_t, RefRange> &ranges() { return ranges_; }
	const std::map<uint64_t, RefRange> &ranges() const { return ranges_; }

	// The range containing pfn, if any.
	std::map<uint64_t, RefRange>::iterator containing(uint64_t pfn)
	{
		auto it = ranges_.upper_bound(pfn);
		if (it == ranges_.begin()) return ranges_.end();
		--it;
		return it->second.hi >= pfn ? it : ranges_.end();
	}
	std::map<uint64_t, RefRange>::const_iterator containing(uint64_t pfn) const
	{
		auto it = ranges_.upper_bound(pfn);
		if (it == ranges_.begin()) return ranges_.end();
		--it;
		return it->second.hi >= pfn ? it : ranges_.end();
	}

	// Highest fitting p (the domain's contract), by a walk down the holes.
	std::optional<uint64_t> fit(uint64_t npages, uint64_t limit_pfn, bool aligned) const
	{
		const uint64_t align = aligned ? std::bit_ceil(npages) : 1;
		uint64_t hole_hi = std::min(limit_pfn, end_);
		auto it = ranges_.upper_bound(hole_hi); // first range above the hole
		while (hole_hi >= start_) {
			uint64_t hole_lo = start_;
			uint64_t next_hi = 0;
			bool more = false;
			if (it != ranges_.begin()) {
				auto prev = std::prev(it);
				more = prev->first > start_;
				next_hi = more ? prev->first - 1 : 0;
				hole_lo = std::max(start_, prev->second.hi + 1);
				it = prev;
			}
			if (hole_lo <= hole_hi && hole_hi - hole_lo + 1 >= npages) {
				uint64_t p = (hole_hi - npages + 1) & ~(align - 1);
				if (p >= hole_lo) return p;
			}
			if (!more) break;
			hole_hi = std::min(hole_hi, next_hi);
		}
		return std::nullopt;
	}

	void insert(uint64_t lo, uint64_t hi, RefTag tag) { ranges_[lo] = RefRange{hi, tag}; }

	// The domain's reserve contract; returns the expected errno (0 on success).
	int reserve(uint64_t lo, uint64_t hi)
	{
		if (lo > hi || hi > end_) return -EINVAL;
		uint64_t new_lo = lo, new_hi = hi;
		auto it = containing(lo);
		if (it == ranges_.end()) it = ranges_.lower_bound(lo);
		auto first = it;
		for (; it != ranges_.end() && it->first <= hi; ++it) {
			if (it->second.tag != RefTag::kReserved) return -EBUSY;
		}
		for (it = first; it != ranges_.end() && it->first <= hi;) {
			new_lo = std::min(new_lo, it->first);
			new_hi = std::max(new_hi, it->second.hi);
			it = ranges_.erase(it);
		}
		insert(new_lo, new_hi, RefTag::kReserved);
		return 0;
	}

	uint64_t count(RefTag tag) const
	{
		uint64_t n = 0;
		for (auto &[lo, r] : ranges_) n += r.tag == tag;
		return n;
	}

	uint64_t count_pages(RefTag tag) const
	{
		uint64_t n = 0;
		for (auto &[lo, r] : ranges_) n += r.tag == tag ? r.hi - lo + 1 : 0;
		return n;
	}

	// How many disjoint size-aligned ranges of size pages fit below limit:
	// each hole's aligned slots, one walk (same-size aligned slots never
	// overlap, so taking one takes no other).
	uint64_t aligned_slots(uint64_t size, uint64_t limit) const
	{
		const uint64_t align = std::bit_ceil(size), top = std::min(limit, end_);
		uint64_t slots = 0, hole_lo = start_;
		auto count = [&](uint64_t lo, uint64_t hi) { // [lo, hi] free
			if (lo > hi || hi - lo + 1 < size) return;
			const uint64_t first = (lo + align - 1) / align * align;
			if (first < lo || first > hi || hi - first + 1 < size) return;
			slots += (hi - first - (size - 1)) / align + 1;
		};
		for (auto &[lo, r] : ranges_) {
			if (hole_lo > top) break;
			if (lo > hole_lo) count(hole_lo, std::min(lo - 1, top));
			if (r.hi == UINT64_MAX) return slots;
			hole_lo = std::max(hole_lo, r.hi + 1);
		}
		if (hole_lo <= top) count(hole_lo, top);
		return slots;
	}

	// ------------------------------------------------ the fast path's checks

	// The O(1) argument checks every iovam_free_fast() makes: aligned to
	// npages' class and inside the window.
	bool fast_free_in_bounds(uint64_t pfn, uint64_t npages) const
	{
		if (npages == 0 || npages > (1ULL << 63)) return false;
		const uint64_t size = fast_size_pages(npages), align = std::bit_ceil(npages);
		return pfn % align == 0 && pfn >= start_ && pfn <= end_ && size - 1 <= end_ - pfn;
	}

	// What iovam_free_fast() must return when it checks everything, as the
	// tree sees it (a cached range is ALLOCATED there), once the ranges
	// starting at the pfns in freed are gone (a repeat in a bulk finds free
	// space).
	int fast_free_expect(uint64_t pfn, uint64_t npages,
	                     const std::set<uint64_t> &freed = {}) const
	{
		if (!fast_free_in_bounds(pfn, npages)) return -EINVAL;
		auto it = containing(pfn);
		if (it == ranges_.end() || it->second.tag == RefTag::kDeferred ||
		    freed.count(it->first))
			return -ENOENT;
		if (it->second.tag == RefTag::kReserved) return -EPERM;
		if (it->first != pfn || it->second.hi - it->first + 1 != fast_size_pages(npages))
			return -EINVAL;
		return 0;
	}

	// The same in checked mode, which also refuses a range a cache holds (a
	// double free). Unchecked, that free would make a second owner: a test
	// must not make it.
	int fast_free_expect_checked(uint64_t pfn, uint64_t npages,
	                             const std::set<uint64_t> &freed = {}) const
	{
		const int want = fast_free_expect(pfn, npages, freed);
		return want == 0 && is_cached(pfn) ? -ENOENT : want;
	}

	// What iovam_free_fast_bulk(pfns, npages) must return: the first entry
	// that fails fails the bulk. checked: the call checks every entry (a
	// domain in checked mode, or a path that always checks: the shared cache,
	// more than IOVAM_CACHE_MAX_PAGES), as if freeing them in order (a repeat
	// finds free space). Otherwise (the trusting cache path) only the O(1)
	// bounds are checked, so every entry before a bad one must be one of
	// owned's ranges (pfn -> npages) of that size, once. Empty when the call
	// must not be made: it would free a range the caller does not hold (a
	// cached one when checks_on is false, or a valid one may_free refuses).
	template <class MayFree>
	std::optional<int> fast_free_bulk_expect(const std::vector<uint64_t> &pfns, uint64_t npages,
	                                         bool checked, bool checks_on,
	                                         const std::map<uint64_t, uint64_t> &owned,
	                                         MayFree &&may_free) const
	{
		std::set<uint64_t> freed;
		for (uint64_t pfn : pfns) {
			if (checked) {
				if (!checks_on && fast_free_expect(pfn, npages, freed) == 0 &&
				    is_cached(pfn))
					return std::nullopt;
				const int want = fast_free_expect_checked(pfn, npages, freed);
				if (want != 0) return want;
				if (!may_free(pfn)) return std::nullopt;
				freed.insert(pfn);
			} else {
				if (!fast_free_in_bounds(pfn, npages)) return -EINVAL;
				auto own = owned.find(pfn);
				if (own == owned.end() ||
				    fast_size_pages(own->second) != fast_size_pages(npages) ||
				    !freed.insert(pfn).second)
					return std::nullopt;
			}
		}
		return 0;
	}

	// ------------------------------------------------ ranges in caches

	const std::set<uint64_t> &cached() const { return cached_; }
	bool is_cached(uint64_t pfn) const { return cached_.count(pfn) != 0; }
	// A free_fast into a cache: the range stays ALLOCATED.
	void cache(uint64_t pfn) { cached_.insert(pfn); }
	// A cached range handed out again: ALLOCATED as it was, the caller's now.
	bool uncache(uint64_t pfn) { return cached_.erase(pfn) != 0; }

	// Every cache flushed: their ranges are free space.
	void flush_caches()
	{
		for (uint64_t p : cached_) ranges_.erase(p);
		cached_.clear();
	}

	// Cached ranges the domain gave back to the tree are free space:
	// still_cached(pfn, hi) says whether the tree still holds [pfn, hi].
	// Returns how many left.
	template <class StillCached>
	uint64_t reconcile_cached(StillCached &&still_cached)
	{
		uint64_t gone = 0;
		for (auto it = cached_.begin(); it != cached_.end();) {
			if (still_cached(*it, ranges_.at(*it).hi)) {
				++it;
				continue;
			}
			ranges_.erase(*it);
			it = cached_.erase(it);
			++gone;
		}
		return gone;
	}

	// A range [lo, hi] carved from the tree: cached ranges it overlaps went
	// back to the tree first (a flush). An exact match may have come straight
	// from a cache: the caller decides. Returns how many were dropped.
	uint64_t drop_cached_overlapping(uint64_t lo, uint64_t hi)
	{
		uint64_t dropped = 0;
		for (auto it = cached_.begin(); it != cached_.end();) {
			const uint64_t c_hi = ranges_.at(*it).hi;
			if (*it <= hi && c_hi >= lo && !(*it == lo && c_hi == hi)) {
				ranges_.erase(*it);
				it = cached_.erase(it);
				++dropped;
			} else {
				++it;
			}
		}
		return dropped;
	}

	// iovam_reserve() over ranges that sit in caches only (nothing live or
	// DEFERRED) flushes every cache first; this does the same. Unchecked
	// (checked false), any ALLOCATED range of a cacheable shape may be cached
	// as far as the domain knows.
	void reserve_flushes_caches(uint64_t lo, uint64_t hi, bool checked)
	{
		bool live = false, in_cache = false;
		if (lo <= hi && hi <= end_) {
			auto it = containing(lo);
			if (it == ranges_.end()) it = ranges_.lower_bound(lo);
			for (; it != ranges_.end() && it->first <= hi; ++it) {
				if (it->second.tag == RefTag::kReserved) continue;
				const bool may_be_cached =
				        it->second.tag == RefTag::kAllocated &&
				        (checked ? is_cached(it->first)
				                 : cacheable_shape(it->first, it->second.hi));
				(may_be_cached ? in_cache : live) = true;
			}
		}
		if (in_cache && !live) flush_caches();
	}

	// The reference without the ranges now held by caches (as after a flush).
	ReferenceModel without_cached() const
	{
		ReferenceModel m = *this;
		m.flush_caches();
		return m;
	}

private:
	uint64_t start_, end_;
	std::map<uint64_t, RefRange> ranges_;
	std::set<uint64_t> cached_; // pfn_lo of ALLOCATED ranges a cache holds
};

} // namespace iovam::test

#endif // IOVAM_TESTS_REFERENCE_MODEL_H
