// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_LEAF_HINTS_H
#define IOVAM_LEAF_HINTS_H

#include <cstdint>

namespace iovam::detail
{

// LeafHints: per bucket of 32 pfns, the leaf the last descent to a pfn of that
// bucket reached. A descent reads its bucket's slot first and prefetches that
// leaf, so the leaf's memory latency overlaps the inner nodes' instead of
// following them.
//
// Why: a random free at 1M live ranges waits for memory at the bottom inner
// levels and at its leaf, one after the other (the tree is ~19 MiB, the
// inner nodes ~2.6 MiB; past L2 a load costs 110-170 ns on the perf machine).
// With the hint the leaf is on its way while the inner nodes are read: one
// wait less.
//
// Only a prefetch: the descent decides. A stale slot (its leaf split, merged,
// freed or reused since) costs one useless prefetch, never a wrong answer,
// and x86 and Arm prefetches never fault, whatever the address. Buckets that
// share a slot (the table is direct-mapped, pfn / 32 modulo its size) only
// lower the share of right hints.
//
// Memory: at most kMaxSlots slots of 8 bytes (8 MiB of address space),
// reserved with MAP_NORESERVE and touched only where descents go: 4 KiB per
// 16K pfns in use, about 0.25 byte per page (a quarter of the live map's).
// Without the mapping (init() failed) every pfn shares one slot: the hint is
// then mostly wrong, which costs nothing but the prefetch.
//
// Not thread-safe: the domain lock protects get() and set(), as it does the
// tree.
class LeafHints
{
public:
	static constexpr uint32_t kBucketShift = 5;              // 32 pfns per slot
	static constexpr uint64_t kMaxSlots = uint64_t{1} << 20; // 2^25 pfns before sharing

	LeafHints() = default;
	~LeafHints();
	LeafHints(const LeafHints &) = delete;
	LeafHints &operator=(const LeafHints &) = delete;

	// Slots for buckets 0 .. (max_pfn >> kBucketShift), at most kMaxSlots.
	// false if the mapping failed (the hints still work, see above).
	bool init(uint64_t max_pfn) noexcept;

	// Cost: a shift, a mask and one load or store, no branch.
	void *get(uint64_t pfn) const noexcept { return slots_[slot(pfn)]; }
	void set(uint64_t pfn, void *leaf) noexcept { slots_[slot(pfn)] = leaf; }

	uint64_t slots() const noexcept { return mask_ + 1; }

	// Maintenance, never under the domain lock (system calls). The slots
	// and their size do not change after init(), so neither needs it; a
	// descent that races drop() loses its hint, no more.
	// Bytes of the mapping in memory (mincore()): what iovam_stats counts.
	uint64_t resident_bytes() const noexcept;
	// Every slot back to empty and its pages back to the system (the one
	// slot without a mapping stays as it is).
	void drop() noexcept;

private:
	uint64_t slot(uint64_t pfn) const noexcept { return (pfn >> kBucketShift) & mask_; }
	uint64_t map_bytes() const noexcept { return slots() * sizeof(void *); }

	void *fallback_ = nullptr; // the one slot without a mapping
	void **slots_ = &fallback_;
	uint64_t mask_ = 0;
};

} // namespace iovam::detail

#endif // IOVAM_LEAF_HINTS_H
