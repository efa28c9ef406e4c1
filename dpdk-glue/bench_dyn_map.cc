/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Micro benchmark: iovam_dpdk_map() + iovam_dpdk_unmap() pair on an lcore's
// fast path (no-IOMMU mode, so no ioctl: this measures the glue and the
// magazine cache; with VFIO add the kernel's map and unmap).
//
//   bench_dyn_map [EAL args] -- [pairs]
//
// Reports ns per pair excluding the service's drain (what the datapath pays)
// and including it amortised (what the machine pays), for an lcore and for
// a thread without an lcore id (shared path). Target: <= 50 ns per pair on
// the lcore. Not a test: numbers only.
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "eal_leftovers.h"
#include "iovam_dpdk.h"

namespace {

constexpr int kBatch = 64; // pairs between two drains (a TX burst), below the queue size

struct Result {
	double pair_ns;
	double total_ns;
};

Result run(std::vector<char> &buf, long pairs)
{
	uint64_t timed = 0;
	uint64_t start = rte_rdtsc_precise();
	uint64_t iovas[kBatch];
	for (long done = 0; done < pairs; done += kBatch) {
		uint64_t t0 = rte_rdtsc_precise();
		for (int i = 0; i < kBatch; i++) {
			char *va = buf.data() + static_cast<size_t>(i) * 2048;
			if (iovam_dpdk_map(va, 1500, &iovas[i]) != 0 ||
			    iovam_dpdk_unmap(va, iovas[i], 1500) != 0)
				abort();
		}
		timed += rte_rdtsc_precise() - t0;
		while (iovam_dpdk_service_run() == -EBUSY) {
		}
	}
	double ns_per_cycle = 1e9 / static_cast<double>(rte_get_tsc_hz());
	uint64_t total = rte_rdtsc_precise() - start;
	return {static_cast<double>(timed) * ns_per_cycle / static_cast<double>(pairs),
		static_cast<double>(total) * ns_per_cycle / static_cast<double>(pairs)};
}

// Every exit after rte_eal_init(): DPDK 22.11 leaves the runtime directory
// and hugepage files behind; a failed run removes them too.
int eal_exit(int status)
{
	std::string runtime_dir = rte_eal_get_runtime_dir();
	rte_eal_cleanup();
	eal_leftovers_remove(runtime_dir);
	return status;
}

}  // namespace

int main(int argc, char **argv)
{
	int n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	long pairs = argc - n > 1 ? atol(argv[n + 1]) : 2000000;
	pairs = (pairs + kBatch - 1) / kBatch * kBatch;
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	int rc = iovam_dpdk_init(&conf);
	if (rc != 0) {
		fprintf(stderr, "iovam_dpdk_init: %d\n", rc);
		return eal_exit(1);
	}
	std::vector<char> buf(kBatch * 2048);
	(void)run(buf, pairs / 10); // warm the magazines
	Result l = run(buf, pairs);
	// Baseline: the core's own alloc_fast + free_fast pair on this lcore.
	iovam_domain *d = iovam_dpdk_domain();
	uint64_t t0 = rte_rdtsc_precise();
	for (long i = 0; i < pairs; i++) {
		uint64_t pfn;
		if (iovam_alloc_fast(d, rte_lcore_id(), 1, UINT32_MAX >> 12, &pfn) != 0 ||
		    iovam_free_fast(d, rte_lcore_id(), pfn, 1) != 0)
			abort();
	}
	double core_ns = static_cast<double>(rte_rdtsc_precise() - t0) * 1e9 /
			 static_cast<double>(rte_get_tsc_hz()) / static_cast<double>(pairs);
	Result s{};
	std::thread t([&] { s = run(buf, pairs / 4); });
	t.join();
	printf("BM_DynMap_PairLcore       %8.1f ns/pair (fast path), %8.1f ns/pair with drain\n",
	       l.pair_ns, l.total_ns);
	printf("BM_Core_AllocFreeFastPair %8.1f ns/pair (iovam_alloc_fast + iovam_free_fast)\n",
	       core_ns);
	printf("BM_DynMap_PairSharedPath  %8.1f ns/pair (fast path), %8.1f ns/pair with drain\n",
	       s.pair_ns, s.total_ns);
	iovam_dpdk_stats st{};
	iovam_dpdk_stats_get(&st);
	printf("dyn_maps %" PRIu64 " cache_hits %" PRIu64 " cache_misses %" PRIu64 "\n",
	       st.dyn_maps, st.cache_hits, st.cache_misses);
	rc = iovam_dpdk_fini();
	return eal_exit(rc == 0 ? 0 : 1);
}
