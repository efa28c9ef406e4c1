/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The state of the dynamic mappings (iovam_dpdk_map/unmap) and who owns
// which part of it:
//
//   dyn_map.cc    the C entry points: map, unmap (lazy or strict), done, wait
//   dyn_table.h   the live mappings, so that unmap refuses what is not one
//   dyn_queue.h   the per-lcore unmap queues and their sequence numbers
//   dyn_drain.cc  the drain: batched DMA unmaps, then the completed
//                 positions (each lcore reaps its IOVAs: reap_some(); the
//                 shared queue's through a return batch), retries of failed
//                 unmaps
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
// strict unmap). Takes drain_lock. How many entries it popped.
int64_t drain_own(Glue &g, Queue &q);
// The same unless another thread holds drain_lock: how many entries it
// popped, -1 (nothing done) if busy.
int64_t drain_own_unless_busy(Glue &g, Queue &q);

// Entries an lcore reaps per call at most (reap()): bounds what a map or an
// unmap adds to its own cost (16 fast frees, a few hundred ns) when a drain
// completed many at once.
constexpr uint64_t kReapPerCall = 16;

// dyn_drain.cc: lcore queue q's producer frees the ranges of up to max
// completed entries into its cache `cache` (dyn_queue.h). Returns how many
// entries it reaped.
uint64_t reap_some(Glue &g, Queue &q, uint32_t cache, uint64_t max);

// The same, on every map and unmap of an lcore: nothing to do unless the
// drain completed entries since the last call. Cost then: an acquire load of
// the consumer line (which the drain writes once per pass) and a compare.
inline void reap(Glue &g, Queue &q, uint32_t cache)
{
	if (__builtin_expect(q.done.load(std::memory_order_acquire) !=
	                             q.free_below.load(std::memory_order_relaxed),
	                     0))
		(void)reap_some(g, q, cache, kReapPerCall);
}

// Everything q's producer may reap now (after a drain of its own queue).
inline void reap_all(Glue &g, Queue &q, uint32_t cache)
{
	while (reap_some(g, q, cache, UINT64_MAX) != 0) {}
}

} // namespace iovam::glue
