/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The churn benchmarks free at random in every call Google Benchmark makes,
 * not only in the first (churn.h): two Churns one after the other on the same
 * layout, as two repetitions are. Until 2026-11-27 the second freed the
 * first one's allocations in the order they were made; this test fails so.
 */
#include <cstdint>
#include <cstdio>
#include <set>
#include <vector>

#include "baselines/cached_walk_allocator.h"
#include "churn.h"
#include "layout.h"

namespace iovam::perf
{
namespace
{

constexpr uint64_t kLive = 4096;
constexpr int kSteps = 1000;

int run()
{
	auto layout = make_fragmented<CachedWalkAllocator>(kLive, 50);
	std::vector<uint64_t> allocated; /* by the first call, in order */
	{
		Churn<CachedWalkAllocator> first(*layout);
		for (int i = 0; i < kSteps; ++i) {
			const ChurnStep s = first.step(1, false);
			check(s.allocated, "the first call's allocation failed");
			allocated.push_back(s.allocated_pfn);
		}
	}
	const std::set<uint64_t> by_first(allocated.begin(), allocated.end());
	int in_order = 0, of_first = 0;
	{
		Churn<CachedWalkAllocator> second(*layout);
		for (int i = 0; i < kSteps; ++i) {
			const ChurnStep s = second.step(1, false);
			in_order += s.freed_pfn == allocated[static_cast<size_t>(i)];
			of_first += by_first.count(s.freed_pfn) != 0;
		}
	}
	/* At random, a victim is one of the first call's kSteps allocations about
	 * kSteps / kLive of the time (less as the second call frees them), and
	 * the k-th allocation about 1 time in kLive. */
	std::printf("second call: %d of %d frees were the first call's allocations, %d in "
	            "their order (at random: about %d and 0)\n",
	            of_first, kSteps, in_order, static_cast<int>(kSteps * kSteps / kLive));
	const bool ok = in_order <= 5 && of_first <= kSteps / 2;
	std::printf("churn: %s\n", ok ? "PASS" : "FAIL (the second call replays the first)");
	return ok ? 0 : 1;
}

} // namespace
} // namespace iovam::perf

int main()
{
	return iovam::perf::run();
}
