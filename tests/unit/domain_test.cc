// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Table-driven unit tests of every domain operation, the seeds' cases and bad
// input. Every mutation is followed by verify().

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "iovam.h"
#include "iovam_test.h"

namespace
{

constexpr uint64_t kG4K = 4096;
constexpr uint64_t kG1M = 1ULL << 20; // 32-bit boundary at pfn 4095

struct DomainDeleter {
	void operator()(iovam_domain *d) const { iovam_domain_destroy(d); }
};
using DomainPtr = std::unique_ptr<iovam_domain, DomainDeleter>;

DomainPtr make(uint64_t granule, uint64_t start, uint64_t end, uint32_t caches = 0)
{
	iovam_domain_conf c{granule, start, end, caches};
	return DomainPtr(iovam_domain_create(&c));
}

#define VERIFY(d) ASSERT_EQ(iovam_verify(d), 0) << iovam_verify_error(d)

iovam_stats stats_of(iovam_domain *d)
{
	iovam_stats st;
	EXPECT_EQ(iovam_stats_get(d, &st), 0);
	return st;
}

bool same_stats(const iovam_stats &a, const iovam_stats &b)
{
	return a.live_ranges == b.live_ranges && a.live_pages == b.live_pages &&
	       a.reserved_ranges == b.reserved_ranges && a.deferred_ranges == b.deferred_ranges &&
	       a.cached_ranges == b.cached_ranges;
}

uint64_t alloc_ok(iovam_domain *d, uint64_t n, uint64_t limit, bool aligned)
{
	uint64_t pfn = 0;
	EXPECT_EQ(iovam_alloc(d, n, limit, aligned, &pfn), 0) << "n=" << n << " limit=" << limit;
	return pfn;
}

// --- creation ---------------------------------------------------------------

struct CreateRow {
	const char *what;
	iovam_domain_conf conf;
	int err; // 0 = created
};

TEST(Create, Table)
{
	const CreateRow rows[] = {
	        {"4K window", {4096, 1, 1000, 0}, 0},
	        {"64K granule", {65536, 16, 1 << 20, 8}, 0},
	        {"48-bit window", {4096, 1, (1ULL << 36) - 1, 128}, 0},
	        {"largest end", {4096, 1, (1ULL << 63) - 1, 0}, 0},
	        {"single page", {4096, 5, 5, 0}, 0},
	        {"granule not pow2", {4097 * 2, 1, 10, 0}, EINVAL},
	        {"granule too small", {2048, 1, 10, 0}, EINVAL},
	        {"granule zero", {0, 1, 10, 0}, EINVAL},
	        {"start 0", {4096, 0, 10, 0}, EINVAL},
	        {"end < start", {4096, 10, 9, 0}, EINVAL},
	        {"end >= 2^63", {4096, 1, 1ULL << 63, 0}, EINVAL},
	        {"n_caches ANY", {4096, 1, 10, UINT32_MAX}, EINVAL},
	};
	for (const auto &r : rows) {
		errno = 0;
		iovam_domain *d = iovam_domain_create(&r.conf);
		if (r.err == 0) {
			ASSERT_NE(d, nullptr) << r.what;
			EXPECT_EQ(iovam_verify(d), 0) << r.what;
			iovam_domain_conf back;
			ASSERT_EQ(iovam_domain_conf_get(d, &back), 0);
			EXPECT_EQ(std::memcmp(&back, &r.conf, sizeof back), 0) << r.what;
		} else {
			EXPECT_EQ(d, nullptr) << r.what;
			EXPECT_EQ(errno, r.err) << r.what;
		}
		iovam_domain_destroy(d);
	}
	errno = 0;
	EXPECT_EQ(iovam_domain_create(nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	iovam_domain_destroy(nullptr); // a no-op
}

// All-or-nothing creation (docs/DESIGN.md, L7): every allocation creation makes can
// fail; each failure is NULL + ENOMEM and leaks nothing (LeakSanitizer in the
// ASan build), and once creation succeeds the fast path needs no checks.
TEST(Create, EveryAllocationFailureIsClean)
{
	iovam_domain_conf c{4096, 1, 1 << 20, 4};
	uint32_t failures = 0;
	for (uint32_t nth = 1;; ++nth) {
		iovam_test_fail_create_alloc(nth);
		errno = 0;
		iovam_domain *d = iovam_domain_create(&c);
		if (d != nullptr) {
			iovam_test_fail_create_alloc(0);
			uint64_t pfn;
			EXPECT_EQ(iovam_alloc_fast(d, 3, 1, UINT64_MAX, &pfn), 0);
			EXPECT_EQ(iovam_free_fast(d, 3, pfn, 1), 0);
			EXPECT_EQ(iovam_verify(d), 0) << iovam_verify_error(d);
			iovam_domain_destroy(d);
			break;
		}
		EXPECT_EQ(errno, ENOMEM) << "allocation " << nth;
		++failures;
		ASSERT_LT(nth, 20u);
	}
	EXPECT_GE(failures, 5u) << "domain, pool, cache object, magazines, lcore slots";
}

// --- alloc: top-down, exact highest fit, natural alignment -----------------

struct AllocRow {
	const char *what;
	std::vector<std::pair<uint64_t, uint64_t>> reserved; // layout: occupied ranges
	uint64_t npages, limit;
	bool aligned;
	int rc;
	uint64_t pfn;
};

TEST(Alloc, Table)
{
	const AllocRow rows[] = {
	        {"empty: top of window", {}, 1, UINT64_MAX, false, 0, 1000},
	        {"limit clamps", {}, 4, 500, false, 0, 497},
	        {"limit below end", {}, 1, 1, false, 0, 1},
	        {"whole window", {}, 1000, UINT64_MAX, false, 0, 1},
	        {"too big", {}, 1001, UINT64_MAX, false, -ENOMEM, 0},
	        {"aligned 3 -> 4", {}, 3, UINT64_MAX, true, 0, 996},
	        {"aligned 8 under limit", {}, 8, 1003, true, 0, 992},
	        {"highest hole wins", {{900, 999}}, 10, UINT64_MAX, false, 0, 890},
	        {"hole above too small", {{990, 997}}, 5, UINT64_MAX, false, 0, 985},
	        {"hole above fits exactly", {{990, 995}}, 5, UINT64_MAX, false, 0, 996},
	        {"exact fit hole above", {{990, 994}, {1000, 1000}}, 5, UINT64_MAX, false, 0, 995},
	        // The maple version searches npages + align - 1 and skips this hole.
	        {"exact aligned hole", {{1, 7}, {16, 1000}}, 8, UINT64_MAX, true, 0, 8},
	        {"aligned hole misaligned", {{1, 6}, {15, 1000}}, 8, UINT64_MAX, true, -ENOMEM, 0},
	        {"unaligned fits misaligned", {{1, 6}, {15, 1000}}, 8, UINT64_MAX, false, 0, 7},
	        {"full", {{1, 1000}}, 1, UINT64_MAX, false, -ENOMEM, 0},
	        {"limit inside range", {{500, 600}}, 10, 550, false, 0, 490},
	        {"start honoured", {{3, 1000}}, 2, UINT64_MAX, false, 0, 1},
	        {"start blocks", {{3, 1000}}, 3, UINT64_MAX, false, -ENOMEM, 0},
	        {"npages 0", {}, 0, UINT64_MAX, false, -EINVAL, 0},
	        {"limit below start", {}, 1, 0, false, -EINVAL, 0},
	};
	for (const auto &r : rows) {
		auto d = make(kG4K, 1, 1000);
		for (auto [lo, hi] : r.reserved)
			ASSERT_EQ(iovam_reserve(d.get(), lo, hi), 0) << r.what;
		iovam_stats before = stats_of(d.get());
		uint64_t pfn = 12345;
		EXPECT_EQ(iovam_alloc(d.get(), r.npages, r.limit, r.aligned, &pfn), r.rc) << r.what;
		if (r.rc == 0) {
			EXPECT_EQ(pfn, r.pfn) << r.what;
			uint64_t lo, hi;
			ASSERT_EQ(iovam_find(d.get(), pfn + r.npages - 1, &lo, &hi), 0);
			EXPECT_EQ(lo, pfn);
			EXPECT_EQ(hi, pfn + r.npages - 1);
		} else {
			EXPECT_EQ(pfn, 12345u) << r.what << ": out param written on error";
			EXPECT_TRUE(same_stats(before, stats_of(d.get()))) << r.what;
		}
		VERIFY(d.get());
	}
}

TEST(Alloc, NullOut)
{
	auto d = make(kG4K, 1, 100);
	EXPECT_EQ(iovam_alloc(d.get(), 1, 100, false, nullptr), -EINVAL);
	EXPECT_EQ(iovam_alloc(nullptr, 1, 100, false, nullptr), -EINVAL);
}

TEST(Alloc, TopDownSequence)
{
	auto d = make(kG4K, 1, 1 << 16);
	for (uint64_t i = 0; i < 5000; ++i)
		ASSERT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), (1u << 16) - i);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).live_ranges, 5000u);
}

// A hole deep in a fragmented space is found without walking the others.
TEST(Alloc, FindsOnlyHoleAmongMany)
{
	auto d = make(kG4K, 1, 1 << 20);
	std::vector<uint64_t> pfns;
	for (int i = 0; i < 20000; ++i) pfns.push_back(alloc_ok(d.get(), 2, UINT64_MAX, false));
	// Free single-range holes of 2 pages everywhere, one hole of 6 pages low down.
	for (size_t i = 0; i < pfns.size(); i += 2) ASSERT_EQ(iovam_free(d.get(), pfns[i]), 0);
	ASSERT_EQ(iovam_free(d.get(), pfns[19995]), 0); // 19994..19996 now one 6-page hole
	ASSERT_EQ(iovam_free(d.get(), pfns[19997]), 0);
	VERIFY(d.get());
	uint64_t pfn = alloc_ok(d.get(), 5, pfns[0], false);
	// The highest 5-page fit: the only hole big enough is pfns[19997]..pfns[19994]+1.
	EXPECT_EQ(pfn, pfns[19994] + 2 - 5 + 0);
	VERIFY(d.get());
}

// --- free, lazy free, deferred markers ------------------------------------

TEST(Free, Table)
{
	auto d = make(kG4K, 1, 100);
	uint64_t a = alloc_ok(d.get(), 4, UINT64_MAX, false); // 97..100
	ASSERT_EQ(iovam_reserve(d.get(), 10, 20), 0);
	iovam_stats before = stats_of(d.get());
	struct {
		uint64_t pfn;
		int rc;
	} bad[] = {
	        {50, -ENOENT}, {15, -EPERM}, {0, -ENOENT}, {101, -ENOENT}, {UINT64_MAX, -ENOENT}};
	for (auto &r : bad) {
		EXPECT_EQ(iovam_free(d.get(), r.pfn), r.rc) << r.pfn;
		EXPECT_EQ(iovam_free_deferred(d.get(), r.pfn), r.rc) << r.pfn;
		EXPECT_TRUE(same_stats(before, stats_of(d.get())));
		VERIFY(d.get());
	}
	EXPECT_EQ(iovam_free(d.get(), a + 2), 0);   // any pfn inside frees the range
	EXPECT_EQ(iovam_free(d.get(), a), -ENOENT); // double free
	EXPECT_EQ(stats_of(d.get()).live_ranges, 0u);
	EXPECT_EQ(iovam_free(nullptr, 1), -EINVAL);
	VERIFY(d.get());
}

TEST(Free, MergesNeighbourHoles)
{
	auto d = make(kG4K, 1, 1000);
	uint64_t a = alloc_ok(d.get(), 10, UINT64_MAX, false); // 991..1000
	uint64_t b = alloc_ok(d.get(), 10, UINT64_MAX, false); // 981..990
	uint64_t c = alloc_ok(d.get(), 10, UINT64_MAX, false); // 971..980
	ASSERT_EQ(iovam_free(d.get(), a), 0);
	ASSERT_EQ(iovam_free(d.get(), c), 0);
	ASSERT_EQ(iovam_free(d.get(), b), 0);
	VERIFY(d.get());
	EXPECT_EQ(alloc_ok(d.get(), 1000, UINT64_MAX, false), 1u);
}

// --- the pending free (DESIGN.md: a free's erase waits for the next call) ---

TEST(PendingFree, TheNextAllocationTakesItBack)
{
	auto d = make(kG4K, 1, 1000);
	const uint64_t a = alloc_ok(d.get(), 1, UINT64_MAX, false); // 1000
	const uint64_t b = alloc_ok(d.get(), 1, UINT64_MAX, false); // 999
	(void)alloc_ok(d.get(), 1, UINT64_MAX, false);              // 998
	for (uint64_t pfn : {b, a, b}) {
		const uint64_t takes = iovam_test_pending_takes(d.get());
		ASSERT_EQ(iovam_free(d.get(), pfn), 0);
		VERIFY(d.get());
		EXPECT_EQ(stats_of(d.get()).live_ranges, 2u);
		EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), pfn);
		EXPECT_EQ(iovam_test_pending_takes(d.get()), takes + 1) << pfn;
		EXPECT_EQ(stats_of(d.get()).live_ranges, 3u);
		VERIFY(d.get());
	}
	// Size-aligned: a range of 4 pages, freed and asked for again.
	const uint64_t c = alloc_ok(d.get(), 4, UINT64_MAX, true);
	ASSERT_EQ(iovam_free(d.get(), c), 0);
	EXPECT_EQ(alloc_ok(d.get(), 4, UINT64_MAX, true), c);
	EXPECT_EQ(iovam_test_pending_takes(d.get()), 4u);
	VERIFY(d.get());
}

// Between its free and the next call the range is ALLOCATED in the tree but
// free to every call: a second free, a deferred free, find(), a bulk free to
// the tree all see it free, and a reserve may cover it.
TEST(PendingFree, IsFreeToEveryOtherCall)
{
	auto d = make(kG4K, 1, 1000);
	const uint64_t a = alloc_ok(d.get(), 2, UINT64_MAX, true); // 998..999
	ASSERT_EQ(a, 998u);
	(void)alloc_ok(d.get(), 1, UINT64_MAX, false); // 1000
	const iovam_stats live = stats_of(d.get());
	ASSERT_EQ(iovam_free(d.get(), a + 1), 0);
	const iovam_stats freed = stats_of(d.get());
	EXPECT_EQ(freed.live_ranges, live.live_ranges - 1);
	EXPECT_EQ(freed.live_pages, live.live_pages - 2);
	uint64_t lo = 0, hi = 0;
	EXPECT_EQ(iovam_find(d.get(), a, &lo, &hi), -ENOENT);
	EXPECT_EQ(iovam_find(d.get(), a + 1, &lo, &hi), -ENOENT);
	uint64_t pfns[1] = {a};
	EXPECT_EQ(iovam_free_fast_bulk(d.get(), IOVAM_CACHE_NONE, pfns, 1, 2), -ENOENT);
	EXPECT_TRUE(same_stats(freed, stats_of(d.get())));
	VERIFY(d.get());
	EXPECT_EQ(iovam_free(d.get(), a), -ENOENT);
	EXPECT_EQ(iovam_free_deferred(d.get(), a), -ENOENT);
	EXPECT_TRUE(same_stats(freed, stats_of(d.get())));
	VERIFY(d.get());
	// A reserve over it reserves free space.
	ASSERT_EQ(iovam_free(d.get(), 1000), 0); // now the pending free; a is erased
	ASSERT_EQ(iovam_reserve(d.get(), 999, 1000), 0);
	ASSERT_EQ(iovam_find(d.get(), 1000, &lo, &hi), 0);
	EXPECT_EQ(lo, 999u);
	EXPECT_EQ(hi, 1000u);
	EXPECT_EQ(stats_of(d.get()).live_ranges, 0u);
	VERIFY(d.get());
	EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), 998u);
	EXPECT_EQ(iovam_test_pending_takes(d.get()), 0u);
	VERIFY(d.get());
}

// The range is taken back only when it is the exact answer.
TEST(PendingFree, AHigherFitOrAnotherSizeIsServedAsIfItWereErased)
{
	auto d = make(kG4K, 1, 1000);
	for (uint64_t want = 1000; want >= 996; --want)
		ASSERT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), want);
	const uint64_t takes = iovam_test_pending_takes(d.get());
	// A FREE page above the pending one: the higher one first.
	ASSERT_EQ(iovam_free(d.get(), 1000), 0);
	ASSERT_EQ(iovam_free(d.get(), 998), 0); // erases 1000, pends 998
	VERIFY(d.get());
	EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), 1000u);
	EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), 998u);
	// A 2-page request over the pending page and its FREE neighbour.
	ASSERT_EQ(iovam_free(d.get(), 999), 0);
	ASSERT_EQ(iovam_free(d.get(), 1000), 0); // erases 999, pends 1000
	EXPECT_EQ(alloc_ok(d.get(), 2, UINT64_MAX, false), 999u);
	VERIFY(d.get());
	// A limit below it.
	ASSERT_EQ(iovam_free(d.get(), 997), 0);
	EXPECT_EQ(alloc_ok(d.get(), 1, 996, false), 995u);
	EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), 997u);
	EXPECT_EQ(iovam_test_pending_takes(d.get()), takes); // none of these was its answer
	VERIFY(d.get());
}

// An unaligned request of the pending range's size may fit higher by
// straddling its top and a FREE page above it: it must not take the range.
TEST(PendingFree, AnUnalignedFitAcrossItsEndIsHigher)
{
	auto d = make(kG4K, 1, 1000);
	EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), 1000u);
	EXPECT_EQ(alloc_ok(d.get(), 2, UINT64_MAX, false), 998u); // 998..999
	ASSERT_EQ(iovam_free(d.get(), 1000), 0);
	ASSERT_EQ(iovam_free(d.get(), 998), 0); // erases 1000, pends 998..999
	VERIFY(d.get());
	EXPECT_EQ(alloc_ok(d.get(), 2, UINT64_MAX, false), 999u);
	VERIFY(d.get());
}

// A free knows a live cacheable range by its live byte when it is given the
// range's first page; given another page, or in unchecked mode, or for a
// range the live map does not record (3 pages), it looks the range up in the
// tree. Every way, the next allocation of its size takes it back, and a
// second free of it fails.
TEST(PendingFree, EveryWayToFreeARange)
{
	struct Row {
		const char *what;
		bool checked;
		uint64_t npages;
		bool aligned;
		uint64_t offset; // the page of the range given to iovam_free()
	} rows[] = {
	        {"first page, by the live byte", true, 4, true, 0},
	        {"inner page, looked up", true, 4, true, 2},
	        {"unchecked mode, looked up", false, 4, true, 0},
	        {"3 pages, not in the live map", true, 3, true, 0},
	};
	for (const Row &r : rows) {
		auto d = make(kG4K, 1, 1000);
		ASSERT_EQ(iovam_domain_set_checks(d.get(), r.checked), 0) << r.what;
		const uint64_t keep = alloc_ok(d.get(), 1, UINT64_MAX, false);
		const uint64_t a = alloc_ok(d.get(), r.npages, UINT64_MAX, r.aligned);
		ASSERT_EQ(iovam_free(d.get(), a + r.offset), 0) << r.what;
		EXPECT_EQ(iovam_free(d.get(), a), -ENOENT) << r.what;
		VERIFY(d.get());
		ASSERT_EQ(iovam_free(d.get(), keep), 0) << r.what; // erases the first one
		EXPECT_EQ(iovam_free(d.get(), a + r.offset), -ENOENT) << r.what;
		VERIFY(d.get());
		EXPECT_EQ(alloc_ok(d.get(), 1, UINT64_MAX, false), keep) << r.what;
		EXPECT_EQ(alloc_ok(d.get(), r.npages, UINT64_MAX, r.aligned), a) << r.what;
		ASSERT_EQ(iovam_free(d.get(), a + r.offset), 0) << r.what;
		const uint64_t takes = iovam_test_pending_takes(d.get());
		EXPECT_EQ(alloc_ok(d.get(), r.npages, UINT64_MAX, r.aligned), a) << r.what;
		EXPECT_EQ(iovam_test_pending_takes(d.get()), takes + 1) << r.what;
		EXPECT_EQ(stats_of(d.get()).live_ranges, 2u) << r.what;
		VERIFY(d.get());
	}
}

// The 32-bit estimate: a pending free below 4 GiB resets it at once, so a
// 32-bit request after a "full" failure takes the range back.
TEST(PendingFree, ResetsThe32BitEstimate)
{
	auto d = make(kG1M, 4000, 8000); // 32-bit boundary at pfn 4095: 96 pages below
	std::vector<uint64_t> low;
	uint64_t pfn = 0;
	while (iovam_alloc(d.get(), 1, 4095, false, &pfn) == 0) low.push_back(pfn);
	ASSERT_EQ(low.size(), 96u);
	ASSERT_EQ(iovam_alloc(d.get(), 1, 4095, false, &pfn), -ENOMEM);
	ASSERT_EQ(iovam_free(d.get(), low[40]), 0);
	EXPECT_EQ(alloc_ok(d.get(), 1, 4095, false), low[40]);
	VERIFY(d.get());
}

TEST(FreeDeferred, MarkerOccupiesUntilMaintain)
{
	auto d = make(kG4K, 1, 100);
	uint64_t a = alloc_ok(d.get(), 50, UINT64_MAX, false); // 51..100
	ASSERT_EQ(iovam_free_deferred(d.get(), a), 0);
	VERIFY(d.get());
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.live_ranges, 0u);
	EXPECT_EQ(st.deferred_ranges, 1u);
	uint64_t lo, hi;
	EXPECT_EQ(iovam_find(d.get(), a, &lo, &hi), -ENOENT); // absent for find
	EXPECT_EQ(iovam_free(d.get(), a), -ENOENT);           // not freeable twice
	EXPECT_EQ(iovam_free_deferred(d.get(), a), -ENOENT);
	EXPECT_EQ(iovam_reserve(d.get(), 60, 70), -EBUSY); // still occupied
	uint64_t pfn;
	EXPECT_EQ(iovam_alloc(d.get(), 51, UINT64_MAX, false, &pfn), -ENOMEM); // occupied for alloc
	EXPECT_EQ(alloc_ok(d.get(), 50, UINT64_MAX, false), 1u);
	EXPECT_EQ(iovam_maintain(d.get()), 1);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).deferred_ranges, 0u);
	EXPECT_EQ(alloc_ok(d.get(), 50, UINT64_MAX, false), 51u);
	EXPECT_EQ(iovam_maintain(d.get()), 0);
}

// Seed 000: the in-place marker store needs no node, so it works even when
// every node request fails; the drain needs none either.
TEST(FreeDeferred, InPlaceStoreNeedsNoNode)
{
	auto d = make(kG4K, 1, 1 << 20);
	std::vector<uint64_t> pfns;
	for (int i = 0; i < 3000; ++i) pfns.push_back(alloc_ok(d.get(), 1, UINT64_MAX, i % 3 == 0));
	iovam_test_fail_node_alloc(d.get(), 1, 0);
	for (size_t i = 0; i < pfns.size(); i += 2)
		ASSERT_EQ(iovam_free_deferred(d.get(), pfns[i]), 0);
	VERIFY(d.get());
	for (size_t i = 1; i < pfns.size(); i += 2) ASSERT_EQ(iovam_free(d.get(), pfns[i]), 0);
	VERIFY(d.get());
	EXPECT_EQ(iovam_maintain(d.get()), 1500);
	VERIFY(d.get());
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.live_ranges, 0u);
	EXPECT_EQ(st.deferred_ranges, 0u);
}

// --- reserve ----------------------------------------------------------------

struct ReserveRow {
	const char *what;
	std::vector<std::pair<uint64_t, uint64_t>> before;
	uint64_t lo, hi;
	int rc;
	std::vector<std::pair<uint64_t, uint64_t>> after;
};

TEST(Reserve, Table)
{
	const ReserveRow rows[] = {
	        {"plain", {}, 10, 20, 0, {{10, 20}}},
	        {"below start", {}, 0, 0, 0, {{0, 0}}},
	        {"overlap merges", {{10, 20}}, 15, 30, 0, {{10, 30}}},
	        {"inside is a no-op", {{10, 20}}, 12, 14, 0, {{10, 20}}},
	        {"covers several", {{10, 20}, {30, 40}, {50, 60}}, 15, 55, 0, {{10, 60}}},
	        {"adjacent stays apart", {{10, 20}}, 21, 30, 0, {{10, 20}, {21, 30}}},
	        {"adjacent below stays apart", {{10, 20}}, 5, 9, 0, {{5, 9}, {10, 20}}},
	        {"whole window", {{10, 20}}, 0, 100, 0, {{0, 100}}},
	        {"hi > end", {}, 10, 101, -EINVAL, {}},
	        {"lo > hi", {}, 20, 10, -EINVAL, {}},
	};
	for (const auto &r : rows) {
		auto d = make(kG4K, 1, 100);
		for (auto [lo, hi] : r.before) ASSERT_EQ(iovam_reserve(d.get(), lo, hi), 0);
		iovam_stats st0 = stats_of(d.get());
		EXPECT_EQ(iovam_reserve(d.get(), r.lo, r.hi), r.rc) << r.what;
		VERIFY(d.get());
		auto &want = r.rc == 0 ? r.after : r.before;
		EXPECT_EQ(stats_of(d.get()).reserved_ranges, want.size()) << r.what;
		if (r.rc != 0) {
			EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
		}
		for (auto [lo, hi] : want) {
			uint64_t flo, fhi;
			ASSERT_EQ(iovam_find(d.get(), lo, &flo, &fhi), 0) << r.what;
			EXPECT_EQ(flo, lo) << r.what;
			EXPECT_EQ(fhi, hi) << r.what;
		}
	}
}

TEST(Reserve, BusyChangesNothing)
{
	auto d = make(kG4K, 1, 100);
	uint64_t a = alloc_ok(d.get(), 10, 50, false); // 41..50
	ASSERT_EQ(iovam_reserve(d.get(), 10, 20), 0);
	uint64_t b = alloc_ok(d.get(), 5, 80, false); // 76..80
	ASSERT_EQ(iovam_free_deferred(d.get(), b), 0);
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_reserve(d.get(), 15, a), -EBUSY);  // reserved + allocated
	EXPECT_EQ(iovam_reserve(d.get(), 78, 90), -EBUSY); // deferred
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	uint64_t lo, hi;
	ASSERT_EQ(iovam_find(d.get(), 15, &lo, &hi), 0);
	EXPECT_EQ(lo, 10u);
	EXPECT_EQ(hi, 20u);
	VERIFY(d.get());
	EXPECT_EQ(iovam_reserve(nullptr, 1, 2), -EINVAL);
}

// --- find ---------------------------------------------------------------------

TEST(Find, Table)
{
	auto d = make(kG4K, 1, 100);
	uint64_t a = alloc_ok(d.get(), 3, UINT64_MAX, false); // 98..100
	ASSERT_EQ(iovam_reserve(d.get(), 1, 5), 0);
	uint64_t lo, hi;
	EXPECT_EQ(iovam_find(d.get(), a + 1, &lo, &hi), 0);
	EXPECT_EQ(lo, 98u);
	EXPECT_EQ(hi, 100u);
	EXPECT_EQ(iovam_find(d.get(), 3, &lo, &hi), 0);
	EXPECT_EQ(lo, 1u);
	EXPECT_EQ(iovam_find(d.get(), 50, &lo, &hi), -ENOENT);
	EXPECT_EQ(iovam_find(d.get(), 1000, &lo, &hi), -ENOENT);
	EXPECT_EQ(iovam_find(d.get(), 3, nullptr, &hi), -EINVAL);
	EXPECT_EQ(iovam_find(d.get(), 3, &lo, nullptr), -EINVAL);
	EXPECT_EQ(iovam_find(nullptr, 3, &lo, &hi), -EINVAL);
}

// --- the 32-bit estimate (docs/DESIGN.md, L2 and L3) ----------------------------------

// Seed 001: a node failure is transient and must not poison the estimate.
TEST(Estimate32, TransientFailureDoesNotPoison)
{
	auto d = make(kG1M, 1, 8191); // pfns 1..4095 are 32-bit
	// Fill the leaf so the next carve must split a node.
	for (int i = 0; i < 200; ++i) alloc_ok(d.get(), 2, 4095, false);
	iovam_test_fail_node_alloc(d.get(), 1, 0);
	int failures = 0;
	for (int i = 0; i < 40; ++i) {
		uint64_t pfn;
		int rc = iovam_alloc(d.get(), 1, 4095, false, &pfn);
		if (rc == -EAGAIN) {
			++failures;
		} else {
			ASSERT_EQ(rc, 0);
		}
	}
	ASSERT_GT(failures, 0) << "the test must hit a node shortage";
	EXPECT_GT(stats_of(d.get()).node_alloc_failures, 0u);
	iovam_test_fail_node_alloc(d.get(), 0, 0);
	// Space is plentiful: small 32-bit requests must succeed at once.
	uint64_t pfn;
	EXPECT_EQ(iovam_alloc(d.get(), 1, 4095, false, &pfn), 0);
	EXPECT_EQ(iovam_alloc(d.get(), 64, 4095, true, &pfn), 0);
	VERIFY(d.get());
}

// Seed 003: freeing ANY 32-bit space resets the estimate, not only space near
// a cached position.
TEST(Estimate32, AnyFreeBelowBoundaryResets)
{
	auto d = make(kG1M, 1, 8191);
	std::vector<uint64_t> p;
	for (int i = 0; i < 4095 / 5; ++i) p.push_back(alloc_ok(d.get(), 5, 4095, false));
	// 32-bit space full (4095 = 819 * 5): remember it.
	uint64_t pfn;
	ASSERT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), -ENOMEM);
	ASSERT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), -ENOMEM); // served by the estimate
	VERIFY(d.get());
	// 64-bit requests are not affected.
	EXPECT_EQ(iovam_alloc(d.get(), 5, UINT64_MAX, false, &pfn), 0);
	// Free a range at the very bottom, far from where the allocator works.
	ASSERT_EQ(iovam_free(d.get(), p.back()), 0);
	EXPECT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), 0);
	EXPECT_EQ(pfn, p.back());
	// Same through a deferred free and a drain.
	ASSERT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), -ENOMEM);
	ASSERT_EQ(iovam_free_deferred(d.get(), p[400]), 0);
	ASSERT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), -ENOMEM); // still occupied
	ASSERT_EQ(iovam_maintain(d.get()), 1);
	EXPECT_EQ(iovam_alloc(d.get(), 5, 4095, false, &pfn), 0);
	EXPECT_EQ(pfn, p[400]);
	VERIFY(d.get());
}

// A failed aligned request says nothing about unaligned ones of its size.
TEST(Estimate32, AlignedFailureKeepsUnaligned)
{
	auto d = make(kG1M, 1, 4095);
	ASSERT_EQ(iovam_reserve(d.get(), 1, 4095), 0);
	ASSERT_EQ(iovam_free(d.get(), 1), -EPERM);
	auto d2 = make(kG1M, 1, 8191);
	// Leave only holes of 8 pages at odd offsets below 4 GiB.
	for (uint64_t lo = 1; lo <= 4095; lo += 16)
		ASSERT_EQ(iovam_reserve(d2.get(), lo, std::min<uint64_t>(lo + 8, 4095)), 0);
	uint64_t pfn;
	EXPECT_EQ(iovam_alloc(d2.get(), 8, 4095, true, &pfn), -ENOMEM);
	EXPECT_EQ(iovam_alloc(d2.get(), 7, 4095, false, &pfn), 0);
	EXPECT_EQ(iovam_alloc(d2.get(), 6, 4095, false, &pfn), 0);
	VERIFY(d2.get());
}

// --- maintain, stats, bad input ---------------------------------------------

TEST(BadInput, NullDomainEverywhere)
{
	uint64_t x = 0, y = 0;
	iovam_stats st;
	iovam_cache_stats cs;
	EXPECT_EQ(iovam_alloc(nullptr, 1, 1, false, &x), -EINVAL);
	EXPECT_EQ(iovam_free(nullptr, 1), -EINVAL);
	EXPECT_EQ(iovam_free_deferred(nullptr, 1), -EINVAL);
	EXPECT_EQ(iovam_reserve(nullptr, 1, 1), -EINVAL);
	EXPECT_EQ(iovam_find(nullptr, 1, &x, &y), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast(nullptr, 0, 1, 1, &x), -EINVAL);
	EXPECT_EQ(iovam_free_fast(nullptr, 0, 1, 1), -EINVAL);
	EXPECT_EQ(iovam_cache_flush(nullptr, 0), -EINVAL);
	EXPECT_EQ(iovam_maintain(nullptr), -EINVAL);
	EXPECT_EQ(iovam_stats_get(nullptr, &st), -EINVAL);
	EXPECT_EQ(iovam_cache_stats_get(nullptr, 0, &cs), -EINVAL);
	EXPECT_EQ(iovam_verify(nullptr), -EINVAL);
	EXPECT_EQ(iovam_domain_set_checks(nullptr, 0), -EINVAL);
	iovam_test_fail_node_alloc(nullptr, 1, 1);
}

TEST(BadInput, NullOutPointers)
{
	auto d = make(kG4K, 1, 100, 2);
	EXPECT_EQ(iovam_stats_get(d.get(), nullptr), -EINVAL);
	EXPECT_EQ(iovam_cache_stats_get(d.get(), 0, nullptr), -EINVAL);
	EXPECT_EQ(iovam_domain_conf_get(d.get(), nullptr), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast(d.get(), 0, 1, 100, nullptr), -EINVAL);
	EXPECT_EQ(iovam_domain_set_checks(d.get(), 0x80), -EINVAL);
}

// --- the fast path --------------------------------------------------------------

TEST(Fast, BadCacheIdChangesNothing)
{
	auto d = make(kG4K, 1, 1000, 2);
	iovam_stats st0 = stats_of(d.get());
	uint64_t pfn = 7;
	iovam_cache_stats cs;
	EXPECT_EQ(iovam_alloc_fast(d.get(), 2, 1, 1000, &pfn), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast(d.get(), 77, 1, 1000, &pfn), -EINVAL);
	EXPECT_EQ(iovam_free_fast(d.get(), 2, 1000, 1), -EINVAL);
	EXPECT_EQ(iovam_cache_flush(d.get(), 2), -EINVAL);
	EXPECT_EQ(iovam_cache_stats_get(d.get(), 2, &cs), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast(d.get(), 0, 0, 1000, &pfn), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast(d.get(), 0, 1, 0, &pfn), -EINVAL);
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 1000, 0), -EINVAL);
	EXPECT_EQ(pfn, 7u);
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	VERIFY(d.get());
}

TEST(Fast, RoundsAlignsAndCaches)
{
	auto d = make(kG4K, 1, 1 << 20, 1);
	uint64_t a;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 3, UINT64_MAX, &a), 0);
	EXPECT_EQ(a % 4, 0u);
	uint64_t lo, hi;
	ASSERT_EQ(iovam_find(d.get(), a, &lo, &hi), 0);
	EXPECT_EQ(hi - lo + 1, 4u); // rounded up to a power of two
	ASSERT_EQ(iovam_free_fast(d.get(), 0, a, 3), 0);
	VERIFY(d.get());
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.cached_ranges, 1u);
	EXPECT_EQ(st.live_ranges, 1u); // a cached range stays ALLOCATED
	uint64_t b;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 4, UINT64_MAX, &b), 0);
	EXPECT_EQ(b, a); // served from the magazine
	iovam_cache_stats cs;
	ASSERT_EQ(iovam_cache_stats_get(d.get(), 0, &cs), 0);
	EXPECT_EQ(cs.alloc_hits, 1u);
	EXPECT_EQ(cs.alloc_misses, 1u);
	EXPECT_EQ(cs.free_hits, 1u);
	// Larger than 32 pages: the tree, size-aligned.
	uint64_t c;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 40, UINT64_MAX, &c), 0);
	EXPECT_EQ(c % 64, 0u);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, c, 40), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, b, 4), 0);
	EXPECT_EQ(iovam_cache_flush(d.get(), 0), 1);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).live_ranges, 0u);
}

TEST(Fast, CachedRangeHonoursLimit)
{
	auto d = make(kG4K, 1, 1 << 20, 1);
	uint64_t hi_pfn, lo_pfn;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &hi_pfn), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, hi_pfn, 1), 0);
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, 1000, &lo_pfn), 0);
	EXPECT_LE(lo_pfn, 1000u);
	EXPECT_NE(lo_pfn, hi_pfn);
	VERIFY(d.get());
}

TEST(Fast, CheckedFreeRejectsForeignRanges)
{
	auto d = make(kG4K, 1, 1000, 1);
	ASSERT_EQ(iovam_domain_set_checks(d.get(), IOVAM_CHECK_FAST_FREE), 0);
	uint64_t a;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 2, UINT64_MAX, &a), 0);
	ASSERT_EQ(iovam_reserve(d.get(), 10, 11), 0);
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 500, 2), -ENOENT);   // never allocated
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 10, 2), -EPERM);     // reserved
	EXPECT_EQ(iovam_free_fast(d.get(), 0, a, 1), -EINVAL);     // wrong size
	EXPECT_EQ(iovam_free_fast(d.get(), 0, a + 1, 1), -EINVAL); // not the start
	EXPECT_EQ(iovam_free_fast(d.get(), 0, 3, 2), -EINVAL);     // misaligned (O(1) check)
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	EXPECT_EQ(iovam_free_fast(d.get(), 0, a, 2), 0);
	VERIFY(d.get());
}

// A small domain whose space sits in caches: the tree says ENOMEM, the
// allocation flushes every cache and retries.
TEST(Fast, EnomemFlushesAllCaches)
{
	auto d = make(kG4K, 1, 64, 2);
	std::vector<uint64_t> got;
	uint64_t pfn;
	while (iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &pfn) == 0) got.push_back(pfn);
	ASSERT_EQ(got.size(), 64u);
	for (uint64_t p : got) ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0); // all in cache 0
	VERIFY(d.get());
	// Cache 1 wants 2 pages: only possible once cache 0 gave its pages back.
	ASSERT_EQ(iovam_alloc_fast(d.get(), 1, 2, UINT64_MAX, &pfn), 0);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 0u);
}

TEST(Fast, DepotCarriesMagazinesBetweenLcores)
{
	auto d = make(kG4K, 1, 1 << 20, 2);
	std::vector<uint64_t> got(1000);
	for (auto &p : got) ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
	for (auto p : got) ASSERT_EQ(iovam_free_fast(d.get(), 0, p, 1), 0);
	VERIFY(d.get());
	// Cache 1 is empty; it takes full magazines from the depot.
	for (int i = 0; i < 500; ++i)
		ASSERT_EQ(iovam_alloc_fast(d.get(), 1, 1, UINT64_MAX, &got[i]), 0);
	iovam_cache_stats cs;
	ASSERT_EQ(iovam_cache_stats_get(d.get(), 1, &cs), 0);
	EXPECT_GT(cs.alloc_hits, 0u);
	VERIFY(d.get());
	// maintain trims the depot back to its bound.
	ASSERT_EQ(iovam_cache_flush(d.get(), 1), 8); // 4 magazines of 127 came over, 500 used
	iovam_maintain(d.get());
	VERIFY(d.get());
}

// --- the bulk fast path ------------------------------------------------------------

iovam_cache_stats cache_stats_of(iovam_domain *d, uint32_t cache_id)
{
	iovam_cache_stats cs{};
	EXPECT_EQ(iovam_cache_stats_get(d, cache_id, &cs), 0);
	return cs;
}

bool same_cache_stats(const iovam_cache_stats &a, const iovam_cache_stats &b)
{
	return a.alloc_hits == b.alloc_hits && a.alloc_misses == b.alloc_misses &&
	       a.free_hits == b.free_hits && a.free_misses == b.free_misses &&
	       a.cached_ranges == b.cached_ranges;
}

// Each range of a successful bulk: aligned, of the rounded size, ALLOCATED.
void expect_bulk_ranges(iovam_domain *d, const std::vector<uint64_t> &pfns, uint64_t npages,
                        uint64_t limit_pfn)
{
	const uint64_t size = npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
	std::vector<uint64_t> sorted = pfns;
	std::sort(sorted.begin(), sorted.end());
	EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
	        << "a range handed out twice";
	for (uint64_t pfn : pfns) {
		EXPECT_EQ(pfn % std::bit_ceil(npages), 0u) << pfn;
		EXPECT_LE(pfn + size - 1, limit_pfn) << pfn;
		uint64_t lo = 0, hi = 0;
		ASSERT_EQ(iovam_find(d, pfn, &lo, &hi), 0) << pfn;
		EXPECT_EQ(lo, pfn);
		EXPECT_EQ(hi, pfn + size - 1);
	}
}

struct BulkBadRow {
	const char *what;
	bool null_d, null_array;
	uint32_t cache_id;
	uint64_t npages, limit_pfn;
	unsigned int n;
	int rc;
};

// Argument errors of both bulk calls: -EINVAL (or 0 for n == 0) and nothing
// changes, counters included.
TEST(Bulk, BadInputTable)
{
	const BulkBadRow rows[] = {
	        {"NULL d", true, false, 0, 1, UINT64_MAX, 4, -EINVAL},
	        {"NULL d, n 0", true, false, 0, 1, UINT64_MAX, 0, -EINVAL},
	        {"NULL array", false, true, 0, 1, UINT64_MAX, 4, -EINVAL},
	        {"NULL array, shared path", false, true, IOVAM_CACHE_NONE, 1, UINT64_MAX, 4,
	         -EINVAL},
	        {"n 0", false, false, 0, 1, UINT64_MAX, 0, 0},
	        {"n 0, NULL array", false, true, 0, 1, UINT64_MAX, 0, 0},
	        {"n 0, nothing else checked", false, true, 77, 0, 0, 0, 0},
	        {"cache_id == n_caches", false, false, 2, 1, UINT64_MAX, 4, -EINVAL},
	        {"cache_id far out", false, false, UINT32_MAX - 1, 1, UINT64_MAX, 4, -EINVAL},
	        {"npages 0", false, false, 0, 0, UINT64_MAX, 4, -EINVAL},
	        {"npages 0, shared path", false, false, IOVAM_CACHE_NONE, 0, UINT64_MAX, 4,
	         -EINVAL},
	};
	auto d = make(kG4K, 1, 1000, 2);
	// Something in a magazine, so that a wrongly accepted call would show.
	std::vector<uint64_t> warm(4);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, warm.data(), 4), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, warm.data(), 4, 1), 0);
	for (const auto &r : rows) {
		iovam_domain *dd = r.null_d ? nullptr : d.get();
		iovam_stats st0 = stats_of(d.get());
		iovam_cache_stats cs0 = cache_stats_of(d.get(), 0),
		                  shared0 = cache_stats_of(d.get(), IOVAM_CACHE_NONE);
		std::vector<uint64_t> out(4, 12345);
		EXPECT_EQ(iovam_alloc_fast_bulk(dd, r.cache_id, r.npages, r.limit_pfn,
		                                r.null_array ? nullptr : out.data(), r.n),
		          r.rc)
		        << r.what;
		// The free gets live-looking input: the four cached ranges' pfns.
		EXPECT_EQ(iovam_free_fast_bulk(dd, r.cache_id, r.null_array ? nullptr : warm.data(),
		                               r.n, r.npages),
		          r.rc)
		        << r.what;
		EXPECT_EQ(out, std::vector<uint64_t>(4, 12345)) << r.what;
		EXPECT_TRUE(same_stats(st0, stats_of(d.get()))) << r.what;
		EXPECT_TRUE(same_cache_stats(cs0, cache_stats_of(d.get(), 0))) << r.what;
		EXPECT_TRUE(same_cache_stats(shared0, cache_stats_of(d.get(), IOVAM_CACHE_NONE)))
		        << r.what;
		VERIFY(d.get());
	}
	// A limit below start_pfn: the alloc's own error.
	uint64_t out[4];
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, 0, out, 4), -EINVAL);
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), IOVAM_CACHE_NONE, 1, 0, out, 4), -EINVAL);
	VERIFY(d.get());
}

TEST(Bulk, RoundsAlignsAndHitsTheMagazineOnce)
{
	auto d = make(kG4K, 1, 1 << 20, 1);
	std::vector<uint64_t> a(32);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 3, UINT64_MAX, a.data(), 32),
	          0); // tree: 32 misses
	expect_bulk_ranges(d.get(), a, 3, UINT64_MAX);
	VERIFY(d.get());
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, a.data(), 32, 4),
	          0); // another npages of the same class
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 32u);
	iovam_cache_stats cs0 = cache_stats_of(d.get(), 0);
	EXPECT_EQ(cs0.alloc_misses, 32u);
	EXPECT_EQ(cs0.free_hits, 32u);
	std::vector<uint64_t> b(32);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 4, UINT64_MAX, b.data(), 32), 0);
	// From the magazine, in the order 32 single pops would give.
	std::vector<uint64_t> want(a.rbegin(), a.rend());
	EXPECT_EQ(b, want);
	iovam_cache_stats cs1 = cache_stats_of(d.get(), 0);
	EXPECT_EQ(cs1.alloc_hits, 32u);
	EXPECT_EQ(cs1.alloc_misses, 32u);
	EXPECT_EQ(cs1.cached_ranges, 0u);
	VERIFY(d.get());
	// Singles and bulks mix: a bulk's ranges freed one by one, and back.
	for (uint64_t pfn : b) ASSERT_EQ(iovam_free_fast(d.get(), 0, pfn, 3), 0);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 3, UINT64_MAX, b.data(), 32), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, b.data(), 32, 3), 0);
	EXPECT_EQ(iovam_cache_flush(d.get(), 0), 32);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).live_ranges, 0u);
}

// More than a magazine holds: the slow path's ladder (swap with prev, the
// depot, the tree) for both calls, then everything drains back.
TEST(Bulk, LargerThanTwoMagazines)
{
	auto d = make(kG4K, 1, 1 << 20, 2);
	std::vector<uint64_t> a(400), b(400);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, a.data(), 400), 0);
	expect_bulk_ranges(d.get(), a, 1, UINT64_MAX);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, a.data(), 400, 1), 0);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 400u);
	// Cache 1 takes full magazines from the depot, then the tree.
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 1, 1, UINT64_MAX, b.data(), 400), 0);
	expect_bulk_ranges(d.get(), b, 1, UINT64_MAX);
	EXPECT_GT(cache_stats_of(d.get(), 1).alloc_hits, 0u);
	VERIFY(d.get());
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 1, b.data(), 400, 1), 0);
	ASSERT_GE(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
	VERIFY(d.get());
	iovam_stats st = stats_of(d.get());
	EXPECT_EQ(st.live_ranges, 0u);
	EXPECT_EQ(st.cached_ranges, 0u);
}

// Larger than the caches take, or the shared path: the tree, size-aligned,
// and a free bulk checked in full.
TEST(Bulk, UncachedGoesToTheTree)
{
	for (uint32_t cache_id : {0u, IOVAM_CACHE_NONE}) {
		for (uint64_t npages : {1ull, 5ull, 40ull}) {
			auto d = make(kG4K, 1, 1 << 20, 1);
			std::vector<uint64_t> a(9);
			ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), cache_id, npages, UINT64_MAX,
			                                a.data(), 9),
			          0);
			expect_bulk_ranges(d.get(), a, npages, UINT64_MAX);
			VERIFY(d.get());
			ASSERT_EQ(iovam_free_fast_bulk(d.get(), cache_id, a.data(), 9, npages), 0);
			VERIFY(d.get());
			const bool cached =
			        cache_id != IOVAM_CACHE_NONE && npages <= IOVAM_CACHE_MAX_PAGES;
			EXPECT_EQ(stats_of(d.get()).live_ranges, cached ? 9u : 0u) << npages;
			EXPECT_EQ(stats_of(d.get()).cached_ranges, cached ? 9u : 0u) << npages;
		}
	}
}

// A bulk free to the tree of a tree tall enough for its path hints
// (GapTree::kHintMinHeight levels: 32K single pages between 32K holes), where
// it asks ahead for each range's live byte, hint slots and path nodes
// (RangeCache::free_fast_bulk_slow()): the same frees as without, all or
// nothing. Run under ASan too, for the pipeline's indices.
TEST(Bulk, FreeToATallTreeAsksAheadAndFreesTheSame)
{
	constexpr uint64_t kPages = 1 << 16;
	auto d = make(kG4K, 1, kPages);
	std::vector<uint64_t> live;
	uint64_t pfn = 0;
	while (iovam_alloc(d.get(), 1, UINT64_MAX, false, &pfn) == 0) live.push_back(pfn);
	ASSERT_EQ(live.size(), kPages);
	for (size_t i = 0; i < live.size(); i += 2) ASSERT_EQ(iovam_free(d.get(), live[i]), 0);
	std::vector<uint64_t> odd;
	for (size_t i = 1; i < live.size(); i += 2) odd.push_back(live[i]);
	std::mt19937_64 rng(11);
	std::shuffle(odd.begin(), odd.end(), rng);
	VERIFY(d.get());
	for (uint32_t n : {1u, 3u, 5u, 9u, 127u, 200u}) {
		std::vector<uint64_t> bulk(odd.end() - n, odd.end());
		// A repeat as the last entry: refused, nothing freed.
		bulk.push_back(bulk.front());
		const iovam_stats before = stats_of(d.get());
		EXPECT_EQ(iovam_free_fast_bulk(d.get(), IOVAM_CACHE_NONE, bulk.data(), n + 1, 1),
		          -ENOENT)
		        << n;
		EXPECT_TRUE(same_stats(before, stats_of(d.get()))) << n;
		VERIFY(d.get());
		ASSERT_EQ(iovam_free_fast_bulk(d.get(), IOVAM_CACHE_NONE, bulk.data(), n, 1), 0)
		        << n;
		EXPECT_EQ(stats_of(d.get()).live_ranges, before.live_ranges - n) << n;
		VERIFY(d.get());
		for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(iovam_free(d.get(), bulk[i]), -ENOENT);
		odd.resize(odd.size() - n);
	}
}

struct BulkFreeBadRow {
	const char *what;
	uint32_t cache_id;
	uint64_t npages;
	bool checks; // IOVAM_CHECK_FAST_FREE
	int bad;     // which bad entry goes in the middle
	int rc;
};

enum BadEntry {
	kMisaligned,
	kPastEnd,
	kBelowStart,
	kNeverAllocated,
	kReservedEntry,
	kWrongSize,
	kNotStart,
	kDeferredEntry,
	kRepeated
};

// One bad entry in the middle of a free bulk: its error, and nothing freed:
// the good entries are still ALLOCATED and ours, stats, cache counters and
// verify() as before; the same bulk without it then frees.
TEST(Bulk, FreeWithABadEntryChangesNothing)
{
	const BulkFreeBadRow rows[] = {
	        // Trusting cache path: only what the O(1) checks see.
	        {"cache: misaligned", 0, 2, false, kMisaligned, -EINVAL},
	        {"cache: past the end", 0, 2, false, kPastEnd, -EINVAL},
	        {"cache: below start", 0, 2, false, kBelowStart, -EINVAL},
	        // Checked: everything a single checked free refuses, and repeats.
	        {"checked: misaligned", 0, 2, true, kMisaligned, -EINVAL},
	        {"checked: never allocated", 0, 2, true, kNeverAllocated, -ENOENT},
	        {"checked: reserved", 0, 2, true, kReservedEntry, -EPERM},
	        {"checked: wrong size", 0, 2, true, kWrongSize, -EINVAL},
	        {"checked: not the start", 0, 2, true, kNotStart, -EINVAL},
	        {"checked: deferred", 0, 2, true, kDeferredEntry, -ENOENT},
	        {"checked: repeated", 0, 2, true, kRepeated, -ENOENT},
	        // The shared path and ranges over 32 pages are always checked.
	        {"shared: never allocated", IOVAM_CACHE_NONE, 2, false, kNeverAllocated, -ENOENT},
	        {"shared: reserved", IOVAM_CACHE_NONE, 2, false, kReservedEntry, -EPERM},
	        {"shared: repeated", IOVAM_CACHE_NONE, 2, false, kRepeated, -ENOENT},
	        {"shared: past the end", IOVAM_CACHE_NONE, 2, false, kPastEnd, -EINVAL},
	        {"40 pages: wrong size", 0, 40, false, kWrongSize, -EINVAL},
	        {"40 pages: repeated", 0, 40, false, kRepeated, -ENOENT},
	        {"40 pages: deferred", 0, 40, false, kDeferredEntry, -ENOENT},
	};
	for (const auto &r : rows) {
		auto d = make(kG4K, 1, 1 << 16, 1);
		if (r.checks) {
			ASSERT_EQ(iovam_domain_set_checks(d.get(), IOVAM_CHECK_FAST_FREE), 0);
		}
		const uint64_t size =
		        r.npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(r.npages) : r.npages;
		const uint64_t align = std::bit_ceil(r.npages);
		std::vector<uint64_t> good(16);
		ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, r.npages, UINT64_MAX, good.data(), 16),
		          0)
		        << r.what;
		ASSERT_EQ(iovam_reserve(d.get(), 4 * align, 5 * align - 1), 0);
		uint64_t odd = 0; // an ALLOCATED range of another size
		ASSERT_EQ(iovam_alloc(d.get(), 4 * align, 1 << 12, true, &odd), 0);
		uint64_t deferred = 0;
		ASSERT_EQ(iovam_alloc(d.get(), size, 1 << 13, true, &deferred), 0);
		ASSERT_EQ(iovam_free_deferred(d.get(), deferred), 0);
		// Something cached, so that a wrongly pushed bulk would show in the counts.
		uint64_t warm = 0;
		ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &warm), 0);
		ASSERT_EQ(iovam_free_fast(d.get(), 0, warm, 1), 0);
		uint64_t bad = 0;
		switch (r.bad) {
		case kMisaligned: bad = good[0] + 1; break;
		case kPastEnd: bad = (1 << 16) + align; break;
		case kBelowStart: bad = 0; break;
		case kNeverAllocated: bad = 8 * align; break;
		case kReservedEntry: bad = 4 * align; break;
		case kWrongSize: bad = odd; break;
		case kNotStart: bad = odd + align; break; // aligned, inside a larger range
		case kDeferredEntry: bad = deferred; break;
		case kRepeated: bad = good[2]; break;
		}
		std::vector<uint64_t> bulk(good.begin(), good.begin() + 8);
		bulk.push_back(bad);
		bulk.insert(bulk.end(), good.begin() + 8, good.end());
		VERIFY(d.get());
		iovam_stats st0 = stats_of(d.get());
		iovam_cache_stats cs0 = cache_stats_of(d.get(), 0),
		                  shared0 = cache_stats_of(d.get(), IOVAM_CACHE_NONE);
		EXPECT_EQ(iovam_free_fast_bulk(d.get(), r.cache_id, bulk.data(),
		                               static_cast<unsigned>(bulk.size()), r.npages),
		          r.rc)
		        << r.what;
		VERIFY(d.get());
		EXPECT_TRUE(same_stats(st0, stats_of(d.get()))) << r.what;
		EXPECT_TRUE(same_cache_stats(cs0, cache_stats_of(d.get(), 0))) << r.what;
		EXPECT_TRUE(same_cache_stats(shared0, cache_stats_of(d.get(), IOVAM_CACHE_NONE)))
		        << r.what;
		for (uint64_t pfn : good) {
			uint64_t lo = 0, hi = 0;
			ASSERT_EQ(iovam_find(d.get(), pfn, &lo, &hi), 0)
			        << r.what << ": " << pfn << " freed";
			EXPECT_EQ(hi - lo + 1, size);
		}
		// Still ours: the good entries free in one bulk.
		ASSERT_EQ(iovam_free_fast_bulk(d.get(), r.cache_id, good.data(), 16, r.npages), 0)
		        << r.what;
		VERIFY(d.get());
	}
}

// A bad entry with the magazine nearly full: still refused whole.
TEST(Bulk, FreeBadEntryWithFullMagazine)
{
	auto d = make(kG4K, 1, 1 << 16, 1);
	std::vector<uint64_t> fill(120), bulk(16);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, fill.data(), 120), 0);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, bulk.data(), 16), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, fill.data(), 120, 1), 0); // 7 slots left
	bulk[5] = (1 << 16) + 1;                                             // past the end
	iovam_stats st0 = stats_of(d.get());
	iovam_cache_stats cs0 = cache_stats_of(d.get(), 0);
	EXPECT_EQ(iovam_free_fast_bulk(d.get(), 0, bulk.data(), 16, 1), -EINVAL);
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	EXPECT_TRUE(same_cache_stats(cs0, cache_stats_of(d.get(), 0)));
	VERIFY(d.get());
}

// Cached ranges above the limit are not handed out; below the limit the
// tree supplies them; a limit nothing fits under is -ENOMEM.
TEST(Bulk, LimitTooLow)
{
	auto d = make(kG4K, 1, 1 << 20, 1);
	std::vector<uint64_t> high(8), low(8);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 2, UINT64_MAX, high.data(), 8), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, high.data(), 8, 2), 0);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 2, 1000, low.data(), 8), 0);
	expect_bulk_ranges(d.get(), low, 2, 1000);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 8u) << "the high ones stay cached";
	VERIFY(d.get());
	// Below start_pfn + size - 1 nothing fits: -ENOMEM, not -EINVAL.
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 2, 1, low.data(), 8), -ENOMEM);
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), IOVAM_CACHE_NONE, 2, 1, low.data(), 8), -ENOMEM);
	VERIFY(d.get());
	// The retry flushed the caches: fewer cached, no more live.
	EXPECT_EQ(stats_of(d.get()).live_ranges, st0.live_ranges - st0.cached_ranges);
}

// Only part of a bulk fits: -ENOMEM and nothing allocated (the part obtained
// went back), whether it came from the tree or from a cache.
TEST(Bulk, EnomemIsAllOrNothing)
{
	auto d = make(kG4K, 1, 64, 2);
	std::vector<uint64_t> taken(30), bulk(40, 7);
	for (auto &p : taken) p = alloc_ok(d.get(), 1, UINT64_MAX, false); // 34 pages left
	iovam_stats st0 = stats_of(d.get());
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, bulk.data(), 35), -ENOMEM);
	VERIFY(d.get());
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), IOVAM_CACHE_NONE, 1, UINT64_MAX, bulk.data(), 35),
	          -ENOMEM);
	EXPECT_TRUE(same_stats(st0, stats_of(d.get())));
	VERIFY(d.get());
	// 10 of the 34 in cache 0's magazine: a bulk of 35 through cache 0 pops
	// them, takes 24 from the tree, fails, and gives all 34 back to the tree.
	std::vector<uint64_t> ten(10);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, ten.data(), 10), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, ten.data(), 10, 1), 0);
	ASSERT_EQ(stats_of(d.get()).cached_ranges, 10u);
	EXPECT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, bulk.data(), 35), -ENOMEM);
	VERIFY(d.get());
	EXPECT_TRUE(same_stats(st0, stats_of(d.get()))) << "the cached ten are free space again";
	// Through the other cache, with the ten cached in cache 0: flushed, then all fits.
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 0, 1, UINT64_MAX, ten.data(), 10), 0);
	ASSERT_EQ(iovam_free_fast_bulk(d.get(), 0, ten.data(), 10, 1), 0);
	ASSERT_EQ(iovam_alloc_fast_bulk(d.get(), 1, 1, UINT64_MAX, bulk.data(), 34), 0);
	expect_bulk_ranges(d.get(), std::vector<uint64_t>(bulk.begin(), bulk.begin() + 34), 1, 64);
	VERIFY(d.get());
	EXPECT_EQ(stats_of(d.get()).live_ranges, 64u);
	EXPECT_EQ(stats_of(d.get()).cached_ranges, 0u);
}

// A node shortage part way: -EAGAIN, and the ranges obtained went back.
TEST(Bulk, EagainGivesBack)
{
	auto d = make(kG1M, 1, 8191, 1);
	for (int i = 0; i < 200; ++i) alloc_ok(d.get(), 2, 4095, false); // carves will need splits
	iovam_test_fail_node_alloc(d.get(), 3, 5);
	int eagain = 0;
	std::vector<uint64_t> bulk(64);
	for (int i = 0; i < 200 && eagain < 5; ++i) {
		iovam_stats st0 = stats_of(d.get());
		const uint32_t cache_id = i % 2 ? 0 : IOVAM_CACHE_NONE;
		int rc = iovam_alloc_fast_bulk(d.get(), cache_id, 1 + i % 3, 4095, bulk.data(), 64);
		VERIFY(d.get());
		if (rc == -EAGAIN) {
			++eagain;
			iovam_stats st1 = stats_of(d.get());
			// Only the ranges popped from the cache left it: to the tree.
			const uint64_t popped = st0.cached_ranges - st1.cached_ranges;
			EXPECT_EQ(st1.live_ranges, st0.live_ranges - popped);
			EXPECT_EQ(st1.live_pages,
			          st0.live_pages - popped * std::bit_ceil(1u + i % 3));
		} else {
			ASSERT_EQ(rc, 0);
			ASSERT_EQ(
			        iovam_free_fast_bulk(d.get(), cache_id, bulk.data(), 64, 1 + i % 3),
			        0);
		}
	}
	EXPECT_GT(eagain, 0) << "the test must hit a node shortage";
	iovam_test_fail_node_alloc(d.get(), 0, 0);
	VERIFY(d.get());
}

// --- memory ---------------------------------------------------------------------

TEST(Memory, TreeBytesFollowTheLiveSet)
{
	auto d = make(kG4K, 1, 1 << 24);
	std::vector<uint64_t> p(100000);
	for (auto &x : p) x = alloc_ok(d.get(), 1, UINT64_MAX, false);
	iovam_stats full = stats_of(d.get());
	EXPECT_LT(full.tree_bytes, 100000u * 20);
	for (auto x : p) ASSERT_EQ(iovam_free(d.get(), x), 0);
	iovam_maintain(d.get());
	iovam_stats empty = stats_of(d.get());
	EXPECT_LT(empty.tree_bytes, 128u * 256) << "pool trimmed after a mass free";
	VERIFY(d.get());
}

// Random frees descend from the root, and at this size the descents use the
// path hints (lib/path_hints.h): their pages count in tree_bytes, and go back
// to the system once the tree is small again.
TEST(Memory, PathHintPagesCountAndGoBackAfterAMassFree)
{
	auto d = make(kG4K, 1, 1 << 24);
	std::vector<uint64_t> p(100000);
	for (auto &x : p) x = alloc_ok(d.get(), 1, UINT64_MAX, false);
	const iovam_stats packed = stats_of(d.get());
	std::mt19937_64 rng(5);
	std::shuffle(p.begin(), p.end(), rng);
	for (size_t i = 0; i < p.size() / 2; ++i) ASSERT_EQ(iovam_free(d.get(), p[i]), 0);
	const iovam_stats half = stats_of(d.get());
	// 50000 holes among 50000 ranges take more nodes, and the hints about 33
	// KiB for the 100000 pages they touched: 25 KiB of the leaves' table, a
	// page each of the parents' and the grandparents'.
	EXPECT_GT(half.tree_bytes, packed.tree_bytes + 24 * 1024);
	EXPECT_LT(half.tree_bytes, 100000u * 20);
	for (size_t i = p.size() / 2; i < p.size(); ++i) ASSERT_EQ(iovam_free(d.get(), p[i]), 0);
	iovam_maintain(d.get());
	const iovam_stats empty = stats_of(d.get());
	EXPECT_LT(empty.tree_bytes, 128u * 256) << "pool trimmed and hints dropped";
	VERIFY(d.get());
}

// --- the perf oracle's hook (iovam_test_prefetch_free(), perf/churn_floor.cc) ---

// It only prefetches: two domains built alike answer a churn alike after one
// of them was asked for every live range (and bad input) in both stages. Big
// enough that descents use the path hints (four levels and up).
TEST(PrefetchFreeHook, ChangesNothing)
{
	auto a = make(kG4K, 1, 1 << 20);
	auto b = make(kG4K, 1, 1 << 20);
	std::vector<uint64_t> live;
	for (int i = 0; i < 60000; ++i) {
		const uint64_t pa = alloc_ok(a.get(), 1, UINT64_MAX, false);
		ASSERT_EQ(alloc_ok(b.get(), 1, UINT64_MAX, false), pa);
		live.push_back(pa);
	}
	std::mt19937_64 rng(7);
	std::shuffle(live.begin(), live.end(), rng);
	for (size_t i = 0; i < live.size() / 2; ++i) {
		ASSERT_EQ(iovam_free(a.get(), live[i]), 0);
		ASSERT_EQ(iovam_free(b.get(), live[i]), 0);
	}
	live.erase(live.begin(), live.begin() + static_cast<long>(live.size() / 2));
	const iovam_stats before = stats_of(a.get());
	EXPECT_GT(before.tree_bytes, 1000u * 256) << "a big tree: the hints start at four levels";
	for (uint64_t pfn : live)
		for (int stage : {0, 1}) iovam_test_prefetch_free(a.get(), pfn, stage);
	for (uint64_t pfn : {uint64_t{0}, uint64_t{1} << 20, uint64_t{1} << 40, UINT64_MAX})
		for (int stage : {-1, 0, 1, 2, 1000}) iovam_test_prefetch_free(a.get(), pfn, stage);
	for (int stage : {0, 1}) iovam_test_prefetch_free(nullptr, live[0], stage);
	VERIFY(a.get());
	EXPECT_TRUE(same_stats(stats_of(a.get()), before));
	for (size_t i = 0; i < 2000; ++i) {
		const uint64_t pa = alloc_ok(a.get(), 1, UINT64_MAX, false);
		ASSERT_EQ(alloc_ok(b.get(), 1, UINT64_MAX, false), pa) << i;
		const size_t v = rng() % live.size();
		ASSERT_EQ(iovam_free(a.get(), live[v]), 0);
		ASSERT_EQ(iovam_free(b.get(), live[v]), 0);
		live[v] = pa;
	}
	VERIFY(a.get());
	VERIFY(b.get());
	EXPECT_TRUE(same_stats(stats_of(a.get()), stats_of(b.get())));
}

} // namespace
