/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Mempool ops driver "iovam": a ring-backed pool (like ring_mp_mc) whose
// populate gives objects iovam's IOVAs instead of DPDK's.
//
// How the IOVA reaches the mbuf: rte_mempool_populate_iova() passes each
// memory chunk to ops->populate; we translate the chunk's VA through the
// IovaMap and call rte_mempool_op_populate_helper() with our IOVA, which
// stores it in each object header; rte_pktmbuf_init() then sets
// buf_iova = rte_mempool_virt2iova(m) + header size. DPDK's own IOVA for
// the chunk (VA or PA, maybe above the device's reach) is ignored.
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
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <mutex>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "glue.h"
#include "log.h"

namespace iovam::glue {

namespace {

int ops_alloc(rte_mempool *mp)
{
	Glue *g = ensure_init();
	if (g == nullptr)
		return -ENODEV;
	char name[RTE_RING_NAMESIZE];
	// A 3-character prefix like ring_mp_mc's "MP_": any pool name fits.
	if (snprintf(name, sizeof(name), "IV_%s", mp->name) >= static_cast<int>(sizeof(name)))
		return -ENAMETOOLONG;
	// A ring of count+1 entries rounded to a power of two holds them all.
	rte_ring *r = rte_ring_create(name, rte_align32pow2(mp->size + 1), mp->socket_id, 0);
	if (r == nullptr)
		return -rte_errno;
	{
		std::lock_guard lk(g->pools_lock);
		PoolInfo &p = g->pools[mp];
		p = PoolInfo{};
		p.name = mp->name;
		p.socket_asked = mp->socket_id;
	}
	mp->pool_data = r;
	return 0;
}

void ops_free(rte_mempool *mp)
{
	rte_ring_free(static_cast<rte_ring *>(mp->pool_data));
	Glue *g = glue();
	if (g != nullptr) {
		std::lock_guard lk(g->pools_lock);
		g->pools.erase(mp);
	}
}

// Hot path (mempool cache refill/flush): one multi-producer/consumer ring
// bulk operation, exactly ring_mp_mc's cost; no allocation, no syscall. The
// IOVA work was all done once, at populate.
int ops_enqueue(rte_mempool *mp, void *const *objs, unsigned n)
{
	return rte_ring_mp_enqueue_bulk(static_cast<rte_ring *>(mp->pool_data), objs, n,
					nullptr) == 0 ? -ENOBUFS : 0;
}

int ops_dequeue(rte_mempool *mp, void **objs, unsigned n)
{
	return rte_ring_mc_dequeue_bulk(static_cast<rte_ring *>(mp->pool_data), objs, n,
					nullptr) == 0 ? -ENOBUFS : 0;
}

unsigned ops_get_count(const rte_mempool *mp)
{
	return rte_ring_count(static_cast<const rte_ring *>(mp->pool_data));
}

int ops_populate(rte_mempool *mp, unsigned max_objs, void *vaddr, rte_iova_t, size_t len,
		 rte_mempool_populate_obj_cb_t *obj_cb, void *obj_cb_arg)
{
	Glue *g = glue();
	if (g == nullptr)
		return -ENODEV;
	auto va = reinterpret_cast<uintptr_t>(vaddr);
	size_t done = 0;
	int objs = 0;
	while (done < len && static_cast<unsigned>(objs) < max_objs) {
		uint64_t iova;
		size_t run;
		bool ok;
		{
			std::shared_lock lk(g->map.lock());
			ok = g->map.translate_run(va + done, len - done, &iova, &run);
		}
		if (!ok) {
			IOVAM_LOG(ERR, "pool %s: %p has no IOVA", mp->name, (void *)(va + done));
			return objs > 0 ? objs : -EFAULT;
		}
		int n = rte_mempool_op_populate_helper(mp, 0, max_objs - objs,
						       reinterpret_cast<void *>(va + done), iova,
						       run, obj_cb, obj_cb_arg);
		if (n < 0)
			return n;
		if (n > 0) {
			std::lock_guard lk(g->pools_lock);
			PoolInfo &p = g->pools[mp];
			p.iova_lo = std::min(p.iova_lo, iova);
			p.iova_hi = std::max(p.iova_hi, iova + run - 1);
			const int socket = dpdk_socket_of(reinterpret_cast<void *>(va + done));
			p.socket_of_memory = p.runs == 0 || p.socket_of_memory == socket ? socket : -2;
			p.runs++;
			p.objs += n;
		}
		objs += n;
		done += run;
	}
	return objs;
}

}  // namespace

// Filled by the constructor below, not by a C++ dynamic initialiser: the
// order between those and constructor functions is not specified.
rte_mempool_ops g_ops;

void mempool_ops_fill(rte_mempool_ops &o)
{
	snprintf(o.name, sizeof(o.name), "%s", IOVAM_DPDK_MEMPOOL_OPS);
	o.alloc = ops_alloc;
	o.free = ops_free;
	o.enqueue = ops_enqueue;
	o.dequeue = ops_dequeue;
	o.get_count = ops_get_count;
	o.populate = ops_populate;
}

size_t pool_count(Glue &g)
{
	std::lock_guard lk(g.pools_lock);
	return g.pools.size();
}

}  // namespace iovam::glue

// A constructor, like RTE_MEMPOOL_REGISTER_OPS: the ops must exist before
// rte_eal_init() parses --mbuf-pool-ops-name and before any pool is created.
RTE_INIT(iovam_mempool_ops_init)
{
	iovam::glue::mempool_ops_fill(iovam::glue::g_ops);
	if (rte_mempool_register_ops(&iovam::glue::g_ops) < 0)
		IOVAM_LOG(ERR, "cannot register mempool ops \"%s\" (table full?)",
			  IOVAM_DPDK_MEMPOOL_OPS);
}

extern "C" struct rte_mempool *iovam_dpdk_pktmbuf_pool_create(const char *name, unsigned n,
		unsigned cache_size, uint16_t priv_size, uint16_t data_room_size, int socket_id)
{
	if (name == nullptr) {
		rte_errno = EINVAL;
		return nullptr;
	}
	if (iovam::glue::glue() == nullptr) {
		rte_errno = ENODEV;
		return nullptr;
	}
	return rte_pktmbuf_pool_create_by_ops(name, n, cache_size, priv_size, data_room_size,
					      socket_id, IOVAM_DPDK_MEMPOOL_OPS);
}
