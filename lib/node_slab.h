// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_NODE_SLAB_H
#define IOVAM_NODE_SLAB_H

#include <cstddef>
#include <cstdint>

#include "spin_lock.h"

namespace iovam::detail
{

// Where tree nodes live: 2 MiB chunks, each 2 MiB aligned, cut into 256-byte
// nodes. Why not one malloc per node, as before: glibc's aligned allocation
// of 256 bytes costs about 320 with its header and padding (perf measured 31
// resident bytes per live range for 19.2 tree bytes), and nodes scattered
// over the heap need a TLB entry per 4 KiB page. A random descent at 1M live
// ranges touches a leaf and its parent that no TLB holds; under a hypervisor
// each such miss is a two-dimensional page walk. Chunks after the first are
// madvise()d for transparent huge pages, so a big tree is a few huge pages; a
// small domain stays in 4 KiB pages and costs only the pages it touches (a
// chunk is handed out front to back).
//
// Chunk layout (2 MiB, kNodesPerChunk slots of 256 bytes):
//
//   slot 0: Chunk header (used count, bump index, free list, list links)
//   slot 1 .. kNodesPerChunk - 1: nodes
//
// A node's chunk is its address rounded down to 2 MiB: no lookup table. A
// chunk whose nodes have all come back is unmapped, except one kept empty so
// that a tree breathing across a chunk boundary does not map and unmap on
// every refill.
//
// Cold path only: alloc() and free() run outside the domain lock (node pool
// refill and trim), take the slab's own lock and may call mmap/munmap.
class NodeSlab
{
public:
	static constexpr size_t kNodeBytes = 256;
	static constexpr size_t kChunkBytes = size_t{2} << 20;
	static constexpr uint32_t kNodesPerChunk = kChunkBytes / kNodeBytes;

	// Unmaps every chunk: each node must be back by then. Not copyable: it
	// owns its mappings.
	~NodeSlab();
	NodeSlab(const NodeSlab &) = delete;
	NodeSlab &operator=(const NodeSlab &) = delete;
	NodeSlab() = default;

	// A 256-byte, 256-aligned node, or nullptr when no memory can be mapped.
	void *alloc() noexcept;
	void free(void *node) noexcept;

	// Chunks mapped now (for tests and statistics).
	uint32_t chunks() const noexcept;

private:
	struct Chunk;
	static Chunk *chunk_of(void *node) noexcept;
	Chunk *map_chunk(bool huge) noexcept;
	void unmap_chunk(Chunk *c) noexcept;
	void link_partial(Chunk *c) noexcept;
	void unlink_partial(Chunk *c) noexcept;

	mutable SpinLock lock_;
	Chunk *partial_ = nullptr; // chunks with a free slot (lock_)
	Chunk *empty_ = nullptr;   // the one unused chunk kept mapped (lock_)
	uint32_t chunks_ = 0;      // (lock_)
};

} // namespace iovam::detail

#endif // IOVAM_NODE_SLAB_H
