/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Dynamic mapping of application buffers (the "map_single" of zero-copy).
//
// map:   iovam_alloc_fast() on the calling lcore's cache (lock-free magazine),
//        then the DMA map (skipped in no-IOMMU mode; with VFIO one raw
//        VFIO_IOMMU_MAP_DMA ioctl, see vfio_mapper.h), then the mapping is
//        recorded live in the DynTable (dyn_table.h).
// unmap: claim the mapping in the DynTable (what is not a live mapping of
//        that va and length is refused here, nothing changed), then push
//        (va, pfn, npages, slot) into the lcore's single-producer queue.
// drain: pops each queue, sorts the batch, issues one VFIO unmap per run of
//        VA- and IOVA-adjacent mappings, and only after each unmap returned
//        frees the slot and gives the range to the drain's return batch
//        (iovam.h), which moves whole magazines into the depot: the mapping
//        lcores take them back there, whatever thread drains (a service
//        lcore, an app lcore, the EAL alarm thread). So an IOVA is never
//        allocated again while the IOMMU may still translate it (the
//        stale-DMA bug users hit with eager reuse), and a mapping lcore's
//        steady state is a magazine pop. A failed unmap keeps its IOVA and
//        its slot (still "unmapping") on a retry list threaded through the
//        slots; every service iteration retries it until the unmap succeeds.
//        Who drains: the service; a producer whose queue is full (it drains
//        its own queue, then queues); a strict unmap (its own queue, its
//        entry included); iovam_dpdk_unmap_wait().
//
// Completion: an unmap's sequence number is its queue and its position in
// it. Each queue's consumer side records `done`, the position below which
// every popped entry completed, and `failed_floor`, the first position of a
// popped batch in which an unmap failed (UINT64_MAX: none), until the retry
// list is empty again.
//
// Queues: one per lcore id (RTE_MAX_LCORE, registered non-EAL threads
// included) plus one shared queue for threads without an lcore id, whose
// producers take a mutex (as rte_mempool's LCORE_ID_ANY path takes none of
// the per-lcore fast paths either). All queue memory is allocated at start:
// the fast paths never allocate.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include <rte_branch_prediction.h>
#include <rte_lcore.h>

#include "dyn_table.h"
#include "glue.h"
#include "log.h"

namespace iovam::glue {

namespace {

constexpr unsigned kSharedQueue = RTE_MAX_LCORE;
constexpr unsigned kQueues = RTE_MAX_LCORE + 1;
// Entries taken from one queue per service iteration: 256 x 24 B = 6 KiB of
// service stack, and a bound on how long one iteration holds the drain lock.
constexpr size_t kBatch = 256;

struct UnmapEntry {
	uint64_t va;     // page-aligned start of the mapping
	uint64_t pfn;    // first IOVA page
	uint64_t npages; // pages mapped (the IOVA range may be rounded up)
	uint64_t slot;   // its DynTable slot, claimed (kUnmapping)
};

// Sequence numbers: (queue index + 1) << 48 | position mod 2^48 (0 is never one).
constexpr unsigned kSeqShift = 48;
constexpr uint64_t kSeqPosMask = (1ULL << kSeqShift) - 1;

// Single-writer counter: a relaxed load and store, no locked instruction.
inline void bump(std::atomic<uint64_t> &c, uint64_t v = 1)
{
	c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

// One lcore's queue. The producer's and the consumer's fields are on
// separate cache lines so that neither side bounces the other's line.
struct alignas(64) Queue {
	// Producer (the owning lcore) writes these.
	std::atomic<uint64_t> head{0};
	std::atomic<uint64_t> maps{0};
	std::atomic<uint64_t> map_bytes{0};
	std::atomic<uint64_t> unmap_requests{0};
	std::atomic<uint64_t> sync_unmaps{0};
	std::atomic<uint64_t> map_failures{0};
	// The producer's last view of tail: it reloads tail (a line the drain
	// writes, on another core) only when this view says full.
	uint64_t tail_seen = 0;
	// Consumers (under drain_lock) write these.
	alignas(64) std::atomic<uint64_t> tail{0};
	std::atomic<uint64_t> done{0};                // entries below completed (or failed)
	std::atomic<uint64_t> failed_floor{UINT64_MAX}; // done() is 0 from here on while retrying
	// Read-only after start.
	alignas(64) UnmapEntry *slots = nullptr;
	uint64_t mask = 0;

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

}  // namespace

struct DynState {
	DynTable table;
	Queue queues[kQueues];
	std::atomic<bool> active[kQueues] = {}; // queue ever used: the service scans these
	std::mutex shared_lock;                  // producers of the shared queue
	std::mutex drain_lock;                   // consumers (service, sync unmaps of the shared queue)
	std::atomic<uint64_t> done_unmaps{0};
	std::atomic<uint64_t> unmap_bytes{0};
	std::atomic<uint64_t> dma_unmaps{0};
	std::atomic<uint64_t> bad_unmaps{0};
	std::atomic<uint64_t> dma_failures{0};
	std::atomic<uint64_t> no_slot{0}; // maps refused: the table was full
	std::atomic<uint64_t> strict_unmaps{0};
	// The drain's ranges on their way to the mapping lcores (drain_lock).
	iovam_return_batch *returns = nullptr;
	// Unmaps that failed, waiting for a retry: a list of claimed slots
	// linked through Slot::next (drain_lock).
	uint64_t retry_head = DynTable::kNone;
	std::atomic<uint64_t> retrying{0};
};

namespace {

// The unmap of a mapping of len bytes from va at pfn, claimed in slot.
inline UnmapEntry entry_of(const Glue &g, uint64_t slot, uint64_t pfn, uint64_t va, uint64_t len)
{
	uint64_t off = va & (g.granule - 1);
	return UnmapEntry{va - off, pfn, (off + len + g.granule - 1) >> g.shift, slot};
}

// Return the IOVA ranges of entries whose unmap completed: the slot first,
// then the IOVA (a pfn is live in at most one slot), into the return batch:
// the depot, not this thread's cache, whose lcore (if it has one) may never
// map. The caller flushes the batch when its pass is over. Caller holds
// drain_lock.
int release(Glue &g, const UnmapEntry *e, size_t n)
{
	uint64_t pages = 0;
	for (size_t i = 0; i < n; i++) {
		g.dyn->table.release(e[i].slot);
		unmap_hook_call(e[i].pfn << g.shift, e[i].npages << g.shift);
		int rc = iovam_return_batch_add(g.dyn->returns, e[i].pfn, e[i].npages);
		if (rc != 0)
			IOVAM_LOG(ERR, "return pfn 0x%" PRIx64 ": %d", e[i].pfn, rc);
		pages += e[i].npages;
	}
	// One locked add per run, not per entry.
	g.dyn->unmap_bytes.fetch_add(pages << g.shift, std::memory_order_relaxed);
	g.dyn->done_unmaps.fetch_add(n, std::memory_order_relaxed);
	return static_cast<int>(n);
}

// Unmap a batch of claimed mappings: sorted, one DMA unmap per run of VA-
// and IOVA-adjacent entries (VFIO type1 unmaps whole mappings; a run covers
// whole ones). A run whose unmap fails keeps its IOVAs (the IOMMU may still
// map them) and goes on the retry list. retried: the entries come from that
// list (already counted in retrying). *failed: whether some unmap failed.
// Caller holds drain_lock.
int complete(Glue &g, UnmapEntry *e, size_t n, bool retried = false, bool *failed = nullptr)
{
	DynState &d = *g.dyn;
	std::sort(e, e + n, [](const UnmapEntry &a, const UnmapEntry &b) { return a.pfn < b.pfn; });
	int returned = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint64_t pages = e[i].npages;
		while (j < n && e[j].pfn == e[i].pfn + pages &&
		       e[j].va == e[i].va + (pages << g.shift)) {
			pages += e[j].npages;
			j++;
		}
		d.dma_unmaps.fetch_add(1, std::memory_order_relaxed);
		if (g.vfio.unmap_dyn(e[i].va, e[i].pfn << g.shift, pages << g.shift)) {
			returned += release(g, e + i, j - i);
			if (retried)
				d.retrying.fetch_sub(j - i, std::memory_order_relaxed);
		} else {
			d.dma_failures.fetch_add(1, std::memory_order_relaxed);
			if (failed != nullptr)
				*failed = true;
			for (size_t k = i; k < j; k++) {
				d.table.set_next(e[k].slot, d.retry_head);
				d.retry_head = e[k].slot;
			}
			if (!retried)
				d.retrying.fetch_add(j - i, std::memory_order_relaxed);
		}
		i = j;
	}
	return returned;
}

// Retry the unmaps that failed before, in batches. Caller holds drain_lock.
int retry_failed(Glue &g)
{
	DynState &d = *g.dyn;
	uint64_t s = d.retry_head;
	if (s == DynTable::kNone)
		return 0;
	d.retry_head = DynTable::kNone;
	UnmapEntry batch[kBatch];
	int returned = 0;
	while (s != DynTable::kNone) {
		size_t n = 0;
		for (; n < kBatch && s != DynTable::kNone; n++) {
			batch[n] = entry_of(g, s, d.table.pfn(s), d.table.va(s), d.table.len(s));
			s = d.table.next(s);
		}
		returned += complete(g, batch, n, true);
	}
	if (d.retry_head == DynTable::kNone) {
		// Every failed unmap is done now: nothing holds back completions.
		for (auto &q : d.queues)
			if (q.failed_floor.load(std::memory_order_relaxed) != UINT64_MAX)
				q.failed_floor.store(UINT64_MAX, std::memory_order_release);
	}
	return returned;
}

// Pop and complete up to kBatch entries of queue q; how many were popped
// (*returned: ranges returned). Caller holds drain_lock.
size_t drain_queue(Glue &g, Queue &q, int *returned)
{
	UnmapEntry batch[kBatch];
	uint64_t first;
	size_t n = q.pop(batch, kBatch, &first);
	if (n == 0)
		return 0;
	bool failed = false;
	*returned += complete(g, batch, n, false, &failed);
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

// Queue q's own producer drains it (the queue was full, or a strict unmap).
[[gnu::noinline]] void drain_own(Glue &g, Queue &q)
{
	std::lock_guard lk(g.dyn->drain_lock);
	int returned = 0;
	while (drain_queue(g, q, &returned) != 0) {
	}
	flush_returns(g);
}

uint64_t seq_of(unsigned queue, uint64_t pos)
{
	return (static_cast<uint64_t>(queue) + 1) << kSeqShift | (pos & kSeqPosMask);
}

// 1 done, 0 pending; -EINVAL not a sequence number.
int seq_done(DynState &d, uint64_t seq)
{
	uint64_t qi = seq >> kSeqShift;
	if (qi == 0 || qi > kQueues)
		return -EINVAL;
	Queue &q = d.queues[qi - 1];
	uint64_t done = q.done.load(std::memory_order_acquire);
	uint64_t floor = q.failed_floor.load(std::memory_order_acquire);
	// Positions are compared modulo 2^48: done - pos in (0, 2^47] means
	// the entry lies below done (2^47 unmaps per lcore in flight at most).
	uint64_t behind = (done - (seq & kSeqPosMask)) & kSeqPosMask;
	if (behind == 0 || behind > (1ULL << (kSeqShift - 1)))
		return 0;
	if (floor != UINT64_MAX && ((seq & kSeqPosMask) - floor) % (1ULL << kSeqShift) <
					   (1ULL << (kSeqShift - 1)))
		return 0; // at or after a failed unmap of this queue: retrying
	return 1;
}

// More live mappings than the table holds: undo the IOMMU mapping and give
// the IOVA back (if the unmap fails the IOVA stays out: it may be mapped).
[[gnu::noinline, gnu::cold]] int map_no_slot(Glue &g, uint32_t cache, uint64_t va, uint64_t pfn,
					     uint64_t npages)
{
	g.dyn->no_slot.fetch_add(1, std::memory_order_relaxed);
	if (g.vfio.unmap_dyn(va, pfn << g.shift, npages << g.shift))
		(void)iovam_free_fast(g.dom, cache, pfn, npages);
	else
		g.dyn->dma_failures.fetch_add(1, std::memory_order_relaxed);
	return -ENOSPC;
}


}  // namespace

int dyn_start(Glue &g)
{
	uint32_t qsize = g.conf.unmap_queue_size;
	auto *d = new (std::nothrow) DynState;
	if (d == nullptr)
		return -ENOMEM;
	d->returns = iovam_return_batch_create(g.dom);
	if (d->returns == nullptr) {
		delete d;
		return -ENOMEM;
	}
	if (!d->table.init(g.conf.max_dyn_mappings)) {
		iovam_return_batch_destroy(d->returns);
		delete d;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < kQueues; i++) {
		d->queues[i].slots = new (std::nothrow) UnmapEntry[qsize];
		d->queues[i].mask = qsize - 1;
		if (d->queues[i].slots == nullptr) {
			while (i-- > 0)
				delete[] d->queues[i].slots;
			d->table.fini();
			iovam_return_batch_destroy(d->returns);
			delete d;
			return -ENOMEM;
		}
	}
	g.dyn = d;
	return 0;
}

void dyn_stop(Glue &g)
{
	if (g.dyn == nullptr)
		return;
	for (unsigned i = kQueues; i-- > 0;)
		delete[] g.dyn->queues[i].slots;
	g.dyn->table.fini();
	iovam_return_batch_destroy(g.dyn->returns); // flushes: its ranges go to the depot
	delete g.dyn;
	g.dyn = nullptr;
}

int dyn_drain(Glue &g, bool until_empty)
{
	DynState &d = *g.dyn;
	std::lock_guard lk(d.drain_lock);
	int returned = retry_failed(g);
	// until_empty: enough rounds to empty a queue that was full when we
	// started (what was queued before us is done), then stop even if
	// producers keep pushing: the drain lock's hold stays bounded.
	const uint64_t max_rounds = until_empty ? g.conf.unmap_queue_size / kBatch + 1 : 1;
	size_t popped;
	uint64_t rounds = 0;
	do {
		popped = 0;
		for (unsigned i = 0; i < kQueues; i++) {
			if (d.active[i].load(std::memory_order_relaxed))
				popped += drain_queue(g, d.queues[i], &returned);
		}
	} while (popped != 0 && ++rounds < max_rounds);
	flush_returns(g);
	return returned;
}

void dyn_leaked_iovas(Glue &g, std::vector<std::pair<uint64_t, uint64_t>> &out)
{
	DynState &d = *g.dyn;
	std::lock_guard lk(d.drain_lock);
	for (uint64_t s = d.retry_head; s != DynTable::kNone; s = d.table.next(s)) {
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
	uint64_t live = d.table.claim_all_live([&](uint64_t slot, uint64_t pfn, uint64_t va,
						   uint64_t len) {
		IOVAM_LOG(WARNING, "fini: dynamic mapping va 0x%" PRIx64 " iova 0x%" PRIx64
			  " len %" PRIu64 " still live: unmapping it", va,
			  (pfn << g.shift) + (va & (g.granule - 1)), len);
		batch[n++] = entry_of(g, slot, pfn, va, len);
		if (n == kBatch) {
			(void)complete(g, batch, n);
			n = 0;
		}
	});
	if (n != 0)
		(void)complete(g, batch, n);
	flush_returns(g);
	return live;
}

void dyn_stats(Glue &g, iovam_dpdk_stats &st)
{
	DynState &d = *g.dyn;
	uint64_t maps = 0, bytes = 0, req = 0, sync = 0, fail = 0;
	for (auto &q : d.queues) {
		maps += q.maps.load(std::memory_order_relaxed);
		bytes += q.map_bytes.load(std::memory_order_relaxed);
		req += q.unmap_requests.load(std::memory_order_relaxed);
		sync += q.sync_unmaps.load(std::memory_order_relaxed);
		fail += q.map_failures.load(std::memory_order_relaxed);
	}
	uint64_t done = d.done_unmaps.load(std::memory_order_relaxed);
	st.dyn_maps = maps;
	st.dyn_unmaps = done;
	st.dyn_pending = req - done;
	st.dyn_sync_unmaps = sync;
	st.bad_unmaps = d.bad_unmaps.load(std::memory_order_relaxed);
	st.unmaps_retrying += d.retrying.load(std::memory_order_relaxed);
	st.dma_maps += maps;
	st.dma_unmaps += d.dma_unmaps.load(std::memory_order_relaxed);
	if (g.vfio.no_iommu())
		st.dma_skipped += maps + d.dma_unmaps.load(std::memory_order_relaxed);
	st.dma_failures += fail + d.dma_failures.load(std::memory_order_relaxed);
	st.dyn_table_full = d.no_slot.load(std::memory_order_relaxed);
	st.dyn_strict_unmaps = d.strict_unmaps.load(std::memory_order_relaxed);
	iovam_return_batch_stats rs{};
	{
		std::lock_guard lk(d.drain_lock);
		(void)iovam_return_batch_stats_get(d.returns, &rs);
	}
	st.dyn_returned_to_depot = rs.ranges_to_depot;
	st.dyn_returned_to_tree = rs.ranges_to_tree;
	st.mapped_bytes += bytes - d.unmap_bytes.load(std::memory_order_relaxed);
	st.mappings += maps - done;
}

}  // namespace iovam::glue

using iovam::glue::Glue;

// Fast path. Cost without VFIO: the bounds arithmetic, iovam_alloc_fast() (a
// magazine pop when the lcore's cache is warm), one DynTable insert (a CAS on
// a slot next to the previous map's, usually in a warm line) and two
// single-writer counter stores; no heap allocation, no lock, no system call.
// With VFIO add one VFIO_IOMMU_MAP_DMA ioctl (microseconds: the kernel pins
// the pages).
extern "C" int iovam_dpdk_map(void *va, size_t len, uint64_t *iova)
{
	Glue *g = iovam::glue::glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (unlikely(va == nullptr || iova == nullptr || len == 0 || a + len < a))
		return -EINVAL;
	if (unlikely(g == nullptr))
		return iovam::glue::no_glue_errno(); // -ENOTSUP in a secondary
	uint64_t off = a & (g->granule - 1);
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	unsigned lc = rte_lcore_id();
	bool shared = lc >= RTE_MAX_LCORE;
	uint32_t cache = shared ? IOVAM_CACHE_NONE : lc;
	uint64_t pfn;
	int rc = iovam_alloc_fast(g->dom, cache, npages, g->limit_pfn, &pfn);
	if (unlikely(rc != 0))
		return rc == -EINVAL ? -ENOMEM : rc; // window smaller than the request
	iovam::glue::DynState &d = *g->dyn;
	auto &q = d.queues[shared ? iovam::glue::kSharedQueue : lc];
	if (unlikely(g->vfio.map_dyn(a - off, pfn << g->shift, npages << g->shift) !=
		     iovam::glue::VfioMapper::Result::kMapped)) {
		// Never mapped: the IOVA can go back at once.
		(void)iovam_free_fast(g->dom, cache, pfn, npages);
		q.map_failures.fetch_add(1, std::memory_order_relaxed);
		return -EIO;
	}
	// Recorded after the IOMMU mapping exists: until then no unmap can
	// claim it.
	if (unlikely(d.table.insert(pfn, a, len) == iovam::glue::DynTable::kNone))
		return iovam::glue::map_no_slot(*g, cache, a - off, pfn, npages);
	if (shared) {
		q.maps.fetch_add(1, std::memory_order_relaxed);
		q.map_bytes.fetch_add(npages << g->shift, std::memory_order_relaxed);
	} else {
		iovam::glue::bump(q.maps);
		iovam::glue::bump(q.map_bytes, npages << g->shift);
	}
	*iova = (pfn << g->shift) + off;
	return 0;
}

// Fast path (lazy). Cost: bounds arithmetic, one DynTable claim (a CAS on
// the mapping's slot) and one store into the lcore's queue (acquire load of
// the consumer's tail, release store of the head). A refused unmap costs at
// most DynTable::kNearProbe + kMaxProbe slot loads and one shared counter. Strict: add the
// drain of this lcore's queue (the drain lock, one VFIO unmap per run of
// adjacent mappings, the return to the depot).
extern "C" int iovam_dpdk_unmap_ex(void *va, uint64_t iova, size_t len, uint32_t flags,
				   uint64_t *seq)
{
	Glue *g = iovam::glue::glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (unlikely(va == nullptr || len == 0 || a + len < a ||
		     (flags & ~IOVAM_DPDK_UNMAP_F_STRICT) != 0))
		return -EINVAL;
	if (unlikely(g == nullptr))
		return iovam::glue::no_glue_errno(); // -ENOTSUP in a secondary
	uint64_t off = iova & (g->granule - 1);
	uint64_t pfn = iova >> g->shift;
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	if (unlikely(pfn < (g->conf.iova_base >> g->shift) || npages > g->limit_pfn ||
		     pfn > g->limit_pfn - npages + 1 || (a & (g->granule - 1)) != off)) {
		g->dyn->bad_unmaps.fetch_add(1, std::memory_order_relaxed);
		return -EINVAL;
	}
	iovam::glue::DynState &d = *g->dyn;
	uint64_t slot;
	int rc = d.table.claim(pfn, a, len, &slot);
	if (unlikely(rc != 0)) {
		d.bad_unmaps.fetch_add(1, std::memory_order_relaxed);
		return rc;
	}
	const bool strict = (flags & IOVAM_DPDK_UNMAP_F_STRICT) ||
			    (g->conf.flags & IOVAM_DPDK_F_STRICT_UNMAP);
	iovam::glue::UnmapEntry e{a - off, pfn, npages, slot};
	unsigned lc = rte_lcore_id();
	unsigned qi = likely(lc < RTE_MAX_LCORE) ? lc : iovam::glue::kSharedQueue;
	auto &q = d.queues[qi];
	uint64_t pos;
	if (likely(qi != iovam::glue::kSharedQueue)) {
		if (unlikely(!d.active[qi].load(std::memory_order_relaxed)))
			d.active[qi].store(true, std::memory_order_relaxed);
		iovam::glue::bump(q.unmap_requests);
		if (unlikely(!q.push(e))) {
			// Full: drain it ourselves (the drain thread is behind),
			// then there is room.
			iovam::glue::bump(q.sync_unmaps);
			iovam::glue::drain_own(*g, q);
			(void)q.push(e);
		}
		pos = q.head.load(std::memory_order_relaxed) - 1;
	} else {
		std::unique_lock lk(d.shared_lock);
		d.active[qi].store(true, std::memory_order_relaxed);
		q.unmap_requests.fetch_add(1, std::memory_order_relaxed);
		if (!q.push(e)) {
			q.sync_unmaps.fetch_add(1, std::memory_order_relaxed);
			iovam::glue::drain_own(*g, q); // drain_lock after shared_lock: never the reverse
			(void)q.push(e);
		}
		pos = q.head.load(std::memory_order_relaxed) - 1;
	}
	if (seq != nullptr)
		*seq = iovam::glue::seq_of(qi, pos);
	if (likely(!strict))
		return 0;
	d.strict_unmaps.fetch_add(1, std::memory_order_relaxed);
	iovam::glue::drain_own(*g, q);
	return iovam::glue::seq_done(d, iovam::glue::seq_of(qi, pos)) == 1 ? 0 : -EIO;
}

extern "C" int iovam_dpdk_unmap(void *va, uint64_t iova, size_t len)
{
	return iovam_dpdk_unmap_ex(va, iova, len, 0, nullptr);
}

extern "C" int iovam_dpdk_unmap_done(uint64_t seq)
{
	Glue *g = iovam::glue::glue();
	if (unlikely(g == nullptr))
		return -ENODEV;
	return iovam::glue::seq_done(*g->dyn, seq);
}

extern "C" int iovam_dpdk_unmap_wait(uint64_t seq)
{
	Glue *g = iovam::glue::glue();
	if (g == nullptr)
		return -ENODEV;
	iovam::glue::DynState &d = *g->dyn;
	int rc = iovam::glue::seq_done(d, seq);
	if (rc != 0)
		return rc == 1 ? 0 : rc;
	// Every queue until empty, failed unmaps retried: the entry was queued
	// before seq was returned, so after this it is either done or behind a
	// failed unmap (whose retry failed too).
	(void)iovam::glue::dyn_drain(*g, true);
	rc = iovam::glue::seq_done(d, seq);
	return rc == 1 ? 0 : rc == 0 ? -EIO : rc;
}
