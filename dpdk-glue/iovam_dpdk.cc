/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// iovam_dpdk_init() / iovam_dpdk_fini() and the small C entry points.
//
// Init builds the parts in this order and fini (or a failed init) takes them
// down in exactly the reverse order:
//   1 domain          iovam_domain_create()
//     shared table    SharedPages::create_primary() (kept for the process:
//                     secondaries may hold it; entries cleared by step 4's undo)
//   2 VFIO mode       VfioMapper::init()      (nothing to undo)
//   3 unmap queues    dyn_start()
//   4 memory hook     mem_hook_start(): callback, init walk, ethdev NEW hook
//   5 service         service_start()
//   6 publish         g_glue, then the shared table's alive flag
//
// In a secondary process init only attaches to the primary's shared table
// (shared_pages.h) and fini detaches.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <mutex>
#include <new>
#include <shared_mutex>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_vfio.h>

#include "glue.h"
#include "log.h"

namespace iovam::glue
{

std::atomic<Glue *> g_glue{nullptr};
std::atomic<SharedPages *> g_secondary{nullptr};
std::mutex g_api_lock;

namespace
{

// IOVA ranges [lo, hi] (bytes, inclusive) that a glue of this process could
// not unmap, even on retry: the IOMMU may still map them, so every later
// glue reserves them in its domain and never hands them out. g_api_lock.
std::vector<std::pair<uint64_t, uint64_t>> g_leaked_iovas;

// Called as a glue goes, after its last unmap attempts.
void remember_leaks(Glue &g)
{
	size_t before = g_leaked_iovas.size();
	if (g.dyn != nullptr) dyn_leaked_iovas(g, g_leaked_iovas);
	mem_leaked_iovas(g, g_leaked_iovas);
	for (size_t i = before; i < g_leaked_iovas.size(); i++)
		IOVAM_LOG(ERR,
		          "IOVA [0x%" PRIx64 ", 0x%" PRIx64 "] could not be unmapped: "
		          "never handed out again in this process",
		          g_leaked_iovas[i].first, g_leaked_iovas[i].second);
}

// A new domain: keep out what earlier glues could not unmap.
int reserve_leaks(Glue &g)
{
	for (auto [lo, hi] : g_leaked_iovas) {
		int rc = g.window().reserve_bytes(lo, hi);
		if (rc != 0) return rc;
	}
	return 0;
}

constexpr uint32_t kKnownFlags = IOVAM_DPDK_F_NO_IOMMU | IOVAM_DPDK_F_NO_SERVICE |
                                 IOVAM_DPDK_F_DYN_VIA_DPDK | IOVAM_DPDK_F_STRICT_UNMAP;

// Fill defaults and check every field; dc gets the domain's configuration.
int resolve_conf(const iovam_dpdk_conf *in, iovam_dpdk_conf &c, iovam_domain_conf &dc)
{
	c = in != nullptr ? *in : iovam_dpdk_conf{};
	if ((c.flags & ~kKnownFlags) != 0) return -EINVAL;
	if (c.dma_bits == 0) c.dma_bits = 32;
	if (c.granule == 0) c.granule = 4096;
	if (c.unmap_queue_size == 0) c.unmap_queue_size = 1024;
	if (c.max_dyn_mappings == 0) c.max_dyn_mappings = 65536;
	if (c.dma_bits < 20 || c.dma_bits > 64 || c.granule < 4096 ||
	    !std::has_single_bit(c.granule) || c.unmap_queue_size < 16 ||
	    c.unmap_queue_size > 65536 || !std::has_single_bit(c.unmap_queue_size) ||
	    c.max_dyn_mappings > (1u << 24))
		return -EINVAL;
	unsigned shift = std::countr_zero(c.granule);
	// Highest IOVA the device can reach, inclusive (2^64 does not fit).
	uint64_t top = c.dma_bits == 64 ? UINT64_MAX : (uint64_t{1} << c.dma_bits) - 1;
	if (c.iova_base == 0) c.iova_base = c.granule;
	uint64_t last = c.iova_end == 0 ? top : c.iova_end - 1;
	if (c.iova_base % c.granule != 0 || (c.iova_end != 0 && c.iova_end % c.granule != 0) ||
	    last > top || c.iova_base > last)
		return -EINVAL;
	dc = iovam_domain_conf{};
	dc.granule = c.granule;
	dc.start_pfn = c.iova_base >> shift;
	dc.end_pfn = last >> shift;
	dc.n_caches = RTE_MAX_LCORE;
	return 0;
}

// A secondary: attach to the primary's translations. g_api_lock held.
int attach_secondary()
{
	if (secondary() != nullptr) return -EALREADY;
	SharedPages *sp = SharedPages::attach_secondary();
	if (sp == nullptr) return -ENOENT;
	g_secondary.store(sp, std::memory_order_release);
	IOVAM_LOG(INFO, "secondary: translating with primary %d's IOVAs%s", sp->primary_pid(),
	          sp->alive() ? "" : " (not initialised there now)");
	return 0;
}

} // namespace

} // namespace iovam::glue

using namespace iovam::glue;

extern "C" int iovam_dpdk_init(const struct iovam_dpdk_conf *conf)
{
	std::lock_guard api(g_api_lock);
	if (glue() != nullptr) return -EALREADY;
	if (rte_lcore_count() == 0) return -EPERM; // rte_eal_init() has not run
	mempool_ops_register(); // if this library was loaded after EAL's bus scan
	iovam_dpdk_conf c;
	iovam_domain_conf dc;
	int rc = resolve_conf(conf, c, dc);
	if (rc != 0) return rc;
	if (rte_eal_process_type() != RTE_PROC_PRIMARY)
		return attach_secondary(); // conf checked, the primary's applies
	// VFIO's own no-IOMMU mode: devices DMA to physical addresses, so any
	// other IOVA is wrong. Only an explicit IOVAM_DPDK_F_NO_IOMMU (vdevs,
	// tests) may run there.
	if (!(c.flags & IOVAM_DPDK_F_NO_IOMMU) && rte_vfio_is_enabled("vfio") &&
	    rte_vfio_noiommu_is_enabled() == 1) {
		IOVAM_LOG(ERR, "VFIO is in no-IOMMU mode: iovam IOVAs would not reach memory");
		return -ENOTSUP;
	}

	auto *g = new (std::nothrow) Glue;
	if (g == nullptr) return -ENOMEM;
	g->conf = c;
	g->granule = c.granule;
	g->shift = std::countr_zero(c.granule);
	g->limit_pfn = dc.end_pfn;
	g->dom = iovam_domain_create(&dc); // 1
	if (g->dom == nullptr) {
		rc = errno == EINVAL ? -EINVAL : -ENOMEM;
		goto fail_domain;
	}
	g->map.set_window(g->window());
	rc = reserve_leaks(*g);
	if (rc != 0) goto fail_reserve;
	g->shared = SharedPages::create_primary();
	if (g->shared == nullptr) {
		rc = -ENOMEM;
		goto fail_reserve;
	}
	g->map.set_shared(g->shared);
	place_lcore_caches(*g); // part of 1: magazines on each lcore's socket
	g->vfio.init(c.flags & IOVAM_DPDK_F_NO_IOMMU, c.flags & IOVAM_DPDK_F_DYN_VIA_DPDK); // 2
	rc = dyn_start(*g);                                                                 // 3
	if (rc != 0) goto fail_dyn;
	rc = mem_hook_start(*g); // 4
	if (rc != 0) goto fail_hook;
	rc = service_start(*g); // 5
	if (rc != 0) goto fail_service;
	g_glue.store(g, std::memory_order_release); // 6
	g->shared->set_alive(true);
	IOVAM_LOG(INFO, "IOVA window [0x%" PRIx64 ", 0x%" PRIx64 "], granule 0x%" PRIx64,
	          dc.start_pfn << g->shift, ((dc.end_pfn + 1) << g->shift) - 1, c.granule);
	return 0;

fail_service:
	mem_hook_stop(*g);
fail_hook:
	remember_leaks(*g);
	dyn_stop(*g);
fail_dyn:
	g->map.set_shared(nullptr);
fail_reserve:
	iovam_domain_destroy(g->dom);
fail_domain:
	delete g;
	return rc;
}

extern "C" int iovam_dpdk_fini(void)
{
	std::lock_guard api(g_api_lock);
	Glue *g = glue();
	if (g == nullptr) {
		// A secondary owns nothing (no mappings, no domain): it detaches.
		if (g_secondary.exchange(nullptr) != nullptr) return 0;
		return -ENODEV;
	}
	// What the application left live is torn down all the same (a device
	// must not keep reaching memory through a dead glue) and reported.
	uint64_t live = pool_count(*g);
	if (live != 0)
		IOVAM_LOG(WARNING,
		          "fini: %" PRIu64 " iovam mempool(s) still live: their memory "
		          "is unmapped now; free them before fini",
		          live);
	g->shared->set_alive(false);
	g_glue.store(nullptr, std::memory_order_release); // 6
	service_stop(*g);                                 // 5
	// Queued unmaps and retries of failed ones first, then whatever is
	// still live, then the retries that produced.
	(void)dyn_drain(*g, true);
	live += dyn_unmap_all_live(*g);
	(void)dyn_drain(*g);
	mem_hook_stop(*g); // 4
	g->map.set_shared(nullptr);
	remember_leaks(*g);
	dyn_stop(*g); // 3
	// Self-check before the domain goes: every range must be back (cached
	// ones count as back once the caches are flushed; nobody else may use
	// the glue during fini, so flushing every cache is allowed).
	(void)iovam_cache_flush(g->dom, IOVAM_CACHE_NONE);
	iovam_stats ds{};
	(void)iovam_stats_get(g->dom, &ds);
	int rc = live > INT32_MAX ? INT32_MAX : static_cast<int>(live);
	if (ds.live_ranges != 0) {
		IOVAM_LOG(ERR, "fini: %" PRIu64 " IOVA range(s) still allocated", ds.live_ranges);
		rc = -EFAULT;
	}
	iovam_domain_destroy(g->dom); // 1
	delete g;
	IOVAM_LOG(INFO, "finalised%s", live != 0 ? " (with live mappings)" : "");
	return rc;
}

extern "C" int iovam_dpdk_is_initialised(void)
{
	return glue() != nullptr || secondary() != nullptr;
}

extern "C" int iovam_dpdk_virt2iova(const void *va, uint64_t *iova)
{
	if (va == nullptr || iova == nullptr) return -EINVAL;
	Glue *g = glue();
	auto a = reinterpret_cast<uintptr_t>(va);
	if (g == nullptr) {
		SharedPages *sp = secondary();
		if (sp == nullptr || !sp->alive()) return -ENODEV;
		return sp->translate(a, iova) ? 0 : -ENOENT;
	}
	uintptr_t base;
	std::shared_lock lk(g->map.lock());
	const Chunk *c = g->map.find(a, &base);
	if (c == nullptr) return -ENOENT;
	*iova = c->iova + (a - base);
	return 0;
}

extern "C" int iovam_dpdk_service_run(void)
{
	Glue *g = glue();
	if (g == nullptr) return no_glue_errno();
	int rc = service_run(*g);
	dyn_reap_caller(*g);
	return rc;
}

extern "C" int iovam_dpdk_service_id(uint32_t *id)
{
	if (id == nullptr) return -EINVAL;
	Glue *g = glue();
	if (g == nullptr) return no_glue_errno();
	return service_id(*g, id);
}

extern "C" int iovam_dpdk_dma_replay(void)
{
	Glue *g = glue();
	if (g == nullptr) return no_glue_errno();
	g->vfio.note_device();
	return mem_replay(*g);
}

extern "C" int iovam_dpdk_stats_get(struct iovam_dpdk_stats *st)
{
	if (st == nullptr) return -EINVAL;
	std::lock_guard api(g_api_lock);
	Glue *g = glue();
	if (g == nullptr) return no_glue_errno();
	*st = iovam_dpdk_stats{};
	iovam_stats ds{};
	(void)iovam_stats_get(g->dom, &ds);
	st->live_ranges = ds.live_ranges;
	st->deferred_ranges = ds.deferred_ranges;
	iovam_cache_stats caches{};
	for (uint32_t i = 0; i <= RTE_MAX_LCORE; i++) {
		iovam_cache_stats cs{};
		if (iovam_cache_stats_get(g->dom, i == RTE_MAX_LCORE ? IOVAM_CACHE_NONE : i, &cs) ==
		    0)
			add_cache_stats(caches, cs);
	}
	st->cache_hits = caches.alloc_hits;
	st->cache_misses = caches.alloc_misses;
	const Counters &c = g->ctr;
#define IOVAM_COUNTER_FILL(name) st->name = c.name.load(std::memory_order_relaxed);
#define X(type, name, source)    IOVAM_DPDK_STATS_IF_##source(IOVAM_COUNTER_FILL, name)
	IOVAM_DPDK_STATS_FIELDS(X)
#undef X
#undef IOVAM_COUNTER_FILL
	st->pools = pool_count(*g);
	dyn_stats(*g, *st); // after the counters: it adds to some

	st->no_iommu = g->vfio.no_iommu();
	st->static_memory = g->static_memory;
	return 0;
}

extern "C" struct iovam_domain *iovam_dpdk_domain(void)
{
	Glue *g = glue();
	if (g == nullptr) rte_errno = -no_glue_errno();
	return g != nullptr ? g->dom : nullptr;
}

#ifdef IOVAM_DPDK_TEST_HOOKS
extern "C" void iovam_dpdk_test_fail_dma_map(uint32_t one_in)
{
	vfio_test_fail_one_in(one_in);
}

extern "C" void iovam_dpdk_test_fail_dma_unmap(uint32_t one_in)
{
	vfio_test_fail_unmap_one_in(one_in);
}

extern "C" void iovam_dpdk_test_simulate_no_device(int on)
{
	vfio_test_simulate_no_device(on != 0);
}
#endif /* IOVAM_DPDK_TEST_HOOKS */
