/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The unmap queues of the dynamic mappings, and the sequence numbers that
// tell a caller when its unmap completed.
//
// An unmap (iovam_dpdk_unmap) claims its mapping in the DynTable, then
// pushes (va, pfn, npages, slot) into its lcore's single-producer queue; the
// drain (dyn_drain.cc) pops it. One queue per lcore id (RTE_MAX_LCORE,
// registered non-EAL threads included) plus one shared queue for threads
// without an lcore id, whose producers take a mutex (as rte_mempool's
// LCORE_ID_ANY path takes none of the per-lcore fast paths either). All queue
// memory is allocated at start: the fast paths never allocate.
//
// Completion: an unmap's sequence number is its queue and its position in
// it. Each queue's consumer side records `done`, the position below which
// every popped entry completed, and `failed_floor`, the first position of a
// popped batch in which an unmap failed (UINT64_MAX: none), until the retry
// list is empty again.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <rte_lcore.h>

namespace iovam::glue {

constexpr unsigned kSharedQueue = RTE_MAX_LCORE;
constexpr unsigned kQueues = RTE_MAX_LCORE + 1;

struct UnmapEntry {
	uint64_t va;     // page-aligned start of the mapping
	uint64_t pfn;    // first IOVA page
	uint64_t npages; // pages mapped (the IOVA range may be rounded up)
	uint64_t slot;   // its DynTable slot, claimed (kUnmapping)
};

// Single-writer counter: a relaxed load and store, no locked instruction.
inline void bump(std::atomic<uint64_t> &c, uint64_t v = 1)
{
	c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

// The counters of one queue's producer (the owning lcore: bump(); the shared
// queue's producers under its mutex: fetch_add).
enum ProducerCounter : unsigned {
	kMaps,
	kMapBytes,
	kUnmapRequests,
	kSyncUnmaps,   // unmaps that drained their own full queue
	kMapFailures,
	kProducerCounters
};

// One lcore's queue. The producer's and the consumer's fields are on
// separate cache lines so that neither side bounces the other's line.
struct alignas(64) Queue {
	// Producer (the owning lcore) writes these. head is read by every
	// drain pass (a service lcore polls it); the counters, read only by the
	// stats, are on a line of their own so that a map's counter stores do
	// not take head's line back from the polling drain.
	std::atomic<uint64_t> head{0};
	// The producer's last view of tail: it reloads tail (a line the drain
	// writes, on another core) only when this view says full.
	uint64_t tail_seen = 0;
	alignas(64) std::atomic<uint64_t> ctr[kProducerCounters] = {};
	// Consumers (under the drain lock) write these.
	alignas(64) std::atomic<uint64_t> tail{0};
	std::atomic<uint64_t> done{0};                // entries below completed (or failed)
	std::atomic<uint64_t> failed_floor{UINT64_MAX}; // done() is 0 from here on while retrying
	// Read-only after start.
	alignas(64) UnmapEntry *slots = nullptr;
	uint64_t mask = 0;

	// Producer. false: full. Cost: one entry store, a release store of head;
	// the acquire load of tail only when the last view said full.
	bool push(const UnmapEntry &e)
	{
		uint64_t h = head.load(std::memory_order_relaxed);
		if (h - tail_seen > mask) {
			tail_seen = tail.load(std::memory_order_acquire);
			if (h - tail_seen > mask)
				return false;
		}
		slots[h & mask] = e;
		head.store(h + 1, std::memory_order_release);
		return true;
	}

	// Consumer (drain lock): up to max entries into out, the first at
	// position *first; how many.
	size_t pop(UnmapEntry *out, size_t max, uint64_t *first)
	{
		uint64_t t = tail.load(std::memory_order_relaxed);
		*first = t;
		uint64_t n = head.load(std::memory_order_acquire) - t;
		n = std::min<uint64_t>(n, max);
		for (uint64_t i = 0; i < n; i++)
			out[i] = slots[(t + i) & mask];
		tail.store(t + n, std::memory_order_release);
		return n;
	}
};

// The sequence number of queue qi's entry at position pos (never 0).
uint64_t seq_of(unsigned qi, uint64_t pos);
// 1 the unmap numbered seq completed, 0 pending (or behind a failed unmap of
// its queue), -EINVAL not a sequence number. queues: the kQueues queues.
int seq_done(const Queue *queues, uint64_t seq);

}  // namespace iovam::glue
