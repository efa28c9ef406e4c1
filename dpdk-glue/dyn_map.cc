/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Dynamic mapping of application buffers (the "map_single" of zero-copy):
// the C entry points. Who owns the rest: dyn_state.h.
//
// map:   iovam_alloc_fast() on the calling lcore's cache (lock-free magazine),
//        then the DMA map (skipped in no-IOMMU mode; with VFIO one raw
//        VFIO_IOMMU_MAP_DMA ioctl, see vfio_mapper.h), then the mapping is
//        recorded live in the DynTable (dyn_table.h).
// unmap: claim the mapping in the DynTable (what is not a live mapping of
//        that va and length is refused here, nothing changed), then push
//        (va, pfn, npages, slot) into the lcore's unmap queue (dyn_queue.h);
//        the drain completes it (dyn_drain.cc). Strict: drain it now.
#include <cerrno>
#include <mutex>

#include <rte_branch_prediction.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>

#include "dyn_state.h"

namespace iovam::glue
{

namespace
{

// More live mappings than the table holds: undo the IOMMU mapping and give
// the IOVA back (if the unmap fails the IOVA stays out: it may be mapped).
[[gnu::noinline, gnu::cold]] int map_no_slot(Glue &g, uint32_t cache, uint64_t va, uint64_t pfn,
                                             uint64_t npages)
{
	g.dyn->count(kNoSlot);
	if (g.vfio.unmap_dyn(va, pfn << g.shift, npages << g.shift))
		(void)iovam_free_fast(g.dom, cache, pfn, npages);
	else
		g.dyn->count(kDmaFailures);
	return -ENOSPC;
}

// Lcore qi's queue q was full of entries it had not reaped: push e anyway.
// Reap what completed first. If that frees nothing and another thread is
// draining (a service lcore, which may be completing this very queue), spin
// for up to kSpinUs until it is done rather than drain behind it; drain our
// own queue (a sync unmap: up to the whole queue's unmaps on this lcore, with
// VFIO its ioctls) only when nobody else drains. After kSpinUs wait on the
// drain lock instead: the thread holding it may have lost its CPU, maybe
// this one (the EAL alarm thread shares a CPU with an lcore when EAL has no
// spare CPU for its control threads), and spinning would keep it off.
[[gnu::noinline, gnu::cold]] void push_full(Glue &g, Queue &q, unsigned qi, const UnmapEntry &e)
{
	// A service lcore's pass empties a full queue in 10-20 us without an
	// IOMMU (1024 entries at 18-30 cycles, bench_dyn_map); with VFIO it can
	// take longer, and then we wait on the lock.
	constexpr uint64_t kSpinUs = 50;
	const uint64_t spin_end = rte_get_tsc_cycles() + rte_get_tsc_hz() / 1000000 * kSpinUs;
	for (;;) {
		reap_all(g, q, qi);
		if (q.push(e)) return;
		const int64_t popped = rte_get_tsc_cycles() < spin_end ? drain_own_unless_busy(g, q)
		                                                       : drain_own(g, q);
		if (popped > 0)
			bump(q.ctr[kSyncUnmaps]);
		else if (popped < 0)
			rte_pause();
	}
}

} // namespace

} // namespace iovam::glue

using iovam::glue::Glue;

// Fast path. Cost without VFIO: the bounds arithmetic, reap() (a load of
// the queue's completed position; after a drain pass up to 16 fast frees of
// completed unmaps into this lcore's cache), iovam_alloc_fast() (a magazine
// pop when the lcore's cache is warm), one DynTable insert (a CAS on
// the pfn's near slot, next to its neighbours' in a streamed line, after
// seq_done() of the slot's previous unmap: two loads of a line the drain
// writes once per pass) and two single-writer counter stores; no heap allocation, no lock, no system call.
// With VFIO add one VFIO_IOMMU_MAP_DMA ioctl (microseconds: the kernel pins
// the pages).
extern "C" int iovam_dpdk_map(void *va, size_t len, uint64_t *iova)
{
	Glue *g = iovam::glue::glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (unlikely(va == nullptr || iova == nullptr || len == 0 || a + len < a)) return -EINVAL;
	if (unlikely(g == nullptr)) return iovam::glue::no_glue_errno(); // -ENOTSUP in a secondary
	uint64_t off = a & (g->granule - 1);
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	unsigned lc = rte_lcore_id();
	bool shared = lc >= RTE_MAX_LCORE;
	uint32_t cache = shared ? IOVAM_CACHE_NONE : lc;
	iovam::glue::DynState &d = *g->dyn;
	auto &q = d.queues[shared ? iovam::glue::kSharedQueue : lc];
	// This lcore's completed unmaps first: their IOVAs are the next pops.
	if (likely(!shared)) iovam::glue::reap(*g, q, cache);
	uint64_t pfn;
	int rc = g->window().alloc_fast(cache, npages, &pfn);
	if (unlikely(rc != 0)) return rc;
	if (unlikely(g->vfio.map_dyn(a - off, pfn << g->shift, npages << g->shift) !=
	             iovam::glue::VfioMapper::Result::kMapped)) {
		// Never mapped: the IOVA can go back at once.
		(void)iovam_free_fast(g->dom, cache, pfn, npages);
		q.ctr[iovam::glue::kMapFailures].fetch_add(1, std::memory_order_relaxed);
		return -EIO;
	}
	// Recorded after the IOMMU mapping exists: until then no unmap can
	// claim it.
	// A slot whose unmap completed is free: its sequence number says so.
	const auto completed = [&d](uint64_t tag) {
		return iovam::glue::seq_done(d.queues, tag) == 1;
	};
	if (unlikely(d.table.insert(pfn, a, len, completed) == iovam::glue::DynTable::kNone))
		return iovam::glue::map_no_slot(*g, cache, a - off, pfn, npages);
	if (shared) {
		q.ctr[iovam::glue::kMaps].fetch_add(1, std::memory_order_relaxed);
		q.ctr[iovam::glue::kMapBytes].fetch_add(npages << g->shift,
		                                        std::memory_order_relaxed);
	} else {
		iovam::glue::bump(q.ctr[iovam::glue::kMaps]);
		iovam::glue::bump(q.ctr[iovam::glue::kMapBytes], npages << g->shift);
	}
	*iova = (pfn << g->shift) + off;
	return 0;
}

// Fast path (lazy). Cost: bounds arithmetic, one DynTable claim (a CAS on
// the mapping's slot), reap() as in map, and one store into the lcore's
// queue (a write prefetch, release store of the head). A refused unmap costs at
// most DynTable::kNearProbe + kMaxProbe slot loads and one shared counter. Strict: add the
// drain of this lcore's queue (the drain lock, one VFIO unmap per run of
// adjacent mappings), then the reap of its IOVAs.
extern "C" int iovam_dpdk_unmap_ex(void *va, uint64_t iova, size_t len, uint32_t flags,
                                   uint64_t *seq)
{
	Glue *g = iovam::glue::glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (unlikely(va == nullptr || len == 0 || a + len < a ||
	             (flags & ~IOVAM_DPDK_UNMAP_F_STRICT) != 0))
		return -EINVAL;
	if (unlikely(g == nullptr)) return iovam::glue::no_glue_errno(); // -ENOTSUP in a secondary
	uint64_t off = iova & (g->granule - 1);
	uint64_t pfn = iova >> g->shift;
	uint64_t npages = (off + len + g->granule - 1) >> g->shift;
	if (unlikely(!g->window().contains(pfn, npages) || (a & (g->granule - 1)) != off)) {
		g->dyn->count(iovam::glue::kBadUnmaps);
		return -EINVAL;
	}
	iovam::glue::DynState &d = *g->dyn;
	uint64_t slot;
	int rc = d.table.claim(pfn, a, len, &slot);
	if (unlikely(rc != 0)) {
		d.count(iovam::glue::kBadUnmaps);
		return rc;
	}
	const bool strict =
	        (flags & IOVAM_DPDK_UNMAP_F_STRICT) || (g->conf.flags & IOVAM_DPDK_F_STRICT_UNMAP);
	iovam::glue::UnmapEntry e{a - off, pfn, npages, slot};
	unsigned lc = rte_lcore_id();
	unsigned qi = likely(lc < RTE_MAX_LCORE) ? lc : iovam::glue::kSharedQueue;
	auto &q = d.queues[qi];
	uint64_t pos;
	if (likely(qi != iovam::glue::kSharedQueue)) {
		if (unlikely(!d.active[qi].load(std::memory_order_relaxed)))
			d.active[qi].store(true, std::memory_order_relaxed);
		iovam::glue::bump(q.ctr[iovam::glue::kUnmapRequests]);
		iovam::glue::reap(*g, q, qi);
		// The entry's position: the slot is tagged with it before the
		// drain can see the entry (the push's release), and is free
		// once that position completed (dyn_table.h).
		pos = q.head.load(std::memory_order_relaxed);
		d.table.set_tag(slot, iovam::glue::seq_of(qi, pos));
		if (unlikely(!q.push(e)))
			iovam::glue::push_full(*g, q, qi, e); // at pos: a drain does not move head
		else
			d.want_drain_if_half_full(q);
	} else {
		std::unique_lock lk(d.shared_lock);
		d.active[qi].store(true, std::memory_order_relaxed);
		q.ctr[iovam::glue::kUnmapRequests].fetch_add(1, std::memory_order_relaxed);
		pos = q.head.load(std::memory_order_relaxed);
		d.table.set_tag(slot, iovam::glue::seq_of(qi, pos));
		if (!q.push(e)) {
			// Popped entries are done with their slot: a fresh view of
			// tail, then drain ourselves if the drain thread is behind.
			q.reload_free_below_from_tail();
			if (!q.push(e)) {
				q.ctr[iovam::glue::kSyncUnmaps].fetch_add(
				        1, std::memory_order_relaxed);
				// drain_lock after shared_lock: never the reverse
				iovam::glue::drain_own(*g, q);
				q.reload_free_below_from_tail();
				(void)q.push(e);
			}
		} else {
			d.want_drain_if_half_full(q); // tail_seen: under shared_lock
		}
	}
	if (seq != nullptr) *seq = iovam::glue::seq_of(qi, pos);
	if (likely(!strict)) return 0;
	d.count(iovam::glue::kStrictUnmaps);
	iovam::glue::drain_own(*g, q);
	if (qi != iovam::glue::kSharedQueue) iovam::glue::reap_all(*g, q, qi);
	return iovam::glue::seq_done(d.queues, iovam::glue::seq_of(qi, pos)) == 1 ? 0 : -EIO;
}

extern "C" int iovam_dpdk_unmap(void *va, uint64_t iova, size_t len)
{
	return iovam_dpdk_unmap_ex(va, iova, len, 0, nullptr);
}

extern "C" int iovam_dpdk_unmap_done(uint64_t seq)
{
	Glue *g = iovam::glue::glue();
	if (unlikely(g == nullptr)) return -ENODEV;
	return iovam::glue::seq_done(g->dyn->queues, seq);
}

extern "C" int iovam_dpdk_unmap_wait(uint64_t seq)
{
	Glue *g = iovam::glue::glue();
	if (g == nullptr) return -ENODEV;
	iovam::glue::DynState &d = *g->dyn;
	int rc = iovam::glue::seq_done(d.queues, seq);
	if (rc != 0) return rc == 1 ? 0 : rc;
	// Every queue until empty, failed unmaps retried: the entry was queued
	// before seq was returned, so after this it is either done or behind a
	// failed unmap (whose retry failed too).
	(void)iovam::glue::dyn_drain(*g, true);
	rc = iovam::glue::seq_done(d.queues, seq);
	return rc == 1 ? 0 : rc == 0 ? -EIO : rc;
}
