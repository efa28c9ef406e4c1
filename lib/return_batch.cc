// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Return batches (return_batch.h): the C API.
#include "return_batch.h"

#include <cerrno>
#include <cstdlib>
#include <new>

#include "domain.h"
#include "iovam_numa.h"

#define IOVAM_EXPORT extern "C" __attribute__((visibility("default")))

using iovam::detail::Domain;

namespace
{

// One class magazine to the depot (or the tree); counts it.
void put(iovam_return_batch *rb, uint32_t cls)
{
	uint64_t n = rb->mag[cls].size;
	iovam::detail::RangeCache &cache = Domain::of(rb->dom)->cache();
	if (cache.put_to_depot(rb->node, cls, &rb->mag[cls])) {
		rb->stats.puts_to_depot++;
		rb->stats.ranges_to_depot += n;
	} else {
		rb->stats.ranges_to_tree += n;
	}
	cache.batch_released(n); // in the depot (cached) or FREE now
}

} // namespace

IOVAM_EXPORT iovam_return_batch *iovam_return_batch_create(iovam_domain *d)
{
	if (d == nullptr) {
		errno = EINVAL;
		return nullptr;
	}
	if (iovam::detail::create_alloc_fails()) {
		errno = ENOMEM;
		return nullptr;
	}
	// 6 KiB of magazines: calloc, as the domain's own (no constructor needed).
	auto *rb = static_cast<iovam_return_batch *>(std::calloc(1, sizeof(iovam_return_batch)));
	if (rb == nullptr) {
		errno = ENOMEM;
		return nullptr;
	}
	rb->dom = d;
	return rb;
}

IOVAM_EXPORT void iovam_return_batch_destroy(iovam_return_batch *rb)
{
	if (rb == nullptr) return;
	(void)iovam_return_batch_flush(rb);
	std::free(rb);
}

// Cost on the usual call: the domain's batch lock (uncontended but for
// verify(): about as much as the rest), the O(1) bounds checks and a store into the class
// magazine; once per 127 ranges of a class, put() (the depot lock and a 1 KiB
// copy). No allocation, no syscall. Checked (the default), the range's live
// byte is checked and cleared as iovam_free_fast() does: a double return, a
// wrong size or a range nobody holds is refused with its errno, unchanged.
IOVAM_EXPORT int iovam_return_batch_add(iovam_return_batch *rb, uint64_t pfn_lo, uint64_t npages)
{
	if (rb == nullptr || npages == 0) return -EINVAL;
	iovam::detail::RangeCache &cache = Domain::of(rb->dom)->cache();
	iovam::detail::SpinGuard g(cache.batch_lock());
	if (npages > IOVAM_CACHE_MAX_PAGES) {
		// The caches do not take it: checked and freed to the tree, as
		// iovam_free_fast() does with such a range.
		int rc = cache.free_fast_slow(IOVAM_CACHE_NONE, pfn_lo, npages);
		if (rc == 0) {
			rb->stats.ranges_added++;
			rb->stats.ranges_to_tree++;
		}
		return rc;
	}
	int rc = cache.take_for_batch(pfn_lo, npages);
	if (rc == 1) {
		// Outside the cached window: the caches never hold it. To the tree,
		// checked there, as iovam_free_fast() does.
		rc = cache.free_fast_slow(IOVAM_CACHE_NONE, pfn_lo, npages);
		if (rc == 0) {
			rb->stats.ranges_added++;
			rb->stats.ranges_to_tree++;
		}
		return rc;
	}
	if (rc != 0) return rc;
	const uint32_t cls = iovam_size_class_(npages);
	iovam_magazine &m = rb->mag[cls];
	m.pfn[m.size++] = pfn_lo;
	rb->stats.ranges_added++;
	if (m.size == IOVAM_MAG_SIZE) put(rb, cls);
	return 0;
}

IOVAM_EXPORT int iovam_return_batch_flush(iovam_return_batch *rb)
{
	if (rb == nullptr) return -EINVAL;
	iovam::detail::SpinGuard g(Domain::of(rb->dom)->cache().batch_lock());
	uint64_t n = 0;
	for (uint32_t k = 0; k < IOVAM_CACHE_CLASSES; ++k) {
		if (rb->mag[k].size == 0) continue;
		n += rb->mag[k].size;
		put(rb, k);
	}
	return static_cast<int>(n); // at most 6 x 126 ranges
}

IOVAM_EXPORT int iovam_return_batch_stats_get(const iovam_return_batch *rb,
                                              iovam_return_batch_stats *st)
{
	if (rb == nullptr || st == nullptr) return -EINVAL;
	*st = rb->stats;
	st->ranges_held = 0;
	for (const auto &m : rb->mag) st->ranges_held += m.size;
	return 0;
}

IOVAM_EXPORT int iovam_return_batch_set_node(iovam_return_batch *rb, int numa_node)
{
	if (rb == nullptr || numa_node < 0 || numa_node >= IOVAM_NUMA_MAX_NODES) return -EINVAL;
	rb->node = static_cast<uint32_t>(numa_node);
	return 0;
}
