/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The 1-page churn (churn.h) from a freshly built fragmented layout, timed
 * per block of pairs: how its cost moves as the churn goes on.
 *
 * Why: allocation is top-down, so the churn's allocations take the highest
 * hole, and the front they carve moves down. A random free above the front is
 * the next allocation's answer; one below it is not, and leaves a hole there.
 * So the share of frees that the next allocation takes back grows as the
 * churn goes on, from about a fifth of the first 250K pairs on the layout as
 * built (2N pages, half freed at random; 1M live, counted with the test
 * hooks on 2026-11-28) towards all of them once the holes lie below every
 * live range. iovam takes such a range back without touching its tree (the
 * domain's pending free, docs/DESIGN.md section 3), so its pair costs several
 * times less late in the churn than early. BM_Tree_Churn1Page reports the
 * mean of the first N / 2 pairs on the layout as built, at every N
 * (bench_tree.cc); this program shows the whole curve at one N.
 *
 * Usage: iovam_perf_churn_phases [live [blocks [pairs_per_block]]]
 * (defaults 1048576, 16, 250000). One JSON object on stdout.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "churn.h"
#include "iovam_allocator.h"
#include "layout.h"

using namespace iovam::perf;

int main(int argc, char **argv)
{
	const uint64_t live = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1048576;
	const uint64_t blocks = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 16;
	const uint64_t pairs = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 250000;
	check(live >= 64 && blocks >= 1 && pairs >= 1, "churn_phases: bad arguments");
	auto layout = make_fragmented<IovamAllocator>(live, 50);
	Churn<IovamAllocator> churn(*layout);
	std::vector<double> ns;
	uint64_t failed = 0;
	for (uint64_t b = 0; b < blocks; ++b) {
		const auto t0 = std::chrono::steady_clock::now();
		for (uint64_t i = 0; i < pairs; ++i) failed += !churn.step(1, false).allocated;
		const auto t1 = std::chrono::steady_clock::now();
		ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
		             static_cast<double>(pairs));
	}
	std::string list;
	for (double v : ns) list += (list.empty() ? "" : ", ") + std::to_string(v);
	std::printf("{\"impl\": \"iovam\", \"live\": %llu, \"occ_pct\": 50, \"pairs_per_block\": "
	            "%llu, \"failed_allocs\": %llu, \"ns_per_pair\": [%s]}\n",
	            static_cast<unsigned long long>(live), static_cast<unsigned long long>(pairs),
	            static_cast<unsigned long long>(failed), list.c_str());
	return failed == 0 ? 0 : 1;
}
