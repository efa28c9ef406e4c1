// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "path_hints.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>

namespace iovam::detail
{

namespace
{

constexpr uint64_t kTableAlign = 4096; // each table starts on a page of its own

uint64_t round_up(uint64_t bytes)
{
	return (bytes + kTableAlign - 1) & ~(kTableAlign - 1);
}

} // namespace

bool PathHints::init(uint64_t max_pfn) noexcept
{
	if (map_ != nullptr) return true; // once
	uint64_t n[kLevels], bytes = 0;
	for (uint32_t up = 0; up < kLevels; ++up) {
		const uint64_t buckets = (max_pfn >> kBucketShift[up]) + 1;
		n[up] = buckets >= kMaxSlots ? kMaxSlots : std::bit_ceil(buckets);
		bytes += round_up(n[up] * sizeof(uint32_t));
	}
	void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) return false;
	// 4 KiB pages even where transparent huge pages are always on: a touched
	// slot then holds 4 KiB in memory, not 2 MiB (the leaves' table is at most
	// 8 MiB, 2048 pages, which the TLB's second level mostly covers anyway).
	(void)madvise(p, bytes, MADV_NOHUGEPAGE);
	map_ = p;
	map_bytes_ = bytes;
	char *at = static_cast<char *>(p);
	for (uint32_t up = 0; up < kLevels; ++up) {
		table_[up] = reinterpret_cast<uint32_t *>(at);
		mask_[up] = n[up] - 1;
		at += round_up(n[up] * sizeof(uint32_t));
	}
	return true;
}

uint64_t PathHints::resident_bytes() const noexcept
{
	if (map_ == nullptr) return 0;
	const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
	unsigned char in_core[256];
	uint64_t resident = 0;
	for (uint64_t off = 0; off < map_bytes_; off += sizeof in_core * page) {
		const uint64_t len = std::min<uint64_t>(map_bytes_ - off, sizeof in_core * page);
		if (mincore(static_cast<char *>(map_) + off, len, in_core) != 0) return 0;
		for (uint64_t i = 0; i < (len + page - 1) / page; ++i)
			resident += (in_core[i] & 1) * page;
	}
	return resident;
}

void PathHints::drop() noexcept
{
	// Private anonymous memory reads back as zeros after MADV_DONTNEED.
	if (map_ != nullptr) (void)madvise(map_, map_bytes_, MADV_DONTNEED);
}

PathHints::~PathHints()
{
	if (map_ != nullptr) munmap(map_, map_bytes_);
}

} // namespace iovam::detail
