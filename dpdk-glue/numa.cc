/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// NUMA: each EAL or service lcore's cache gets its magazines on the lcore's socket
// (iovam_cache_set_node with rte_zmalloc_socket), and /iovam/numa reports
// the caches per socket and where each iovam pool's memory sits.
//
// Lcores registered after init (rte_thread_register) keep the domain's
// default magazines. A socket without hugepage memory (--socket-mem 0 on
// it) leaves that lcore's cache where it was: logged, not fatal.
#include <algorithm>
#include <cinttypes>
#include <map>
#include <mutex>

#include <rte_common.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_telemetry.h>

#include "glue.h"
#include "iovam_numa.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

// EAL lcores and service lcores: both have an lcore id, hence a cache, and
// both are counted by rte_lcore_count().
bool has_cache_lcore(unsigned lc)
{
	return rte_lcore_has_role(lc, ROLE_RTE) > 0 || rte_lcore_has_role(lc, ROLE_SERVICE) > 0;
}

void *socket_alloc(void *, size_t bytes, int socket)
{
	return rte_zmalloc_socket("iovam_magazines", bytes, RTE_CACHE_LINE_SIZE, socket);
}

void socket_free(void *, void *p, size_t)
{
	rte_free(p);
}

// {"socket_<s>": [lcores, caches_on_socket, then IOVAM_CACHE_STATS_FIELDS:
//   alloc_hits, alloc_misses, free_hits, free_misses, cached_ranges, then
//   depot_ranges], ...,
//  "pool_<name>": [socket_asked, socket_of_its_memory, runs], ...}
// caches_on_socket counts the lcores whose cache iovam_cache_set_node put
// there; depot_ranges the ranges in that socket's depots (0: none); socket_of_its_memory is DPDK's socket of the memseg list of every
// run the pool was populated with (-1 unknown, -2 runs on several sockets).
int numa_fill(Glue &g, rte_tel_data *d)
{
	struct Row {
		uint64_t lcores = 0, placed = 0;
		iovam_cache_stats st{};
	};
	std::map<unsigned, Row> rows;
	for (unsigned lc = 0; lc < RTE_MAX_LCORE; ++lc) {
		if (!has_cache_lcore(lc)) continue;
		Row &r = rows[rte_lcore_to_socket_id(lc)];
		++r.lcores;
		r.placed += iovam_cache_get_node(g.dom, lc) ==
		            static_cast<int>(rte_lcore_to_socket_id(lc));
		iovam_cache_stats st{};
		if (iovam_cache_stats_get(g.dom, lc, &st) == 0) add_cache_stats(r.st, st);
	}
	char key[RTE_TEL_MAX_STRING_LEN];
	int rc = 0;
	for (auto &[socket, r] : rows) {
		snprintf(key, sizeof(key), "socket_%u", socket);
		const int depot = iovam_depot_get_ranges(g.dom, static_cast<int>(socket));
		const uint64_t depot_ranges = depot > 0 ? static_cast<uint64_t>(depot) : 0;
#define X(name) , r.st.name
		rc = tel_add_array(d, key,
		                   {r.lcores, r.placed IOVAM_CACHE_STATS_FIELDS(X), depot_ranges});
#undef X
		if (rc != 0) return rc;
	}
	std::lock_guard lk(g.pools_lock);
	for (auto &[mp, p] : g.pools) {
		snprintf(key, sizeof(key), "pool_%s", p.name.c_str());
		rc = tel_add_array(d, key,
		                   {p.socket_asked, p.socket_of_memory,
		                    static_cast<int>(std::min<uint64_t>(p.runs, INT32_MAX))});
		if (rc != 0) return rc;
	}
	return 0;
}

int numa_cmd(const char *, const char *, rte_tel_data *d)
{
	return tel_glue_dict(d, numa_fill);
}

} // namespace

int dpdk_socket_of(const void *addr)
{
	const rte_memseg_list *msl = rte_mem_virt2memseg_list(addr);
	return msl != nullptr ? msl->socket_id : -1;
}

void place_lcore_caches(Glue &g)
{
	const iovam_cache_mem mem{socket_alloc, socket_free, nullptr};
	for (unsigned lc = 0; lc < RTE_MAX_LCORE; ++lc) {
		if (!has_cache_lcore(lc)) continue;
		const int socket = static_cast<int>(rte_lcore_to_socket_id(lc));
		if (socket < 0 || socket == SOCKET_ID_ANY) continue;
		int rc = iovam_cache_set_node(g.dom, lc, socket, &mem);
		if (rc != 0)
			IOVAM_LOG(WARNING, "lcore %u: cache not placed on socket %d: %d", lc,
			          socket, rc);
	}
}

} // namespace iovam::glue

RTE_INIT(iovam_numa_telemetry_init)
{
	// The help text must fit RTE_TEL_MAX_STRING_LEN (128), or nothing registers.
	rte_telemetry_register_cmd(
	        "/iovam/numa", iovam::glue::numa_cmd,
	        "Per socket: caches [lcores, placed, hits, misses, ...]; pools: [socket asked, "
	        "socket of memory, runs]");
}
