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
 * What it does not do (yet): the depot is shared by all nodes. A cache that
 * trades a full magazine for an empty one through the depot (a pipeline
 * whose ranges are freed on another lcore than allocated them) gets one that
 * another cache's node allocated, so a cache's magazines stay on its node
 * only as long as it does not exchange through the depot (alloc/free on the
 * same lcore: the usual run-to-completion datapath). The lcore slots (256 B
 * each: the loaded-magazine pointers and hit counters that the inline fast
 * path reads) are one array, in the domain's block.
 *
 * On one node nothing changes: the fast path is the same code, and a domain
 * nobody calls this on is exactly as before.
 */
#ifndef IOVAM_NUMA_H
#define IOVAM_NUMA_H

#include <stddef.h>
#include <stdint.h>

#include "iovam.h"

#ifdef __cplusplus
extern "C" {
#endif

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
 * the new block (magazines travel between caches through the depot, so no
 * block can be freed earlier). Calling it again for one cache is allowed and
 * allocates anew.
 * @return 0; -EINVAL NULL d, cache_id >= n_caches (IOVAM_CACHE_NONE
 *   included), numa_node < 0, mem with a NULL alloc or free; -EBUSY the cache
 *   holds ranges; -ENOMEM the allocator returned NULL. On error nothing
 *   changes.
 */
int iovam_cache_set_node(struct iovam_domain *d, uint32_t cache_id, int numa_node,
			 const struct iovam_cache_mem *mem);

/**
 * @return the node iovam_cache_set_node() last gave cache_id; -ENOENT none;
 *   -EINVAL NULL d or cache_id >= n_caches.
 */
int iovam_cache_get_node(struct iovam_domain *d, uint32_t cache_id);

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_NUMA_H */
