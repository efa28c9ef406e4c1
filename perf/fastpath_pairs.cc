/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam_perf_fastpath_pairs: a fixed number of alloc_fast + free_fast pairs
 * (cache 0, 1 page) inside one function, for instruction counting:
 *
 *   valgrind --tool=callgrind --collect-atstart=no \
 *            --toggle-collect=iovam_perf_timed_pairs iovam_perf_fastpath_pairs 100000
 *
 * Ir / pairs is the figure the magazine issue targets (<= 60 per pair). It
 * includes this loop's own few instructions per pair (counter, two result
 * tests), so it slightly overstates the library's share. Without valgrind it
 * prints ns per pair.
 */
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "iovam.h"

namespace
{
constexpr uint64_t kDomainEndPfn = (uint64_t{1} << 30) - 1;
constexpr uint64_t kWarmupPairs = 10000;

/* The loop, inlined into each of the two functions below. */
[[gnu::always_inline]] inline int run_pairs(iovam_domain *d, uint64_t pairs)
{
	for (uint64_t i = 0; i < pairs; ++i) {
		uint64_t pfn_lo;
		if (iovam_alloc_fast(d, 0, 1, kDomainEndPfn, &pfn_lo) != 0) return -1;
		if (iovam_free_fast(d, 0, pfn_lo, 1) != 0) return -1;
	}
	return 0;
}
} // namespace

/* noinline and C linkage: callgrind's --toggle-collect names it exactly. */
extern "C" [[gnu::noinline]] int iovam_perf_timed_pairs(iovam_domain *d, uint64_t pairs);

/* The same loop under another name, so callgrind does not count the warm-up. */
extern "C" [[gnu::noinline]] int iovam_perf_warmup_pairs(iovam_domain *d, uint64_t pairs)
{
	return run_pairs(d, pairs);
}

int iovam_perf_timed_pairs(iovam_domain *d, uint64_t pairs)
{
	return run_pairs(d, pairs);
}

int main(int argc, char **argv)
{
	const uint64_t pairs = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 100000;
	const iovam_domain_conf conf{4096, 1, kDomainEndPfn, 1};
	iovam_domain *d = iovam_domain_create(&conf);
	if (!d) {
		std::perror("iovam_domain_create");
		return 1;
	}
	/* Fill the magazines first: the count is of the steady state. */
	if (iovam_perf_warmup_pairs(d, kWarmupPairs) != 0) return 1;
	const auto t0 = std::chrono::steady_clock::now();
	const int rc = iovam_perf_timed_pairs(d, pairs);
	const auto t1 = std::chrono::steady_clock::now();
	iovam_domain_destroy(d);
	if (rc != 0) {
		std::fprintf(stderr, "fast path failed\n");
		return 1;
	}
	std::printf("{\"pairs\": %llu, \"ns_per_pair\": %.2f}\n",
	            static_cast<unsigned long long>(pairs),
	            std::chrono::duration<double, std::nano>(t1 - t0).count() /
	                    static_cast<double>(pairs));
	return 0;
}
