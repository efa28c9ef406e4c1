// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// iovam_cache_set_node() (iovam_numa.h): the allocator is asked for the node,
// the cache's magazines really are the new block (read through the fast
// path's view), bad input changes nothing, and every block goes back through
// its own free at destroy, after magazines have travelled through the depot.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "iovam.h"
#include "iovam_numa.h"

namespace
{

struct DomainDeleter {
	void operator()(iovam_domain *d) const { iovam_domain_destroy(d); }
};
using DomainPtr = std::unique_ptr<iovam_domain, DomainDeleter>;

DomainPtr make(uint32_t caches)
{
	iovam_domain_conf c{4096, 1, (1 << 20) - 1, caches};
	return DomainPtr(iovam_domain_create(&c));
}

#define VERIFY(d) ASSERT_EQ(iovam_verify(d), 0) << iovam_verify_error(d)

// An allocator that records what it was asked and what it gave, and can be
// told to fail.
struct Recorder {
	struct Block {
		void *ptr;
		size_t bytes;
		int node;
		bool freed;
	};
	std::vector<Block> blocks;
	bool fail = false;

	static void *alloc(void *arg, size_t bytes, int node)
	{
		auto *r = static_cast<Recorder *>(arg);
		if (r->fail) return nullptr;
		void *p = std::aligned_alloc(64, bytes);
		std::memset(p, 0, bytes);
		r->blocks.push_back({p, bytes, node, false});
		return p;
	}
	static void free(void *arg, void *ptr, size_t bytes)
	{
		auto *r = static_cast<Recorder *>(arg);
		// The system allocator may hand a freed address out again: match the
		// block still outstanding at that address.
		for (auto &b : r->blocks)
			if (b.ptr == ptr && !b.freed) {
				EXPECT_EQ(b.bytes, bytes);
				b.freed = true;
				std::free(ptr);
				return;
			}
		ADD_FAILURE() << "free of a block this allocator did not give, or freed twice";
	}
	iovam_cache_mem mem() { return {alloc, free, this}; }
	size_t outstanding() const
	{
		size_t n = 0;
		for (const auto &b : blocks) n += !b.freed;
		return n;
	}
};

// The loaded magazine of class k of cache c, as the inline fast path sees it.
const void *loaded(iovam_domain *d, uint32_t c, unsigned k)
{
	const auto *v = reinterpret_cast<const iovam_fast_view *>(d);
	return __atomic_load_n(&iovam_lcore_(v, c)->loaded[k], __ATOMIC_RELAXED);
}

bool inside(const void *p, const Recorder::Block &b)
{
	const char *c = static_cast<const char *>(p);
	const char *lo = static_cast<const char *>(b.ptr);
	return c >= lo && c < lo + b.bytes;
}

TEST(CachePlacement, AllocatorGetsTheNodeAndTheCacheUsesItsBlock)
{
	Recorder rec;
	{
		DomainPtr d = make(4);
		ASSERT_NE(d, nullptr);
		EXPECT_EQ(iovam_cache_get_node(d.get(), 2), -ENOENT);
		const iovam_cache_mem mem = rec.mem();
		ASSERT_EQ(iovam_cache_set_node(d.get(), 2, 1, &mem), 0);
		// Node 1's depots first (the first cache on node 1), then the cache's.
		ASSERT_EQ(rec.blocks.size(), 2u);
		EXPECT_EQ(rec.blocks[0].node, 1);
		EXPECT_GT(rec.blocks[0].bytes, 32u * IOVAM_CACHE_CLASSES * sizeof(iovam_magazine));
		EXPECT_EQ(rec.blocks[1].node, 1);
		// Two 1 KiB magazines per class, six classes.
		EXPECT_EQ(rec.blocks[1].bytes, 2u * IOVAM_CACHE_CLASSES * sizeof(iovam_magazine));
		for (unsigned k = 0; k < IOVAM_CACHE_CLASSES; ++k)
			EXPECT_TRUE(inside(loaded(d.get(), 2, k), rec.blocks[1])) << "class " << k;
		EXPECT_FALSE(inside(loaded(d.get(), 1, 0), rec.blocks[1])) << "another cache moved";
		EXPECT_EQ(iovam_depot_get_ranges(d.get(), 1), 0);
		EXPECT_EQ(iovam_cache_get_node(d.get(), 2), 1);
		EXPECT_EQ(iovam_cache_get_node(d.get(), 1), -ENOENT);
		// The placed cache serves the fast path from its new magazines.
		uint64_t pfn[64];
		for (auto &p : pfn) ASSERT_EQ(iovam_alloc_fast(d.get(), 2, 1, UINT64_MAX, &p), 0);
		for (auto p : pfn) ASSERT_EQ(iovam_free_fast(d.get(), 2, p, 1), 0);
		for (auto &p : pfn) ASSERT_EQ(iovam_alloc_fast(d.get(), 2, 1, UINT64_MAX, &p), 0);
		iovam_cache_stats st;
		ASSERT_EQ(iovam_cache_stats_get(d.get(), 2, &st), 0);
		EXPECT_EQ(st.alloc_hits, 64u);
		for (auto p : pfn) ASSERT_EQ(iovam_free_fast(d.get(), 2, p, 1), 0);
		VERIFY(d.get());
		EXPECT_EQ(rec.outstanding(), 2u) << "freed before the domain";
	}
	EXPECT_EQ(rec.outstanding(), 0u) << "the domain did not give its block back";
}

TEST(CachePlacement, BusyCacheAndBadInputChangeNothing)
{
	Recorder rec;
	DomainPtr d = make(2);
	ASSERT_NE(d, nullptr);
	const iovam_cache_mem mem = rec.mem();
	const void *before = loaded(d.get(), 0, 0);
	uint64_t pfn;
	ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &pfn), 0);
	ASSERT_EQ(iovam_free_fast(d.get(), 0, pfn, 1), 0); // now cached in cache 0
	EXPECT_EQ(iovam_cache_set_node(d.get(), 0, 0, &mem), -EBUSY);
	EXPECT_EQ(rec.outstanding(), 0u) << "a busy cache kept the new block";
	EXPECT_EQ(loaded(d.get(), 0, 0), before);
	EXPECT_EQ(iovam_cache_get_node(d.get(), 0), -ENOENT);
	// Flushed, it can move; the range cached before comes back through it.
	ASSERT_EQ(iovam_cache_flush(d.get(), 0), 1);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 0, 0, &mem), 0);

	iovam_cache_mem no_alloc = mem, no_free = mem;
	no_alloc.alloc = nullptr;
	no_free.free = nullptr;
	EXPECT_EQ(iovam_cache_set_node(nullptr, 1, 0, &mem), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 2, 0, &mem), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), IOVAM_CACHE_NONE, 0, &mem), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 1, -1, &mem), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 1, 0, &no_alloc), -EINVAL);
	EXPECT_EQ(iovam_cache_set_node(d.get(), 1, 0, &no_free), -EINVAL);
	EXPECT_EQ(iovam_cache_get_node(nullptr, 0), -EINVAL);
	EXPECT_EQ(iovam_cache_get_node(d.get(), 2), -EINVAL);
	EXPECT_EQ(iovam_cache_get_node(d.get(), IOVAM_CACHE_NONE), -EINVAL);
	const void *before1 = loaded(d.get(), 1, 0);
	rec.fail = true;
	EXPECT_EQ(iovam_cache_set_node(d.get(), 1, 0, &mem), -ENOMEM);
	EXPECT_EQ(loaded(d.get(), 1, 0), before1);
	EXPECT_EQ(iovam_cache_get_node(d.get(), 1), -ENOENT);
	EXPECT_EQ(rec.blocks.size(), 2u); // the busy attempt's (given back) and cache 0's
	EXPECT_EQ(rec.outstanding(), 1u);
	VERIFY(d.get());
}

// Ranges travel: cache 0 (node 0) allocates, cache 1 (node 1) frees, so
// full magazines go to node 1's depot and their ranges come back to cache 0
// by copy; magazines travel between a node's caches and its depot.
// Destroying the domain must still free each block exactly once, after the
// last use (ASan would see a use after free).
TEST(CachePlacement, BlocksOutliveMagazinesThatTravelled)
{
	Recorder rec;
	{
		DomainPtr d = make(2);
		ASSERT_NE(d, nullptr);
		const iovam_cache_mem mem = rec.mem();
		ASSERT_EQ(iovam_cache_set_node(d.get(), 0, 0, &mem), 0);
		ASSERT_EQ(iovam_cache_set_node(d.get(), 1, 1, &mem), 0);
		ASSERT_EQ(iovam_cache_set_node(d.get(), 1, 1, nullptr),
		          0); // again: system allocator
		EXPECT_EQ(iovam_cache_get_node(d.get(), 1), 1);
		std::vector<uint64_t> pfn(4 * IOVAM_MAG_SIZE);
		for (int round = 0; round < 4; ++round) {
			for (auto &p : pfn)
				ASSERT_EQ(iovam_alloc_fast(d.get(), 0, 1, UINT64_MAX, &p), 0);
			for (auto p : pfn) ASSERT_EQ(iovam_free_fast(d.get(), 1, p, 1), 0);
		}
		VERIFY(d.get());
		ASSERT_GT(iovam_cache_flush(d.get(), IOVAM_CACHE_NONE), 0);
		EXPECT_EQ(rec.outstanding(), 3u); // cache 0's, node 1's depots, cache 1's first
	}
	EXPECT_EQ(rec.outstanding(), 0u);
}

} // namespace
