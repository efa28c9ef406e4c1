/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The machine as hwloc sees it, and NUMA-aware placement of benchmark
 * threads: each thread is bound to one core (its first PU, so SMT siblings
 * never share a thread count step) and its memory to that core's NUMA node.
 */
#ifndef IOVAM_PERF_TOPOLOGY_H
#define IOVAM_PERF_TOPOLOGY_H

#include <cstddef>
#include <string>
#include <vector>

#include <hwloc.h>

namespace iovam::perf
{

/** Where one benchmark thread runs. */
struct ThreadPlacement {
	unsigned core_logical = 0; /* hwloc logical index of the core */
	unsigned pu_os = 0;        /* the CPU number the OS uses */
	int numa_os = -1;          /* OS index of the core's NUMA node, -1 unknown */
};

/**
 * compact: fill one NUMA node's cores before the next (threads share the
 * domain lock and depot: keep their cache lines on one node first).
 * spread: round-robin over NUMA nodes (more memory bandwidth, more remote
 * traffic on shared lines). Identical on a one-node machine.
 */
enum class Placement { kCompact, kSpread };

class Topology
{
public:
	Topology();
	~Topology();
	Topology(const Topology &) = delete;
	Topology &operator=(const Topology &) = delete;

	unsigned packages() const;
	unsigned numa_nodes() const;
	unsigned cores() const;
	unsigned pus() const;

	/** The placement of n_threads threads (n_threads <= cores()). */
	std::vector<ThreadPlacement> place(unsigned n_threads, Placement policy) const;

	/**
	 * Bind the calling thread to the placement's PU and its memory to the
	 * core's NUMA node. @return "" on success, else what failed (binding is
	 * best effort: a container may refuse mbind; the run records it).
	 */
	std::string bind_current_thread(const ThreadPlacement &placement) const;

	/**
	 * The NUMA id TBB uses for node numa_os: tbbbind numbers the nodes by
	 * hwloc logical index (equal to the OS index on most machines, not all).
	 * -1 (tbb::task_arena::automatic) for an unknown node.
	 */
	int tbb_numa_id(int numa_os) const;

	/** OS index of the NUMA node of CPU pu_os, -1 unknown. */
	int numa_of_cpu(unsigned pu_os) const;

	/**
	 * OS index of the NUMA node the page holding p sits on now, as the
	 * kernel reports it (hwloc_get_area_memlocation: move_pages(2) in query
	 * mode), -1 unknown or not yet faulted in. The page must have been
	 * touched: an untouched page has no node.
	 */
	int numa_of_memory(const void *p) const;

	/**
	 * Memory bound to NUMA node numa_os (hwloc_alloc_membind, policy BIND:
	 * its pages fault in on that node whoever touches them), zeroed; for
	 * iovam_cache_set_node()'s allocator (iovam_numa.h). nullptr if hwloc
	 * cannot. Free with free_on_node().
	 */
	void *alloc_on_node(size_t bytes, int numa_os) const;
	void free_on_node(void *p, size_t bytes) const;

	/** {"packages": .., "numa_nodes": [{"os_index", "cores", "local_memory_bytes"}], ...} */
	std::string to_json() const;

private:
	unsigned count(hwloc_obj_type_t type) const;

	hwloc_topology_t topology_ = nullptr;
};

} // namespace iovam::perf

#endif
