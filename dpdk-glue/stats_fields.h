/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The glue's statistics, declared once. Each row is one field of the public
// struct iovam_dpdk_stats (iovam_dpdk.h documents them), in its order:
//
//   X(type, name, source)
//
// source says where the value comes from:
//   COUNTER  a glue counter of the same name (Counters, glue.h), which this
//            table declares; the dynamic mappings may add their share
//            (dyn_stats())
//   OTHER    computed by iovam_dpdk_stats_get() (domain, caches, pools,
//            glue state) or dyn_stats() (dynamic mappings)
//
// Generated from it: the Counters, the fill of every COUNTER field
// (iovam_dpdk_stats_get), /iovam/stats (telemetry.cc: every field), and a
// compile-time check that the rows and the public struct agree field by
// field (offset, size, count), so neither can change alone. The public
// struct stays written out in iovam_dpdk.h: a C header, compiled by C
// consumers as it is.
//
// The same for the per-cache counters of iovam.h (struct iovam_cache_stats),
// which iovam_dpdk_stats_get() sums into cache_hits/cache_misses and
// /iovam/numa prints per socket: IOVAM_CACHE_STATS_FIELDS(X), X(name).
//
// Not installed: the glue and its tests include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "iovam.h"
#include "iovam_dpdk.h"

#define IOVAM_DPDK_STATS_FIELDS(X)                   \
	X(uint64_t, live_ranges, OTHER)              \
	X(uint64_t, deferred_ranges, OTHER)          \
	X(uint64_t, cache_hits, OTHER)               \
	X(uint64_t, cache_misses, OTHER)             \
	X(uint64_t, mem_events, COUNTER)             \
	X(uint64_t, mem_event_failures, COUNTER)     \
	X(uint64_t, mapped_bytes, COUNTER)           \
	X(uint64_t, mappings, COUNTER)               \
	X(uint64_t, dma_maps, COUNTER)               \
	X(uint64_t, dma_unmaps, COUNTER)             \
	X(uint64_t, dma_skipped, COUNTER)            \
	X(uint64_t, dma_failures, COUNTER)           \
	X(uint64_t, dma_queued, COUNTER)             \
	X(uint64_t, pools, OTHER)                    \
	X(uint64_t, dyn_maps, OTHER)                 \
	X(uint64_t, dyn_unmaps, OTHER)               \
	X(uint64_t, dyn_pending, OTHER)              \
	X(uint64_t, dyn_sync_unmaps, OTHER)          \
	X(uint64_t, bad_unmaps, OTHER)               \
	X(uint64_t, unmaps_retrying, COUNTER)        \
	X(uint64_t, dyn_table_full, OTHER)           \
	X(uint64_t, service_runs, COUNTER)           \
	X(uint32_t, no_iommu, OTHER)                 \
	X(uint32_t, static_memory, OTHER)            \
	X(uint64_t, dyn_strict_unmaps, OTHER)        \
	X(uint64_t, dyn_returned_to_depot, OTHER)    \
	X(uint64_t, dyn_returned_to_tree, OTHER)     \
	X(uint64_t, mem_maps_preallocated, COUNTER)  \
	X(uint64_t, mem_bytes_preallocated, COUNTER) \
	X(uint64_t, mem_maps_init_pages, COUNTER)    \
	X(uint64_t, mem_bytes_init_pages, COUNTER)   \
	X(uint64_t, mem_maps_grown, COUNTER)         \
	X(uint64_t, mem_bytes_grown, COUNTER)

// Expand only the rows of one source: IOVAM_DPDK_STATS_IF_COUNTER(F, name)
// is F(name), IOVAM_DPDK_STATS_IF_OTHER(F, name) nothing; so
// #define X(type, name, source) IOVAM_DPDK_STATS_IF_##source(F, name)
// applies F to the COUNTER rows.
#define IOVAM_DPDK_STATS_IF_COUNTER(F, name) F(name)
#define IOVAM_DPDK_STATS_IF_OTHER(F, name)

#define IOVAM_CACHE_STATS_FIELDS(X) \
	X(alloc_hits)               \
	X(alloc_misses)             \
	X(free_hits)                \
	X(free_misses)              \
	X(cached_ranges)

namespace iovam::glue::stats_fields_check
{

// The rows as a struct: the same layout as the public one, field for field,
// or the table and the struct disagree.
struct Rows {
#define X(type, name, source) type name;
	IOVAM_DPDK_STATS_FIELDS(X)
#undef X
};
static_assert(sizeof(Rows) == sizeof(iovam_dpdk_stats),
              "stats_fields.h and struct iovam_dpdk_stats have different fields");
#define X(type, name, source)                                                         \
	static_assert(offsetof(Rows, name) == offsetof(iovam_dpdk_stats, name) &&     \
	                      std::is_same_v<decltype(iovam_dpdk_stats::name), type>, \
	              "stats_fields.h: row " #name " is not the struct's field there");
IOVAM_DPDK_STATS_FIELDS(X)
#undef X

struct CacheRows {
#define X(name) uint64_t name;
	IOVAM_CACHE_STATS_FIELDS(X)
#undef X
};
static_assert(sizeof(CacheRows) == sizeof(iovam_cache_stats),
              "IOVAM_CACHE_STATS_FIELDS and struct iovam_cache_stats have different fields");
#define X(name)                                                                            \
	static_assert(offsetof(CacheRows, name) == offsetof(iovam_cache_stats, name) &&    \
	                      std::is_same_v<decltype(iovam_cache_stats::name), uint64_t>, \
	              "IOVAM_CACHE_STATS_FIELDS: row " #name " is not the struct's field there");
IOVAM_CACHE_STATS_FIELDS(X)
#undef X

} // namespace iovam::glue::stats_fields_check

namespace iovam::glue
{

// sum += one, field by field (the cache counters are plain sums).
inline void add_cache_stats(iovam_cache_stats &sum, const iovam_cache_stats &one)
{
#define X(name) sum.name += one.name;
	IOVAM_CACHE_STATS_FIELDS(X)
#undef X
}

} // namespace iovam::glue
