// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_PATH_HINTS_H
#define IOVAM_PATH_HINTS_H

#include <cassert>
#include <cstdint>

namespace iovam::detail
{

// PathHints: the bottom of the path the last descent to a pfn took, kept per
// bucket of pfns: its leaf (buckets of 16 pfns), the leaf's parent (128) and
// grandparent (1024). A descent reads its three slots first and prefetches
// those nodes, so their memory latencies overlap each other and the upper
// levels' instead of following one another.
//
// Why: at 1M live ranges the tree is ~20 MiB and its inner nodes ~2.6 MiB;
// on the perf machine a load past the last-level cache costs 120-190 ns, and
// the upper levels stay in cache but the three bottom ones mostly do not. A
// random descent waited at each of them in turn. With the leaf hint alone the
// leaf arrived early but the two inner levels above it were still read one
// after the other (timed per level with serialising timestamps: 66 and 106
// ns, against 33 at the root, which is the timestamps' own cost).
//
// Buckets: in the worst layout a leaf spans about 32 pfns (1-page ranges
// between 1-page holes, 23 segments per leaf), and each inner level multiplies
// that by about 8 (fanout 10, nodes 3/4 full). A bucket as wide as a node
// nearly always straddles two of them, and its slot holds the one the last
// descent took: at 32/256/2048 pfns 56 % of the leaf hints were right in the
// 1M churn, at 16/128/1024 77 % (parents 50 % and 72 %). Hence buckets of
// half a node, and 4-byte slots so that the tables take no more memory for
// twice the slots. With longer ranges a node spans more, and neighbouring
// buckets share a node: still right, only more slots than needed.
//
// A slot holds a node's address >> kNodeShift (nodes are 256-byte aligned,
// node_slab.h), 0 for none; the address bits above kWindowShift are the
// window's, those of the first node ever recorded. A node outside that 1 TiB
// window is recorded as none. Nodes come from 2 MiB chunks that mmap() places
// near each other, so in practice every node is inside it.
//
// Only prefetches: the descent decides. A stale slot (its node split, merged,
// freed or reused since) costs a useless prefetch, never a wrong answer, and
// x86 and Arm prefetches never fault, whatever the address. Buckets that share
// a slot (each table is direct-mapped, bucket modulo its size) only lower the
// share of right hints.
//
// Memory: each level has at most kMaxSlots slots of 4 bytes (24 MiB of address
// space in all), reserved with MAP_NORESERVE and touched only where descents
// go: 4 KiB of the leaves' table per 16K pfns in use, an eighth of that for
// the parents' and a sixty-fourth for the grandparents'; about 0.29 byte per
// page in all (the live map takes 1). Without the mapping (init() failed)
// each level's pfns share one slot: the hint is then mostly wrong, which
// costs nothing but the prefetch.
//
// Not thread-safe: the domain lock protects get() and set(), as it does the
// tree.
class PathHints
{
public:
	// Level 0 is the leaf, 1 its parent, 2 its grandparent.
	static constexpr uint32_t kLevels = 3;
	static constexpr uint32_t kBucketShift[kLevels] = {4, 7, 10};
	static constexpr uint64_t kMaxSlots = uint64_t{1} << 21; // per level
	// A recorded node is 2^kNodeShift-aligned; a slot holds 32 bits of its
	// address, the window the bits above.
	static constexpr uint32_t kNodeShift = 8;
	static constexpr uint32_t kWindowShift = 32 + kNodeShift;

	PathHints() = default;
	~PathHints();
	PathHints(const PathHints &) = delete;
	PathHints &operator=(const PathHints &) = delete;

	// Slots for buckets 0 .. (max_pfn >> kBucketShift[up]), at most
	// kMaxSlots, per level. false if the mapping failed (the hints still
	// work, see above).
	bool init(uint64_t max_pfn) noexcept;

	// Cost: a shift, a mask, one 4-byte load, a shift and an or; no branch.
	void *get(uint32_t up, uint64_t pfn) const noexcept
	{
		const uint64_t v = table_[up][slot(up, pfn)];
		return v == 0 ? nullptr : reinterpret_cast<void *>(window_ | v << kNodeShift);
	}
	// Cost: a shift, a mask, a compare and one 4-byte store (a branch taken
	// once, for the first node).
	void set(uint32_t up, uint64_t pfn, const void *node) noexcept
	{
		table_[up][slot(up, pfn)] = encode(node);
	}

	// Ask for pfn's three slots, for a get() that follows later. Cost: three
	// shifts, masks and prefetches; reads nothing. Always inlined: GCC 12 at
	// -O2 finds a function whose only effect is a prefetch pure and drops
	// the calls to it (tests/codegen/check_prefetch.sh).
	[[gnu::always_inline]] void prefetch_slots(uint64_t pfn) const noexcept
	{
		static_assert(kLevels == 3);
		__builtin_prefetch(&table_[2][slot(2, pfn)]);
		__builtin_prefetch(&table_[1][slot(1, pfn)]);
		__builtin_prefetch(&table_[0][slot(0, pfn)]);
	}

	uint64_t slots(uint32_t up) const noexcept { return mask_[up] + 1; }

	// Maintenance, never under the domain lock (system calls). The slots
	// and their size do not change after init(), so neither needs it; a
	// descent that races drop() loses its hint, no more.
	// Bytes of the mapping in memory (mincore()): what iovam_stats counts.
	uint64_t resident_bytes() const noexcept;
	// Every slot back to empty and its pages back to the system (the
	// slots without a mapping stay as they are).
	void drop() noexcept;

private:
	static constexpr uint64_t kWindowMask = ~((uint64_t{1} << kWindowShift) - 1);

	uint64_t slot(uint32_t up, uint64_t pfn) const noexcept
	{
		return (pfn >> kBucketShift[up]) & mask_[up];
	}
	uint32_t encode(const void *node) noexcept
	{
		const auto addr = reinterpret_cast<uint64_t>(node);
		assert(addr % (uint64_t{1} << kNodeShift) == 0);
		if (!has_window_) [[unlikely]] {
			window_ = addr & kWindowMask;
			has_window_ = true;
		}
		return (addr & kWindowMask) == window_ ? static_cast<uint32_t>(addr >> kNodeShift)
		                                       : 0;
	}

	uint32_t fallback_[kLevels] = {}; // one slot per level without a mapping
	uint32_t *table_[kLevels] = {&fallback_[0], &fallback_[1], &fallback_[2]};
	uint64_t mask_[kLevels] = {};
	uint64_t window_ = 0; // the address bits above kWindowShift of every recorded node
	bool has_window_ = false;
	void *map_ = nullptr; // the tables, one after the other, page-aligned
	uint64_t map_bytes_ = 0;
};

} // namespace iovam::detail

#endif // IOVAM_PATH_HINTS_H
