/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "topology.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "check.h"

namespace iovam::perf
{

Topology::Topology()
{
	check(hwloc_topology_init(&topology_) == 0, "hwloc_topology_init failed");
	check(hwloc_topology_load(topology_) == 0, "hwloc_topology_load failed");
}

Topology::~Topology()
{
	hwloc_topology_destroy(topology_);
}

unsigned Topology::count(hwloc_obj_type_t type) const
{
	const int n = hwloc_get_nbobjs_by_type(topology_, type);
	return n > 0 ? static_cast<unsigned>(n) : 0;
}

unsigned Topology::packages() const
{
	return count(HWLOC_OBJ_PACKAGE);
}
unsigned Topology::numa_nodes() const
{
	return count(HWLOC_OBJ_NUMANODE);
}
unsigned Topology::cores() const
{
	return count(HWLOC_OBJ_CORE);
}
unsigned Topology::pus() const
{
	return count(HWLOC_OBJ_PU);
}

namespace
{

ThreadPlacement placement_of(hwloc_obj_t core)
{
	ThreadPlacement p;
	p.core_logical = core->logical_index;
	p.pu_os = static_cast<unsigned>(hwloc_bitmap_first(core->cpuset));
	p.numa_os = core->nodeset ? hwloc_bitmap_first(core->nodeset) : -1;
	return p;
}

} // namespace

std::vector<ThreadPlacement> Topology::place(unsigned n_threads, Placement policy) const
{
	/* hwloc's logical order follows locality, so cores of one node are
	 * consecutive: that order is already "compact". */
	std::map<int, std::vector<ThreadPlacement>> by_node;
	std::vector<ThreadPlacement> compact;
	for (unsigned i = 0; i < cores(); ++i) {
		const auto p = placement_of(hwloc_get_obj_by_type(topology_, HWLOC_OBJ_CORE, i));
		compact.push_back(p);
		by_node[p.numa_os].push_back(p);
	}
	std::vector<ThreadPlacement> order;
	if (policy == Placement::kCompact) {
		order = compact;
	} else {
		for (size_t round = 0; order.size() < compact.size(); ++round)
			for (const auto &[node, cores_of_node] : by_node)
				if (round < cores_of_node.size())
					order.push_back(cores_of_node[round]);
	}
	order.resize(std::min<size_t>(n_threads, order.size()));
	return order;
}

std::string Topology::bind_current_thread(const ThreadPlacement &placement) const
{
	std::string failures;
	hwloc_bitmap_t cpuset = hwloc_bitmap_alloc();
	hwloc_bitmap_only(cpuset, placement.pu_os);
	if (hwloc_set_cpubind(topology_, cpuset, HWLOC_CPUBIND_THREAD) != 0)
		failures += std::string("cpubind: ") + std::strerror(errno) + "; ";
	hwloc_bitmap_free(cpuset);
	if (placement.numa_os >= 0) {
		hwloc_bitmap_t nodeset = hwloc_bitmap_alloc();
		hwloc_bitmap_only(nodeset, static_cast<unsigned>(placement.numa_os));
		if (hwloc_set_membind(topology_, nodeset, HWLOC_MEMBIND_BIND,
		                      HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0)
			failures += std::string("membind: ") + std::strerror(errno) + "; ";
		hwloc_bitmap_free(nodeset);
	}
	return failures;
}

int Topology::tbb_numa_id(int numa_os) const
{
	if (numa_os < 0) return -1;
	hwloc_obj_t node =
	        hwloc_get_numanode_obj_by_os_index(topology_, static_cast<unsigned>(numa_os));
	return node ? static_cast<int>(node->logical_index) : -1;
}

void *Topology::alloc_on_node(size_t bytes, int numa_os) const
{
	if (numa_os < 0) return nullptr;
	hwloc_bitmap_t nodeset = hwloc_bitmap_alloc();
	hwloc_bitmap_only(nodeset, static_cast<unsigned>(numa_os));
	void *p = hwloc_alloc_membind(topology_, bytes, nodeset, HWLOC_MEMBIND_BIND,
	                              HWLOC_MEMBIND_BYNODESET);
	hwloc_bitmap_free(nodeset);
	if (p) std::memset(p, 0, bytes);
	return p;
}

void Topology::free_on_node(void *p, size_t bytes) const
{
	hwloc_free(topology_, p, bytes);
}

int Topology::numa_of_cpu(unsigned pu_os) const
{
	hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(topology_, pu_os);
	if (!pu || !pu->nodeset) return -1;
	return hwloc_bitmap_first(pu->nodeset);
}

int Topology::numa_of_memory(const void *p) const
{
	hwloc_bitmap_t nodeset = hwloc_bitmap_alloc();
	int node = -1;
	if (hwloc_get_area_memlocation(topology_, p, 1, nodeset, HWLOC_MEMBIND_BYNODESET) == 0)
		node = hwloc_bitmap_first(nodeset);
	hwloc_bitmap_free(nodeset);
	return node;
}

std::string Topology::to_json() const
{
	std::ostringstream out;
	out << "{\"packages\": " << packages() << ", \"cores\": " << cores()
	    << ", \"pus\": " << pus() << ", \"numa_nodes\": [";
	for (unsigned i = 0; i < numa_nodes(); ++i) {
		hwloc_obj_t node = hwloc_get_obj_by_type(topology_, HWLOC_OBJ_NUMANODE, i);
		const int n_cores = hwloc_get_nbobjs_inside_cpuset_by_type(topology_, node->cpuset,
		                                                           HWLOC_OBJ_CORE);
		out << (i ? ", " : "") << "{\"os_index\": " << node->os_index
		    << ", \"cores\": " << n_cores
		    << ", \"local_memory_bytes\": " << node->attr->numanode.local_memory << "}";
	}
	out << "]}";
	return out.str();
}

} // namespace iovam::perf
