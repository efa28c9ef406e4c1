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

namespace
{

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

// Live pfn patterns: dense runs per lcore, runs a multiple of both parts'
// sizes apart (they share near windows, and an identity-like hash would merge
// them into one cluster), strided
// multi-page mappings, random. Each must fill the table to what it is sized
// for without a refused insert, and every key must then be found.
TEST(DynTable, FillsToItsSizeOnRealPfnPatterns)
{
	constexpr uint32_t kMax = 65536;
	const uint64_t slots = 3 * kMax; // near part kMax, far part 2 * kMax
	const uint64_t apart = 2 * kMax;
	std::mt19937_64 rng(7);
	std::map<const char *, std::vector<uint64_t>> patterns;
	for (uint64_t i = 0; i < kMax / 2; i++) {
		patterns["2 runs a table apart"].push_back(0xF0000 - i);
		patterns["2 runs a table apart"].push_back(0xF0000 - apart - i);
	}
	for (uint64_t b = 0; b < 8; b++)
		for (uint64_t i = 0; i < kMax / 8; i++)
			patterns["8 runs a table apart"].push_back(0xFFFFF - b * apart - i);
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

// The pfns in flight are dense runs; their slots must be one sequential
// stretch (what keeps a map's slot line streamable when it was last touched
// long ago), also when the run is mapped again after its slots died.
TEST(DynTable, ADenseRunTakesConsecutiveSlots)
{
	Table tb(1024);
	DynTable &t = tb.t;
	for (int round = 0; round < 2; round++) {
		std::vector<uint64_t> s;
		for (uint64_t pfn = 5000; pfn > 5000 - 256; pfn--)
			s.push_back(t.insert(pfn, pfn << 12, 64));
		for (size_t i = 1; i < s.size(); i++)
			ASSERT_EQ(s[i - 1] - s[i], 1u) << "round " << round << " key " << i;
		for (size_t i = 0; i < s.size(); i++) {
			uint64_t got = 0; // -O3 cannot see that the ASSERT returns
			ASSERT_EQ(t.claim(5000 - i, (5000 - i) << 12, 64, &got), 0);
			t.release(got);
		}
	}
}

// An unmapping slot is free once its tag (the unmap's sequence number) says
// its unmap completed; until then, and for a slot on the retry list, it is
// not. The drain never has to mark it dead.
TEST(DynTable, AnUnmappingSlotIsFreeOnceItsSequenceNumberCompleted)
{
	Table tb(8); // 8 near slots, 16 far
	DynTable &t = tb.t;
	uint64_t s = t.insert(3, 0x3000, 100);
	ASSERT_EQ(s, 3u);
	uint64_t got;
	ASSERT_EQ(t.claim(3, 0x3000, 100, &got), 0);
	t.set_tag(got, 77);
	uint64_t completed = 0; // the predicate's view: is tag 77 done?
	auto done = [&](uint64_t tag) { return completed != 0 && tag == 77; };
	// Pending: pfn 11 (near home 3) goes to the next near slot.
	uint64_t s11 = t.insert(11, 0xB000, 1, done);
	EXPECT_EQ(s11, 4u);
	completed = 1;
	// Done: pfn 19 (near home 3) takes the unmapping slot, and only the new
	// mapping is live there.
	EXPECT_EQ(t.insert(19, 0x13000, 1, done), 3u);
	EXPECT_EQ(t.claim(3, 0x3000, 100, &got), -ENOENT);
	ASSERT_EQ(t.claim(19, 0x13000, 1, &got), 0);
	EXPECT_EQ(got, 3u);
	// A slot whose tag is something else (a retry-list link) is not free.
	t.set_tag(got, 5);
	EXPECT_EQ(t.insert(27, 0x1B000, 1, done), 5u);
	EXPECT_EQ(t.pfn(got), 19u);
	EXPECT_EQ(t.tag(got), 5u);
}

// Far beyond its size the table refuses (kNone); releasing makes room again.
TEST(DynTable, RefusesWhenFullAndReusesDeadSlots)
{
	Table tb(8); // 8 near slots, 16 far
	DynTable &t = tb.t;
	ASSERT_EQ(t.slots(), 24u);
	std::vector<uint64_t> s;
	for (uint64_t pfn = 1; pfn <= 24; pfn++) s.push_back(t.insert(pfn, pfn, 1));
	for (uint64_t x : s) ASSERT_NE(x, DynTable::kNone);
	EXPECT_EQ(s[4], 5u); // pfn 5 in its near home
	EXPECT_EQ(t.insert(25, 25, 1), DynTable::kNone);
	uint64_t got;
	ASSERT_EQ(t.claim(5, 5, 1, &got), 0);
	EXPECT_EQ(t.insert(25, 25, 1), DynTable::kNone); // claimed is not free
	t.release(got);
	EXPECT_EQ(t.insert(25, 25, 1), got);          // the dead slot
	EXPECT_EQ(t.claim(99, 99, 1, &got), -ENOENT); // probes all 24, finds none
	// A key in the far part is found there.
	ASSERT_GE(s[20], 8u);
	ASSERT_EQ(t.claim(21, 21, 1, &got), 0);
	EXPECT_EQ(got, s[20]);
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
	for (auto &x : th) x.join();
	EXPECT_EQ(errors.load(), 0u);
	// Every mapping was claimed once: by its owner or by a rival.
	EXPECT_EQ(wins.load(), maps.load());
}

} // namespace
