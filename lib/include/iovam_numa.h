/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * NUMA placement of the per-lcore caches' magazines.
 *
 * A domain allocates every magazine at creation, in one block, on whatever
 * node the creating thread's memory policy gives. iovam_cache_set_node()
 * moves one cache's own magazines (two per size class, 12 KiB) to memory the
 * caller's allocator returns for a node: the DPDK glue passes
 * rte_zmalloc_socket() on rte_lcore_to_socket_id() of the cache's lcore; a
 * program without DPDK passes its own (libnuma, hwloc) or NULL for the
 * system allocator. The core itself has no NUMA library and never asks the
 * kernel: where the memory sits is the allocator's business.
 *
 * Full magazines are exchanged through a depot per node. A cache exchanges
 * with the depots of the node iovam_cache_set_node() gave it (node 0's when
 * it was never placed); only when they hold no full magazine of the class
 * does it take one from another node's depots (nodes tried from the next one
 * up, round), and only then does it go to the tree. A full magazine it hands
 * on goes to its own node's depot, or (that depot full) to the tree. Node
 * 0's depots are made with the domain, where its creating thread's memory
 * policy puts them; another node's are made by the first
 * iovam_cache_set_node() on that node, with its allocator, on that node.
 * Magazines never cross nodes: taking another node's ranges copies them
 * (1 KiB at most) into the cache's own magazine. So a cache's magazines stay
 * on its node. The lcore slots (256 B each: the loaded-magazine pointers and
 * hit counters that the inline fast path reads) are one array, in the
 * domain's block.
 *
 * Return batches (iovam.h) feed node 0's depots, or those of the node
 * iovam_return_batch_set_node() names (node 0's while that node has none).
 *
 * On one node nothing changes: the fast path is the same code, every cache
 * uses node 0's depots, and the look at other nodes' depots is one compare.
 */
#ifndef IOVAM_NUMA_H
#define IOVAM_NUMA_H

#include <stddef.h>
#include <stdint.h>

#include "iovam.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Nodes 0 .. IOVAM_NUMA_MAX_NODES - 1 may be given to the calls below. */
#define IOVAM_NUMA_MAX_NODES 64

/** Where a cache's magazines come from. */
struct iovam_cache_mem {
	/**
	 * bytes of zeroed memory, aligned to 64 bytes, on NUMA node numa_node;
	 * NULL when there is none (then nothing changes). Called from
	 * iovam_cache_set_node(), never from the fast path.
	 */
	void *(*alloc)(void *arg, size_t bytes, int numa_node);
	/** Gives back what alloc returned; called from iovam_domain_destroy(). */
	void (*free)(void *arg, void *ptr, size_t bytes);
	void *arg;
};

/**
 * Put cache cache_id's magazines on NUMA node numa_node, allocated by mem
 * (NULL: the system allocator, zeroed by the calling thread, so the pages
 * land where its first touch puts them). The cache must hold no range, and
 * its owner must not run meanwhile (as for iovam_cache_flush() of that
 * cache): call it before the lcore starts. The magazines it replaced stay
 * unused in the domain's block until the domain is destroyed, and so does
 * the new block (magazines travel between the caches of one node through its
 * depot, so no block can be freed earlier). The first call for a node other
 * than 0 also allocates that node's depots through mem (192 KiB of
 * magazines and their heads, one block). Calling it again for one cache is
 * allowed and allocates anew. Calls are serialized with each other.
 * @return 0; -EINVAL NULL d, cache_id >= n_caches (IOVAM_CACHE_NONE
 *   included), numa_node < 0 or >= IOVAM_NUMA_MAX_NODES, mem with a NULL
 *   alloc or free; -EBUSY the cache holds ranges; -ENOMEM the allocator
 *   returned NULL. On error nothing changes.
 */
int iovam_cache_set_node(struct iovam_domain *d, uint32_t cache_id, int numa_node,
                         const struct iovam_cache_mem *mem);

/**
 * @return the node iovam_cache_set_node() last gave cache_id; -ENOENT none;
 *   -EINVAL NULL d or cache_id >= n_caches.
 */
int iovam_cache_get_node(struct iovam_domain *d, uint32_t cache_id);

/**
 * Ranges held now in numa_node's depots (full magazines of every class).
 * @return the count (>= 0); -ENOENT the node has no depots (no cache was
 *   placed on it; node 0 always has them); -EINVAL NULL d, numa_node < 0 or
 *   >= IOVAM_NUMA_MAX_NODES.
 */
int iovam_depot_get_ranges(struct iovam_domain *d, int numa_node);

/**
 * Make return batch rb feed numa_node's depots (the drain of a node's
 * lcores, say). Ranges it holds already go there at its next put or flush.
 * While the node has no depots they go to node 0's.
 * @return 0; -EINVAL NULL rb, numa_node < 0 or >= IOVAM_NUMA_MAX_NODES.
 */
int iovam_return_batch_set_node(struct iovam_return_batch *rb, int numa_node);

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_NUMA_H */
