/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Test hooks. Not for production use: they make a domain fail on purpose.
 */
#ifndef IOVAM_TEST_H
#define IOVAM_TEST_H

#include <stdint.h>

#include "iovam.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Make the domain's node pool refuse node requests, as GFP_ATOMIC can:
 * one_in == 0 never, 1 always, N about one request in N (pseudo-random,
 * reproducible from seed). Applies to every node request made while the
 * domain lock is held. NULL d is a no-op.
 */
void iovam_test_fail_node_alloc(struct iovam_domain *d, uint32_t one_in, uint64_t seed);

/**
 * Make the nth memory allocation made by the next iovam_domain_create() calls
 * fail (domain, node pool, magazines, lcore slots), as if memory ran out:
 * creation must then fail with NULL + ENOMEM and leak nothing. 0 turns it off;
 * it turns itself off after failing one allocation. Process-wide.
 */
void iovam_test_fail_create_alloc(uint32_t nth);

/**
 * How many allocations took back the domain's pending free, the range the
 * last iovam_free() released, without touching the tree (see DESIGN.md,
 * "The pending free"): what tests use to see that path taken. 0 for NULL d.
 */
uint64_t iovam_test_pending_takes(struct iovam_domain *d);

/**
 * Ask the caches for what an iovam_free() of pfn will read, as a perf probe's
 * oracle that knows the frees ahead (perf/churn_floor.cc): stage 0, the
 * range's live byte and its path hints' slots; stage 1, the tree nodes those
 * slots name (read them first: stage 0 one step or more before). It only
 * prefetches: nothing changes, whatever pfn is. Without the domain lock, so
 * the caller must be the domain's only user while it calls this. NULL d or a
 * stage other than 0 and 1: a no-op.
 */
void iovam_test_prefetch_free(struct iovam_domain *d, uint64_t pfn, int stage);

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_TEST_H */
