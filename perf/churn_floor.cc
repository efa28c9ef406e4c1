/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * How far overlapping a free's cache misses could take the 1-page churn
 * (BM_Tree_Churn1Page's workload: allocate one page, free a random live
 * range) at one size: the same churn timed twice from the same fresh layout
 * kind, plain and with an oracle that knows every victim kStage0Ahead pairs
 * ahead. The oracle asks for the victim's live byte and its path hints'
 * slots kStage0Ahead pairs ahead, and for the nodes those slots name
 * kStage1Ahead pairs ahead (iovam_test_prefetch_free(), a test hook). Where
 * the oracle's figure stays far above a target, no scheme that hides the
 * single free's misses behind other work reaches it: the rest is the pair's
 * own work and the misses that no hint names (the leaf beside an erase, a
 * rebalance's sibling, the allocation front's next leaf, inner levels that
 * fell out of L2).
 *
 * The victims are drawn kDrawAhead pairs ahead (their slot of live_pfns
 * prefetched) and taken out of live_pfns kStage0Ahead pairs ahead, in both
 * modes, so the harness costs the same in each and the pair's figure is not
 * BM_Tree_Churn1Page's to the ns (churn.h draws four pairs ahead).
 *
 * Rounds alternate the modes, each on a layout built afresh (untimed), and
 * time the first N / 2 pairs (bench_tree.cc's phase); the medians are
 * reported. Built on the static core (the hook is not exported by the
 * shared library).
 *
 * Usage: iovam_perf_churn_floor [rounds [live...]] (defaults 3, 262144
 * 1048576). One JSON object on stdout.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "iovam_allocator.h"
#include "iovam_test.h"
#include "layout.h"

using namespace iovam::perf;

namespace
{

constexpr size_t kDrawAhead = 16;
constexpr size_t kStage0Ahead = 8; // victim taken, live byte and hint slots asked for
constexpr size_t kStage1Ahead = 4; // the hinted nodes asked for
static_assert(kStage1Ahead < kStage0Ahead && kStage0Ahead < kDrawAhead);

/* ns per pair over the first live / 2 pairs from a fresh layout. */
double run(uint64_t live, bool oracle)
{
	auto layout = make_fragmented<IovamAllocator>(live, 50);
	PfnVector &pfns = layout->live_pfns;
	check(pfns.size() > kDrawAhead, "churn_floor: too few live ranges");
	iovam_domain *d = layout->allocator->domain();
	pfns.reserve(pfns.size() + 1); // no reallocation inside the timing (churn.h)
	size_t slot[kDrawAhead];
	uint64_t victim[kDrawAhead];
	/* Drawn below size - kDrawAhead: the vector loses one element per pair
	 * at most between the draw and the take, so the slot is still in it. */
	auto draw = [&](size_t k) {
		slot[k] = layout->churn_rng.below(pfns.size() - kDrawAhead);
		__builtin_prefetch(&pfns[slot[k]]);
	};
	auto take = [&](size_t k) {
		victim[k] = pfns[slot[k]];
		pfns[slot[k]] = pfns.back();
		pfns.pop_back();
		if (oracle) iovam_test_prefetch_free(d, victim[k], 0);
	};
	for (size_t k = 0; k < kDrawAhead; ++k) draw(k);
	for (size_t k = 0; k < kStage0Ahead; ++k) take(k);
	if (oracle)
		for (size_t k = 0; k < kStage1Ahead; ++k) iovam_test_prefetch_free(d, victim[k], 1);
	const uint64_t pairs = live / 2;
	uint64_t failed = 0;
	const auto t0 = std::chrono::steady_clock::now();
	for (uint64_t i = 0; i < pairs; ++i) {
		const size_t k = i % kDrawAhead;
		if (const auto pfn = layout->allocator->alloc(1, layout->limit_pfn, false))
			pfns.push_back(*pfn);
		else
			++failed;
		check(layout->allocator->free(victim[k]),
		      "churn_floor: free of a live range failed");
		draw(k);
		take((k + kStage0Ahead) % kDrawAhead);
		if (oracle) iovam_test_prefetch_free(d, victim[(k + kStage1Ahead) % kDrawAhead], 1);
	}
	const auto t1 = std::chrono::steady_clock::now();
	check(failed == 0, "churn_floor: an allocation failed");
	check(iovam_verify(d) == 0, "churn_floor: verify failed after the churn");
	return std::chrono::duration<double, std::nano>(t1 - t0).count() /
	       static_cast<double>(pairs);
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

std::string list(const std::vector<double> &v)
{
	std::string s;
	for (double x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
	return s;
}

} // namespace

int main(int argc, char **argv)
{
	const uint64_t rounds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 3;
	std::vector<uint64_t> sizes;
	for (int a = 2; a < argc; ++a) sizes.push_back(std::strtoull(argv[a], nullptr, 10));
	if (sizes.empty()) sizes = {262144, 1048576};
	check(rounds >= 1 && rounds <= 100, "churn_floor: rounds out of 1..100");
	for (uint64_t live : sizes) check(live >= 64 * kDrawAhead, "churn_floor: live below 1024");
	std::printf("{\"stage0_ahead\": %zu, \"stage1_ahead\": %zu, \"sizes\": [", kStage0Ahead,
	            kStage1Ahead);
	for (size_t s = 0; s < sizes.size(); ++s) {
		std::vector<double> plain, oracle;
		for (uint64_t r = 0; r < rounds; ++r) {
			plain.push_back(run(sizes[s], false));
			oracle.push_back(run(sizes[s], true));
		}
		std::printf("%s{\"live\": %llu, \"plain_ns\": %.1f, \"oracle_ns\": %.1f, "
		            "\"plain_rounds\": [%s], \"oracle_rounds\": [%s]}",
		            s ? ", " : "", static_cast<unsigned long long>(sizes[s]), median(plain),
		            median(oracle), list(plain).c_str(), list(oracle).c_str());
	}
	std::printf("]}\n");
	return 0;
}
