/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Dynamic mapping of application buffers (the "map_single" of zero-copy).
//
// map:   iovam_alloc_fast() on the calling lcore's cache (lock-free magazine),
//        then the DMA map (skipped in no-IOMMU mode; with VFIO one raw
//        VFIO_IOMMU_MAP_DMA ioctl, see vfio_mapper.h).
// unmap: push (va, pfn, npages) into the lcore's single-producer queue.
// service: pops each queue, sorts the batch, issues one VFIO unmap per run of
//        VA- and IOVA-adjacent mappings, and only after each unmap returned
//        gives the range back with iovam_free_fast() on its own cache. So an
//        IOVA is never allocated again while the IOMMU may still translate it
//        (the stale-DMA bug users hit with eager reuse).
//
// Queues: one per lcore id (RTE_MAX_LCORE, registered non-EAL threads
// included) plus one shared queue for threads without an lcore id, whose
// producers take a mutex (as rte_mempool's LCORE_ID_ANY path takes none of
// the per-lcore fast paths either). All queue memory is allocated at start:
// the fast paths never allocate.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <mutex>
#include <new>

#include <rte_branch_prediction.h>
#include <rte_lcore.h>

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
};

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
	// Consumer (the service) writes this.
	alignas(64) std::atomic<uint64_t> tail{0};
	// Read-only after start.
	alignas(64) UnmapEntry *slots = nullptr;
	uint64_t mask = 0;

	bool push(const UnmapEntry &e)
	{
		uint64_t h = head.load(std::memory_order_relaxed);
		if (h - tail.load(std::memory_order_acquire) > mask)
			return false;
		slots[h & mask] = e;
		head.store(h + 1, std::memory_order_release);
		return true;
	}

	size_t pop(UnmapEntry *out, size_t max)
	{
		uint64_t t = tail.load(std::memory_order_relaxed);
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
	Queue queues[kQueues];
	std::atomic<bool> active[kQueues] = {}; // queue ever used: the service scans these
	std::mutex shared_lock;                  // producers of the shared queue
	std::mutex drain_lock;                   // consumers (service, sync unmaps of the shared queue)
	std::atomic<uint64_t> done_unmaps{0};
	std::atomic<uint64_t> unmap_bytes{0};
	std::atomic<uint64_t> dma_unmaps{0};
	std::atomic<uint64_t> bad_unmaps{0};
	std::atomic<uint64_t> dma_failures{0};
};

namespace {

inline uint64_t rounded_pages(uint64_t npages)
{
	return npages <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(npages) : npages;
}

inline uint32_t my_cache()
{
	unsigned lc = rte_lcore_id();
	return lc < RTE_MAX_LCORE ? lc : IOVAM_CACHE_NONE;
}

// Is e a live dynamic mapping? Best effort: its IOVA range must be exactly
// one ALLOCATED range of the rounded size and not memory-event memory.
// Caller holds g.map.lock() shared. Cost: one tree lookup (domain lock).
bool valid_entry(Glue &g, const UnmapEntry &e)
{
	uint64_t lo, hi;
	if (iovam_find(g.dom, e.pfn, &lo, &hi) != 0 || lo != e.pfn ||
	    hi != e.pfn + rounded_pages(e.npages) - 1)
		return false;
	return !g.map.contains_range(e.pfn);
}

// Return the IOVA ranges of entries whose unmap completed.
int release(Glue &g, const UnmapEntry *e, size_t n)
{
	uint32_t cache = my_cache();
	uint64_t pages = 0;
	for (size_t i = 0; i < n; i++) {
		unmap_hook_call(e[i].pfn << g.shift, e[i].npages << g.shift);
		int rc = iovam_free_fast(g.dom, cache, e[i].pfn, e[i].npages);
		if (rc != 0)
			IOVAM_LOG(ERR, "free_fast pfn 0x%" PRIx64 ": %d", e[i].pfn, rc);
		pages += e[i].npages;
	}
	// One locked add per run, not per entry.
	g.dyn->unmap_bytes.fetch_add(pages << g.shift, std::memory_order_relaxed);
	g.dyn->done_unmaps.fetch_add(n, std::memory_order_relaxed);
	return static_cast<int>(n);
}

// Unmap a sorted batch: one DMA unmap per run of VA- and IOVA-adjacent
// entries (VFIO type1 unmaps whole mappings; a run covers whole ones).
int complete(Glue &g, UnmapEntry *e, size_t n)
{
	size_t good = 0;
	{
		std::shared_lock lk(g.map.lock());
		for (size_t i = 0; i < n; i++) {
			if (valid_entry(g, e[i]))
				e[good++] = e[i];
			else
				g.dyn->bad_unmaps.fetch_add(1, std::memory_order_relaxed);
		}
	}
	std::sort(e, e + good, [](const UnmapEntry &a, const UnmapEntry &b) { return a.pfn < b.pfn; });
	int returned = 0;
	for (size_t i = 0; i < good;) {
		size_t j = i + 1;
		uint64_t pages = e[i].npages;
		while (j < good && e[j].pfn == e[i].pfn + pages &&
		       e[j].va == e[i].va + (pages << g.shift)) {
			pages += e[j].npages;
			j++;
		}
		g.dyn->dma_unmaps.fetch_add(1, std::memory_order_relaxed);
		if (g.vfio.unmap_dyn(e[i].va, e[i].pfn << g.shift, pages << g.shift)) {
			returned += release(g, e + i, j - i);
		} else {
			// Leak the IOVAs: they may still be mapped.
			g.dyn->dma_failures.fetch_add(1, std::memory_order_relaxed);
		}
		i = j;
	}
	return returned;
}

[[gnu::noinline, gnu::cold]] void unmap_sync(Glue &g, const UnmapEntry &e)
{
	UnmapEntry copy = e;
	(void)complete(g, &copy, 1);
}

}  // namespace

int dyn_start(Glue &g)
{
	uint32_t qsize = g.conf.unmap_queue_size;
	auto *d = new (std::nothrow) DynState;
	if (d == nullptr)
		return -ENOMEM;
	for (unsigned i = 0; i < kQueues; i++) {
		d->queues[i].slots = new (std::nothrow) UnmapEntry[qsize];
		d->queues[i].mask = qsize - 1;
		if (d->queues[i].slots == nullptr) {
			while (i-- > 0)
				delete[] d->queues[i].slots;
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
	delete g.dyn;
	g.dyn = nullptr;
}

int dyn_drain(Glue &g)
{
	DynState &d = *g.dyn;
	UnmapEntry batch[kBatch];
	int returned = 0;
	std::lock_guard lk(d.drain_lock);
	for (unsigned i = 0; i < kQueues; i++) {
		if (!d.active[i].load(std::memory_order_relaxed))
			continue;
		size_t n = d.queues[i].pop(batch, kBatch);
		if (n != 0)
			returned += complete(g, batch, n);
	}
	return returned;
}

uint64_t dyn_outstanding(Glue &g)
{
	uint64_t maps = 0;
	for (auto &q : g.dyn->queues)
		maps += q.maps.load(std::memory_order_relaxed);
	return maps - g.dyn->done_unmaps.load(std::memory_order_relaxed);
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
	uint64_t bad = d.bad_unmaps.load(std::memory_order_relaxed);
	st.dyn_maps = maps;
	st.dyn_unmaps = done;
	st.dyn_pending = req - done - bad - d.dma_failures.load(std::memory_order_relaxed);
	st.dyn_sync_unmaps = sync;
	st.bad_unmaps = bad;
	st.dma_maps += maps;
	st.dma_unmaps += d.dma_unmaps.load(std::memory_order_relaxed);
	if (g.vfio.no_iommu())
		st.dma_skipped += maps + d.dma_unmaps.load(std::memory_order_relaxed);
	st.dma_failures += fail + d.dma_failures.load(std::memory_order_relaxed);
	st.mapped_bytes += bytes - d.unmap_bytes.load(std::memory_order_relaxed);
	st.mappings += maps - done;
}

}  // namespace iovam::glue

using iovam::glue::Glue;

// Fast path. Cost without VFIO: the bounds arithmetic, iovam_alloc_fast() (a
// magazine pop when the lcore's cache is warm) and two single-writer counter
// stores; no heap allocation, no lock, no system call. With VFIO add one
// VFIO_IOMMU_MAP_DMA ioctl (microseconds: the kernel pins the pages).
extern "C" int iovam_dpdk_map(void *va, size_t len, uint64_t *iova)
{
	Glue *g = iovam::glue::glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (unlikely(va == nullptr || iova == nullptr || len == 0 || a + len < a))
		return -EINVAL;
	if (unlikely(g == nullptr))
		return -ENODEV;
	uint64_t off = a & (g->granule - 1);
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	unsigned lc = rte_lcore_id();
	bool shared = lc >= RTE_MAX_LCORE;
	uint32_t cache = shared ? IOVAM_CACHE_NONE : lc;
	uint64_t pfn;
	int rc = iovam_alloc_fast(g->dom, cache, npages, g->limit_pfn, &pfn);
	if (unlikely(rc != 0))
		return rc == -EINVAL ? -ENOMEM : rc; // window smaller than the request
	auto &q = g->dyn->queues[shared ? iovam::glue::kSharedQueue : lc];
	if (unlikely(g->vfio.map_dyn(a - off, pfn << g->shift, npages << g->shift) !=
		     iovam::glue::VfioMapper::Result::kMapped)) {
		// Never mapped: the IOVA can go back at once.
		(void)iovam_free_fast(g->dom, cache, pfn, npages);
		q.map_failures.fetch_add(1, std::memory_order_relaxed);
		return -EIO;
	}
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

// Fast path. Cost: bounds arithmetic and one store into the lcore's queue
// (acquire load of the consumer's tail, release store of the head).
extern "C" int iovam_dpdk_unmap(void *va, uint64_t iova, size_t len)
{
	Glue *g = iovam::glue::glue();
	if (unlikely(va == nullptr || len == 0))
		return -EINVAL;
	if (unlikely(g == nullptr))
		return -ENODEV;
	uint64_t off = iova & (g->granule - 1);
	uint64_t pfn = iova >> g->shift;
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	if (unlikely(pfn < (g->conf.iova_base >> g->shift) || npages > g->limit_pfn ||
		     pfn > g->limit_pfn - npages + 1))
		return -EINVAL;
	iovam::glue::UnmapEntry e{reinterpret_cast<uintptr_t>(va) - off, pfn, npages};
	iovam::glue::DynState &d = *g->dyn;
	unsigned lc = rte_lcore_id();
	if (likely(lc < RTE_MAX_LCORE)) {
		auto &q = d.queues[lc];
		if (unlikely(!d.active[lc].load(std::memory_order_relaxed)))
			d.active[lc].store(true, std::memory_order_relaxed);
		iovam::glue::bump(q.unmap_requests);
		if (likely(q.push(e)))
			return 0;
		iovam::glue::bump(q.sync_unmaps);
	} else {
		auto &q = d.queues[iovam::glue::kSharedQueue];
		std::lock_guard lk(d.shared_lock);
		d.active[iovam::glue::kSharedQueue].store(true, std::memory_order_relaxed);
		q.unmap_requests.fetch_add(1, std::memory_order_relaxed);
		if (q.push(e))
			return 0;
		q.sync_unmaps.fetch_add(1, std::memory_order_relaxed);
	}
	iovam::glue::unmap_sync(*g, e);
	return 0;
}
