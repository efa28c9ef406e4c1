/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Micro benchmark: the iovam_dpdk_map() + iovam_dpdk_unmap() pair in steady
// state, in no-IOMMU mode (no ioctl: this measures the glue, the magazines
// and the drain; with VFIO add the kernel's map and unmap).
//
//   bench_dyn_map [EAL args] -- [--drain=self|alarm|service] [--rate=PAIRS_PER_S]
//                 [--strict] [--seconds=S]
//
// Every lcore EAL gives (but a service lcore) maps: bursts of 64 maps, then
// their 64 unmaps (a TX burst), from 64 application buffers. The drain that
// completes the unmaps runs:
//   self     on each mapping lcore after each burst (iovam_dpdk_service_run)
//   alarm    on EAL's alarm thread every 10 ms (what unmodified testpmd gets)
//   service  on a service lcore (EAL -s)
// --rate paces each lcore (0 = full rate); --strict unmaps strictly.
// Prints one JSON object: ns per pair on the mapping lcores (the timed map
// and unmap calls only; median and p99 over bursts of 64, robust to the
// preemptions of a shared machine, and the mean; the median of the maps
// alone, map_ns_p50, says which half the time went to; read between the
// halves without a fence, so a hint), wall ns per pair at full
// rate, and the share of the
// mapping lcores' IOVA allocations served by magazines (their iovam cache
// hits and misses over the measured interval, after a warm-up), the unmaps
// that found their queue full and drained it (sync_unmaps), and how often
// the service lcore was preempted meanwhile (service_lcore_preemptions: on
// a shared machine those, not the code, decide most self-drains at full
// rate with a service lcore).
// Not a test: numbers only.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>
#include <rte_service.h>

#include "eal_leftovers.h"
#include "iovam_dpdk.h"

namespace
{

constexpr int kBurst = 64; // pairs per burst, below the unmap queue's size
constexpr size_t kBufStride = 2048;
constexpr size_t kLen = 1500;

enum class Drain { kSelf, kAlarm, kService };

struct Options {
	Drain drain = Drain::kSelf;
	uint64_t rate = 0; // pairs/s per lcore, 0 = full
	bool strict = false;
	double seconds = 2.0;
};

struct alignas(64) PerLcore {
	uint64_t pairs = 0;
	uint64_t timed_cycles = 0;
	uint64_t wall_cycles = 0;
	std::vector<char> buf;
	std::vector<uint32_t>
	        burst_cycles;             // each measured burst: the median is robust to preemption
	std::vector<uint32_t> map_cycles; // the same bursts' 64 maps alone
};

Options g_opt;
PerLcore g_lc[RTE_MAX_LCORE];
std::atomic<int> g_phase{0}; // 0 warm-up, 1 measure, 2 stop
std::atomic<unsigned> g_ready{0};

bool maps(unsigned lc)
{
	return rte_eal_lcore_role(lc) == ROLE_RTE;
}

int mapper(void *)
{
	unsigned lc = rte_lcore_id();
	PerLcore &me = g_lc[lc];
	me.buf.assign(kBurst * kBufStride, 1);
	me.burst_cycles.reserve(1u << 22);
	me.map_cycles.reserve(1u << 22);
	const uint32_t flags = g_opt.strict ? IOVAM_DPDK_UNMAP_F_STRICT : 0;
	const uint64_t hz = rte_get_tsc_hz();
	uint64_t iova[kBurst];
	int phase = 0;
	uint64_t start = 0, bursts = 0;
	g_ready.fetch_add(1);
	for (;;) {
		int p = g_phase.load(std::memory_order_relaxed);
		if (p != phase) {
			if (p == 2) break;
			phase = p; // measuring from here
			start = rte_rdtsc();
			bursts = 0;
			me.pairs = 0;
			me.timed_cycles = 0;
			me.burst_cycles.clear();
			me.map_cycles.clear();
		}
		if (g_opt.rate != 0 && phase == 1) {
			// Burst k is due at start + k * 64 / rate.
			uint64_t due = start + bursts * kBurst * hz / g_opt.rate;
			while (rte_rdtsc() < due) rte_pause();
		}
		uint64_t t0 = rte_rdtsc_precise();
		for (int i = 0; i < kBurst; i++)
			if (iovam_dpdk_map(me.buf.data() + i * kBufStride, kLen, &iova[i]) != 0)
				abort();
		uint64_t tm = rte_rdtsc(); // not a fence: the pair's figure stays as it was
		for (int i = 0; i < kBurst; i++)
			if (iovam_dpdk_unmap_ex(me.buf.data() + i * kBufStride, iova[i], kLen,
			                        flags, nullptr) != 0)
				abort();
		uint64_t t1 = rte_rdtsc_precise();
		if (phase == 1) {
			me.timed_cycles += t1 - t0;
			me.pairs += kBurst;
			if (me.burst_cycles.size() < me.burst_cycles.capacity()) {
				me.burst_cycles.push_back(static_cast<uint32_t>(
				        std::min<uint64_t>(t1 - t0, UINT32_MAX)));
				me.map_cycles.push_back(static_cast<uint32_t>(
				        std::min<uint64_t>(tm - t0, UINT32_MAX)));
			}
			bursts++;
		}
		if (g_opt.drain == Drain::kSelf) (void)iovam_dpdk_service_run();
	}
	me.wall_cycles = rte_rdtsc() - start;
	return 0;
}

bool parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--drain=self") == 0)
			g_opt.drain = Drain::kSelf;
		else if (strcmp(a, "--drain=alarm") == 0)
			g_opt.drain = Drain::kAlarm;
		else if (strcmp(a, "--drain=service") == 0)
			g_opt.drain = Drain::kService;
		else if (strncmp(a, "--rate=", 7) == 0)
			g_opt.rate = strtoull(a + 7, nullptr, 0);
		else if (strcmp(a, "--strict") == 0)
			g_opt.strict = true;
		else if (strncmp(a, "--seconds=", 10) == 0)
			g_opt.seconds = atof(a + 10);
		else
			return false;
	}
	return true;
}

const char *drain_name()
{
	return g_opt.drain == Drain::kSelf    ? "self"
	       : g_opt.drain == Drain::kAlarm ? "alarm"
	                                      : "service";
}

// How many times the threads named rte-worker-<lcore> of the lcores that
// pass `want` were preempted (nonvoluntary_ctxt_switches; EAL names its
// worker threads so): the self-drains a service lcore leaves to the mapping
// lcore come from the times it lost its CPU, which a shared machine decides.
uint64_t preemptions(bool (*want)(unsigned lc))
{
	uint64_t sum = 0;
	std::error_code ec;
	for (const auto &t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
		char comm[64] = "";
		FILE *f = fopen((t.path() / "comm").c_str(), "r");
		if (f == nullptr) continue;
		const bool named = fgets(comm, sizeof(comm), f) != nullptr;
		fclose(f);
		unsigned lc;
		if (!named || sscanf(comm, "rte-worker-%u", &lc) != 1 || !want(lc)) continue;
		f = fopen((t.path() / "status").c_str(), "r");
		if (f == nullptr) continue;
		char line[256];
		unsigned long long n;
		while (fgets(line, sizeof(line), f) != nullptr)
			if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &n) == 1) sum += n;
		fclose(f);
	}
	return sum;
}

bool serves(unsigned lc)
{
	return lc < RTE_MAX_LCORE && rte_eal_lcore_role(lc) == ROLE_SERVICE;
}

void cache_totals(uint64_t *hits, uint64_t *misses)
{
	*hits = *misses = 0;
	unsigned lc;
	RTE_LCORE_FOREACH(lc)
	{
		if (!maps(lc)) continue;
		iovam_cache_stats cs{};
		(void)iovam_cache_stats_get(iovam_dpdk_domain(), lc, &cs);
		*hits += cs.alloc_hits;
		*misses += cs.alloc_misses;
	}
}

} // namespace

int main(int argc, char **argv)
{
	int n = eal_start(argc, argv, "bench_dyn_map");
	if (n < 0) return 1;
	if (!parse(argc - n, argv + n)) {
		fprintf(stderr, "usage: bench_dyn_map [EAL] -- [--drain=self|alarm|service] "
		                "[--rate=N] [--strict] [--seconds=S]\n");
		return 2;
	}
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_IOMMU;
	if (g_opt.drain == Drain::kSelf) conf.flags |= IOVAM_DPDK_F_NO_SERVICE;
	if (g_opt.drain == Drain::kService && rte_service_lcore_count() == 0) {
		fprintf(stderr, "--drain=service needs a service lcore (EAL -s)\n");
		return 2;
	}
	if (g_opt.drain == Drain::kAlarm && rte_service_lcore_count() != 0) {
		fprintf(stderr, "--drain=alarm needs no service lcore\n");
		return 2;
	}
	int rc = iovam_dpdk_init(&conf);
	if (rc != 0) {
		fprintf(stderr, "iovam_dpdk_init: %d\n", rc);
		return eal_exit(1);
	}
	unsigned mappers = 0, lc;
	RTE_LCORE_FOREACH(lc)
	mappers += maps(lc);
	RTE_LCORE_FOREACH_WORKER(lc)
	if (maps(lc)) rte_eal_remote_launch(mapper, nullptr, lc);
	// The phases are switched by a control thread (not an lcore); the
	// main lcore maps too.
	uint64_t hz = rte_get_tsc_hz();
	iovam_dpdk_stats s0{}, s1{};
	uint64_t h0 = 0, m0 = 0, h1 = 0, m1 = 0, p0 = 0, p1 = 0;
	std::thread ctl([&] {
		auto sleep_s = [&](double s) {
			std::this_thread::sleep_for(std::chrono::duration<double>(s));
		};
		sleep_s(g_opt.seconds / 4 + 0.2); // warm-up: magazines and depot in circulation
		cache_totals(&h0, &m0);
		iovam_dpdk_stats_get(&s0);
		p0 = preemptions(serves);
		g_phase.store(1);
		sleep_s(g_opt.seconds);
		cache_totals(&h1, &m1);
		iovam_dpdk_stats_get(&s1);
		p1 = preemptions(serves);
		g_phase.store(2);
	});
	if (maps(rte_get_main_lcore())) (void)mapper(nullptr);
	rte_eal_mp_wait_lcore();
	ctl.join();

	uint64_t pairs = 0, timed = 0, wall = 0;
	std::vector<uint32_t> bursts, map_bursts;
	RTE_LCORE_FOREACH(lc)
	{
		if (!maps(lc)) continue;
		bursts.insert(bursts.end(), g_lc[lc].burst_cycles.begin(),
		              g_lc[lc].burst_cycles.end());
		map_bursts.insert(map_bursts.end(), g_lc[lc].map_cycles.begin(),
		                  g_lc[lc].map_cycles.end());
		pairs += g_lc[lc].pairs;
		timed += g_lc[lc].timed_cycles;
		wall = std::max(wall, g_lc[lc].wall_cycles);
	}
	double ns = 1e9 / static_cast<double>(hz);
	std::sort(bursts.begin(), bursts.end());
	std::sort(map_bursts.begin(), map_bursts.end());
	double p50 = bursts.empty() ? 0 : bursts[bursts.size() / 2] * ns / kBurst;
	double p99 = bursts.empty() ? 0 : bursts[bursts.size() * 99 / 100] * ns / kBurst;
	double map_p50 = map_bursts.empty() ? 0 : map_bursts[map_bursts.size() / 2] * ns / kBurst;
	uint64_t hits = h1 - h0, misses = m1 - m0;
	double hit_pct = hits + misses ? 100.0 * static_cast<double>(hits) /
	                                         static_cast<double>(hits + misses)
	                               : 0;
	printf("{\"bench\": \"dyn_map_pair\", \"drain\": \"%s\", \"mapping_lcores\": %u, "
	       "\"rate_per_lcore\": %" PRIu64 ", \"strict\": %d, \"pairs\": %" PRIu64 ", "
	       "\"pair_ns_p50\": %.2f, \"map_ns_p50\": %.2f, \"pair_ns_p99\": %.2f, "
	       "\"pair_ns_mean\": %.2f, "
	       "\"wall_ns_per_pair\": %.2f, \"cache_hits\": %" PRIu64 ", "
	       "\"cache_misses\": %" PRIu64 ", \"magazine_hit_pct\": %.3f, "
	       "\"sync_unmaps\": %" PRIu64 ", \"returned_to_depot\": %" PRIu64 ", "
	       "\"returned_to_tree\": %" PRIu64 ", \"service_runs\": %" PRIu64 ", "
	       "\"service_lcore_preemptions\": %" PRIu64 "}\n",
	       drain_name(), mappers, g_opt.rate, g_opt.strict ? 1 : 0, pairs, p50, map_p50, p99,
	       pairs ? static_cast<double>(timed) * ns / static_cast<double>(pairs) : 0,
	       pairs ? static_cast<double>(wall) * ns / static_cast<double>(pairs) * mappers : 0,
	       hits, misses, hit_pct, s1.dyn_sync_unmaps - s0.dyn_sync_unmaps,
	       s1.dyn_returned_to_depot - s0.dyn_returned_to_depot,
	       s1.dyn_returned_to_tree - s0.dyn_returned_to_tree, s1.service_runs - s0.service_runs,
	       p1 - p0);
	rc = iovam_dpdk_fini();
	return eal_exit(rc == 0 ? 0 : 1);
}
