/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The dynamic mappings' state (dyn_state.h): start, stop, stats.
#include <cerrno>
#include <mutex>
#include <new>

#include "dyn_state.h"

namespace iovam::glue
{

int dyn_start(Glue &g)
{
	uint32_t qsize = g.conf.unmap_queue_size;
	auto *d = new (std::nothrow) DynState;
	if (d == nullptr) return -ENOMEM;
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
			while (i-- > 0) delete[] d->queues[i].slots;
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
	if (g.dyn == nullptr) return;
	// Completed entries their lcores never reaped: their IOVAs go back
	// through the return batch (no lcore maps any more).
	{
		std::lock_guard lk(g.dyn->drain_lock);
		for (unsigned i = 0; i < kSharedQueue; i++) {
			Queue &q = g.dyn->queues[i];
			const uint64_t done = q.done.load(std::memory_order_acquire);
			for (uint64_t pos = q.free_below.load(std::memory_order_acquire);
			     pos != done; pos++) {
				const UnmapEntry &e = q.slots[pos & q.mask];
				if (e.npages != 0)
					(void)iovam_return_batch_add(g.dyn->returns, e.pfn,
					                             e.npages);
			}
			q.free_below.store(done, std::memory_order_relaxed);
		}
	}
	for (unsigned i = kQueues; i-- > 0;) delete[] g.dyn->queues[i].slots;
	g.dyn->table.fini();
	iovam_return_batch_destroy(g.dyn->returns); // flushes: its ranges go to the depot
	delete g.dyn;
	g.dyn = nullptr;
}

void dyn_stats(Glue &g, iovam_dpdk_stats &st)
{
	DynState &d = *g.dyn;
	uint64_t sum[kProducerCounters] = {};
	for (auto &q : d.queues)
		for (unsigned c = 0; c < kProducerCounters; c++)
			sum[c] += q.ctr[c].load(std::memory_order_relaxed);
	const uint64_t maps = sum[kMaps];
	uint64_t done = d.read(kDoneUnmaps);
	st.dyn_maps = maps;
	st.dyn_unmaps = done;
	st.dyn_pending = sum[kUnmapRequests] - done;
	st.dyn_sync_unmaps = sum[kSyncUnmaps];
	st.bad_unmaps = d.read(kBadUnmaps);
	st.unmaps_retrying += d.retrying.load(std::memory_order_relaxed);
	st.dma_maps += maps;
	st.dma_unmaps += d.read(kDmaUnmaps);
	if (g.vfio.no_iommu()) st.dma_skipped += maps + d.read(kDmaUnmaps);
	st.dma_failures += sum[kMapFailures] + d.read(kDmaFailures);
	st.dyn_table_full = d.read(kNoSlot);
	st.dyn_strict_unmaps = d.read(kStrictUnmaps);
	iovam_return_batch_stats rs{};
	{
		std::lock_guard lk(d.drain_lock);
		(void)iovam_return_batch_stats_get(d.returns, &rs);
	}
	st.dyn_returned_to_depot = rs.ranges_to_depot;
	st.dyn_returned_to_tree = rs.ranges_to_tree;
	st.mapped_bytes += sum[kMapBytes] - d.read(kUnmapBytes);
	st.mappings += maps - done;
}

} // namespace iovam::glue
