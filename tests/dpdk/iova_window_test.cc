/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// IovaWindow (dpdk-glue/iova_window.h) on its own, over a core domain: no EAL
// needed. The glue's tests use it through init, memory events and
// iovam_dpdk_map; these pin down the -EAGAIN rule (maintain, one retry, then
// -ENOMEM) with the core's node-failure hook, and the window's bounds.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>

#include <gtest/gtest.h>

#include "iova_window.h"
#include "iovam.h"
#include "iovam_test.h"

namespace
{

using iovam::glue::IovaWindow;

constexpr unsigned kShift = 12;
constexpr uint64_t kFirstPfn = 1;
constexpr uint64_t kLimitPfn = (1u << 20) - 1;

struct DomainDeleter {
	void operator()(iovam_domain *d) const { iovam_domain_destroy(d); }
};
using DomainPtr = std::unique_ptr<iovam_domain, DomainDeleter>;

DomainPtr make_domain()
{
	iovam_domain_conf c{};
	c.granule = 1u << kShift;
	c.start_pfn = kFirstPfn;
	c.end_pfn = kLimitPfn;
	c.n_caches = 1;
	return DomainPtr(iovam_domain_create(&c));
}

iovam_stats stats_of(iovam_domain *d)
{
	iovam_stats st{};
	EXPECT_EQ(iovam_stats_get(d, &st), 0);
	return st;
}

// A shortage of tree nodes: every node request is refused, at a point where
// the next carve must split a full leaf, with one DEFERRED marker elsewhere
// (the topmost page: erasing it frees no room where the carve happens) for
// iovam_maintain() to erase. The raw call fails with -EAGAIN and counts its
// refused requests; the window's call maintains (the marker goes), tries
// exactly once more (twice the refused requests) and says -ENOMEM, having
// changed nothing else. Reserve: the same, next to the lowest live range.
TEST(IovaWindow, EagainMaintainsRetriesOnceThenIsEnomem)
{
	DomainPtr d = make_domain();
	ASSERT_NE(d, nullptr);
	const IovaWindow w(d.get(), kShift, kFirstPfn, kLimitPfn);
	uint64_t marker, pfn, lowest = UINT64_MAX;
	ASSERT_EQ(iovam_alloc(d.get(), 1, kLimitPfn, true, &marker), 0);
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(iovam_alloc(d.get(), 2, kLimitPfn, false, &pfn), 0);
		lowest = std::min(lowest, pfn);
	}
	iovam_test_fail_node_alloc(d.get(), 1, 0);
	int rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++) { // carves that fit their leaf succeed
		rc = iovam_alloc(d.get(), 4, kLimitPfn, true, &pfn);
		if (rc == 0) lowest = std::min(lowest, pfn);
	}
	ASSERT_EQ(rc, -EAGAIN) << "no node shortage";
	ASSERT_EQ(iovam_free_deferred(d.get(), marker), 0);

	const uint64_t refused0 = stats_of(d.get()).node_alloc_failures;
	ASSERT_EQ(iovam_alloc(d.get(), 4, kLimitPfn, true, &pfn), -EAGAIN);
	const uint64_t per_try = stats_of(d.get()).node_alloc_failures - refused0;
	ASSERT_GT(per_try, 0u);
	ASSERT_EQ(stats_of(d.get()).deferred_ranges, 1u);

	const uint64_t live = stats_of(d.get()).live_ranges;
	const uint64_t refused1 = stats_of(d.get()).node_alloc_failures;
	EXPECT_EQ(w.alloc(4, &pfn), -ENOMEM);
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.node_alloc_failures - refused1, 2 * per_try) << "one retry, no more";
	EXPECT_EQ(st.deferred_ranges, 0u) << "iovam_maintain() ran before the retry";
	EXPECT_EQ(st.live_ranges, live); // (DEFERRED never counted as live)

	// A span inside the free space just below the lowest live range: two
	// more segments in that full leaf.
	ASSERT_GE(lowest, 16u);
	ASSERT_EQ(iovam_reserve(d.get(), lowest - 8, lowest - 5), -EAGAIN) << "no node shortage";
	const uint64_t per_reserve = stats_of(d.get()).node_alloc_failures - st.node_alloc_failures;
	EXPECT_EQ(w.reserve(lowest - 8, lowest - 5), -ENOMEM);
	EXPECT_EQ(stats_of(d.get()).node_alloc_failures - st.node_alloc_failures, 3 * per_reserve);
	EXPECT_EQ(stats_of(d.get()).reserved_ranges, 0u);

	iovam_test_fail_node_alloc(d.get(), 0, 0);
	EXPECT_EQ(w.alloc(4, &pfn), 0);
	EXPECT_EQ(w.free(pfn), 0);
	EXPECT_EQ(w.reserve(lowest - 8, lowest - 5), 0);
	EXPECT_EQ(stats_of(d.get()).reserved_ranges, 1u);
	EXPECT_EQ(iovam_verify(d.get()), 0) << iovam_verify_error(d.get());
}

// Byte ranges are clipped to the window: what lies above it needs no keeping
// out; what straddles its top is kept out up to limit_pfn.
TEST(IovaWindow, ReserveBytesClipsToTheWindow)
{
	DomainPtr d = make_domain();
	ASSERT_NE(d, nullptr);
	const IovaWindow w(d.get(), kShift, kFirstPfn, kLimitPfn);
	const uint64_t top = (kLimitPfn + 1) << kShift; // first byte above the window
	uint64_t lo, hi;
	EXPECT_FALSE(w.clip(top, top + 4095, &lo, &hi));
	EXPECT_FALSE(w.clip(8192, 4096, &lo, &hi)); // lo > hi
	EXPECT_EQ(w.reserve_bytes(top, top + (1u << 20)), 0);
	EXPECT_EQ(stats_of(d.get()).reserved_ranges, 0u);

	ASSERT_TRUE(w.clip(top - 8192, top + 8191, &lo, &hi));
	EXPECT_EQ(lo, kLimitPfn - 1);
	EXPECT_EQ(hi, kLimitPfn);
	EXPECT_EQ(w.reserve_bytes(top - 8192, top + 8191), 0);
	uint64_t have_lo, have_hi;
	ASSERT_EQ(iovam_find(d.get(), kLimitPfn, &have_lo, &have_hi), 0);
	EXPECT_EQ(have_lo, kLimitPfn - 1);
	EXPECT_EQ(have_hi, kLimitPfn);
	uint64_t pfn;
	ASSERT_EQ(w.alloc(1, &pfn), 0);
	EXPECT_LT(pfn, kLimitPfn - 1) << "allocated inside what was kept out";
	EXPECT_EQ(iovam_verify(d.get()), 0) << iovam_verify_error(d.get());
}

// contains() is the unmap's bounds check: no overflow for any npages.
TEST(IovaWindow, ContainsAndFastPathBounds)
{
	DomainPtr d = make_domain();
	ASSERT_NE(d, nullptr);
	const IovaWindow w(d.get(), kShift, kFirstPfn, kLimitPfn);
	EXPECT_FALSE(w.contains(kFirstPfn - 1, 1));
	EXPECT_TRUE(w.contains(kFirstPfn, 1));
	EXPECT_TRUE(w.contains(kLimitPfn, 1));
	EXPECT_FALSE(w.contains(kLimitPfn, 2));
	EXPECT_TRUE(w.contains(kFirstPfn, kLimitPfn));
	EXPECT_FALSE(w.contains(kFirstPfn, kLimitPfn + 1));
	EXPECT_FALSE(w.contains(2, UINT64_MAX));
	EXPECT_FALSE(w.contains(UINT64_MAX, 1));

	uint64_t pfn;
	EXPECT_EQ(w.alloc_fast(0, kLimitPfn + 1, &pfn), -ENOMEM); // larger than the window
	ASSERT_EQ(w.alloc_fast(0, 4, &pfn), 0);
	EXPECT_TRUE(w.contains(pfn, 4));
	EXPECT_EQ(pfn % 4, 0u);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, pfn, 4), 0);
}

} // namespace
