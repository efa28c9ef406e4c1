/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Memory-event hook: every page of DPDK memory gets an iovam IOVA and a DMA
// mapping while it exists, and loses both before DPDK frees it.
//
// Modelled on SPDK lib/env_dpdk/memory.c: register the callback first, then
// walk the memory that already exists, so nothing falls between the two.
//
// DPDK 22.11 constraints:
//  - The callback runs with the memory hotplug lock held for writing (and,
//    for heap growth, the heap lock): it must not walk memsegs, rte_malloc or
//    call anything that takes those locks. rte_mem_virt2memseg_list() reads
//    the memseg lists without a lock and is what SPDK uses there too.
//  - rte_mem_event_callback_register() fails with ENOTSUP under --legacy-mem
//    and --no-huge. All memory then exists at init and is never freed: the
//    init walk covers it, and each VA-contiguous run can be one mapping.
//  - FREE events need not match ALLOC events (38 MiB allocated, freed as
//    36 + 2 MiB) and VFIO type1 cannot unmap part of a mapping. With events,
//    every mapping of memory DPDK may free is therefore one memseg page: any
//    FREE (always whole pages) unmaps whole mappings. That is the fewest
//    mappings that allows: 1 GiB of 2 MiB pages = 512 mappings, of 1 GiB
//    pages = 1 mapping; the kernel's 65535-entry cap is reached at 128 GiB
//    of 2 MiB pages.
//  - Memory DPDK never frees needs no such care, and one mapping per
//    VA-contiguous run: static memory (no events), and the pages EAL
//    preallocates in dynamic mode (-m, --socket-mem), which it marks
//    RTE_MEMSEG_FLAG_DO_NOT_FREE (the heap's shrink skips them and
//    eal_memalloc_free_seg_bulk refuses them; only rte_eal_cleanup() clears
//    the flag, after the application is done). So an application that
//    preallocates its memory, as production ones do, gets 1 mapping per run
//    however large, and is not bound by the 128 GiB cap. External heap
//    memory likewise (see mem_event_cb).
//  - The walk holds the hotplug lock for reading from the walk to the last
//    mapping, so no FREE can slip between finding a page and mapping it; an
//    ALLOC event delivered between registration and walk is found in the map
//    and skipped by the walk.
//  - On FREE the order is: VFIO unmap, drop the translation, and only then
//    return the IOVA to the domain, so an IOVA is never handed out while the
//    IOMMU still maps it. If the unmap fails the chunk turns stale: its
//    translation goes, its IOVA stays out, and the service retries the unmap
//    until it succeeds (fini tries once more; then the IOVA is leaked and
//    fini reports it).
#include <cerrno>
#include <cinttypes>
#include <mutex>
#include <vector>

#include <rte_eal.h>
#include <rte_eal_memconfig.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_memory.h>

#include "glue.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

constexpr const char *kCallbackName = "iovam_mem_event";

std::atomic<iovam_dpdk_unmap_hook_t> g_unmap_hook{nullptr};
std::atomic<void *> g_unmap_hook_arg{nullptr};

void count_map(Glue &g, const Chunk &c)
{
	if (!c.mapped) {
		g.ctr.dma_queued.fetch_add(1, std::memory_order_relaxed);
		return;
	}
	g.ctr.dma_maps.fetch_add(1, std::memory_order_relaxed);
	g.ctr.mappings.fetch_add(1, std::memory_order_relaxed);
	g.ctr.mapped_bytes.fetch_add(c.len, std::memory_order_relaxed);
	if (g.vfio.no_iommu()) g.ctr.dma_skipped.fetch_add(1, std::memory_order_relaxed);
}

// With VFIO, DPDK itself maps every memseg at DPDK's IOVA (the VA in VA mode,
// the physical address in PA mode) into the same default container, and a
// type1 container cannot map one IOVA twice. DPDK's IOVAs that fall inside
// our window are therefore reserved in the domain so that we never hand them
// out. There is no "unreserve": in VA mode we reserve each memseg list's
// whole VA span once (it never moves); in PA mode each page as it appears
// (bounded by physical memory). Skipped in no-IOMMU mode: no shared space.
// Caller holds the map lock.
void reserve_dpdk_iova_locked(Glue &g, uint64_t iova, uint64_t len)
{
	if (g.vfio.no_iommu() || iova == RTE_BAD_IOVA || len == 0) return;
	int rc = g.window().reserve_bytes(iova, iova + len - 1);
	if (rc != 0)
		IOVAM_LOG(ERR,
		          "cannot reserve DPDK's IOVA 0x%" PRIx64 "+0x%" PRIx64
		          " in the window (%d): DMA to it may collide",
		          iova, len, rc);
}

// PA mode: reserve the physical address of every page of [va, va+len).
void reserve_region_pa_locked(Glue &g, const rte_memseg_list *msl, uintptr_t va, size_t len)
{
	if (g.vfio.no_iommu() || rte_eal_iova_mode() != RTE_IOVA_PA || msl == nullptr) return;
	for (uintptr_t a = va; a < va + len; a += msl->page_sz) {
		const rte_memseg *ms = rte_mem_virt2memseg(reinterpret_cast<void *>(a), msl);
		if (ms != nullptr) reserve_dpdk_iova_locked(g, ms->iova, ms->len);
	}
}

int reserve_msl_cb(const rte_memseg_list *msl, void *arg)
{
	auto &g = *static_cast<Glue *>(arg);
	reserve_dpdk_iova_locked(g, reinterpret_cast<uintptr_t>(msl->base_va), msl->len);
	return 0;
}

// DMA-unmap chunk c at va and count it. false: the unmap failed.
bool unmap_counted(Glue &g, uintptr_t va, const Chunk &c)
{
	if (!g.vfio.unmap(va, c.iova, c.len)) {
		g.ctr.dma_failures.fetch_add(1, std::memory_order_relaxed);
		return false;
	}
	g.ctr.dma_unmaps.fetch_add(1, std::memory_order_relaxed);
	g.ctr.mappings.fetch_sub(1, std::memory_order_relaxed);
	g.ctr.mapped_bytes.fetch_sub(c.len, std::memory_order_relaxed);
	if (g.vfio.no_iommu()) g.ctr.dma_skipped.fetch_add(1, std::memory_order_relaxed);
	unmap_hook_call(c.iova, c.len);
	return true;
}

// Unmap one chunk and drop it (IovaMap gives its range back with its last
// chunk). A chunk whose unmap fails turns stale (see the top). Caller holds
// g.map.lock() exclusively.
void unmap_chunk_locked(Glue &g, uintptr_t va)
{
	Chunk c = g.map.chunks().at(va);
	if (!c.mapped) {
		g.ctr.dma_queued.fetch_sub(1, std::memory_order_relaxed);
	} else if (!unmap_counted(g, va, c)) {
		IOVAM_LOG(WARNING,
		          "unmap of va 0x%" PRIx64 " iova 0x%" PRIx64 " failed: IOVA "
		          "held, unmap retried by the service",
		          uint64_t{va}, c.iova);
		g.map.make_stale(va);
		g.ctr.unmaps_retrying.fetch_add(1, std::memory_order_relaxed);
		return;
	}
	g.map.remove_chunk(va);
}

// Caller holds g.map.lock() exclusively. Returns the stale chunks left.
uint64_t retry_stale_locked(Glue &g)
{
	for (size_t i = g.map.stale().size(); i-- > 0;) {
		auto [va, c] = g.map.stale()[i];
		if (!unmap_counted(g, va, c)) continue;
		g.ctr.unmaps_retrying.fetch_sub(1, std::memory_order_relaxed);
		g.map.remove_stale(i);
	}
	return g.map.stale().size();
}

// Give [va, va+len) one IOVA range and map it in chunk_len pieces. On failure
// everything done here is undone in reverse order. Caller holds the map lock.
int map_region_locked(Glue &g, uintptr_t va, size_t len, size_t chunk_len, MapKind kind)
{
	uint64_t pfn;
	int rc = g.map.add_range(len >> g.shift, &pfn);
	if (rc != 0) {
		IOVAM_LOG(ERR, "no IOVA range for %zu bytes at %p: %d", len, (void *)va, rc);
		return rc;
	}
	uint64_t iova = pfn << g.shift;
	for (size_t off = 0; off < len; off += chunk_len) {
		VfioMapper::Result r = g.vfio.map(va + off, iova + off, chunk_len);
		if (r == VfioMapper::Result::kFailed) {
			g.ctr.dma_failures.fetch_add(1, std::memory_order_relaxed);
			g.map.undo_region(va, off, pfn, [&g](uintptr_t chunk_va) {
				unmap_chunk_locked(g, chunk_va);
			});
			return -EIO;
		}
		Chunk c{chunk_len, iova + off, pfn, r == VfioMapper::Result::kMapped};
		g.map.add_chunk(va + off, c);
		count_map(g, c);
		(g.ctr.*kKindMaps[kind]).fetch_add(1, std::memory_order_relaxed);
		(g.ctr.*kKindBytes[kind]).fetch_add(chunk_len, std::memory_order_relaxed);
	}
	return 0;
}

// A FREE of [va, va+len): unmap every chunk inside. Chunks are memseg pages,
// so a FREE never cuts one; if it would, the chunk is kept and reported.
void free_region_locked(Glue &g, uintptr_t va, size_t len)
{
	uintptr_t first;
	if (g.map.find(va, &first) != nullptr && first != va)
		IOVAM_LOG(ERR, "FREE at %p cuts a mapping: kept", (void *)va);
	auto &chunks = g.map.chunks();
	for (auto it = chunks.lower_bound(va); it != chunks.end() && it->first < va + len;) {
		auto next = std::next(it);
		if (it->first + it->second.len > va + len) {
			IOVAM_LOG(ERR, "FREE ending at %p cuts a mapping: kept",
			          (void *)(va + len));
			break;
		}
		unmap_chunk_locked(g, it->first);
		it = next;
	}
}

void mem_event_cb(enum rte_mem_event type, const void *addr, size_t len, void *arg)
{
	Glue &g = *static_cast<Glue *>(arg);
	auto va = reinterpret_cast<uintptr_t>(addr);
	g.ctr.mem_events.fetch_add(1, std::memory_order_relaxed);
	if (type == RTE_MEM_EVENT_FREE) {
		std::unique_lock lk(g.map.lock());
		free_region_locked(g, va, len);
		return;
	}
	const rte_memseg_list *msl = rte_mem_virt2memseg_list(addr);
	size_t page = msl != nullptr ? msl->page_sz : g.granule;
	int rc = -EINVAL;
	if (page >= g.granule && len % page == 0) {
		// External memory (rte_malloc_heap_memory_add) is never shrunk
		// by the heap and is removed only whole (the FREE event of
		// rte_malloc_heap_memory_remove covers exactly what was added):
		// one mapping.
		bool whole = msl != nullptr && msl->external;
		std::unique_lock lk(g.map.lock());
		reserve_region_pa_locked(g, msl, va, len);
		rc = map_region_locked(g, va, len, whole ? len : page, kMapGrown);
	}
	if (rc != 0) {
		// The allocation itself cannot be refused from here; its memory
		// has no IOVA, and mempool populate on it fails with EFAULT.
		g.ctr.mem_event_failures.fetch_add(1, std::memory_order_relaxed);
		IOVAM_LOG(ERR, "ALLOC event %p+%zu not mapped: %d", addr, len, rc);
	}
}

struct Run {
	uintptr_t va;
	size_t len;
	size_t page;
	const rte_memseg_list *msl;
	bool never_freed; // RTE_MEMSEG_FLAG_DO_NOT_FREE pages: one mapping
};

struct WalkCtx {
	Glue *g;
	std::vector<Run> runs;
	bool bad_page;
};

// Walk callback (DPDK's memory lock held for reading): collect VA-contiguous
// runs of memsegs that have no translation yet.
int collect_cb(const rte_memseg_list *msl, const rte_memseg *ms, void *arg)
{
	auto &ctx = *static_cast<WalkCtx *>(arg);
	auto va = reinterpret_cast<uintptr_t>(ms->addr);
	uintptr_t unused;
	if (ctx.g->map.find(va, &unused) != nullptr) return 0; // an ALLOC event got there first
	if (ms->len < ctx.g->granule || ms->len % ctx.g->granule != 0) {
		ctx.bad_page = true;
		return -1;
	}
	bool never_freed = (ms->flags & RTE_MEMSEG_FLAG_DO_NOT_FREE) != 0;
	if (!ctx.runs.empty()) {
		Run &r = ctx.runs.back();
		if (r.msl == msl && r.va + r.len == va && r.page == ms->len &&
		    r.never_freed == never_freed) {
			r.len += ms->len;
			return 0;
		}
	}
	ctx.runs.push_back({va, ms->len, ms->len, msl, never_freed});
	return 0;
}

int ethdev_new_cb(uint16_t, enum rte_eth_event_type, void *arg, void *)
{
	Glue &g = *static_cast<Glue *>(arg);
	// A port was probed: if it is a VFIO device the container now has an
	// IOMMU type, and queued mappings can be made.
	(void)mem_replay(g);
	return 0;
}

void unmap_all(Glue &g)
{
	std::unique_lock lk(g.map.lock());
	auto &chunks = g.map.chunks();
	while (!chunks.empty()) unmap_chunk_locked(g, std::prev(chunks.end())->first);
	if (retry_stale_locked(g) != 0)
		IOVAM_LOG(ERR, "%zu mapping(s) could not be unmapped: their IOVAs are leaked",
		          g.map.stale().size());
}

} // namespace

void unmap_hook_call(uint64_t iova, uint64_t len)
{
	iovam_dpdk_unmap_hook_t h = g_unmap_hook.load(std::memory_order_acquire);
	if (h != nullptr) h(iova, len, g_unmap_hook_arg.load(std::memory_order_relaxed));
}

int mem_hook_start(Glue &g)
{
	if (rte_mem_event_callback_register(kCallbackName, mem_event_cb, &g) == 0) {
		g.event_registered = true;
	} else if (rte_errno == ENOTSUP) {
		g.static_memory = true; // --legacy-mem / --no-huge
	} else {
		IOVAM_LOG(ERR, "mem event callback: %s", rte_strerror(rte_errno));
		return -rte_errno;
	}

	WalkCtx ctx{&g, {}, false};
	int rc = 0;
	rte_mcfg_mem_read_lock();
	{
		std::unique_lock lk(g.map.lock());
		rc = reserve_iommu_holes_locked(g);
		if (!g.vfio.no_iommu() && rte_eal_iova_mode() == RTE_IOVA_VA)
			(void)rte_memseg_list_walk_thread_unsafe(reserve_msl_cb, &g);
		if (rc == 0 && rte_memseg_walk_thread_unsafe(collect_cb, &ctx) != 0) rc = -EINVAL;
		for (size_t i = 0; rc == 0 && i < ctx.runs.size(); i++) {
			const Run &r = ctx.runs[i];
			reserve_region_pa_locked(g, r.msl, r.va, r.len);
			bool whole = g.static_memory || r.never_freed;
			rc = map_region_locked(g, r.va, r.len, whole ? r.len : r.page,
			                       whole ? kMapPreallocated : kMapInitPages);
		}
	}
	rte_mcfg_mem_read_unlock();
	if (ctx.bad_page)
		IOVAM_LOG(ERR, "granule 0x%" PRIx64 " is larger than a memseg page", g.granule);
	if (rc != 0) {
		// Unregister before unmapping, so no event adds a chunk meanwhile.
		mem_hook_stop(g);
		return rc == -EIO || rc == -EINVAL ? rc : -ENOMEM;
	}
	IOVAM_LOG(INFO, "init walk: %zu run(s), %s memory", ctx.runs.size(),
	          g.static_memory ? "static" : "dynamic");

	if (!g.vfio.no_iommu() &&
	    rte_eth_dev_callback_register(RTE_ETH_ALL, RTE_ETH_EVENT_NEW, ethdev_new_cb, &g) == 0)
		g.ethdev_cb_registered = true;
	return 0;
}

void mem_hook_stop(Glue &g)
{
	if (g.ethdev_cb_registered) {
		rte_eth_dev_callback_unregister(RTE_ETH_ALL, RTE_ETH_EVENT_NEW, ethdev_new_cb, &g);
		g.ethdev_cb_registered = false;
	}
	if (g.event_registered) {
		// Waits for a callback in progress (DPDK takes the callback list
		// lock for writing).
		rte_mem_event_callback_unregister(kCallbackName, &g);
		g.event_registered = false;
	}
	unmap_all(g);
}

void mem_leaked_iovas(Glue &g, std::vector<std::pair<uint64_t, uint64_t>> &out)
{
	std::shared_lock lk(g.map.lock());
	for (const auto &[va, c] : g.map.stale()) out.emplace_back(c.iova, c.iova + c.len - 1);
}

uint64_t mem_retry_failed_unmaps(Glue &g)
{
	if (g.ctr.unmaps_retrying.load(std::memory_order_relaxed) == 0) return 0;
	std::unique_lock lk(g.map.lock());
	return retry_stale_locked(g);
}

int mem_replay(Glue &g)
{
	if (g.ctr.dma_queued.load(std::memory_order_relaxed) == 0) return 0;
	std::unique_lock lk(g.map.lock());
	int n = 0;
	for (auto &[va, c] : g.map.chunks()) {
		if (c.mapped) continue;
		VfioMapper::Result r = g.vfio.map(va, c.iova, c.len);
		if (r == VfioMapper::Result::kQueued) break; // still no device
		if (r == VfioMapper::Result::kFailed) {
			g.ctr.dma_failures.fetch_add(1, std::memory_order_relaxed);
			return -EIO;
		}
		g.ctr.dma_queued.fetch_sub(1, std::memory_order_relaxed);
		c.mapped = true;
		count_map(g, c);
		n++;
	}
	if (n > 0) IOVAM_LOG(INFO, "replayed %d queued mapping(s)", n);
	return n;
}

} // namespace iovam::glue

#ifdef IOVAM_DPDK_TEST_HOOKS
extern "C" void iovam_dpdk_test_set_unmap_hook(iovam_dpdk_unmap_hook_t hook, void *arg)
{
	iovam::glue::g_unmap_hook_arg.store(arg, std::memory_order_relaxed);
	iovam::glue::g_unmap_hook.store(hook, std::memory_order_release);
}
#endif
