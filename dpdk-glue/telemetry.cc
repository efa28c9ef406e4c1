/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Telemetry: /iovam/stats and /iovam/pools, read with dpdk-telemetry.py,
// and what every iovam command shares (tel_glue_dict, tel_add_array; numa.cc
// has /iovam/numa).
//
// DPDK 22.11 has no way to unregister a telemetry command, so the commands are
// registered once by a constructor (like DPDK's own libraries do, before
// rte_eal_init) and answer from whatever glue is live: "initialised": 0 when
// none. Handlers run on the telemetry thread and take g_api_lock, so they
// never see a glue that fini is tearing down.
#include <cinttypes>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <type_traits>

#include <rte_common.h>
#include <rte_telemetry.h>

#include "glue.h"

namespace iovam::glue
{

namespace
{

// Every row of stats_fields.h, in the struct's order.
int stats_cmd(const char *, const char *, rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	iovam_dpdk_stats st{};
	int rc = iovam_dpdk_stats_get(&st);
	rte_tel_data_add_dict_u64(d, "initialised", rc == 0 ? 1 : 0);
#define X(type, name, source) rte_tel_data_add_dict_u64(d, #name, st.name);
	IOVAM_DPDK_STATS_FIELDS(X)
#undef X
	return 0;
}

// {"pool name": [iova_lo, iova_hi, runs, objects], ...}. (22.11 nests only
// arrays in a dict, hence the array rather than a dict per pool.)
int pools_fill(Glue &g, rte_tel_data *d)
{
	prune_pools(g);
	std::lock_guard lk(g.pools_lock);
	for (auto &[mp, p] : g.pools) {
		int rc = tel_add_array(
		        d, p.name.c_str(),
		        {p.iova_lo == UINT64_MAX ? 0 : p.iova_lo, p.iova_hi, p.runs, p.objs});
		if (rc != 0) return rc;
	}
	return 0;
}

int pools_cmd(const char *, const char *, rte_tel_data *d)
{
	return tel_glue_dict(d, pools_fill);
}

template <class T>
int add_array(rte_tel_data *d, const char *key, std::initializer_list<T> values)
{
	rte_tel_data *a = rte_tel_data_alloc();
	if (a == nullptr) return -ENOMEM;
	if constexpr (std::is_same_v<T, int>) {
		rte_tel_data_start_array(a, RTE_TEL_INT_VAL);
		for (int v : values) rte_tel_data_add_array_int(a, v);
	} else {
		rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
		for (uint64_t v : values) rte_tel_data_add_array_u64(a, v);
	}
	// A full dict (RTE_TEL_MAX_DICT_ENTRIES) keeps what fits, as DPDK's
	// own commands do.
	if (rte_tel_data_add_dict_container(d, key, a, 0) != 0) rte_tel_data_free(a);
	return 0;
}

} // namespace

int tel_glue_dict(rte_tel_data *d, int (*fill)(Glue &g, rte_tel_data *d))
{
	rte_tel_data_start_dict(d);
	std::lock_guard api(g_api_lock);
	Glue *g = glue();
	return g != nullptr ? fill(*g, d) : 0;
}

int tel_add_array(rte_tel_data *d, const char *key, std::initializer_list<uint64_t> values)
{
	return add_array(d, key, values);
}

int tel_add_array(rte_tel_data *d, const char *key, std::initializer_list<int> values)
{
	return add_array(d, key, values);
}

} // namespace iovam::glue

RTE_INIT(iovam_telemetry_init)
{
	rte_telemetry_register_cmd(
	        "/iovam/stats", iovam::glue::stats_cmd,
	        "iovam IOVA manager and DMA mapping counters. Takes no parameters");
	rte_telemetry_register_cmd(
	        "/iovam/pools", iovam::glue::pools_cmd,
	        "Mempools with iovam IOVAs: name: [iova_lo, iova_hi, runs, objects]. "
	        "Takes no parameters");
}
