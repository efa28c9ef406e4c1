/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Glue: the state of one iovam_dpdk_init() .. iovam_dpdk_fini() lifetime.
// Each part lives in its own file; this header only ties them together.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "iova_map.h"
#include "iova_window.h"
#include "iovam.h"
#include "iovam_dpdk.h"
#include "shared_pages.h"
#include "stats_fields.h"
#include "vfio_mapper.h"

struct rte_tel_data;

namespace iovam::glue
{

// Cold-path counters (memory events, pools, service): relaxed atomics, one
// per COUNTER row of stats_fields.h, named as the stats field they fill.
// The dynamic-map fast path keeps its own per-lcore counters (dyn_queue.h).
struct Counters {
#define IOVAM_COUNTER_DECLARE(name) std::atomic<uint64_t> name{0};
#define X(type, name, source)       IOVAM_DPDK_STATS_IF_##source(IOVAM_COUNTER_DECLARE, name)
	IOVAM_DPDK_STATS_FIELDS(X)
#undef X
#undef IOVAM_COUNTER_DECLARE
};

// What kind of DPDK memory a mapping is for: how it is cut into mappings.
enum MapKind : unsigned {
	kMapPreallocated =
	        0, // never freed (--socket-mem/-m, legacy, no-huge): one per VA-contiguous run
	kMapInitPages = 1, // present at init, may be freed: one per memseg page
	kMapGrown = 2,     // arrived with an ALLOC event (heap grown at run time): one per page
};

// The counters of DMA mappings made for DPDK memory, and of their bytes, by
// MapKind.
inline constexpr std::atomic<uint64_t> Counters::*kKindMaps[] = {&Counters::mem_maps_preallocated,
                                                                 &Counters::mem_maps_init_pages,
                                                                 &Counters::mem_maps_grown};
inline constexpr std::atomic<uint64_t> Counters::*kKindBytes[] = {&Counters::mem_bytes_preallocated,
                                                                  &Counters::mem_bytes_init_pages,
                                                                  &Counters::mem_bytes_grown};

struct PoolInfo {
	std::string name;
	uint64_t iova_lo = UINT64_MAX;
	uint64_t iova_hi = 0; // inclusive
	uint64_t runs = 0;    // IOVA-contiguous pieces populated
	uint64_t objs = 0;
	const void *pool_data = nullptr; // its ring: tells the pool from a later one at its address
	int socket_asked = -1;           // mp->socket_id (SOCKET_ID_ANY: -1)
	int socket_of_memory = -1;       // of every populated run (numa.cc); -2 mixed
};

struct DynState;     // dyn_state.h
struct ServiceState; // service.cc

struct Glue {
	iovam_dpdk_conf conf{};
	iovam_domain *dom = nullptr;
	unsigned shift = 12; // log2(granule)
	uint64_t granule = 4096;
	uint64_t limit_pfn = 0;     // highest pfn (inclusive)
	bool static_memory = false; // no memory events: --legacy-mem / --no-huge
	bool event_registered = false;
	bool ethdev_cb_registered = false;

	VfioMapper vfio;
	IovaMap map;
	SharedPages *shared = nullptr; // what secondaries translate with
	Counters ctr;
	DynState *dyn = nullptr;
	ServiceState *svc = nullptr;

	std::mutex pools_lock;
	std::map<const void *, PoolInfo> pools;

	// Where IOVAs are reserved and allocated (iova_window.h): a view of
	// dom and the window's bounds, which are fixed at init.
	IovaWindow window() const { return {dom, shift, conf.iova_base >> shift, limit_pfn}; }
};

// Published after init completed, cleared before fini starts tearing down.
// Fast paths load it with acquire; the cold API holds g_api_lock.
extern std::atomic<Glue *> g_glue;
extern std::mutex g_api_lock;

inline Glue *glue()
{
	return g_glue.load(std::memory_order_acquire);
}

// In a secondary process after iovam_dpdk_init(): the primary's translations.
// A secondary has no Glue (glue() is nullptr): it translates, fills pools and
// refuses everything else with -ENOTSUP.
extern std::atomic<SharedPages *> g_secondary;
inline SharedPages *secondary()
{
	return g_secondary.load(std::memory_order_acquire);
}
// -ENOTSUP in an attached secondary, else -ENODEV: what an entry point
// returns when there is no glue.
inline int no_glue_errno()
{
	return secondary() != nullptr ? -ENOTSUP : -ENODEV;
}

// Initialise from the environment if nobody did (plugin, or an app that
// selected the "iovam" ops without calling iovam_dpdk_init()).
Glue *ensure_init();
// iovam_dpdk_conf_from_env() without the log: why gets the message.
int conf_from_env(iovam_dpdk_conf *conf, char *why, size_t why_len);

// mem_event_hook.cc
int mem_hook_start(Glue &g);
void mem_hook_stop(Glue &g);
int mem_replay(Glue &g);
void unmap_hook_call(uint64_t iova, uint64_t len);
// Retry the unmaps of freed memory that failed; the number still failing.
uint64_t mem_retry_failed_unmaps(Glue &g);

// dyn_state.cc, dyn_drain.cc
int dyn_start(Glue &g);
void dyn_stop(Glue &g);
// Retry failed unmaps and complete queued ones (a batch per queue, more
// while a queue gives full batches; until_empty, every entry queued when it
// started: the queues are empty unless producers kept pushing); the number
// of unmaps completed.
int dyn_drain(Glue &g, bool until_empty = false);
// The same pass, unless another thread drains (-EBUSY): a service lcore
// polls again rather than sleep on the drain lock, and the thread that
// holds it (a producer draining its own full queue) need not wake it.
int dyn_drain_unless_busy(Glue &g);
// The calling lcore's completed unmaps (if it has an lcore queue): their
// IOVAs back into its cache now, not at its next map or unmap.
void dyn_reap_caller(Glue &g);
// fini: unmap every mapping the application left live; how many there were.
uint64_t dyn_unmap_all_live(Glue &g);
// IOVA ranges [lo, hi] (bytes, inclusive) whose unmap failed for good, of
// dynamic mappings and of DPDK memory: the IOMMU may still map them.
void dyn_leaked_iovas(Glue &g, std::vector<std::pair<uint64_t, uint64_t>> &out);
void mem_leaked_iovas(Glue &g, std::vector<std::pair<uint64_t, uint64_t>> &out);
void dyn_stats(Glue &g, iovam_dpdk_stats &st);

// numa.cc: each EAL lcore's cache magazines on its socket (init, after the
// domain); the socket of DPDK memory at addr (-1: not DPDK's).
void place_lcore_caches(Glue &g);
int dpdk_socket_of(const void *addr);

// service.cc
int service_start(Glue &g);
void service_stop(Glue &g);
// until_empty: drain every queue empty (the alarm, which runs every 10 ms:
// whatever a queue holds, not only while it gives full batches of 256).
// drain_skipped: when given, no drain if another thread drains now (then
// *drain_skipped is set).
int service_run(Glue &g, bool until_empty = false, bool *drain_skipped = nullptr);
int service_id(Glue &g, uint32_t *id);

// telemetry.cc: what the glue's telemetry commands share.
// Start d as a dict and, under g_api_lock, fill it from the live glue; an
// empty dict when there is none (fill's return is the command's).
int tel_glue_dict(rte_tel_data *d, int (*fill)(Glue &g, rte_tel_data *d));
// d[key] = [values...]; -ENOMEM (the command fails). A full dict keeps what fits.
int tel_add_array(rte_tel_data *d, const char *key, std::initializer_list<uint64_t> values);
int tel_add_array(rte_tel_data *d, const char *key, std::initializer_list<int> values);

// iommu_holes.cc: keep the IOVAs the IOMMU cannot map out of the domain.
// Caller holds the map lock, before the init walk.
int reserve_iommu_holes_locked(Glue &g);

// mempool_ops.cc
size_t pool_count(Glue &g);
// Forget pools that were freed (cold: walks DPDK's mempool list).
void prune_pools(Glue &g);
// Register the "iovam" ops in this process if nothing did yet (idempotent).
void mempool_ops_register();

} // namespace iovam::glue
