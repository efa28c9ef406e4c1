// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
// The node slab: aligned distinct nodes, chunks mapped as the tree grows and
// unmapped as it shrinks (one empty chunk kept), safe from two threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "node_pool.h"
#include "node_slab.h"

namespace iovam::detail
{
namespace
{

constexpr uint32_t kPerChunk = NodeSlab::kNodesPerChunk - 1; // slot 0 is the header

TEST(NodeSlab, NodesAreAlignedDistinctAndWritable)
{
	NodeSlab slab;
	std::set<uintptr_t> seen;
	std::vector<void *> nodes;
	for (int i = 0; i < 1000; ++i) {
		void *n = slab.alloc();
		ASSERT_NE(n, nullptr);
		EXPECT_EQ(reinterpret_cast<uintptr_t>(n) % NodeSlab::kNodeBytes, 0u);
		EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(n)).second)
		        << "node handed out twice";
		std::memset(n, 0xa5, NodeSlab::kNodeBytes); // ASan: the whole node is ours
		nodes.push_back(n);
	}
	EXPECT_EQ(slab.chunks(), 1u);
	for (void *n : nodes) slab.free(n);
	EXPECT_EQ(slab.chunks(), 1u) << "the last chunk stays mapped, empty";
}

TEST(NodeSlab, ChunksFollowTheLiveNodes)
{
	NodeSlab slab;
	std::vector<void *> nodes;
	for (uint32_t i = 0; i < 3 * kPerChunk + 1; ++i) nodes.push_back(slab.alloc());
	ASSERT_EQ(std::count(nodes.begin(), nodes.end(), nullptr), 0);
	EXPECT_EQ(slab.chunks(), 4u);
	// Free in random order: chunks empty out at random times; each empty one
	// but one is unmapped.
	std::mt19937_64 rng(7);
	std::shuffle(nodes.begin(), nodes.end(), rng);
	for (void *n : nodes) slab.free(n);
	EXPECT_EQ(slab.chunks(), 1u);
	// Freed nodes are reused before a new chunk is mapped.
	for (uint32_t i = 0; i < kPerChunk; ++i) nodes[i] = slab.alloc();
	EXPECT_EQ(slab.chunks(), 1u);
	for (uint32_t i = 0; i < kPerChunk; ++i) slab.free(nodes[i]);
}

TEST(NodeSlab, BreathingAcrossAChunkBoundaryKeepsOneSpare)
{
	NodeSlab slab;
	std::vector<void *> nodes;
	for (uint32_t i = 0; i < kPerChunk; ++i) nodes.push_back(slab.alloc());
	for (int round = 0; round < 100; ++round) {
		void *extra = slab.alloc(); // the second chunk
		ASSERT_NE(extra, nullptr);
		EXPECT_EQ(slab.chunks(), 2u);
		slab.free(extra); // empty again: kept, not unmapped
		EXPECT_EQ(slab.chunks(), 2u);
	}
	for (void *n : nodes) slab.free(n);
	EXPECT_EQ(slab.chunks(), 1u);
}

TEST(NodeSlab, TwoThreads)
{
	NodeSlab slab;
	auto worker = [&slab](uint64_t seed) {
		std::mt19937_64 rng(seed);
		std::vector<void *> mine;
		for (int i = 0; i < 40000; ++i) {
			if (mine.empty() || rng() % 3 != 0) {
				void *n = slab.alloc();
				ASSERT_NE(n, nullptr);
				std::memset(n, static_cast<int>(seed), 64);
				mine.push_back(n);
			} else {
				size_t k = rng() % mine.size();
				slab.free(mine[k]);
				mine[k] = mine.back();
				mine.pop_back();
			}
		}
		for (void *n : mine) slab.free(n);
	};
	std::thread a(worker, 1), b(worker, 2);
	a.join();
	b.join();
	EXPECT_EQ(slab.chunks(), 1u);
}

TEST(NodeSlab, PoolChainsComeFromTheSlab)
{
	NodePool pool;
	NodePool::Chain chain = pool.alloc_chain(NodePool::kRefillTo);
	EXPECT_EQ(chain.count, NodePool::kRefillTo);
	pool.splice(chain);
	EXPECT_EQ(pool.free_nodes(), NodePool::kRefillTo);
	EXPECT_EQ(pool.bytes(), uint64_t{NodePool::kRefillTo} * NodePool::kNodeBytes);
	pool.release(pool.detach_excess(0));
	EXPECT_EQ(pool.bytes(), 0u);
}

} // namespace
} // namespace iovam::detail
