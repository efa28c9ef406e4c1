/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The state of the dynamic mappings (iovam_dpdk_map/unmap) and who owns
// which part of it:
//
//   dyn_map.cc    the C entry points: map, unmap (lazy or strict), done, wait
//   dyn_table.h   the live mappings, so that unmap refuses what is not one
//   dyn_queue.h   the per-lcore unmap queues and their sequence numbers
//   dyn_drain.cc  the drain: batched DMA unmaps, then the slots and IOVAs
//                 back (through a return batch), retries of failed unmaps
//   dyn_state.cc  start, stop and the stats
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "dyn_queue.h"
#include "dyn_table.h"
#include "glue.h"

namespace iovam::glue
{

// The drain's counters: the first three written under drain_lock only
// (bump()), the others by any thread (count()).
enum DrainCounter : unsigned {
	kDoneUnmaps,
	kUnmapBytes,
	kDmaUnmaps,
	kBadUnmaps,
	kDmaFailures,
	kNoSlot, // maps refused: the table was full
	kStrictUnmaps,
	kDrainCounters
};

struct DynState {
	DynTable table;
	Queue queues[kQueues];
	std::atomic<bool> active[kQueues] = {}; // queue ever used: the drain scans these
	std::mutex shared_lock;                 // producers of the shared queue
	std::mutex drain_lock; // consumers (service, sync unmaps of the shared queue)
	std::atomic<uint64_t> ctr[kDrainCounters] = {};
	// The drain's ranges on their way to the mapping lcores (drain_lock).
	iovam_return_batch *returns = nullptr;
	// Unmaps that failed, waiting for a retry: a list of claimed slots
	// linked through their tags (drain_lock).
	uint64_t retry_head = DynTable::kNone;
	std::atomic<uint64_t> retrying{0};
	// A producer's queue is half full: a service lcore drains now instead
	// of at its period (service.cc). On a line of its own, which producers
	// write only then, so the service can poll it without taking a line a
	// map or an unmap writes.
	alignas(64) std::atomic<bool> drain_wanted{false};

	// After a push by q's producer: ask a service lcore for a drain now if q
	// is half full. Cost while it is not: a load of q's head and a compare.
	void want_drain_if_half_full(Queue &q)
	{
		if (__builtin_expect(q.half_full(), 0) &&
		    !drain_wanted.load(std::memory_order_relaxed))
			drain_wanted.store(true, std::memory_order_relaxed);
	}

	void count(DrainCounter c, uint64_t v = 1)
	{
		ctr[c].fetch_add(v, std::memory_order_relaxed);
	}
	uint64_t read(DrainCounter c) const { return ctr[c].load(std::memory_order_relaxed); }
};

// dyn_drain.cc: queue q's own producer drains it (the queue was full, or a
// strict unmap). Takes drain_lock.
void drain_own(Glue &g, Queue &q);

} // namespace iovam::glue
