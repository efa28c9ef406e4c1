// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Return batches (iovam.h): ranges freed by a thread that did not allocate
// them reach the allocating lcores through the depot, in whole magazines,
// without touching any lcore's magazines. verify() after every mutation.

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "iovam.h"
#include "iovam_test.h"
#include "owned_handles.h"

namespace
{

constexpr uint32_t kMag = IOVAM_MAG_SIZE;

using iovam::test::BatchPtr;
using iovam::test::DomainPtr;

DomainPtr make(uint64_t end_pfn, uint32_t caches)
{
	iovam_domain_conf c{4096, 1, end_pfn, caches};
	return DomainPtr(iovam_domain_create(&c));
}

iovam_stats stats_of(iovam_domain *d)
{
	iovam_stats st{};
	EXPECT_EQ(iovam_stats_get(d, &st), 0);
	return st;
}
iovam_cache_stats cache_of(iovam_domain *d, uint32_t c)
{
	iovam_cache_stats st{};
	EXPECT_EQ(iovam_cache_stats_get(d, c, &st), 0);
	return st;
}
iovam_return_batch_stats batch_of(iovam_return_batch *b)
{
	iovam_return_batch_stats st{};
	EXPECT_EQ(iovam_return_batch_stats_get(b, &st), 0);
	return st;
}

std::vector<uint64_t> alloc_n(iovam_domain *d, uint32_t cache, uint64_t npages, uint32_t n)
{
	std::vector<uint64_t> v(n);
	for (auto &p : v) EXPECT_EQ(iovam_alloc_fast(d, cache, npages, UINT64_MAX, &p), 0);
	return v;
}

TEST(ReturnBatch, BadInputGetsDocumentedErrorsAndChangesNothing)
{
	errno = 0;
	EXPECT_EQ(iovam_return_batch_create(nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	const uint64_t end = (1 << 16) + 3;
	auto d = make(end, 2);
	ASSERT_NE(d, nullptr);
	iovam_test_fail_create_alloc(1);
	errno = 0;
	EXPECT_EQ(iovam_return_batch_create(d.get()), nullptr);
	EXPECT_EQ(errno, ENOMEM);
	iovam_test_fail_create_alloc(0);
	BatchPtr b(iovam_return_batch_create(d.get()));
	ASSERT_NE(b, nullptr);

	EXPECT_EQ(iovam_return_batch_add(nullptr, 8, 1), -EINVAL);
	EXPECT_EQ(iovam_return_batch_flush(nullptr), -EINVAL);
	iovam_return_batch_stats bst;
	EXPECT_EQ(iovam_return_batch_stats_get(nullptr, &bst), -EINVAL);
	EXPECT_EQ(iovam_return_batch_stats_get(b.get(), nullptr), -EINVAL);
	iovam_return_batch_destroy(nullptr);

	uint64_t four = 0, reserved_lo = 0x100;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 4, UINT64_MAX, &four), 0);
	ASSERT_EQ(iovam_reserve(d.get(), reserved_lo, reserved_lo), 0);
	const iovam_stats before = stats_of(d.get());
	struct Row {
		const char *what;
		uint64_t pfn, npages;
		bool checked;
		int err;
	};
	const Row rows[] = {
	        {"npages 0", four, 0, false, -EINVAL},
	        {"misaligned for its class", four + 1, 4, false, -EINVAL},
	        {"pfn 0, below the window", 0, 1, false, -EINVAL},
	        {"past the end", end + 1, 1, false, -EINVAL},
	        {"straddles the end", 1 << 16, 8, false, -EINVAL},
	        {"checked: free space", 0x200, 1, true, -ENOENT},
	        {"checked: reserved", reserved_lo, 1, true, -EPERM},
	        {"checked: wrong size", four, 2, true, -EINVAL},
	        {"large range: free space", 0x400, 64, false, -ENOENT},
	};
	for (const Row &r : rows) {
		// Checked mode is the default; the O(1) rows answer the same unchecked
		// (a domain's mode cannot change while it holds ranges).
		EXPECT_EQ(iovam_return_batch_add(b.get(), r.pfn, r.npages), r.err) << r.what;
		iovam_return_batch_stats s = batch_of(b.get());
		EXPECT_EQ(s.ranges_added, 0u) << r.what;
		EXPECT_EQ(s.ranges_held, 0u) << r.what;
		const iovam_stats now = stats_of(d.get());
		EXPECT_EQ(now.live_ranges, before.live_ranges) << r.what;
		EXPECT_EQ(now.cached_ranges, before.cached_ranges) << r.what;
		VERIFY(d.get());
	}
	// The good range, checked: accepted, held until the flush.
	ASSERT_EQ(iovam_return_batch_add(b.get(), four, 4), 0);
	EXPECT_EQ(batch_of(b.get()).ranges_held, 1u);
	EXPECT_EQ(iovam_return_batch_flush(b.get()), 1);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 1u); // in the depot
	VERIFY(d.get());
}

// The case the batch exists for: lcore 0 allocates, another thread frees.
// Whole magazines land in the depot; lcore 0's next allocations are all
// magazine hits (one depot exchange per 127), and no lcore's magazines were
// written by the freeing thread.
TEST(ReturnBatch, WholeMagazinesReachTheAllocatingLcoreThroughTheDepot)
{
	auto d = make(1 << 20, 4);
	BatchPtr b(iovam_return_batch_create(d.get()));
	ASSERT_NE(b, nullptr);
	const uint32_t n = 4 * kMag;
	std::vector<uint64_t> got = alloc_n(d.get(), 0, 1, n);
	iovam_cache_stats c0 = cache_of(d.get(), 0);
	EXPECT_EQ(c0.alloc_misses, n); // cold: every one from the tree
	for (uint64_t p : got) ASSERT_EQ(iovam_return_batch_add(b.get(), p, 1), 0);
	iovam_return_batch_stats bs = batch_of(b.get());
	EXPECT_EQ(bs.ranges_added, n);
	EXPECT_EQ(bs.puts_to_depot, 4u); // each full magazine as it filled
	EXPECT_EQ(bs.ranges_to_depot, n);
	EXPECT_EQ(bs.ranges_held, 0u);
	EXPECT_EQ(iovam_return_batch_flush(b.get()), 0);
	VERIFY(d.get());
	for (uint32_t c = 0; c < 4; ++c) EXPECT_EQ(cache_of(d.get(), c).cached_ranges, 0u) << c;
	EXPECT_EQ(cache_of(d.get(), IOVAM_CACHE_NONE).cached_ranges, n); // the depot
	EXPECT_EQ(stats_of(d.get()).live_ranges, n);                     // still ALLOCATED

	// Lcore 0 again: the same ranges, all hits, no tree.
	std::vector<uint64_t> again = alloc_n(d.get(), 0, 1, n);
	c0 = cache_of(d.get(), 0);
	EXPECT_EQ(c0.alloc_hits, n);
	EXPECT_EQ(c0.alloc_misses, n); // unchanged
	std::sort(got.begin(), got.end());
	std::sort(again.begin(), again.end());
	EXPECT_EQ(got, again);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 0u);
	VERIFY(d.get());
}

// A flush tops up the depot's top magazine: small passes of a drain still
// give the lcores dense magazines, not one exchange per pass.
TEST(ReturnBatch, FlushesTopUpTheDepotsTopMagazine)
{
	auto d = make(1 << 20, 2);
	BatchPtr b(iovam_return_batch_create(d.get()));
	std::vector<uint64_t> got = alloc_n(d.get(), 1, 2, 100);
	for (int pass = 0; pass < 10; ++pass) {
		for (int i = 0; i < 10; ++i)
			ASSERT_EQ(iovam_return_batch_add(b.get(), got[pass * 10 + i], 2), 0);
		EXPECT_EQ(iovam_return_batch_flush(b.get()), 10);
		VERIFY(d.get());
	}
	EXPECT_EQ(batch_of(b.get()).ranges_to_depot, 100u);
	// One magazine of 100: lcore 0 takes it in one exchange, then 100 hits.
	for (int i = 0; i < 100; ++i) {
		uint64_t p;
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 2, UINT64_MAX, &p), 0);
	}
	iovam_cache_stats c0 = cache_of(d.get(), 0);
	EXPECT_EQ(c0.alloc_hits, 100u);
	EXPECT_EQ(c0.alloc_misses, 0u);
	EXPECT_EQ(cache_of(d.get(), IOVAM_CACHE_NONE).cached_ranges, 0u);
	VERIFY(d.get());
}

// A full depot sends ranges to the tree; large ranges always go there.
TEST(ReturnBatch, FullDepotAndLargeRangesGoToTheTree)
{
	auto d = make(1 << 20, 1);
	BatchPtr b(iovam_return_batch_create(d.get()));
	const uint32_t depot_max = 32, n = (depot_max + 2) * kMag;
	std::vector<uint64_t> got = alloc_n(d.get(), 0, 1, n);
	for (uint64_t p : got) ASSERT_EQ(iovam_return_batch_add(b.get(), p, 1), 0);
	iovam_return_batch_stats bs = batch_of(b.get());
	EXPECT_EQ(bs.puts_to_depot, depot_max);
	EXPECT_EQ(bs.ranges_to_depot, depot_max * kMag);
	EXPECT_EQ(bs.ranges_to_tree, 2u * kMag);
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.live_ranges, depot_max * kMag);
	EXPECT_EQ(st.cached_ranges, depot_max * kMag);
	VERIFY(d.get());

	uint64_t big;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 64, UINT64_MAX, &big), 0);
	ASSERT_EQ(iovam_return_batch_add(b.get(), big, 64), 0);
	EXPECT_EQ(iovam_find(d.get(), big, &big, &big), -ENOENT); // freed at once
	EXPECT_EQ(batch_of(b.get()).ranges_to_tree, 2u * kMag + 1);
	VERIFY(d.get());
}

// destroy flushes; every range comes back whole.
TEST(ReturnBatch, DestroyFlushesAndNothingIsLost)
{
	auto d = make(1 << 16, 2);
	iovam_return_batch *b = iovam_return_batch_create(d.get());
	ASSERT_NE(b, nullptr);
	for (uint64_t npages : {1, 3, 8, 17, 32}) {
		for (uint64_t p : alloc_n(d.get(), 0, npages, 50))
			ASSERT_EQ(iovam_return_batch_add(b, p, npages), 0);
	}
	EXPECT_EQ(batch_of(b).ranges_held, 250u);
	iovam_return_batch_destroy(b);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 250u);
	VERIFY(d.get());
	ASSERT_EQ(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 250);
	EXPECT_EQ(stats_of(d.get()).live_ranges, 0u);
	VERIFY(d.get());
}

} // namespace
