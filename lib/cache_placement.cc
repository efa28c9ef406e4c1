// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// iovam_cache_set_node(): a cache's own magazines moved to memory allocated
// for its NUMA node (iovam_numa.h). Cold code: creation-time setup.
#include "cache_placement.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "domain.h"
#include "range_cache.h"

#define IOVAM_EXPORT extern "C" __attribute__((visibility("default")))

namespace iovam::detail
{

CachePlacement::~CachePlacement()
{
	while (blocks_ != nullptr) {
		Block *next = blocks_->next;
		free_block(blocks_);
		blocks_ = next;
	}
	std::free(nodes_);
}

void CachePlacement::free_block(Block *b) noexcept
{
	if (b->mem.alloc != nullptr)
		b->mem.free(b->mem.arg, b->ptr, b->bytes);
	else
		std::free(b->ptr);
	delete b;
}

void *CachePlacement::alloc_block(size_t bytes, int node, const iovam_cache_mem *mem) noexcept
{
	auto *b = new (std::nothrow) Block{blocks_, nullptr, bytes, {}};
	if (b == nullptr) return nullptr;
	if (mem != nullptr) {
		b->mem = *mem;
		b->ptr = mem->alloc(mem->arg, bytes, node);
	} else {
		// bytes is a multiple of 64 (whole magazines), as aligned_alloc wants.
		b->ptr = std::aligned_alloc(64, bytes);
		if (b->ptr != nullptr) std::memset(b->ptr, 0, bytes);
	}
	if (b->ptr == nullptr) {
		delete b;
		return nullptr;
	}
	blocks_ = b;
	return b->ptr;
}

void CachePlacement::drop_last_block() noexcept
{
	Block *b = blocks_;
	blocks_ = b->next;
	free_block(b);
}

bool CachePlacement::ensure_nodes(uint32_t n_caches) noexcept
{
	if (nodes_ != nullptr) return true;
	nodes_ = static_cast<int *>(std::malloc(sizeof(int) * n_caches));
	if (nodes_ == nullptr) return false;
	for (uint32_t c = 0; c < n_caches; ++c) nodes_[c] = -1;
	return true;
}

// Node depots: the NodeDepots header, then its magazines, in one block on
// the node (a multiple of 64 bytes, as aligned_alloc wants).
constexpr size_t kNodeDepotsHeader = (sizeof(RangeCache::NodeDepots) + 63) / 64 * 64;
constexpr size_t kNodeDepotsBytes = kNodeDepotsHeader + sizeof(RangeCache::Magazine) *
                                                                IOVAM_CACHE_CLASSES *
                                                                RangeCache::kDepotMax;

void RangeCache::publish_node(uint32_t node, void *block) noexcept
{
	auto *nd = new (block) NodeDepots();
	auto *mag = reinterpret_cast<Magazine *>(static_cast<char *>(block) + kNodeDepotsHeader);
	for (Depot &d : nd->cls) {
		for (uint32_t i = 0; i < kDepotMax; ++i) d.empty[i] = mag++;
		d.empty_count = kDepotMax;
	}
	nodes_[node].store(nd, std::memory_order_release);
	if (node >= n_nodes_.load(std::memory_order_relaxed))
		n_nodes_.store(node + 1, std::memory_order_release);
}

int RangeCache::place(uint32_t c, int node, const iovam_cache_mem *mem) noexcept
{
	constexpr size_t kBytes = sizeof(Magazine) * IOVAM_CACHE_CLASSES * 2;
	const auto at = static_cast<uint32_t>(node);
	SpinGuard serial(place_lock_);
	if (!placement_.ensure_nodes(n_caches_)) return -ENOMEM;
	// The blocks are recorded last in, first out: drop_last_block() gives back
	// the magazines, then the depots.
	void *depots = nullptr;
	if (node_depots(at) == nullptr) {
		depots = placement_.alloc_block(kNodeDepotsBytes, node, mem);
		if (depots == nullptr) return -ENOMEM;
	}
	auto *mag = static_cast<Magazine *>(placement_.alloc_block(kBytes, node, mem));
	if (mag == nullptr) {
		if (depots != nullptr) placement_.drop_last_block();
		return -ENOMEM;
	}
	Lcore &l = lcores_[c];
	// A flusher of every cache (IOVAM_CACHE_NONE) or verify() may run
	// meanwhile: it holds this lock while it reads or empties l's magazines.
	// The owner does not run (documented), so no handshake is needed.
	SpinGuard guard(l.slow_lock);
	for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
		if (__atomic_load_n(&l.pub.loaded[k]->size, __ATOMIC_RELAXED) != 0 ||
		    l.prev[k]->size != 0) {
			placement_.drop_last_block();
			if (depots != nullptr) placement_.drop_last_block();
			return -EBUSY;
		}
	}
	if (depots != nullptr) publish_node(at, depots);
	for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
		__atomic_store_n(&l.pub.loaded[k], mag++, __ATOMIC_RELEASE);
		l.prev[k] = mag++;
	}
	l.node = at;
	placement_.record_node(c, node);
	return 0;
}

} // namespace iovam::detail

using iovam::detail::Domain;

IOVAM_EXPORT int iovam_cache_set_node(iovam_domain *d, uint32_t cache_id, int numa_node,
                                      const iovam_cache_mem *mem)
{
	if (d == nullptr || numa_node < 0 || numa_node >= IOVAM_NUMA_MAX_NODES ||
	    (mem != nullptr && (mem->alloc == nullptr || mem->free == nullptr)))
		return -EINVAL;
	Domain *dom = Domain::of(d);
	if (cache_id >= dom->conf().n_caches) return -EINVAL;
	return dom->cache().place(cache_id, numa_node, mem);
}

IOVAM_EXPORT int iovam_cache_get_node(iovam_domain *d, uint32_t cache_id)
{
	if (d == nullptr) return -EINVAL;
	Domain *dom = Domain::of(d);
	if (cache_id >= dom->conf().n_caches) return -EINVAL;
	const int node = dom->cache().node_of(cache_id);
	return node >= 0 ? node : -ENOENT;
}

IOVAM_EXPORT int iovam_depot_get_ranges(iovam_domain *d, int numa_node)
{
	if (d == nullptr || numa_node < 0 || numa_node >= IOVAM_NUMA_MAX_NODES) return -EINVAL;
	return Domain::of(d)->cache().depot_ranges(static_cast<uint32_t>(numa_node));
}
