/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Telemetry: /iovam/stats and /iovam/pools, read with dpdk-telemetry.py.
//
// DPDK 22.11 has no way to unregister a telemetry command, so the commands are
// registered once by a constructor (like DPDK's own libraries do, before
// rte_eal_init) and answer from whatever glue is live: "initialised": 0 when
// none. Handlers run on the telemetry thread and take g_api_lock, so they
// never see a glue that fini is tearing down.
#include <cinttypes>
#include <cstdio>
#include <mutex>

#include <rte_common.h>
#include <rte_telemetry.h>

#include "glue.h"

namespace iovam::glue {

namespace {

int stats_cmd(const char *, const char *, rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	iovam_dpdk_stats st{};
	int rc = iovam_dpdk_stats_get(&st);
	rte_tel_data_add_dict_u64(d, "initialised", rc == 0 ? 1 : 0);
	rte_tel_data_add_dict_u64(d, "live_ranges", st.live_ranges);
	rte_tel_data_add_dict_u64(d, "deferred_ranges", st.deferred_ranges);
	rte_tel_data_add_dict_u64(d, "cache_hits", st.cache_hits);
	rte_tel_data_add_dict_u64(d, "cache_misses", st.cache_misses);
	rte_tel_data_add_dict_u64(d, "mem_events", st.mem_events);
	rte_tel_data_add_dict_u64(d, "mem_event_failures", st.mem_event_failures);
	rte_tel_data_add_dict_u64(d, "mapped_bytes", st.mapped_bytes);
	rte_tel_data_add_dict_u64(d, "mappings", st.mappings);
	rte_tel_data_add_dict_u64(d, "dma_maps", st.dma_maps);
	rte_tel_data_add_dict_u64(d, "dma_unmaps", st.dma_unmaps);
	rte_tel_data_add_dict_u64(d, "dma_skipped", st.dma_skipped);
	rte_tel_data_add_dict_u64(d, "dma_failures", st.dma_failures);
	rte_tel_data_add_dict_u64(d, "dma_queued", st.dma_queued);
	rte_tel_data_add_dict_u64(d, "pools", st.pools);
	rte_tel_data_add_dict_u64(d, "dyn_maps", st.dyn_maps);
	rte_tel_data_add_dict_u64(d, "dyn_unmaps", st.dyn_unmaps);
	rte_tel_data_add_dict_u64(d, "dyn_pending", st.dyn_pending);
	rte_tel_data_add_dict_u64(d, "bad_unmaps", st.bad_unmaps);
	rte_tel_data_add_dict_u64(d, "unmaps_retrying", st.unmaps_retrying);
	rte_tel_data_add_dict_u64(d, "dyn_table_full", st.dyn_table_full);
	rte_tel_data_add_dict_u64(d, "service_runs", st.service_runs);
	rte_tel_data_add_dict_u64(d, "no_iommu", st.no_iommu);
	rte_tel_data_add_dict_u64(d, "static_memory", st.static_memory);
	return 0;
}

// {"pool name": [iova_lo, iova_hi, runs, objects], ...}. (22.11 nests only
// arrays in a dict, hence the array rather than a dict per pool.)
int pools_cmd(const char *, const char *, rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	std::lock_guard api(g_api_lock);
	Glue *g = glue();
	if (g == nullptr)
		return 0;
	prune_pools(*g);
	std::lock_guard lk(g->pools_lock);
	for (auto &[mp, p] : g->pools) {
		rte_tel_data *a = rte_tel_data_alloc();
		if (a == nullptr)
			return -ENOMEM;
		rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
		rte_tel_data_add_array_u64(a, p.iova_lo == UINT64_MAX ? 0 : p.iova_lo);
		rte_tel_data_add_array_u64(a, p.iova_hi);
		rte_tel_data_add_array_u64(a, p.runs);
		rte_tel_data_add_array_u64(a, p.objs);
		rte_tel_data_add_dict_container(d, p.name.c_str(), a, 0);
	}
	return 0;
}

}  // namespace

}  // namespace iovam::glue

RTE_INIT(iovam_telemetry_init)
{
	rte_telemetry_register_cmd("/iovam/stats", iovam::glue::stats_cmd,
		"iovam IOVA manager and DMA mapping counters. Takes no parameters");
	rte_telemetry_register_cmd("/iovam/pools", iovam::glue::pools_cmd,
		"Mempools with iovam IOVAs: name: [iova_lo, iova_hi, runs, objects]. "
		"Takes no parameters");
}
