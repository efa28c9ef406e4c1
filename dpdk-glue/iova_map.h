/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// IovaMap: VA -> IOVA translations of DPDK memory, one entry per DMA mapping
// ("chunk"), plus the IOVA ranges the chunks were carved from.
//
//   chunk  [va, va+len) -> [iova, iova+len), one VFIO mapping, state
//          kMapped or kQueued (waits for the first VFIO device)
//   range  [pfn_lo, pfn_lo+npages) from the window (IovaWindow::alloc);
//          live_chunks counts the chunks still inside it. IovaMap owns the
//          range: it takes it from the window and gives it back when the
//          count drops to 0, i.e. after the last chunk's unmap completed,
//          or when a region whose mapping failed is undone (undo_region).
//   stale  a chunk of freed memory whose unmap failed: no translation any
//          more (DPDK freed the VA, and may hand it out again), but still
//          counted in its range, so the IOVA stays out of the domain until a
//          retried unmap succeeds. (VFIO holds the pinned pages meanwhile.)
//
// One region (an ALLOC event, or a VA-contiguous run found by the init walk)
// gets one IOVA range, so VA-contiguous memory is IOVA-contiguous within it:
// a mempool chunk inside one region is one IOVA run.
//
// Locking: one reader-writer lock. Writers are the memory-event callback (DPDK
// holds its memory hotplug write lock then), the init walk (DPDK's read lock
// held) and fini; readers are virt2iova, mempool populate and the service.
// Lock order is always DPDK's memory lock, then this one: nothing called with
// this lock held may take a DPDK memory lock (no rte_malloc, no memseg walks).
// std::map nodes come from libc malloc, never rte_malloc (the heap lock is
// held while events are delivered).
//
// Every translation added or dropped here is mirrored into the SharedPages
// table, if one is attached, for secondary processes (shared_pages.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "iova_window.h"
#include "shared_pages.h"

namespace iovam::glue
{

struct Chunk {
	uint64_t len;
	uint64_t iova;
	uint64_t range_pfn; // key of the owning range
	bool mapped;        // false: queued, waits for a VFIO device
};

struct RangeUse {
	uint64_t npages;
	uint64_t live_chunks; // chunks, stale ones included
};

class IovaMap
{
public:
	std::shared_mutex &lock() { return lock_; }

	// All below: caller holds lock() (shared for the const ones).
	const Chunk *find(uintptr_t va, uintptr_t *chunk_va) const;
	// Longest IOVA-contiguous run starting at va, at most max_len bytes.
	// false: va has no translation.
	bool translate_run(uintptr_t va, size_t max_len, uint64_t *iova, size_t *run_len) const;

	// A new IOVA range of npages for one region, from the window; the
	// region's chunks are added next. 0 and *pfn, or the window's error.
	int add_range(uint64_t npages, uint64_t *pfn);
	void add_chunk(uintptr_t va, const Chunk &c);
	// Remove the chunk at va (unmapped). Its range goes back to the window
	// with its last chunk.
	void remove_chunk(uintptr_t va);
	// The chunk at va could not be unmapped: drop its translation, keep it
	// (and its range) as stale.
	void make_stale(uintptr_t va);
	// Stale chunk i was unmapped at last: as remove_chunk().
	void remove_stale(size_t i);
	// Undo a region whose mapping stopped part way: its chunks inside
	// [va, va+len), in strict reverse order, go through unmap_chunk(chunk_va),
	// which must remove_chunk() or make_stale() it; then its range goes
	// back to the window unless a stale chunk still holds it (also when the
	// first chunk failed and the range has none).
	template <class UnmapChunk>
	void undo_region(uintptr_t va, size_t len, uint64_t pfn, UnmapChunk &&unmap_chunk)
	{
		for (auto it = chunks_.lower_bound(va + len); it != chunks_.begin();) {
			uintptr_t chunk_va = std::prev(it)->first;
			if (chunk_va < va) break;
			unmap_chunk(chunk_va);
			it = chunks_.lower_bound(chunk_va);
		}
		auto r = ranges_.find(pfn);
		if (r != ranges_.end() && r->second.live_chunks == 0) release_range(r);
	}
	// Take ranges from w and give them back to it from now on (init,
	// before the first add_range).
	void set_window(const IovaWindow &w) { window_ = w; }
	// Mirror translations into sp from now on (nullptr: stop).
	void set_shared(SharedPages *sp) { shared_ = sp; }

	std::map<uintptr_t, Chunk> &chunks() { return chunks_; }
	const std::vector<std::pair<uintptr_t, Chunk>> &stale() const { return stale_; }

private:
	void drop_from_range(uint64_t pfn);
	void release_range(std::map<uint64_t, RangeUse>::iterator r);

	std::shared_mutex lock_;
	std::map<uintptr_t, Chunk> chunks_;
	std::vector<std::pair<uintptr_t, Chunk>> stale_;
	std::map<uint64_t, RangeUse> ranges_;
	SharedPages *shared_ = nullptr;
	IovaWindow window_;
};

} // namespace iovam::glue
