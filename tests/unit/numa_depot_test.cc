// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// A depot per NUMA node (iovam_numa.h): caches placed on two nodes (the node
// hint needs no real NUMA: the system allocator serves both) exchange full
// magazines through their own node's depot first, then take from another
// node's depot (a copy), then go to the tree. Return batches feed the depot
// of the node they are given. verify() after every step, and beside a
// two-node pipeline running on threads.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "iovam.h"
#include "iovam_numa.h"
#include "owned_handles.h"

namespace
{

constexpr uint32_t kMag = IOVAM_MAG_SIZE;

using iovam::test::BatchPtr;
using iovam::test::DomainPtr;

// Caches 0 and 1 on node 1, caches 2 and 3 on node 0 (the system allocator).
DomainPtr make_two_nodes()
{
	iovam_domain_conf c{4096, 1, (1 << 20) - 1, 4};
	DomainPtr d(iovam_domain_create(&c));
	if (!d) return d;
	const int node[4] = {1, 1, 0, 0};
	for (uint32_t i = 0; i < 4; ++i)
		if (iovam_cache_set_node(d.get(), i, node[i], nullptr) != 0) return nullptr;
	return d;
}

std::vector<uint64_t> alloc_n(iovam_domain *d, uint32_t cache, uint32_t n)
{
	std::vector<uint64_t> v(n);
	for (auto &p : v) EXPECT_EQ(iovam_alloc_fast(d, cache, 1, UINT64_MAX, &p), 0);
	return v;
}

// Freeing 3 magazines' worth into an empty cache fills loaded and prev and
// hands exactly one full magazine to the depot of the cache's node.
void free_all(iovam_domain *d, uint32_t cache, const std::vector<uint64_t> &pfn)
{
	for (auto p : pfn) ASSERT_EQ(iovam_free_fast(d, cache, p, 1), 0);
}

// One range from cache `cache`, which must be one of `from` (a depot hit,
// not the tree); verify() after it.
uint64_t take_one(iovam_domain *d, uint32_t cache, const std::vector<uint64_t> &from)
{
	uint64_t p = 0;
	EXPECT_EQ(iovam_alloc_fast(d, cache, 1, UINT64_MAX, &p), 0);
	EXPECT_EQ(iovam_verify(d), 0) << iovam_verify_error(d);
	EXPECT_NE(std::find(from.begin(), from.end(), p), from.end()) << "cache " << cache;
	return p;
}

uint64_t live_ranges(iovam_domain *d)
{
	iovam_stats st{};
	EXPECT_EQ(iovam_stats_get(d, &st), 0);
	return st.live_ranges;
}

TEST(NumaDepot, EachNodeHasItsOwnDepotAndBadInputIsRefused)
{
	DomainPtr d = make_two_nodes();
	ASSERT_NE(d, nullptr);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), 0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), 0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 2), -ENOENT) << "no cache was placed on node 2";
	EXPECT_EQ(iovam_depot_get_ranges(nullptr, 0), -EINVAL);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), -1), -EINVAL);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), IOVAM_NUMA_MAX_NODES), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 0, IOVAM_NUMA_MAX_NODES, nullptr), -EINVAL);
	EXPECT_EQ(iovam_cache_get_node(d.get(), 0), 1) << "a refused call changed the node";
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), IOVAM_NUMA_MAX_NODES - 1), -ENOENT);
	// A domain nobody placed has node 0's depot only.
	iovam_domain_conf c{4096, 1, (1 << 20) - 1, 1};
	DomainPtr plain(iovam_domain_create(&c));
	ASSERT_NE(plain, nullptr);
	EXPECT_EQ(iovam_depot_get_ranges(plain.get(), 0), 0);
	EXPECT_EQ(iovam_depot_get_ranges(plain.get(), 1), -ENOENT);
	VERIFY(d.get());
}

// The case: a full magazine freed on node 1 is taken by another
// node-1 cache, not by a node-0 cache that has a magazine on its own node.
TEST(NumaDepot, FullMagazineFreedOnANodeServesThatNodeFirst)
{
	DomainPtr d = make_two_nodes();
	ASSERT_NE(d, nullptr);
	// Everything from the tree first (no depot holds anything yet).
	const std::vector<uint64_t> on1 = alloc_n(d.get(), 0, 3 * kMag);
	const std::vector<uint64_t> on0 = alloc_n(d.get(), 2, 3 * kMag);
	free_all(d.get(), 0, on1); // cache 0, node 1
	VERIFY(d.get());
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), static_cast<int>(kMag));
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), 0);
	free_all(d.get(), 2, on0); // cache 2, node 0
	VERIFY(d.get());
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), static_cast<int>(kMag));
	const uint64_t live = live_ranges(d.get());

	// Cache 3 (node 0) runs dry at once: it takes node 0's magazine.
	const uint64_t p = take_one(d.get(), 3, on0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), 0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), static_cast<int>(kMag))
	        << "node 0 took node 1's";
	// Cache 1 (node 1): node 1's magazine, the one cache 0 freed.
	const uint64_t q = take_one(d.get(), 1, on1);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), 0);
	EXPECT_EQ(live_ranges(d.get()), live) << "a depot hit went to the tree";
	iovam_cache_stats st{};
	ASSERT_EQ(iovam_cache_stats_get(d.get(), 1, &st), 0);
	EXPECT_EQ(st.alloc_hits, 1u);
	EXPECT_EQ(st.cached_ranges, kMag - 1);
	ASSERT_EQ(iovam_free_fast(d.get(), 3, p, 1), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 1, q, 1), 0);
	VERIFY(d.get());
}

// With its own node's depot empty, a cache takes another node's magazine
// (its ranges copied into its own magazine, which stays on its node) before
// it goes to the tree.
TEST(NumaDepot, AnotherNodesDepotComesBeforeTheTree)
{
	DomainPtr d = make_two_nodes();
	ASSERT_NE(d, nullptr);
	const std::vector<uint64_t> on1 = alloc_n(d.get(), 0, 3 * kMag);
	free_all(d.get(), 0, on1);
	ASSERT_EQ(iovam_depot_get_ranges(d.get(), 1), static_cast<int>(kMag));
	const uint64_t live = live_ranges(d.get());
	const uint64_t p = take_one(d.get(), 2, on1);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), 0);
	EXPECT_EQ(live_ranges(d.get()), live) << "went to the tree with a full depot on node 1";
	iovam_cache_stats st{};
	ASSERT_EQ(iovam_cache_stats_get(d.get(), 2, &st), 0);
	EXPECT_EQ(st.cached_ranges, kMag - 1);
	// The rest of that magazine is served inline, then the tree.
	std::vector<uint64_t> more = alloc_n(d.get(), 2, kMag);
	EXPECT_EQ(live_ranges(d.get()), live + 1);
	VERIFY(d.get());
	free_all(d.get(), 2, more);
	ASSERT_EQ(iovam_free_fast(d.get(), 2, p, 1), 0);
	VERIFY(d.get());
	// A full flush empties every node's depot.
	EXPECT_GT(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), 0);
	EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), 0);
	EXPECT_EQ(live_ranges(d.get()), 0u);
	VERIFY(d.get());
}

TEST(NumaDepot, ReturnBatchFeedsTheNodeItIsGiven)
{
	DomainPtr d = make_two_nodes();
	ASSERT_NE(d, nullptr);
	BatchPtr rb(iovam_return_batch_create(d.get()));
	ASSERT_NE(rb, nullptr);
	EXPECT_EQ(iovam_return_batch_set_node(nullptr, 1), -EINVAL);
	EXPECT_EQ(iovam_return_batch_set_node(rb.get(), -1), -EINVAL);
	EXPECT_EQ(iovam_return_batch_set_node(rb.get(), IOVAM_NUMA_MAX_NODES), -EINVAL);
	// All from the tree first: a cache that ran dry would take from the
	// depots the batch fills (another node's too).
	const std::vector<uint64_t> all = alloc_n(d.get(), 3, 35);
	// Batch node (-1: never set, node 0), ranges, then node 0's and 1's depots.
	struct Step {
		int node;
		size_t from, to;
		int depot0, depot1;
	};
	const Step steps[] = {
	        {-1, 0, 10, 10, 0},  // node 0 by default
	        {1, 10, 30, 10, 20}, // the node it is given
	        {5, 30, 35, 15, 20}, // a node without depots: node 0's
	};
	for (const Step &st : steps) {
		if (st.node >= 0) {
			ASSERT_EQ(iovam_return_batch_set_node(rb.get(), st.node), 0);
		}
		for (size_t i = st.from; i < st.to; ++i)
			ASSERT_EQ(iovam_return_batch_add(rb.get(), all[i], 1), 0);
		ASSERT_EQ(iovam_return_batch_flush(rb.get()), static_cast<int>(st.to - st.from));
		EXPECT_EQ(iovam_depot_get_ranges(d.get(), 0), st.depot0)
		        << "batch node " << st.node;
		EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), st.depot1)
		        << "batch node " << st.node;
		VERIFY(d.get());
	}
}

// Two pipelines, one per node (an allocating cache, a freeing cache), and a
// third thread that crosses: full magazines go through both depots and
// across, while the main thread verifies. Accounting races show as a
// verify() failure (and, under TSan, as a report).
TEST(NumaDepot, ConcurrentPipelinesOnTwoNodesKeepVerifyTrue)
{
	DomainPtr d = make_two_nodes();
	ASSERT_NE(d, nullptr);
	constexpr int kRounds = 40;
	std::atomic<int> running{0};
	std::atomic<int> failures{0};
	auto pipeline = [&](uint32_t from, uint32_t to) {
		std::vector<uint64_t> pfn(2 * kMag + 7);
		for (int r = 0; r < kRounds; ++r) {
			for (auto &p : pfn)
				if (iovam_alloc_fast(d.get(), from, 1, UINT64_MAX, &p) != 0)
					failures++;
			for (auto p : pfn)
				if (iovam_free_fast(d.get(), to, p, 1) != 0) failures++;
		}
		running--;
	};
	auto verify_while_running = [&] {
		for (int i = 0; running.load() > 0; ++i) {
			ASSERT_EQ(iovam_verify(d.get()), 0) << iovam_verify_error(d.get());
			if (i % 50 == 49) (void)iovam_maintain(d.get());
		}
	};
	// Node 1: 0 -> 1; node 0: 2 -> 3 (cache 3 frees what 2 allocates).
	running = 2;
	std::thread a(pipeline, 0, 1), b(pipeline, 2, 3);
	verify_while_running();
	a.join();
	b.join();
	EXPECT_EQ(failures.load(), 0);
	VERIFY(d.get());
	// Crossing nodes: cache 3 (node 0) frees what cache 0 (node 1) allocates,
	// so node 0's depot fills and cache 0 takes from it.
	running = 1;
	std::thread c(pipeline, 0, 3);
	verify_while_running();
	c.join();
	EXPECT_EQ(failures.load(), 0);
	VERIFY(d.get());
	EXPECT_GT(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
	EXPECT_EQ(live_ranges(d.get()), 0u);
	VERIFY(d.get());
}

} // namespace
