/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The drain of the dynamic unmaps (dyn_state.h): pops each queue, sorts the
// batch (with an IOMMU), issues one VFIO unmap per run of VA- and IOVA-adjacent mappings,
// and only after each unmap returned publishes the queue's completed
// position. The lcore that queued them then reaps their IOVAs into its own
// cache (reap_some(), dyn_queue.h), whatever thread drains (a service lcore,
// an app lcore, the EAL alarm thread); the shared queue's go to the drain's
// return batch (iovam.h), which moves whole magazines into the depot. So an
// IOVA is never allocated again while the IOMMU may still translate it (the
// stale-DMA bug users hit with eager reuse), and a mapping lcore's steady
// state is a magazine pop on lines of its own. The drain leaves the slot of an unmap that succeeded alone:
// the queue's completed position frees it (dyn_table.h), so the mapping
// lcores' table lines stay theirs. A failed unmap keeps its IOVA and its
// slot (still "unmapping") on a retry list threaded through the slots' tags;
// every service iteration retries it until the unmap succeeds, then marks
// the slot dead.
//
// Who drains: the service; a producer whose queue is full (it drains its own
// queue, then queues, unless another thread drains: then it waits for that
// drain, dyn_map.cc push_full()); a strict unmap (its own queue, its entry
// included); iovam_dpdk_unmap_wait().
#include <algorithm>
#include <cinttypes>
#include <mutex>
#include <utility>
#include <vector>

#include "dyn_state.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

// Entries taken from one queue per service iteration: 256 x 32 B = 8 KiB of
// service stack, and a bound on how long one iteration holds the drain lock.
constexpr size_t kBatch = 256;

// The unmap of a mapping of len bytes from va at pfn, claimed in slot.
UnmapEntry entry_of(const Glue &g, uint64_t slot, uint64_t pfn, uint64_t va, uint64_t len)
{
	uint64_t off = va & (g.granule - 1);
	return UnmapEntry{va - off, pfn, (off + len + g.granule - 1) >> g.shift, slot};
}

// Where a batch of unmaps comes from, which says how its slots become free.
enum class Source {
	kQueued,  // popped from a queue: the slot is free by its sequence number
	kRetried, // from the retry list: its tag is a link, the drain frees it
	kFini,    // claimed at fini, untagged: the drain frees it
};

// Finish entries whose unmap completed: the slot first (unless its sequence
// number frees it), then the IOVA (a pfn is live in at most one slot). An
// lcore queue's producer reaps the IOVA itself (dyn_queue.h: give_back
// false); the others go into the return batch: the depot, not this thread's
// cache, whose lcore (if it has one) may never map. The caller flushes the
// batch when its pass is over, and counts the pages unmapped (*pages).
// Caller holds drain_lock.
void release(Glue &g, const UnmapEntry *e, size_t n, Source src, bool give_back, uint64_t *pages)
{
	for (size_t i = 0; i < n; i++) {
		if (src != Source::kQueued) g.dyn->table.release(e[i].slot);
		unmap_hook_call(e[i].pfn << g.shift, e[i].npages << g.shift);
		*pages += e[i].npages;
		if (!give_back) continue;
		int rc = iovam_return_batch_add(g.dyn->returns, e[i].pfn, e[i].npages);
		if (rc != 0) IOVAM_LOG(ERR, "return pfn 0x%" PRIx64 ": %d", e[i].pfn, rc);
	}
}

// Unmap a batch of claimed mappings: one DMA unmap per run of VA- and
// IOVA-adjacent entries (VFIO type1 unmaps whole mappings; a run covers
// whole ones). With an IOMMU the batch is sorted first, so that adjacent
// mappings unmapped out of order share one ioctl (each costs microseconds,
// the sort about 60 ns an entry). Without one there is no DMA unmap to save,
// and the sort of a batch of magazine-ordered (random) pfns was the drain's
// largest cost: bench_dyn_map --drain=service at full rate, 85-130 cycles an
// entry with it, 18-30 without, so a drain slower than the mapping lcore
// left it draining its own full queue (a run is then only what adjacent
// queue entries form). A run whose unmap fails keeps its IOVAs (the IOMMU may still
// map them) and goes on the retry list (kRetried: they come from it, already
// counted in retrying). *failed: whether some unmap failed. give_back: the
// IOVAs of those that succeeded go to the return batch (false: an lcore
// queue's, which its producer reaps). Caller holds drain_lock.
int complete(Glue &g, UnmapEntry *e, size_t n, Source src, bool *failed = nullptr,
             bool give_back = true)
{
	const bool retried = src == Source::kRetried;
	DynState &d = *g.dyn;
	if (!g.vfio.no_iommu()) // see above
		std::sort(e, e + n,
		          [](const UnmapEntry &a, const UnmapEntry &b) { return a.pfn < b.pfn; });
	int returned = 0;
	uint64_t runs = 0, returned_pages = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint64_t pages = e[i].npages;
		while (j < n && e[j].pfn == e[i].pfn + pages &&
		       e[j].va == e[i].va + (pages << g.shift)) {
			pages += e[j].npages;
			j++;
		}
		runs++;
		if (g.vfio.unmap_dyn(e[i].va, e[i].pfn << g.shift, pages << g.shift)) {
			release(g, e + i, j - i, src, give_back, &returned_pages);
			returned += static_cast<int>(j - i);
			if (retried) d.retrying.fetch_sub(j - i, std::memory_order_relaxed);
		} else {
			d.count(kDmaFailures);
			if (failed != nullptr) *failed = true;
			for (size_t k = i; k < j; k++) {
				d.table.set_tag(e[k].slot, d.retry_head);
				d.retry_head = e[k].slot;
			}
			if (!retried) d.retrying.fetch_add(j - i, std::memory_order_relaxed);
		}
		i = j;
	}
	// The drain's own counters: written under drain_lock only, so a
	// load and a store each, once per batch (a locked add per entry cost
	// more than the rest of the entry's release in zero_copy_tx).
	bump(d.ctr[kDmaUnmaps], runs);
	bump(d.ctr[kDoneUnmaps], static_cast<uint64_t>(returned));
	bump(d.ctr[kUnmapBytes], returned_pages << g.shift);
	return returned;
}

// Retry the unmaps that failed before, in batches. Caller holds drain_lock.
int retry_failed(Glue &g)
{
	DynState &d = *g.dyn;
	uint64_t s = d.retry_head;
	if (s == DynTable::kNone) return 0;
	d.retry_head = DynTable::kNone;
	UnmapEntry batch[kBatch];
	int returned = 0;
	while (s != DynTable::kNone) {
		size_t n = 0;
		for (; n < kBatch && s != DynTable::kNone; n++) {
			batch[n] = entry_of(g, s, d.table.pfn(s), d.table.va(s), d.table.len(s));
			s = d.table.tag(s);
		}
		returned += complete(g, batch, n, Source::kRetried);
	}
	if (d.retry_head == DynTable::kNone) {
		// Every failed unmap is done now: nothing holds back completions.
		for (auto &q : d.queues)
			if (q.failed_floor.load(std::memory_order_relaxed) != UINT64_MAX)
				q.failed_floor.store(UINT64_MAX, std::memory_order_release);
	}
	return returned;
}

// An lcore queue's entries in [first, first + n) whose unmap failed: their
// slots' tags are retry-list links now, not their sequence numbers. Mark
// them (npages 0) so that the producer does not reap their IOVAs: the retry
// list owns them. Before `done` passes them; the producer writes only at
// head, beyond. Caller holds drain_lock.
void mark_failed(Glue &g, Queue &q, uint64_t first, size_t n)
{
	const auto qi = static_cast<unsigned>(&q - g.dyn->queues);
	for (uint64_t pos = first; pos != first + n; pos++) {
		UnmapEntry &e = q.slots[pos & q.mask];
		if (g.dyn->table.tag(e.slot) != seq_of(qi, pos)) e.npages = 0;
	}
}

// Pop and complete up to kBatch entries of queue q; how many were popped
// (*returned: unmaps completed). Caller holds drain_lock.
size_t drain_queue(Glue &g, Queue &q, int *returned)
{
	UnmapEntry batch[kBatch];
	uint64_t first;
	size_t n = q.pop(batch, kBatch, &first);
	if (n == 0) return 0;
	bool failed = false;
	const bool producer_reaps = &q != &g.dyn->queues[kSharedQueue];
	*returned += complete(g, batch, n, Source::kQueued, &failed, !producer_reaps);
	if (failed && producer_reaps) mark_failed(g, q, first, n);
	if (failed && q.failed_floor.load(std::memory_order_relaxed) == UINT64_MAX)
		q.failed_floor.store(first, std::memory_order_relaxed);
	q.done.store(first + n, std::memory_order_release);
	return n;
}

// The end of a pass: the ranges it returned go to the depot now.
void flush_returns(Glue &g)
{
	(void)iovam_return_batch_flush(g.dyn->returns);
}

} // namespace

uint64_t reap_some(Glue &g, Queue &q, uint32_t cache, uint64_t max)
{
	const uint64_t done = q.done.load(std::memory_order_acquire);
	const uint64_t from = q.free_below.load(std::memory_order_relaxed);
	const uint64_t n = std::min(done - from, max);
	for (uint64_t pos = from; pos != from + n; pos++) {
		const UnmapEntry &e = q.slots[pos & q.mask];
		if (e.npages == 0) continue; // failed: on the retry list
		int rc = iovam_free_fast(g.dom, cache, e.pfn, e.npages);
		if (rc != 0) IOVAM_LOG(ERR, "reap pfn 0x%" PRIx64 ": %d", e.pfn, rc);
	}
	// Release: fini's acquire of it orders this lcore's frees before the
	// queue is deleted (DPDK's lcore wait is invisible to ThreadSanitizer).
	q.free_below.store(from + n, std::memory_order_release);
	return n;
}

void dyn_reap_caller(Glue &g)
{
	const unsigned lc = rte_lcore_id();
	if (lc < RTE_MAX_LCORE) reap_all(g, g.dyn->queues[lc], lc);
}

namespace
{

// Every entry of q, then the return batch. Caller holds drain_lock.
int64_t drain_own_locked(Glue &g, Queue &q)
{
	int returned = 0;
	int64_t popped = 0;
	for (size_t n; (n = drain_queue(g, q, &returned)) != 0;) popped += static_cast<int64_t>(n);
	flush_returns(g);
	return popped;
}

} // namespace

[[gnu::noinline]] int64_t drain_own(Glue &g, Queue &q)
{
	std::lock_guard lk(g.dyn->drain_lock);
	return drain_own_locked(g, q);
}

int64_t drain_own_unless_busy(Glue &g, Queue &q)
{
	std::unique_lock lk(g.dyn->drain_lock, std::try_to_lock);
	if (!lk.owns_lock()) return -1;
	return drain_own_locked(g, q);
}

namespace
{

// One drain (dyn_drain()). A pass takes up to a batch from each queue, and
// takes more rounds while a queue still gives a full batch: a service lcore
// asked for a drain by a half-full queue empties it in one pass, instead
// of a batch per request while the mapping lcore keeps pushing (at full rate
// it pushes a batch in about 8 us). until_empty: rounds while any queue
// gives anything. Either way enough rounds to empty a queue that was full
// when we started (what was queued before us is done), then stop even if
// producers keep pushing: the drain lock's hold stays bounded. Caller holds
// drain_lock.
int drain_locked(Glue &g, bool until_empty)
{
	DynState &d = *g.dyn;
	int returned = retry_failed(g);
	const uint64_t max_rounds = g.conf.unmap_queue_size / kBatch + 1;
	bool again;
	uint64_t rounds = 0;
	do {
		again = false;
		for (unsigned i = 0; i < kQueues; i++) {
			if (!d.active[i].load(std::memory_order_relaxed)) continue;
			const size_t n = drain_queue(g, d.queues[i], &returned);
			again |= until_empty ? n != 0 : n == kBatch;
		}
	} while (again && ++rounds < max_rounds);
	flush_returns(g);
	return returned;
}

} // namespace

int dyn_drain(Glue &g, bool until_empty)
{
	std::lock_guard lk(g.dyn->drain_lock);
	return drain_locked(g, until_empty);
}

int dyn_drain_unless_busy(Glue &g)
{
	std::unique_lock lk(g.dyn->drain_lock, std::try_to_lock);
	if (!lk.owns_lock()) return -EBUSY;
	return drain_locked(g, false);
}

void dyn_leaked_iovas(Glue &g, std::vector<std::pair<uint64_t, uint64_t>> &out)
{
	DynState &d = *g.dyn;
	std::lock_guard lk(d.drain_lock);
	for (uint64_t s = d.retry_head; s != DynTable::kNone; s = d.table.tag(s)) {
		UnmapEntry e = entry_of(g, s, d.table.pfn(s), d.table.va(s), d.table.len(s));
		out.emplace_back(e.pfn << g.shift, ((e.pfn + e.npages) << g.shift) - 1);
	}
}

uint64_t dyn_unmap_all_live(Glue &g)
{
	DynState &d = *g.dyn;
	std::lock_guard lk(d.drain_lock);
	UnmapEntry batch[kBatch];
	size_t n = 0;
	uint64_t live =
	        d.table.claim_all_live([&](uint64_t slot, uint64_t pfn, uint64_t va, uint64_t len) {
		        IOVAM_LOG(WARNING,
		                  "fini: dynamic mapping va 0x%" PRIx64 " iova 0x%" PRIx64
		                  " len %" PRIu64 " still live: unmapping it",
		                  va, (pfn << g.shift) + (va & (g.granule - 1)), len);
		        batch[n++] = entry_of(g, slot, pfn, va, len);
		        if (n == kBatch) {
			        (void)complete(g, batch, n, Source::kFini);
			        n = 0;
		        }
	        });
	if (n != 0) (void)complete(g, batch, n, Source::kFini);
	flush_returns(g);
	return live;
}

} // namespace iovam::glue
