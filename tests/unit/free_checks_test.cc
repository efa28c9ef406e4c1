// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// No range handed out twice, whatever the caller frees: the checked fast
// free (the default) against every misuse the issue table lists, and
// iovam_reserve over ranges that sit in caches. Each refused call returns
// its documented errno and changes nothing (stats, verify, what the next
// allocations return).

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>
#include <vector>

#include "iovam.h"

namespace
{

using DomainPtr = std::unique_ptr<iovam_domain, decltype(&iovam_domain_destroy)>;

DomainPtr make(uint64_t end_pfn, uint32_t caches = 1)
{
	iovam_domain_conf c{4096, 1, end_pfn, caches};
	return DomainPtr(iovam_domain_create(&c), iovam_domain_destroy);
}

#define VERIFY(d) ASSERT_EQ(iovam_verify(d), 0) << iovam_verify_error(d)

iovam_stats stats_of(iovam_domain *d)
{
	iovam_stats st{};
	EXPECT_EQ(iovam_stats_get(d, &st), 0);
	return st;
}

void expect_same(const iovam_stats &a, const iovam_stats &b)
{
	EXPECT_EQ(a.live_ranges, b.live_ranges);
	EXPECT_EQ(a.live_pages, b.live_pages);
	EXPECT_EQ(a.reserved_ranges, b.reserved_ranges);
	EXPECT_EQ(a.deferred_ranges, b.deferred_ranges);
	EXPECT_EQ(a.cached_ranges, b.cached_ranges);
}

// Allocate every 1-page range the fast path and the tree will give, and
// check no two are the same: what a second owner would break.
void expect_no_range_twice(iovam_domain *d, uint64_t end_pfn)
{
	std::set<uint64_t> seen;
	std::vector<uint64_t> fast, tree;
	for (;;) {
		uint64_t p = 0;
		if (iovam_alloc_fast(d, 0, 1, end_pfn, &p) != 0) break;
		ASSERT_TRUE(seen.insert(p).second) << "pfn " << p << " handed out twice";
		fast.push_back(p);
		if (iovam_alloc(d, 1, end_pfn, false, &p) != 0) break;
		ASSERT_TRUE(seen.insert(p).second) << "pfn " << p << " handed out twice";
		tree.push_back(p);
	}
	VERIFY(d);
	for (uint64_t p : fast) ASSERT_EQ(iovam_free_fast(d, 0, p, 1), 0);
	for (uint64_t p : tree) ASSERT_EQ(iovam_free(d, p), 0);
	VERIFY(d);
}

// Row 1: set_checks(IOVAM_CHECK_FAST_FREE) (also the default), then
// free_fast(p) twice: the second is refused and the next two allocations differ.
TEST(FreeChecks, DoubleFreeFast)
{
	for (bool explicit_flag : {true, false}) {
		auto d = make(1000);
		if (explicit_flag) {
			ASSERT_EQ(iovam_domain_set_checks(d.get(), IOVAM_CHECK_FAST_FREE), 0);
		}
		uint64_t p;
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
		ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
		iovam_stats st0 = stats_of(d.get());
		EXPECT_EQ(iovam_free_fast(d.get(), 0, p, 1), -ENOENT);
		EXPECT_EQ(iovam_free_fast(d.get(), IOVAM_CACHE_NONE, p, 1),
		          -ENOENT); // the shared path too
		expect_same(st0, stats_of(d.get()));
		VERIFY(d.get());
		uint64_t a, b;
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &a), 0);
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &b), 0);
		EXPECT_NE(a, b);
		ASSERT_EQ(iovam_free_fast(d.get(), 0, a, 1), 0);
		ASSERT_EQ(iovam_free_fast(d.get(), 0, b, 1), 0);
		expect_no_range_twice(d.get(), 1000);
	}
}

// Row 2: free_fast(p) then iovam_free(p) (and iovam_free_deferred), and
// the reverse: the second is refused; iovam_alloc and alloc_fast never
// both return p.
TEST(FreeChecks, FreeFastThenFreeAndReverse)
{
	auto d = make(1000);
	uint64_t p;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_free(d.get(), p), -ENOENT);
	EXPECT_EQ(iovam_free_deferred(d.get(), p), -ENOENT);
	expect_same(st0, stats_of(d.get()));
	VERIFY(d.get());
	expect_no_range_twice(d.get(), 1000);

	// The reverse: iovam_free(q), then free_fast(q): q is free space now.
	uint64_t q;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &q), 0);
	ASSERT_EQ(iovam_free(d.get(), q), 0);
	st0 = stats_of(d.get());
	EXPECT_EQ(iovam_free_fast(d.get(), 0, q, 1), -ENOENT);
	expect_same(st0, stats_of(d.get()));
	VERIFY(d.get());
	expect_no_range_twice(d.get(), 1000);

	// A tree range of a cacheable shape may go back through either call, once.
	uint64_t t;
	ASSERT_GE(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0); // iovam_alloc does not flush
	ASSERT_EQ(iovam_alloc(d.get(), 4, UINT64_MAX, true, &t), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, t, 4), 0);
	EXPECT_EQ(iovam_free(d.get(), t), -ENOENT);
	VERIFY(d.get());
}

// Row 3: a RESERVED pfn, a never-allocated pfn, a 1-page range freed as 4
// pages, a bulk with a repeat: the documented errno, nothing changed, and
// nothing reserved or overlapping handed out afterwards.
TEST(FreeChecks, ForeignRangesAndBulkRepeat)
{
	auto d = make(1000);
	ASSERT_EQ(iovam_reserve(d.get(), 100, 103), 0);
	uint64_t one;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &one), 0);
	while (one % 4 !=
	       0) { // a 1-page range at a 4-aligned pfn: "as 4 pages" passes the O(1) checks
		uint64_t next;
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &next), 0);
		one = next;
	}
	std::vector<uint64_t> pair(2);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 2, UINT64_MAX, pair.data(), 2), 0);
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 100, 1), -EPERM);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 100, 4), -EPERM);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 500, 1), -ENOENT);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 512, 8), -ENOENT);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, one, 4), -EINVAL);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, one, 2), -EINVAL);
	const uint64_t repeat[3] = {pair[0], pair[1], pair[0]};
	EXPECT_EQ(iovam_free_fast_bulk(d.get(), 0, repeat, 3, 2), -ENOENT);
	const uint64_t reserved_in_bulk[2] = {pair[0], 100};
	EXPECT_EQ(iovam_free_fast_bulk(d.get(), 0, reserved_in_bulk, 2, 2), -EPERM);
	expect_same(st0, stats_of(d.get()));
	VERIFY(d.get());
	// All of them are still ours: each frees exactly once.
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, pair.data(), 2, 2), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, one, 1), 0);
	VERIFY(d.get());
	// Nothing reserved, nothing twice.
	std::set<uint64_t> seen;
	for (;;) {
		uint64_t p;
		if (iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p) != 0) break;
		EXPECT_TRUE(p < 100 || p > 103) << p;
		ASSERT_TRUE(seen.insert(p).second) << p;
	}
	VERIFY(d.get());
}

// The unchecked mode trusts the caller (as the kernel's free_iova_fast):
// chosen before anything is allocated, -EBUSY after.
TEST(FreeChecks, UncheckedModeOnlyOnAnEmptyDomain)
{
	auto d = make(1000);
	uint64_t p;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
	EXPECT_EQ(iovam_domain_set_checks(d.get(), 0), -EBUSY);
	EXPECT_EQ(iovam_domain_set_checks(d.get(), IOVAM_CHECK_FAST_FREE), 0); // no change: fine
	ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
	EXPECT_EQ(iovam_domain_set_checks(d.get(), 0), -EBUSY); // cached is still allocated
	ASSERT_GE(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
	ASSERT_EQ(iovam_domain_set_checks(d.get(), 0), 0);
	// Unchecked: the O(1) checks only; a valid pair still works.
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, p + 1000, 1), -EINVAL);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
	VERIFY(d.get());
	ASSERT_GE(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
	// Back to checked: starts from a clean map.
	ASSERT_EQ(iovam_domain_set_checks(d.get(), IOVAM_CHECK_FAST_FREE), 0);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, p, 1), -ENOENT);
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, p, 1), -ENOENT);
	VERIFY(d.get());
}

// A window larger than the live map: ranges below it are never cached and
// their fast free is checked in the tree.
TEST(FreeChecks, BelowTheLiveMapGoesToTheTree)
{
	const uint64_t end = (uint64_t{1} << 36) - 1;
	auto d = make(end);
	const uint64_t low_limit = 1 << 20; // far below the map's 2^30 top pages
	uint64_t p;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 2, low_limit, &p), 0);
	ASSERT_LE(p, low_limit);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 2), 0);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 0u); // to the tree, not a cache
	EXPECT_EQ(iovam_free_fast(d.get(), 0, p, 2), -ENOENT);
	uint64_t q;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 2, UINT64_MAX, &q), 0); // at the top: cached on free
	ASSERT_EQ(iovam_free_fast(d.get(), 0, q, 2), 0);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 1u);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, q, 2), -ENOENT);
	VERIFY(d.get());
}

// Row 4: iovam_reserve over ranges freed with free_fast (held in a cache)
// succeeds: they go back to the tree first. -EBUSY only over live or
// DEFERRED ranges, and then nothing is flushed.
TEST(FreeChecks, ReserveOverCachedRanges)
{
	auto d = make(1000, 2);
	std::vector<uint64_t> p(8);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, p.data(), 8), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 1, p.data(), 8, 1), 0); // into cache 1
	const uint64_t lo = *std::min_element(p.begin(), p.end()),
	               hi = *std::max_element(p.begin(), p.end());
	// A live range inside the span: -EBUSY, caches untouched.
	uint64_t live;
	ASSERT_EQ(iovam_alloc(d.get(), 1, lo - 1, false, &live), 0);
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_reserve(d.get(), live, hi), -EBUSY);
	expect_same(st0, stats_of(d.get()));
	// DEFERRED: -EBUSY.
	ASSERT_EQ(iovam_free_deferred(d.get(), live), 0);
	st0 = stats_of(d.get());
	EXPECT_EQ(iovam_reserve(d.get(), live, hi), -EBUSY);
	expect_same(st0, stats_of(d.get()));
	// Only cached ranges: reserved.
	ASSERT_EQ(iovam_reserve(d.get(), lo, hi), 0);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 0u);
	uint64_t f_lo, f_hi;
	ASSERT_EQ(iovam_find(d.get(), lo, &f_lo, &f_hi), 0);
	EXPECT_EQ(f_lo, lo);
	EXPECT_EQ(f_hi, hi);
	VERIFY(d.get());
	// Never handed out again.
	uint64_t q;
	while (iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &q) == 0)
		EXPECT_TRUE(q < lo || q > hi) << q;
	VERIFY(d.get());
}

} // namespace
