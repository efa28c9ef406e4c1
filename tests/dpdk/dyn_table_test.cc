/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// DynTable (dpdk-glue/dyn_table.h) on its own: no EAL needed. The glue's
// tests exercise it through iovam_dpdk_map/unmap; these pin down the table's
// contract and its behaviour on the pfn patterns real lcores produce.
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dyn_table.h"

namespace {

using iovam::glue::DynTable;

struct Table {
	DynTable t;
	explicit Table(uint32_t max) { EXPECT_TRUE(t.init(max)); }
	~Table() { t.fini(); }
};

TEST(DynTable, ClaimChecksVaAndLengthAndRefusesASecondClaim)
{
	Table tb(16);
	DynTable &t = tb.t;
	uint64_t s = t.insert(100, 0x1000, 300);
	ASSERT_NE(s, DynTable::kNone);
	uint64_t got;
	EXPECT_EQ(t.claim(101, 0x1000, 300, &got), -ENOENT); // not a start
	EXPECT_EQ(t.claim(100, 0x2000, 300, &got), -EINVAL); // another va
	EXPECT_EQ(t.claim(100, 0x1000, 299, &got), -EINVAL); // another length
	ASSERT_EQ(t.claim(100, 0x1000, 300, &got), 0);       // still live after those
	EXPECT_EQ(got, s);
	EXPECT_EQ(t.pfn(s), 100u);
	EXPECT_EQ(t.va(s), 0x1000u);
	EXPECT_EQ(t.len(s), 300u);
	EXPECT_EQ(t.claim(100, 0x1000, 300, &got), -ENOENT); // claimed: double unmap
	t.release(s);
	EXPECT_EQ(t.claim(100, 0x1000, 300, &got), -ENOENT); // dead
	// The pfn can be mapped again, and only the new mapping is live.
	uint64_t s2 = t.insert(100, 0x5000, 10);
	ASSERT_NE(s2, DynTable::kNone);
	EXPECT_EQ(t.claim(100, 0x1000, 300, &got), -EINVAL);
	ASSERT_EQ(t.claim(100, 0x5000, 10, &got), 0);
	EXPECT_EQ(got, s2);
}

// Live pfn patterns: dense runs per lcore, runs a multiple of the table size
// apart (an identity-like hash merges those into one cluster), strided
// multi-page mappings, random. Each must fill the table to what it is sized
// for without a refused insert, and every key must then be found.
TEST(DynTable, FillsToItsSizeOnRealPfnPatterns)
{
	constexpr uint32_t kMax = 65536;
	const uint64_t slots = 2 * kMax;
	std::mt19937_64 rng(7);
	std::map<const char *, std::vector<uint64_t>> patterns;
	for (uint64_t i = 0; i < kMax / 2; i++) {
		patterns["2 runs a table apart"].push_back(0xF0000 - i);
		patterns["2 runs a table apart"].push_back(0xF0000 - slots - i);
	}
	for (uint64_t b = 0; b < 8; b++)
		for (uint64_t i = 0; i < kMax / 8; i++)
			patterns["8 runs a table apart"].push_back(0xFFFFF - b * slots - i);
	for (uint64_t i = 0; i < kMax; i++) {
		patterns["stride 2"].push_back(2 + 2 * i);
		patterns["stride 16"].push_back(16 + 16 * i);
	}
	std::vector<bool> used(uint64_t{1} << 24);
	auto &rnd = patterns["random"];
	while (rnd.size() < kMax) {
		uint64_t k = 1 + rng() % (used.size() - 1);
		if (!used[k]) {
			used[k] = true;
			rnd.push_back(k);
		}
	}
	for (const auto &[name, keys] : patterns) {
		Table tb(kMax);
		DynTable &t = tb.t;
		ASSERT_EQ(t.slots(), slots);
		std::vector<uint64_t> slot(keys.size());
		for (size_t i = 0; i < keys.size(); i++) {
			slot[i] = t.insert(keys[i], keys[i] << 12, 1);
			ASSERT_NE(slot[i], DynTable::kNone) << name << ": insert " << i;
		}
		for (size_t i = 0; i < keys.size(); i++) {
			uint64_t got;
			ASSERT_EQ(t.claim(keys[i], keys[i] << 12, 1, &got), 0) << name << " " << i;
			ASSERT_EQ(got, slot[i]);
		}
	}
}

// Far beyond its size the table refuses (kNone); releasing makes room again.
TEST(DynTable, RefusesWhenFullAndReusesDeadSlots)
{
	Table tb(8); // 16 slots
	DynTable &t = tb.t;
	std::vector<uint64_t> s;
	for (uint64_t pfn = 1; pfn <= 16; pfn++)
		s.push_back(t.insert(pfn, pfn, 1));
	for (uint64_t x : s)
		ASSERT_NE(x, DynTable::kNone);
	EXPECT_EQ(t.insert(17, 17, 1), DynTable::kNone);
	uint64_t got;
	ASSERT_EQ(t.claim(5, 5, 1, &got), 0);
	EXPECT_EQ(t.insert(17, 17, 1), DynTable::kNone); // claimed is not free
	t.release(got);
	EXPECT_EQ(t.insert(17, 17, 1), got); // the dead slot
	EXPECT_EQ(t.claim(99, 99, 1, &got), -ENOENT); // probes all 16, finds none
}

// Threads map, unmap (claim) and complete (release) concurrently, and try
// double claims of each other's keys: each key is claimed exactly once per
// mapping. Run under TSan in CI.
TEST(DynTable, ConcurrentMapsAndClaimsClaimEachMappingOnce)
{
	Table tb(4096);
	DynTable &t = tb.t;
	constexpr unsigned kThreads = 4;
	constexpr uint64_t kRounds = 20000;
	std::atomic<uint64_t> wins{0}, maps{0}, errors{0};
	std::vector<std::thread> th;
	for (unsigned id = 0; id < kThreads; id++) {
		th.emplace_back([&, id] {
			std::mt19937_64 rng(id);
			for (uint64_t r = 0; r < kRounds; r++) {
				// Own key space: pfn = id + kThreads * (1 + r % 512).
				uint64_t pfn = id + kThreads * (1 + r % 512);
				uint64_t s = t.insert(pfn, pfn * 3, 7);
				if (s == DynTable::kNone) {
					errors++;
					continue;
				}
				maps++;
				// A rival claims someone's key (maybe this one).
				uint64_t other = (rng() % kThreads) + kThreads * (1 + rng() % 512);
				uint64_t got;
				if (t.claim(other, other * 3, 7, &got) == 0) {
					wins++;
					t.release(got);
				}
				if (t.claim(pfn, pfn * 3, 7, &got) == 0) {
					wins++;
					t.release(got);
				}
			}
		});
	}
	for (auto &x : th)
		x.join();
	EXPECT_EQ(errors.load(), 0u);
	// Every mapping was claimed once: by its owner or by a rival.
	EXPECT_EQ(wins.load(), maps.load());
}

}  // namespace
