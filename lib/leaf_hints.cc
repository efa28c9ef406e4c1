// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "leaf_hints.h"

#include <sys/mman.h>

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
	slots_ = static_cast<void **>(p);
	mask_ = n - 1;
	return true;
}

LeafHints::~LeafHints()
{
	if (slots_ != &fallback_) munmap(slots_, (mask_ + 1) * sizeof(void *));
}

} // namespace iovam::detail
