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
//
// Who gives the IOVA back: an lcore's queue is reaped by its producer. The
// drain only unmaps and publishes `done`; the lcore's next map, unmap or
// iovam_dpdk_service_run() frees the ranges of its entries below `done`
// into its own cache (`free_below` follows), and a queue slot is free for a new
// entry once reaped. So the live bytes and magazines of those ranges stay
// in the lcore's cache: a drain on another core does not take their lines
// away (bench_dyn_map --drain=service at full rate: 31-32 ns a pair against
// 88-93 when the drain returned the ranges through the depot, same minute).
// A failed unmap's entry is marked (npages 0) before `done` passes it: the
// retry list owns that IOVA. The shared queue has no cache to reap into:
// the drain returns its ranges (dyn_drain.cc), and its slots are free once
// popped.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>

#include <rte_lcore.h>

namespace iovam::glue
{

constexpr unsigned kSharedQueue = RTE_MAX_LCORE;
constexpr unsigned kQueues = RTE_MAX_LCORE + 1;

struct UnmapEntry {
	uint64_t va;     // page-aligned start of the mapping
	uint64_t pfn;    // first IOVA page
	uint64_t npages; // pages mapped (the IOVA range may be rounded up)
	uint64_t slot;   // its DynTable slot, claimed (kUnmapping)
};

// Ask for p's cache line in a state this core may write (x86 PREFETCHW;
// elsewhere the compiler's write prefetch). A hint: it changes no data.
inline void prefetch_for_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	// __builtin_prefetch(p, 1) compiles to a read prefetch (PREFETCHT0)
	// unless the target has PRFCHW, and a line fetched for reading still
	// waits for the other core at the store. Pre-Broadwell Intel runs
	// PREFETCHW as a no-op.
	asm volatile("prefetchw %0" : : "m"(*static_cast<const char *>(p)));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

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
	kSyncUnmaps, // unmaps that drained their own full queue
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
	// Slots below this position are free for new entries: an lcore's queue,
	// the entries it reaped; the shared queue, its producers' last view of
	// tail (popped entries are done with their slot), reloaded only when
	// this view says full.
	// Written by the producer side and fini only; an lcore's reap
	// release-stores it, which fini acquires.
	std::atomic<uint64_t> free_below{0};
	// The producer's last view of tail: it reloads tail (a line the drain
	// writes, on another core) only when this view says half full.
	uint64_t tail_seen = 0;
	alignas(64) std::atomic<uint64_t> ctr[kProducerCounters] = {};
	// Consumers (under the drain lock) write these.
	alignas(64) std::atomic<uint64_t> tail{0};
	std::atomic<uint64_t> done{0};                  // entries below completed (or failed)
	std::atomic<uint64_t> failed_floor{UINT64_MAX}; // done() is 0 from here on while retrying
	// Read-only after start.
	alignas(64) UnmapEntry *slots = nullptr;
	uint64_t mask = 0;

	// Entries ahead of head whose line a push claims for writing: 8 lines,
	// several unmaps' time before the push that fills them.
	static constexpr uint64_t kClaimAhead = 16;

	// Producer. false: full (an lcore reaps, waits for a drain in progress
	// or drains, and tries again: dyn_map.cc push_full(); the shared
	// queue's producers reload tail first). Cost:
	// one entry store, a write prefetch, a release store of head.
	//
	// Why the prefetch: the drain read each entry's line the last time round
	// the ring, on another core, so the line is shared with that core, and
	// the store must wait for the other core to give it up. Unmaps run
	// back to back in a TX burst, and the table claim's CAS in each one
	// waits for the stores before it: without the prefetch that wait was
	// every other unmap's (bench_dyn_map --drain=service, the unmap half of
	// the pair: 32-36 ns against 17-23 with it). A prefetch of a slot the
	// drain has yet to read moves the line, never the entry.
	bool push(const UnmapEntry &e)
	{
		uint64_t h = head.load(std::memory_order_relaxed);
		if (h - free_below.load(std::memory_order_relaxed) > mask) return false;
		prefetch_for_write(&slots[(h + kClaimAhead) & mask]);
		slots[h & mask] = e;
		head.store(h + 1, std::memory_order_release);
		return true;
	}

	// The shared queue's producers (under its lock), when a push found it
	// full: a popped entry is done with its slot, so tail is the bound.
	void reload_free_below_from_tail()
	{
		free_below.store(tail.load(std::memory_order_acquire), std::memory_order_relaxed);
	}

	// Producer, after a push: the queue is at least half full, by a fresh
	// view of tail. Cost while it is not: a load of head (this lcore's
	// line) and a compare; tail (the drain's line) is loaded only when the
	// last view says half full.
	bool half_full()
	{
		const uint64_t h = head.load(std::memory_order_relaxed);
		const uint64_t half = (mask + 1) / 2;
		if (h - tail_seen < half) return false;
		tail_seen = tail.load(std::memory_order_acquire);
		return h - tail_seen >= half;
	}

	// Consumer (drain lock): up to max entries into out, the first at
	// position *first; how many.
	size_t pop(UnmapEntry *out, size_t max, uint64_t *first)
	{
		uint64_t t = tail.load(std::memory_order_relaxed);
		*first = t;
		uint64_t n = head.load(std::memory_order_acquire) - t;
		n = std::min<uint64_t>(n, max);
		// Nothing to pop: tail's line stays as it is, so the producer's
		// completion checks (seq_done) keep reading it from their cache.
		if (n == 0) return 0;
		for (uint64_t i = 0; i < n; i++) out[i] = slots[(t + i) & mask];
		tail.store(t + n, std::memory_order_release);
		return n;
	}
};

// Sequence numbers: (queue index + 1) << 48 | position mod 2^48. 0 is never
// one, nor is a DynTable slot index or kNone (the other values of a slot's
// tag).
constexpr unsigned kSeqShift = 48;
constexpr uint64_t kSeqPosMask = (1ULL << kSeqShift) - 1;

// The sequence number of queue qi's entry at position pos.
inline uint64_t seq_of(unsigned qi, uint64_t pos)
{
	return (static_cast<uint64_t>(qi) + 1) << kSeqShift | (pos & kSeqPosMask);
}

// 1 the unmap numbered seq completed, 0 pending (or behind a failed unmap of
// its queue), -EINVAL not a sequence number. queues: the kQueues queues.
// Cost: two acquire loads of the queue's consumer line (written once per
// drain pass). Positions are compared modulo 2^48: done - pos in (0, 2^47]
// means the entry lies below done (2^47 unmaps per lcore in flight at most;
// a slot whose sequence number is 2^47 unmaps old looks pending, and waits
// for its table window to be needed no more).
inline int seq_done(const Queue *queues, uint64_t seq)
{
	uint64_t qi = seq >> kSeqShift;
	if (qi == 0 || qi > kQueues) return -EINVAL;
	const Queue &q = queues[qi - 1];
	uint64_t done = q.done.load(std::memory_order_acquire);
	uint64_t floor = q.failed_floor.load(std::memory_order_acquire);
	uint64_t behind = (done - (seq & kSeqPosMask)) & kSeqPosMask;
	if (behind == 0 || behind > (1ULL << (kSeqShift - 1))) return 0;
	if (floor != UINT64_MAX &&
	    ((seq & kSeqPosMask) - floor) % (1ULL << kSeqShift) < (1ULL << (kSeqShift - 1)))
		return 0; // at or after a failed unmap of this queue: retrying
	return 1;
}

} // namespace iovam::glue
