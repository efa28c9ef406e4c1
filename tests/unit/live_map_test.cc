// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
// The live map's byte placement (iovam_live_index_): one byte per page, no
// two pages on one byte, a block of 4096 pages in its own 4096 bytes, and
// neighbouring cacheable ranges (up to 32 pages) in different cache lines.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "iovam.h"
#include "live_map.h"

namespace iovam::detail
{
namespace
{

TEST(LiveMapIndex, OneBytePerPageWithinItsBlock)
{
	for (uint64_t block : {uint64_t{0}, uint64_t{4096}, uint64_t{1} << 29}) {
		std::vector<bool> used(4096, false);
		for (uint64_t off = block; off < block + 4096; ++off) {
			const uint64_t idx = iovam_live_index_(off);
			ASSERT_GE(idx, block);
			ASSERT_LT(idx, block + 4096);
			EXPECT_FALSE(used[idx - block]) << "two pages on one byte at " << off;
			used[idx - block] = true;
		}
	}
}

TEST(LiveMapIndex, NeighbouringRangesUseDifferentCacheLines)
{
	// Ranges of 2^k pages are 2^k aligned: the next one starts 2^k further.
	for (unsigned k = 0; k <= 5; ++k) {
		const uint64_t size = uint64_t{1} << k;
		for (uint64_t off = 0; off + size < 3 * 4096; off += size)
			EXPECT_NE(iovam_live_index_(off) / 64, iovam_live_index_(off + size) / 64)
			        << "ranges of " << size << " pages at " << off << " share a line";
	}
}

TEST(LiveMapIndex, TheMapCoversItsLastPartialBlock)
{
	LiveMap m;
	ASSERT_TRUE(m.init(1, 5000)); // 5000 pages: the second block is partial
	for (uint64_t pfn = 1; pfn <= 5000; ++pfn) {
		ASSERT_TRUE(m.covers(pfn));
		ASSERT_LT(static_cast<uint64_t>(m.at(pfn) - m.bytes()), m.map_bytes());
		*m.at(pfn) = 1; // mapped: ASan and the kernel would object otherwise
	}
	m.clear();
}

} // namespace
} // namespace iovam::detail
