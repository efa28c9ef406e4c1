// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_LIVE_MAP_H
#define IOVAM_LIVE_MAP_H

#include <cstddef>
#include <cstdint>

#include "iovam.h"

namespace iovam::detail
{

// The checked mode's record of which cacheable ranges are with a caller.
//
// A range in a magazine stays ALLOCATED in the tree, so the tree cannot tell
// "live with the caller" from "cached" (its 2-bit tag has no value left, and
// a re-tag would take the tree lock on every fast free, which the magazines
// exist to avoid). One byte per page of the cached window does: the byte at
// iovam_live_index_(pfn_lo - lo_pfn) holds class + 1 while a range of that class (2^class pages,
// aligned) starting at pfn_lo is with a caller, and 0 otherwise (cached, free,
// RESERVED, inside another range). A fast free then costs one load, one
// compare and one store; a range's owner is the only legitimate writer of
// its byte and distinct ranges have distinct bytes, so no atomic
// read-modify-write is needed. (A per-class bitmap would take a quarter of
// the memory but needs a locked RMW per transition: several ns each.)
//
// Memory: the map is reserved with MAP_NORESERVE and touched only where
// ranges are allocated: 4 KiB of map per 4096 pages of IOVA in use (16 MiB of
// IOVA with 4 KiB pages). It covers at most kMaxPages pages at the top of the
// window, where the tree allocates first; a range below that is never cached
// and its fast free goes to the tree, checked there.
class LiveMap
{
public:
	static constexpr uint64_t kMaxPages = uint64_t{1} << 30; // 1 GiB of reserved address space

	LiveMap() = default;
	~LiveMap();
	LiveMap(const LiveMap &) = delete;
	LiveMap &operator=(const LiveMap &) = delete;

	// Reserve the map for [max(start_pfn, end_pfn - kMaxPages + 1), end_pfn].
	// false on ENOMEM.
	bool init(uint64_t start_pfn, uint64_t end_pfn) noexcept;
	// Back to all zeros, the memory returned to the system (not a hot path).
	void clear() noexcept;

	uint8_t *bytes() const noexcept { return bytes_; }
	uint64_t lo_pfn() const noexcept { return lo_pfn_; }
	uint64_t pages() const noexcept { return pages_; }
	bool covers(uint64_t pfn) const noexcept { return pfn - lo_pfn_ < pages_; }
	// The byte's place: iovam_live_index_() (iovam.h), which the inline
	// fast path uses too.
	uint8_t *at(uint64_t pfn) const noexcept
	{
		return bytes_ + iovam_live_index_(pfn - lo_pfn_);
	}
	// The mapping's length: whole 4096-byte blocks, as the index permutes
	// inside a block.
	uint64_t map_bytes() const noexcept { return (pages_ + 4095) & ~uint64_t{4095}; }

private:
	uint8_t *bytes_ = nullptr;
	uint64_t lo_pfn_ = 0;
	uint64_t pages_ = 0;
};

} // namespace iovam::detail

#endif // IOVAM_LIVE_MAP_H
