// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "leaf_hints.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>

namespace iovam::detail
{

bool LeafHints::init(uint64_t max_pfn) noexcept
{
	if (slots_ != &fallback_) return true; // once
	const uint64_t buckets = (max_pfn >> kBucketShift) + 1;
	const uint64_t n = buckets >= kMaxSlots ? kMaxSlots : std::bit_ceil(buckets);
	void *p = mmap(nullptr, n * sizeof(void *), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) return false;
	// 4 KiB pages even where transparent huge pages are always on: a touched
	// slot then holds 4 KiB in memory, not 2 MiB (the table is at most 8 MiB,
	// 2048 pages, which the TLB's second level mostly covers anyway).
	(void)madvise(p, n * sizeof(void *), MADV_NOHUGEPAGE);
	slots_ = static_cast<void **>(p);
	mask_ = n - 1;
	return true;
}

uint64_t LeafHints::resident_bytes() const noexcept
{
	if (slots_ == &fallback_) return 0;
	const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
	const uint64_t bytes = map_bytes();
	unsigned char in_core[256];
	uint64_t resident = 0;
	for (uint64_t off = 0; off < bytes; off += sizeof in_core * page) {
		const uint64_t len = std::min<uint64_t>(bytes - off, sizeof in_core * page);
		if (mincore(reinterpret_cast<char *>(slots_) + off, len, in_core) != 0) return 0;
		for (uint64_t i = 0; i < (len + page - 1) / page; ++i)
			resident += (in_core[i] & 1) * page;
	}
	return resident;
}

void LeafHints::drop() noexcept
{
	// Private anonymous memory reads back as zeros after MADV_DONTNEED.
	if (slots_ != &fallback_) (void)madvise(slots_, map_bytes(), MADV_DONTNEED);
}

LeafHints::~LeafHints()
{
	if (slots_ != &fallback_) munmap(slots_, map_bytes());
}

} // namespace iovam::detail
