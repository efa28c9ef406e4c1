// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_CACHE_PLACEMENT_H
#define IOVAM_CACHE_PLACEMENT_H

#include <cstddef>
#include <cstdint>

#include "iovam_numa.h"

namespace iovam::detail
{

// What iovam_cache_set_node() allocated (iovam_numa.h): the node each cache
// was given, and every node-placed magazine block with the allocator that
// gives it back. A member of RangeCache, destroyed after it: no block is
// freed while a magazine in it may still be in use. Cold: only
// iovam_cache_set_node() and destruction touch it.
class CachePlacement
{
public:
	CachePlacement() noexcept = default;
	~CachePlacement();
	CachePlacement(const CachePlacement &) = delete;
	CachePlacement &operator=(const CachePlacement &) = delete;

	// -1 when the cache was never placed.
	int node_of(uint32_t c) const noexcept { return nodes_ ? nodes_[c] : -1; }

	// Allocates `bytes` on `node` through mem (nullptr: the system allocator,
	// zeroed here) and records it. nullptr on ENOMEM, nothing recorded.
	void *alloc_block(size_t bytes, int node, const iovam_cache_mem *mem) noexcept;
	// The node array, allocated on first use (all -1); false on ENOMEM.
	bool ensure_nodes(uint32_t n_caches) noexcept;
	// After ensure_nodes().
	void record_node(uint32_t c, int node) noexcept { nodes_[c] = node; }
	// Gives back the last block alloc_block() returned (the cache was busy).
	void drop_last_block() noexcept;

private:
	struct Block {
		Block *next;
		void *ptr;
		size_t bytes;
		iovam_cache_mem mem; // alloc == nullptr: the system allocator
	};
	static void free_block(Block *b) noexcept;

	Block *blocks_ = nullptr;
	int *nodes_ = nullptr;
};

} // namespace iovam::detail

#endif // IOVAM_CACHE_PLACEMENT_H
