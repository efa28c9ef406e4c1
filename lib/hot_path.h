// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_HOT_PATH_H
#define IOVAM_HOT_PATH_H

// IOVAM_HOT marks the out-of-line functions of the tree's alloc+free pair
// (iovam_alloc/iovam_free down to the gap tree): GCC puts them in .text.hot,
// which the linker lays out together, as DPDK's __rte_hot does, so their
// place no longer moves with changes to cold code. On the perf machine that
// place alone made the 1-page pair 53 or 75 ns; the measurements, and why
// the set is exactly these functions, are in docs/DESIGN.md, section 3.
// Change the set, or a function in it, only with BM_Tree_Pair* run before
// and after.
#define IOVAM_HOT __attribute__((hot))

#endif // IOVAM_HOT_PATH_H
