// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_HOT_PATH_H
#define IOVAM_HOT_PATH_H

// IOVAM_HOT marks the out-of-line functions of the tree's alloc+free pair
// (iovam_alloc/iovam_free down to the gap tree): GCC puts them in .text.hot,
// which the linker lays out together, ahead of everything else, as DPDK's
// __rte_hot does. Their place in the library then depends on them alone.
//
// Why: on the perf machine (AMD EPYC under KVM) the same sources timed the
// 1-page pair at 53 to 75 ns depending only on where the linker put these
// functions, and a change to any cold path moved them (git 7c4bd39 moved the
// pair at 90 % occupancy from 65 to 75 ns without touching its code). With
// them grouped, the pairs at 50 and 90 % took 53-56 ns and the mixed and
// aligned pairs 56-67 (against 69-77). The mechanism was not found (no
// hardware counters in the guest; the stack's alignment made no difference);
// marking more functions hot (the search, the gap carry, the find path)
// brought the 62-75 ns back, so the set below is the measured one: change it
// only with BM_Tree_Pair* run before and after (docs/DESIGN.md, section 3).
#define IOVAM_HOT __attribute__((hot))

#endif // IOVAM_HOT_PATH_H
