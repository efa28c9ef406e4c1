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

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_TEST_H */
