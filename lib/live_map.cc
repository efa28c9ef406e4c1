// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "live_map.h"

#include <sys/mman.h>

#include <algorithm>

#include "range_cache.h"

namespace iovam::detail
{

bool LiveMap::init(uint64_t start_pfn, uint64_t end_pfn) noexcept
{
	const uint64_t window = end_pfn - start_pfn; // pages - 1
	pages_ = std::min(window, kMaxPages - 1) + 1;
	lo_pfn_ = end_pfn - (pages_ - 1);
	if (create_alloc_fails()) return false;
	void *p = mmap(nullptr, map_bytes(), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) return false;
	bytes_ = static_cast<uint8_t *>(p);
	return true;
}

LiveMap::~LiveMap()
{
	if (bytes_ != nullptr) munmap(bytes_, map_bytes());
}

void LiveMap::clear() noexcept
{
	// Private anonymous memory reads back as zeros after MADV_DONTNEED.
	if (bytes_ != nullptr) madvise(bytes_, map_bytes(), MADV_DONTNEED);
}

} // namespace iovam::detail
