/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Mempool ops driver "iovam": a pool on DPDK's own ring_mp_mc ring whose
// populate gives objects iovam's IOVAs instead of DPDK's, and which then
// hands the pool over to ring_mp_mc for good.
//
// Why the hand-over (multi-process). rte_mempool keeps ops_index, a position
// in a per-process table of ops that each process fills from its own library
// constructors, in the shared struct rte_mempool. A secondary that never
// loaded this library (dpdk-proc-info, dpdk-dumpcap, dpdk-pdump) has no
// "iovam" ops: at our index it finds another driver's or an empty slot (a
// SIGSEGV in proc-info, a spin in dumpcap). Only population needs iovam;
// get, put and count are ring_mp_mc's. So the "iovam" ops delegate to
// ring_mp_mc (its alloc creates the same "MP_<pool>" ring), substitute the
// IOVAs in populate, and once the last object is in, set the pool's
// ops_index to ring_mp_mc's: from then on every process sees an ordinary
// ring pool whose object headers (and so buf_iova) hold iovam IOVAs.
//
// Why the ops are registered late. EAL loads -d libraries before the
// driver directory, so a constructor registering "iovam" would take an index
// in front of the ring drivers and shift ring_mp_mc's index by one in this
// process only: every pool, native ones too, would then mean another ops
// to a process without the plugin. The ops are registered from a vdev bus
// scan callback instead (rte_vdev_add_custom_scan(), public), which EAL calls
// after loading every plugin, in every process: "iovam" is appended after
// all drivers and the table is otherwise the one the process has without
// iovam. ring_mp_mc's index then agrees between two processes exactly when
// it does without iovam (with Debian's binaries it does not always: see
// dpdk-glue/README.md).
//
// How the IOVA reaches the mbuf: rte_mempool_populate_iova() passes each
// memory chunk to ops->populate; we translate the chunk's VA (the IovaMap in
// the primary, the shared page table in a secondary) and call
// rte_mempool_op_populate_helper() with our IOVA, which stores it in each
// object header; rte_pktmbuf_init() then sets buf_iova =
// rte_mempool_virt2iova(m) + header size. DPDK's own IOVA for the chunk (VA
// or PA, maybe above the device's reach) is ignored; it stays in the pool's
// memory chunk list (rte_mempool_mem_iter()), as rte_mem_virt2iova() keeps
// answering DPDK's.
//
// A chunk is usually one IOVA run (one memory region has one IOVA range);
// where it straddles two regions we populate each run separately. An object
// is never placed across a run boundary, so its IOVA range is contiguous;
// the mempool core reserves more memory if that leaves it short.
//
// rte_mempool_ops_table has RTE_MEMPOOL_MAX_OPS_IDX (16) slots; Debian's
// DPDK fills 14 with its auto-loaded drivers, so registration can fail: it is
// logged and the pool create fails with the ops name unknown.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include <rte_bus_vdev.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "glue.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

constexpr const char *kRingOps = "ring_mp_mc";

// ring_mp_mc's index in this process's ops table, -1 before the first
// lookup. The table only grows, so an index found stays valid.
std::atomic<int> g_ring_index{-1};

int find_ops(const char *name)
{
	for (uint32_t i = 0; i < rte_mempool_ops_table.num_ops; i++)
		if (strcmp(rte_mempool_ops_table.ops[i].name, name) == 0)
			return static_cast<int>(i);
	return -1;
}

int ring_index()
{
	int i = g_ring_index.load(std::memory_order_relaxed);
	if (i < 0) {
		i = find_ops(kRingOps);
		g_ring_index.store(i, std::memory_order_relaxed);
	}
	return i;
}

// Delegation to ring_mp_mc: one more indirect call than a ring pool, only
// while the pool is being populated (afterwards DPDK calls ring_mp_mc).
const rte_mempool_ops &ring_ops()
{
	return rte_mempool_ops_table.ops[g_ring_index.load(std::memory_order_relaxed)];
}

// This process has a glue (primary) or is attached to one (secondary): the
// plugin initialises or attaches on first use, from the environment.
bool ensure_attached()
{
	if (glue() != nullptr || secondary() != nullptr) return true;
	(void)ensure_init();
	return glue() != nullptr || secondary() != nullptr;
}

int ops_alloc(rte_mempool *mp)
{
	if (!ensure_attached()) return -ENODEV;
	if (ring_index() < 0) {
		IOVAM_LOG(ERR,
		          "pool %s: mempool ops %s not registered (librte_mempool_ring "
		          "not loaded?)",
		          mp->name, kRingOps);
		return -ENOTSUP;
	}
	// ring_mp_mc's ring has count+1 entries rounded to a power of two: past
	// IOVAM_DPDK_POOL_MAX_OBJS that size would wrap (2^32 -> 0) and crash.
	if (mp->size == 0 || mp->size > IOVAM_DPDK_POOL_MAX_OBJS) return -EINVAL;
	int rc = ring_ops().alloc(mp);
	if (rc != 0) return rc;
	if (Glue *g = glue(); g != nullptr) {
		std::lock_guard lk(g->pools_lock);
		PoolInfo &p = g->pools[mp];
		p = PoolInfo{};
		p.name = mp->name;
		p.pool_data = mp->pool_data;
		p.socket_asked = mp->socket_id;
	}
	return 0;
}

// Only for a pool never fully populated (afterwards ring_mp_mc's free runs;
// pool_count() notices the pool has gone).
void ops_free(rte_mempool *mp)
{
	ring_ops().free(mp);
	Glue *g = glue();
	if (g != nullptr) {
		std::lock_guard lk(g->pools_lock);
		g->pools.erase(mp);
	}
}

int ops_enqueue(rte_mempool *mp, void *const *objs, unsigned n)
{
	return ring_ops().enqueue(mp, objs, n);
}

int ops_dequeue(rte_mempool *mp, void **objs, unsigned n)
{
	return ring_ops().dequeue(mp, objs, n);
}

unsigned ops_get_count(const rte_mempool *mp)
{
	return ring_ops().get_count(mp);
}

// VA -> IOVA run, from the primary's map or the shared table.
bool translate_run(Glue *g, SharedPages *sp, uintptr_t va, size_t len, uint64_t *iova, size_t *run)
{
	if (g != nullptr) {
		std::shared_lock lk(g->map.lock());
		return g->map.translate_run(va, len, iova, run);
	}
	return sp->translate_run(va, len, iova, run);
}

int ops_populate(rte_mempool *mp, unsigned max_objs, void *vaddr, rte_iova_t, size_t len,
                 rte_mempool_populate_obj_cb_t *obj_cb, void *obj_cb_arg)
{
	Glue *g = glue();
	SharedPages *sp = g == nullptr ? secondary() : nullptr;
	if (g == nullptr && (sp == nullptr || !sp->alive())) return -ENODEV;
	auto va = reinterpret_cast<uintptr_t>(vaddr);
	size_t done = 0;
	int objs = 0;
	while (done < len && static_cast<unsigned>(objs) < max_objs) {
		uint64_t iova;
		size_t run;
		if (!translate_run(g, sp, va + done, len - done, &iova, &run)) {
			IOVAM_LOG(ERR, "pool %s: %p has no IOVA", mp->name, (void *)(va + done));
			return objs > 0 ? objs : -EFAULT;
		}
		int n = rte_mempool_op_populate_helper(mp, 0, max_objs - objs,
		                                       reinterpret_cast<void *>(va + done), iova,
		                                       run, obj_cb, obj_cb_arg);
		if (n < 0) return n;
		if (n > 0 && g != nullptr) {
			std::lock_guard lk(g->pools_lock);
			PoolInfo &p = g->pools[mp];
			p.iova_lo = std::min(p.iova_lo, iova);
			p.iova_hi = std::max(p.iova_hi, iova + run - 1);
			const int socket = dpdk_socket_of(reinterpret_cast<void *>(va + done));
			p.socket_of_memory =
			        p.runs == 0 || p.socket_of_memory == socket ? socket : -2;
			p.runs++;
			p.objs += n;
		}
		objs += n;
		done += run;
	}
	// The helper has put every object in the ring (mempool_add_elem counted
	// it): the last populate of the pool hands it to ring_mp_mc. No other
	// thread may use a pool before its creation returned.
	if (mp->populated_size >= mp->size)
		mp->ops_index = g_ring_index.load(std::memory_order_relaxed);
	return objs;
}

rte_mempool_ops g_ops;
std::atomic<bool> g_ops_registered{false};

void fill_ops(rte_mempool_ops &o)
{
	snprintf(o.name, sizeof(o.name), "%s", IOVAM_DPDK_MEMPOOL_OPS);
	o.alloc = ops_alloc;
	o.free = ops_free;
	o.enqueue = ops_enqueue;
	o.dequeue = ops_dequeue;
	o.get_count = ops_get_count;
	o.populate = ops_populate;
}

void vdev_scan_cb(void *)
{
	mempool_ops_register();
}

struct LivePools {
	std::vector<std::pair<const void *, const void *>> pools; // mp, pool_data
};

void collect_pool_cb(rte_mempool *mp, void *arg)
{
	static_cast<LivePools *>(arg)->pools.emplace_back(mp, mp->pool_data);
}

} // namespace

void mempool_ops_register()
{
	if (g_ops_registered.exchange(true)) return;
	if (find_ops(IOVAM_DPDK_MEMPOOL_OPS) >= 0) return;
	fill_ops(g_ops);
	if (rte_mempool_register_ops(&g_ops) < 0)
		IOVAM_LOG(ERR, "cannot register mempool ops \"%s\" (table full?)",
		          IOVAM_DPDK_MEMPOOL_OPS);
}

// Cold path (stats, telemetry, fini): pools handed to ring_mp_mc are freed
// without telling us, so drop the entries whose pool is gone (same address,
// same ring, or it is another pool).
void prune_pools(Glue &g)
{
	LivePools live;
	rte_mempool_walk(collect_pool_cb, &live);
	std::lock_guard lk(g.pools_lock);
	for (auto it = g.pools.begin(); it != g.pools.end();) {
		auto key = std::make_pair(it->first, it->second.pool_data);
		bool alive =
		        std::find(live.pools.begin(), live.pools.end(), key) != live.pools.end();
		it = alive ? std::next(it) : g.pools.erase(it);
	}
}

size_t pool_count(Glue &g)
{
	prune_pools(g);
	std::lock_guard lk(g.pools_lock);
	return g.pools.size();
}

} // namespace iovam::glue

// A constructor, like RTE_MEMPOOL_REGISTER_OPS, but it only asks the vdev
// bus to call us back when EAL scans it (see the top): the ops must exist
// before rte_eal_init() returns and any pool is created, and after every
// driver's.
RTE_INIT(iovam_mempool_ops_init)
{
	if (rte_vdev_add_custom_scan(iovam::glue::vdev_scan_cb, nullptr) != 0)
		IOVAM_LOG(ERR,
		          "cannot hook the vdev bus scan: mempool ops \"%s\" are "
		          "registered by iovam_dpdk_init()",
		          IOVAM_DPDK_MEMPOOL_OPS);
}

extern "C" struct rte_mempool *
iovam_dpdk_pktmbuf_pool_create(const char *name, unsigned n, unsigned cache_size,
                               uint16_t priv_size, uint16_t data_room_size, int socket_id)
{
	if (name == nullptr || n == 0 || n > IOVAM_DPDK_POOL_MAX_OBJS) {
		rte_errno = EINVAL;
		return nullptr;
	}
	if (iovam::glue::glue() == nullptr && iovam::glue::secondary() == nullptr) {
		rte_errno = ENODEV;
		return nullptr;
	}
	return rte_pktmbuf_pool_create_by_ops(name, n, cache_size, priv_size, data_room_size,
	                                      socket_id, IOVAM_DPDK_MEMPOOL_OPS);
}
