// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_RETURN_BATCH_H
#define IOVAM_RETURN_BATCH_H

#include <cstdint>

#include "iovam.h"
#include "range_cache.h"

// A return batch: how a thread that frees ranges other lcores allocated (the
// drain of a DPDK glue completing their unmaps: a service lcore, an EAL
// alarm thread, any thread) gives them back to the lcores that allocate.
//
//   drainer:  batch.mag[k]  --full (127)--> depot[node][k]   <--pop-- lcore c
//                           --flush------->   (top-up or an empty one)
//                           --depot full-->  gap tree
//
// freeing into its own cache (or the shared path, for a thread without one)
// would leave the ranges where nobody allocates, and every map of the
// allocating lcores would refill from the tree under its lock. The batch
// never touches an lcore's magazine: it fills a private magazine per size
// class and copies it into the depot, whole, where an lcore whose magazines
// ran dry takes it in one exchange. So an allocating lcore's steady state is
// a magazine pop, and one depot exchange per 127 ranges.
//
// Ranges held in the batch are ALLOCATED in the tree and belong to the batch
// (as a range in a caller's hands does): verify() and the cache counters do
// not see them until a put or a flush moves them into the depot.
struct iovam_return_batch {
	iovam_domain *dom;
	// Whose depots it feeds (iovam_return_batch_set_node(), iovam_numa.h):
	// node 0's unless told, node 0's too while the node has none.
	uint32_t node;
	iovam::detail::RangeCache::Magazine mag[IOVAM_CACHE_CLASSES]; // private, never exchanged
	iovam_return_batch_stats stats;
};

#endif // IOVAM_RETURN_BATCH_H
