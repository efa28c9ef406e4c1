/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// dpdk-glue tests against a real EAL: hugepages, vdevs, no mocks.
//
// EAL can be initialised once per process, so each memory mode is its own
// process: meson runs this program once per mode (--mode=NAME, see kModes),
// each with its own --file-prefix. Tests that cannot apply to a mode (a FREE
// event under --legacy-mem) assert the mode's documented behaviour instead;
// nothing is skipped. Without free hugepages the program fails with a message
// saying how to set them up (the CI script does it).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_service.h>

#include "iovam.h"
#include "iovam_numa.h"
#include "eal_leftovers.h"
#include "iovam_dpdk.h"
#include "stats_fields.h"

namespace
{

struct Mode {
	const char *name;
	std::vector<std::string> eal; // besides -l, --file-prefix, vdevs
	bool events;                  // memory events expected
	bool service_lcore;           // -s: the service runs by itself
};

const Mode kModes[] = {
        {"default", {}, true, false},
        {"in-memory", {"--in-memory"}, true, false},
        {"single-file-segments", {"--single-file-segments"}, true, false},
        {"legacy-mem", {"--legacy-mem", "-m", "256"}, false, false},
        {"no-huge", {"--no-huge", "-m", "256"}, false, false},
        {"iova-va", {"--iova-mode=va"}, true, false},
        // 16 MiB preallocated (EAL marks it never-freed), the rest dynamic.
        {"socket-mem", {"--socket-mem", "16"}, true, false},
        {"service", {"-s", "0x2"}, true, true},
};

const Mode *g_mode;
constexpr uint64_t kWindowEnd = uint64_t{1} << 32; // default: 32-bit DMA
constexpr uint64_t kPage4k = 4096;

iovam_dpdk_stats stats()
{
	iovam_dpdk_stats st{};
	EXPECT_EQ(iovam_dpdk_stats_get(&st), 0);
	return st;
}

// ALLOCATED ranges outside the per-lcore caches: a service lcore moves cached
// ranges back to the tree at any time, so the cached ones are not compared.
uint64_t live_ranges()
{
	iovam_stats st{};
	EXPECT_EQ(iovam_stats_get(iovam_dpdk_domain(), &st), 0);
	return st.live_ranges - st.cached_ranges;
}

// --legacy-mem maps hugepages in physical order, so the heap's VA-contiguous
// pieces are small; static modes allocate less.
size_t big(size_t mib)
{
	return (g_mode->events ? mib : 8) << 20;
}

// A service lcore trims depots back to the tree concurrently; a magazine in
// transit is briefly neither cached nor free. Poll for up to a second.
uint64_t settled_live_ranges(uint64_t want)
{
	uint64_t got = live_ranges();
	for (int i = 0; i < 1000 && got != want; i++) {
		usleep(1000);
		got = live_ranges();
	}
	return got;
}

// Run the service until the dynamic unmaps drained (or it runs by itself),
// then take this lcore's IOVAs back.
void drain()
{
	// Wall-clock bound: a service lcore on a loaded 2-core machine can be
	// starved for a while by other processes.
	uint64_t deadline = rte_get_timer_cycles() + 10 * rte_get_timer_hz();
	while (stats().dyn_pending != 0 && rte_get_timer_cycles() < deadline) {
		if (g_mode->service_lcore)
			std::this_thread::yield();
		else
			(void)iovam_dpdk_service_run();
	}
	if (stats().dyn_pending != 0 && getenv("IOVAM_TEST_GDB") != nullptr) {
		uint64_t r0 = stats().service_runs;
		usleep(200000);
		fprintf(stderr, "DBG service_runs %lu -> %lu\n", r0, stats().service_runs);
		std::string cmd = "gdb -p " + std::to_string(getpid()) +
		                  " -batch -ex 'thread apply all bt' 2>/dev/null | grep -E "
		                  "'^#|^Thread' | head -80";
		(void)system(cmd.c_str());
	}
	ASSERT_EQ(stats().dyn_pending, 0u);
	// This lcore's completed unmaps: their IOVAs back in its cache now (an
	// lcore reaps them at its next map, unmap or service run).
	(void)iovam_dpdk_service_run();
}

void expect_translated(const void *p, size_t len)
{
	auto a = reinterpret_cast<uintptr_t>(p);
	for (uintptr_t va = a; va < a + len; va += kPage4k) {
		uint64_t iova = 0;
		ASSERT_EQ(iovam_dpdk_virt2iova(reinterpret_cast<void *>(va), &iova), 0)
		        << std::hex << va;
		ASSERT_GE(iova, kPage4k);
		ASSERT_LT(iova, kWindowEnd);
		ASSERT_EQ(iova % kPage4k, va % kPage4k);
	}
}

struct SegWalk {
	std::set<uint64_t> iovas;
	size_t segs = 0;
	bool bad = false;
};

int seg_cb(const rte_memseg_list *, const rte_memseg *ms, void *arg)
{
	auto &w = *static_cast<SegWalk *>(arg);
	w.segs++;
	uint64_t iova;
	if (iovam_dpdk_virt2iova(ms->addr, &iova) != 0 || iova >= kWindowEnd ||
	    !w.iovas.insert(iova).second)
		w.bad = true;
	return 0;
}

// Each EAL lcore's cache has its magazines in DPDK memory on its socket
// (iovam_numa.h), where the kernel says they are too (move_pages(2) in
// query mode). First in the file: gtest runs tests in file order, and the
// later tests' fast-path traffic trades magazines through the shared depot,
// after which a cache's loaded magazine may be any cache's.
TEST(Glue, NumaCachesOnTheirSocket)
{
	iovam_domain *d = iovam_dpdk_domain();
	ASSERT_NE(d, nullptr);
	const unsigned lc = rte_lcore_id();
	const int socket = static_cast<int>(rte_lcore_to_socket_id(lc));
	ASSERT_EQ(iovam_cache_get_node(d, lc), socket);
	const auto *view = reinterpret_cast<const iovam_fast_view *>(d);
	const void *mag = __atomic_load_n(&iovam_lcore_(view, lc)->loaded[0], __ATOMIC_RELAXED);
	const rte_memseg_list *msl = rte_mem_virt2memseg_list(mag);
	ASSERT_NE(msl, nullptr) << "magazines not in DPDK memory";
	EXPECT_EQ(msl->socket_id, socket);
	void *page = reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(mag) &
	                                      ~static_cast<uintptr_t>(getpagesize() - 1));
	int status = -1;
	ASSERT_EQ(syscall(SYS_move_pages, 0, 1UL, &page, nullptr, &status, 0), 0)
	        << strerror(errno);
	EXPECT_EQ(status, socket) << "the kernel puts the magazines elsewhere";
}

TEST(Glue, InitWalkTranslatesEveryExistingPage)
{
	SegWalk w;
	ASSERT_EQ(rte_memseg_walk(seg_cb, &w), 0);
	EXPECT_GT(w.segs, 0u);
	EXPECT_FALSE(w.bad) << "a memseg without a unique IOVA inside the window";
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.no_iommu, 1u);
	EXPECT_EQ(st.static_memory, g_mode->events ? 0u : 1u);
	EXPECT_GT(st.mappings, 0u);
	if (std::string(g_mode->name) == "socket-mem") {
		// The preallocated pages are never freed: one mapping per
		// VA-contiguous run of them, not one per 2 MiB page.
		EXPECT_GE(st.mapped_bytes, 16u << 20);
		EXPECT_LT(st.mappings, st.mapped_bytes / (2u << 20));
	}
	if (!g_mode->events) {
		// Static memory: one mapping per VA-contiguous run, whatever its
		// size. --no-huge is one anonymous run; --legacy-mem lays pages out
		// in physical order, so runs break where physical contiguity does.
		EXPECT_GE(st.mapped_bytes, 128u << 20);
		if (std::string(g_mode->name) == "no-huge") {
			EXPECT_EQ(st.mappings, 1u);
		} else {
			EXPECT_LT(st.mappings, st.mapped_bytes / (2u << 20));
		}
	}
	EXPECT_EQ(st.dma_skipped, st.dma_maps + st.dma_unmaps);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0);
}

TEST(Glue, LargeMallocMapsAndFreeUnmaps)
{
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	const size_t len = big(38);
	void *p = rte_malloc("iovam_test", len, 0);
	ASSERT_NE(p, nullptr);
	expect_translated(p, len);
	// One region, one IOVA range: the buffer is IOVA-contiguous when it
	// came from one ALLOC event (always here: 38 MiB cannot fit in the
	// pages that existed).
	uint64_t first, last;
	ASSERT_EQ(iovam_dpdk_virt2iova(p, &first), 0);
	ASSERT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(p) + len - 1, &last), 0);
	iovam_dpdk_stats mid = stats();
	if (g_mode->events) {
		EXPECT_GT(mid.mem_events, before.mem_events);
		EXPECT_GE(mid.mappings, before.mappings + len / (2u << 20));
		// One mapping per 2 MiB memseg page: 512 per GiB.
		EXPECT_EQ((mid.mapped_bytes - before.mapped_bytes) / (2u << 20),
		          mid.mappings - before.mappings);
		EXPECT_EQ(last - first, len - 1);
	} else {
		EXPECT_EQ(mid.mem_events, 0u);
		EXPECT_EQ(mid.mappings, before.mappings);
	}
	rte_free(p);
	iovam_dpdk_stats after = stats();
	EXPECT_EQ(after.mappings, before.mappings);
	EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	EXPECT_EQ(after.mem_event_failures, 0u);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0);
}

// A FREE that does not match its ALLOC: X takes most of a new region, Y the
// rest of its last page; freeing X frees all pages but that one.
// The test's own view of DPDK's memory events (a second callback, after ours).
struct Event {
	rte_mem_event type;
	uintptr_t va;
	size_t len;
};
std::vector<Event> g_events;

void record_event(rte_mem_event type, const void *addr, size_t len, void *)
{
	g_events.push_back({type, reinterpret_cast<uintptr_t>(addr), len});
}

// A FREE that does not match its ALLOC (DPDK freed a 38 MiB allocation as
// 36 + 2 MiB): x gets a fresh region with room left in an end page; small
// blocks are allocated until one lands there; freeing x then frees every page
// of the region but that one, and freeing the small blocks frees the rest.
// After x's rte_free in PartialFreeUnmapsExactly: DPDK freed part of x's
// region, never the page a small block shares, and iovam unmapped exactly that.
void expect_partial_free(size_t n_events, uintptr_t reg_lo, uintptr_t reg_hi, uintptr_t shared,
                         const iovam_dpdk_stats &mid, const iovam_dpdk_stats &after_x)
{
	// DPDK freed part of the region: every page but the shared one
	// (and maybe the first, if x began in an older page).
	size_t freed = 0;
	for (size_t i = n_events; i < g_events.size(); i++) {
		const Event &e = g_events[i];
		EXPECT_EQ(e.type, RTE_MEM_EVENT_FREE);
		EXPECT_GE(e.va, reg_lo);
		EXPECT_LE(e.va + e.len, reg_hi);
		EXPECT_FALSE(e.va <= shared && shared < e.va + e.len) << "shared page freed";
		freed += e.len;
		uint64_t iova;
		EXPECT_EQ(iovam_dpdk_virt2iova(reinterpret_cast<void *>(e.va), &iova), -ENOENT);
	}
	EXPECT_GT(freed, 0u);
	EXPECT_LT(freed, reg_hi - reg_lo);
	printf("partial FREE: ALLOC event %zu MiB, FREE event(s) %zu MiB\n",
	       static_cast<size_t>((reg_hi - reg_lo) >> 20), freed >> 20);
	EXPECT_EQ(mid.mapped_bytes - after_x.mapped_bytes, freed);
	EXPECT_EQ(mid.mappings - after_x.mappings, freed / (2u << 20));
	EXPECT_EQ(after_x.dma_unmaps - mid.dma_unmaps, freed / (2u << 20));
}

TEST(Glue, PartialFreeUnmapsExactly)
{
	if (g_mode->events) {
		ASSERT_EQ(rte_mem_event_callback_register("iovam_test", record_event, nullptr), 0);
	}
	g_events.clear();
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	const size_t x_len = big(37);
	char *x = static_cast<char *>(rte_malloc("iovam_x", x_len, 0));
	ASSERT_NE(x, nullptr);
	// The region x came from, and its last page (shared with x's tail).
	uintptr_t reg_lo = 0, reg_hi = 0;
	for (const Event &e : g_events)
		if (e.type == RTE_MEM_EVENT_ALLOC &&
		    e.va <= reinterpret_cast<uintptr_t>(x) + x_len - 1 &&
		    reinterpret_cast<uintptr_t>(x) + x_len - 1 < e.va + e.len) {
			reg_lo = e.va;
			reg_hi = e.va + e.len;
		}
	if (g_mode->events) {
		ASSERT_NE(reg_hi, 0u) << "no ALLOC event covers x";
	}
	// DPDK's malloc carves from the END of a free element, so the room left
	// is usually in x's first page; check both ends.
	const uintptr_t pg = 2u << 20;
	const uintptr_t x_first = RTE_ALIGN_FLOOR(reinterpret_cast<uintptr_t>(x), pg);
	const uintptr_t x_last = RTE_ALIGN_FLOOR(reinterpret_cast<uintptr_t>(x) + x_len - 1, pg);
	std::vector<void *> small;
	uintptr_t shared = 0; // the page x shares with a small block
	for (int i = 0; i < 256 && shared == 0; i++) {
		void *p = rte_malloc("iovam_y", 64 << 10, 0);
		ASSERT_NE(p, nullptr);
		small.push_back(p);
		uintptr_t a = RTE_ALIGN_FLOOR(reinterpret_cast<uintptr_t>(p), pg);
		if (a == x_first || a == x_last) shared = a;
	}
	if (g_mode->events) { // static memory is never freed: any layout will do
		ASSERT_NE(shared, 0u) << "no small block landed in a page of x";
	}
	uint64_t y_iova;
	ASSERT_EQ(iovam_dpdk_virt2iova(small.back(), &y_iova), 0);
	iovam_dpdk_stats mid = stats();
	size_t n_events = g_events.size();
	rte_free(x);
	iovam_dpdk_stats after_x = stats();
	uint64_t y_iova2;
	ASSERT_EQ(iovam_dpdk_virt2iova(small.back(), &y_iova2), 0);
	EXPECT_EQ(y_iova, y_iova2);
	if (g_mode->events) expect_partial_free(n_events, reg_lo, reg_hi, shared, mid, after_x);
	for (void *p : small) rte_free(p);
	if (g_mode->events) {
		EXPECT_EQ(rte_mem_event_callback_unregister("iovam_test", nullptr), 0);
	}
	iovam_dpdk_stats after = stats();
	EXPECT_EQ(after.mappings, before.mappings);
	EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
	EXPECT_EQ(after.dma_failures, before.dma_failures);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
}

// External memory added to a malloc heap fires an ALLOC event for its pages
// (4 KiB here): translated, as one mapping (the heap never frees part of it),
// unmapped on removal. Under static memory there are no events, so it stays
// untranslated (documented).
TEST(Glue, ExternalHeapMemoryIsTranslated)
{
	const size_t len = 2u << 20, page = 4096;
	void *mem = mmap(nullptr, len, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	iovam_dpdk_stats before = stats();
	ASSERT_EQ(rte_malloc_heap_create("iovam_ext"), 0);
	ASSERT_EQ(rte_malloc_heap_memory_add("iovam_ext", mem, len, nullptr, len / page, page), 0);
	int socket = rte_malloc_heap_get_socket("iovam_ext");
	ASSERT_GE(socket, 0);
	void *p = rte_malloc_socket("iovam_ext_obj", 64 << 10, 0, socket);
	ASSERT_NE(p, nullptr);
	uint64_t iova;
	if (g_mode->events) {
		expect_translated(mem, len);
		EXPECT_EQ(stats().mappings - before.mappings, 1u);
		EXPECT_EQ(stats().mapped_bytes - before.mapped_bytes, len);
	} else {
		EXPECT_EQ(iovam_dpdk_virt2iova(p, &iova), -ENOENT);
	}
	rte_free(p);
	ASSERT_EQ(rte_malloc_heap_memory_remove("iovam_ext", mem, len), 0);
	ASSERT_EQ(rte_malloc_heap_destroy("iovam_ext"), 0);
	EXPECT_EQ(iovam_dpdk_virt2iova(mem, &iova), -ENOENT);
	EXPECT_EQ(stats().mappings, before.mappings);
	munmap(mem, len);
}

void check_pool(rte_mempool *mp, unsigned n)
{
	std::vector<rte_mbuf *> m(n);
	ASSERT_EQ(rte_pktmbuf_alloc_bulk(mp, m.data(), n), 0);
	std::set<uint64_t> seen;
	for (rte_mbuf *b : m) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_virt2iova(b->buf_addr, &iova), 0);
		ASSERT_EQ(b->buf_iova, iova);
		ASSERT_LT(b->buf_iova + b->buf_len, kWindowEnd);
		ASSERT_TRUE(seen.insert(b->buf_iova).second);
		// The whole buffer is one IOVA run.
		uint64_t end_iova;
		ASSERT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(b->buf_addr) + b->buf_len - 1,
		                               &end_iova),
		          0);
		ASSERT_EQ(end_iova, iova + b->buf_len - 1);
	}
	rte_pktmbuf_free_bulk(m.data(), n);
}

// A pool the ops cannot hold is refused (its ring size would wrap: n = 2^31
// used to crash), through the glue's call and through DPDK's own with the
// "iovam" ops; nothing is left behind.
TEST(Glue, PoolSizesItCannotHoldAreRefused)
{
	const unsigned int bad[] = {0, IOVAM_DPDK_POOL_MAX_OBJS + 1, 1u << 31, UINT32_MAX};
	iovam_dpdk_stats before = stats();
	for (unsigned int n : bad) {
		rte_errno = 0;
		EXPECT_EQ(iovam_dpdk_pktmbuf_pool_create("iovam_huge_pool", n, 0, 0,
		                                         RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY),
		          nullptr)
		        << n;
		EXPECT_EQ(rte_errno, EINVAL) << n;
		if (n == 0) continue; // DPDK's own call answers 0 itself
		rte_errno = 0;
		EXPECT_EQ(rte_pktmbuf_pool_create_by_ops("iovam_huge_ops", n, 0, 0,
		                                         RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY,
		                                         IOVAM_DPDK_MEMPOOL_OPS),
		          nullptr)
		        << n;
		EXPECT_NE(rte_errno, 0) << n;
		EXPECT_EQ(rte_mempool_lookup("iovam_huge_ops"), nullptr);
	}
	EXPECT_EQ(stats().pools, before.pools);
}

TEST(Glue, MbufPoolsCarryWindowIovas)
{
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	rte_mempool *a = rte_pktmbuf_pool_create_by_ops("iovam_ops_pool", 8191, 256, 0,
	                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY,
	                                                IOVAM_DPDK_MEMPOOL_OPS);
	ASSERT_NE(a, nullptr) << rte_strerror(rte_errno);
	rte_mempool *b = iovam_dpdk_pktmbuf_pool_create("iovam_api_pool", 4095, 0, 0,
	                                                RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	ASSERT_NE(b, nullptr) << rte_strerror(rte_errno);
	EXPECT_EQ(stats().pools, 2u);
	check_pool(a, 8191);
	check_pool(b, 4095);
	rte_mempool_free(b);
	rte_mempool_free(a);
	iovam_dpdk_stats after = stats();
	EXPECT_EQ(after.pools, 0u);
	if (g_mode->events) {
		EXPECT_EQ(after.mappings, before.mappings);
		EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	}
}

// net_ring ports loop TX back to RX: send our mbufs out of port 0, receive
// them, forward them to port 1, receive again.
TEST(Glue, PacketsForwardBetweenRingPorts)
{
	ASSERT_GE(rte_eth_dev_count_avail(), 2u);
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create("iovam_fwd_pool", 1023, 32, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	ASSERT_NE(mp, nullptr);
	for (uint16_t port = 0; port < 2; port++) {
		rte_eth_conf conf{};
		ASSERT_EQ(rte_eth_dev_configure(port, 1, 1, &conf), 0);
		ASSERT_EQ(rte_eth_rx_queue_setup(port, 0, 128, SOCKET_ID_ANY, nullptr, mp), 0);
		ASSERT_EQ(rte_eth_tx_queue_setup(port, 0, 128, SOCKET_ID_ANY, nullptr), 0);
		ASSERT_EQ(rte_eth_dev_start(port), 0);
	}
	constexpr unsigned kN = 32;
	rte_mbuf *tx[kN], *rx[kN];
	ASSERT_EQ(rte_pktmbuf_alloc_bulk(mp, tx, kN), 0);
	for (unsigned i = 0; i < kN; i++) {
		char *d = rte_pktmbuf_append(tx[i], 64);
		ASSERT_NE(d, nullptr);
		memset(d, static_cast<int>(i), 64);
	}
	ASSERT_EQ(rte_eth_tx_burst(0, 0, tx, kN), kN);
	ASSERT_EQ(rte_eth_rx_burst(0, 0, rx, kN), kN);
	ASSERT_EQ(rte_eth_tx_burst(1, 0, rx, kN), kN);
	ASSERT_EQ(rte_eth_rx_burst(1, 0, rx, kN), kN);
	for (unsigned i = 0; i < kN; i++) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_virt2iova(rx[i]->buf_addr, &iova), 0);
		EXPECT_EQ(rx[i]->buf_iova, iova);
		EXPECT_LT(rte_pktmbuf_iova(rx[i]), kWindowEnd);
		EXPECT_EQ(rte_pktmbuf_mtod(rx[i], uint8_t *)[0], i);
	}
	rte_pktmbuf_free_bulk(rx, kN);
	for (uint16_t port = 0; port < 2; port++) {
		ASSERT_EQ(rte_eth_dev_stop(port), 0);
		ASSERT_EQ(rte_eth_dev_close(port), 0);
	}
	rte_mempool_free(mp);
}

// ---- Dynamic mapping from several lcores, with the no-reuse check. ----

// One bit per 4 KiB IOVA page of the 32-bit window: set while mapped (from
// map until the unmap hook reports the unmap completed).
std::vector<std::atomic<uint64_t>> g_busy(kWindowEnd / kPage4k / 64);
std::atomic<uint64_t> g_reuse_errors{0};

void mark(uint64_t iova, uint64_t len, bool set)
{
	for (uint64_t pfn = iova / kPage4k; pfn < (iova + len + kPage4k - 1) / kPage4k; pfn++) {
		uint64_t bit = uint64_t{1} << (pfn % 64);
		uint64_t old =
		        set ? g_busy[pfn / 64].fetch_or(bit) : g_busy[pfn / 64].fetch_and(~bit);
		// Setting a set bit: handed out again before its unmap. (Clearing a
		// clear bit is fine: the hook also reports memory-event unmaps.)
		if (set && (old & bit) != 0) g_reuse_errors++;
	}
}

std::atomic<uint64_t> g_early_frees{0};

// Called when an unmap completed, before its IOVA goes back: the range must
// still be ALLOCATED in the domain (it is, in a magazine too; so this checks
// the memory-event FREE path's order, the bitmap the dynamic path's).
void unmap_hook(uint64_t iova, uint64_t len, void *)
{
	uint64_t lo, hi;
	iovam_domain *dom = iovam_dpdk_domain();
	if (dom != nullptr &&
	    (iovam_find(dom, iova / kPage4k, &lo, &hi) != 0 || hi < (iova + len - 1) / kPage4k))
		g_early_frees++;
	mark(iova, len, false);
}

struct DynArgs {
	std::vector<char> *buf;
	int iters;
	std::atomic<uint64_t> *errors;
	// Workers done (release). rte_eal_mp_wait_lcore() orders them too, but
	// through DPDK's atomics, which ThreadSanitizer cannot see.
	std::atomic<unsigned> finished{0};
};

// Wait for every lcore worker, visibly to ThreadSanitizer as well.
void wait_workers(DynArgs &a, unsigned launched)
{
	rte_eal_mp_wait_lcore();
	while (a.finished.load(std::memory_order_acquire) != launched) std::this_thread::yield();
}

// An lcore takes its completed unmaps' IOVAs back at its next map, unmap or
// iovam_dpdk_service_run(): after drain(), have every lcore that mapped do
// the last, so that every IOVA is back in the domain.
void reap_on_every_lcore()
{
	unsigned lcore;
	RTE_LCORE_FOREACH_WORKER(lcore)
	{
		if (rte_eal_lcore_role(lcore) != ROLE_RTE) continue;
		EXPECT_EQ(rte_eal_remote_launch(
		                  [](void *) {
			                  (void)iovam_dpdk_service_run();
			                  return 0;
		                  },
		                  nullptr, lcore),
		          0);
	}
	rte_eal_mp_wait_lcore();
	(void)iovam_dpdk_service_run();
}

int dyn_worker(void *arg)
{
	auto &a = *static_cast<DynArgs *>(arg);
	uint64_t held_iova[8] = {};
	size_t held_len[8] = {};
	char *held_va[8] = {};
	unsigned seed = rte_lcore_id() + 1;
	for (int i = 0; i < a.iters; i++) {
		unsigned slot = static_cast<unsigned>(i) % 8;
		if (held_len[slot] != 0) {
			if (iovam_dpdk_unmap(held_va[slot], held_iova[slot], held_len[slot]) != 0)
				(*a.errors)++;
			held_len[slot] = 0;
		}
		seed = seed * 1103515245 + 12345;
		size_t off = (seed >> 8) % (a.buf->size() - 70000);
		size_t len = 1 + (seed >> 4) % 65536;
		uint64_t iova;
		int rc = iovam_dpdk_map(a.buf->data() + off, len, &iova);
		if (rc == -ENOMEM || rc == -EAGAIN) continue;
		if (rc != 0) {
			(*a.errors)++;
			continue;
		}
		mark(iova - iova % kPage4k, (iova % kPage4k) + len, true);
		held_va[slot] = a.buf->data() + off;
		held_iova[slot] = iova;
		held_len[slot] = len;
		if (rte_lcore_id() == rte_get_main_lcore() && !g_mode->service_lcore && i % 64 == 0)
			(void)iovam_dpdk_service_run();
	}
	for (unsigned s = 0; s < 8; s++)
		if (held_len[s] != 0 &&
		    iovam_dpdk_unmap(held_va[s], held_iova[s], held_len[s]) != 0)
			(*a.errors)++;
	a.finished.fetch_add(1, std::memory_order_release);
	return 0;
}

// Start dyn_worker on every worker lcore; how many were started (a failed
// launch fails the test).
unsigned launch_dyn_workers(DynArgs &a)
{
	unsigned lcore, launched = 0;
	RTE_LCORE_FOREACH_WORKER(lcore)
	{
		if (rte_eal_lcore_role(lcore) != ROLE_RTE) continue;
		if (rte_eal_remote_launch(dyn_worker, &a, lcore) == 0)
			launched++;
		else
			ADD_FAILURE() << "cannot launch a worker on lcore " << lcore;
	}
	return launched;
}

TEST(Glue, DynamicMapFromSeveralLcoresNeverReusesBeforeUnmap)
{
	uint64_t ranges_before = live_ranges();
	iovam_dpdk_test_set_unmap_hook(unmap_hook, nullptr);
	std::vector<char> buf(8u << 20);
	std::atomic<uint64_t> errors{0};
	DynArgs args{&buf, 100000, &errors};
	unsigned launched = launch_dyn_workers(args);
	// A thread without an lcore id takes the shared path.
	std::thread other([&] { dyn_worker(&args); });
	dyn_worker(&args);
	other.join();
	wait_workers(args, launched + 2); // + the std::thread and this thread
	drain();
	reap_on_every_lcore();
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	EXPECT_EQ(errors.load(), 0u);
	EXPECT_EQ(g_reuse_errors.load(), 0u) << "an IOVA was handed out again before its unmap";
	EXPECT_EQ(g_early_frees.load(), 0u) << "an IOVA went back before its unmap completed";
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.dyn_maps, st.dyn_unmaps);
	EXPECT_EQ(st.bad_unmaps, 0u);
	EXPECT_GE(st.dyn_maps, 180000u); // 2 x 100000 minus transient -EAGAIN skips
	if (g_mode->service_lcore) {
		EXPECT_GT(st.service_runs, 0u);
	}
	(void)iovam_cache_flush(iovam_dpdk_domain(), IOVAM_CACHE_NONE);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
}

// Stress (fixed seed, not a benchmark): memory events and pool churn on the
// main lcore while the other lcore maps and unmaps application buffers and
// the service drains; everything must come back.
TEST(Glue, EventsPoolsAndDynamicMapsTogether)
{
	uint64_t ranges_before = live_ranges();
	iovam_dpdk_stats before = stats();
	iovam_dpdk_test_set_unmap_hook(unmap_hook, nullptr);
	std::vector<char> buf(8u << 20);
	std::atomic<uint64_t> errors{0};
	DynArgs args{&buf, 50000, &errors};
	unsigned launched = launch_dyn_workers(args);
	std::thread other([&] { dyn_worker(&args); });
	unsigned seed = 42;
	for (int i = 0; i < 40; i++) {
		seed = seed * 1103515245 + 12345;
		size_t len = big(1 + (seed >> 8) % 40);
		void *p = rte_malloc("iovam_stress", len, 0);
		ASSERT_NE(p, nullptr);
		expect_translated(p, len);
		if (i % 4 == 0) {
			rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create(
			        "iovam_stress_pool", 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
			        SOCKET_ID_ANY);
			ASSERT_NE(mp, nullptr);
			check_pool(mp, 2047);
			rte_mempool_free(mp);
		}
		rte_free(p);
		if (!g_mode->service_lcore) (void)iovam_dpdk_service_run();
	}
	other.join();
	wait_workers(args, launched + 1); // + the std::thread
	drain();
	reap_on_every_lcore();
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	EXPECT_EQ(errors.load(), 0u);
	EXPECT_EQ(g_reuse_errors.load(), 0u);
	EXPECT_EQ(g_early_frees.load(), 0u) << "an IOVA went back before its unmap completed";
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.mem_event_failures, before.mem_event_failures);
	EXPECT_EQ(st.dma_failures, before.dma_failures);
	EXPECT_EQ(st.pools, 0u);
	if (g_mode->events) {
		EXPECT_EQ(st.mappings, before.mappings);
	}
	(void)iovam_cache_flush(iovam_dpdk_domain(), IOVAM_CACHE_NONE);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
}

TEST(Glue, ServiceRunsOnAppLcoreThroughRteService)
{
	uint32_t id;
	ASSERT_EQ(iovam_dpdk_service_id(&id), 0);
	if (g_mode->service_lcore) {
		EXPECT_EQ(rte_service_lcore_count(), 1);
		EXPECT_EQ(rte_service_map_lcore_get(id, 1), 1);
	} else {
		std::vector<char> buf(1 << 20);
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 100, &iova), 0);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 100), 0);
		EXPECT_EQ(stats().dyn_pending, 1u);
		ASSERT_EQ(rte_service_run_iter_on_app_lcore(id, 1), 0);
		EXPECT_EQ(stats().dyn_pending, 0u);
	}
}

TEST(Glue, UnmapQueueOverflowUnmapsSynchronously)
{
	std::vector<char> buf(64 << 10);
	uint64_t before = stats().dyn_sync_unmaps;
	for (int i = 0; i < 3000; i++) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 4096, &iova), 0);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 4096), 0);
	}
	if (!g_mode->service_lcore) {
		// Each time the queue (1024) is full the lcore drains it itself.
		EXPECT_GE(stats().dyn_sync_unmaps - before, 2u);
		EXPECT_LE(stats().dyn_pending, 1024u);
	}
	drain();
}

// One service run completes a queue that holds more than a drain batch
// (256): a pass takes more rounds while a queue gives full batches, so a
// service lcore asked by a half-full queue empties it at once.
TEST(Glue, OneServiceRunCompletesAQueueLongerThanABatch)
{
	drain();
	std::vector<char> buf(64 << 10);
	constexpr unsigned kQueued = 700; // below the queue's 1024: no sync unmap
	const iovam_dpdk_stats before = stats();
	for (unsigned i = 0; i < kQueued; i++) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 4096, &iova), 0);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 4096), 0);
	}
	if (!g_mode->service_lcore) { // a service lcore drains whenever it likes
		EXPECT_EQ(stats().dyn_pending, kQueued);
		ASSERT_GE(iovam_dpdk_service_run(), 0);
		const iovam_dpdk_stats st = stats();
		EXPECT_EQ(st.dyn_pending, 0u);
		EXPECT_EQ(st.dyn_unmaps - before.dyn_unmaps, kQueued);
		EXPECT_EQ(st.dyn_sync_unmaps, before.dyn_sync_unmaps);
	}
	drain();
}

// The drain in progress holds every completion until this gate opens (the
// unmap hook runs under the drain lock, for each completed unmap).
std::atomic<bool> g_drain_gate_open{true};
std::atomic<uint64_t> g_drain_gate_waits{0};

void gated_unmap_hook(uint64_t, uint64_t, void *)
{
	if (g_drain_gate_open.load()) return;
	g_drain_gate_waits.fetch_add(1);
	while (!g_drain_gate_open.load()) usleep(1000);
}

// An lcore whose queue is full while another thread drains waits for that
// drain to complete its entries (spinning, then on the drain lock), and then
// queues: it does not drain its own queue behind it (a sync unmap), nor
// count one when the drain it waited for left it nothing to do.
TEST(Glue, AFullQueueWaitsForTheDrainInProgressInsteadOfDrainingItself)
{
	drain();
	std::vector<char> buf(64 << 10);
	const iovam_dpdk_stats before = stats();
	g_drain_gate_open.store(false);
	g_drain_gate_waits.store(0);
	iovam_dpdk_test_set_unmap_hook(gated_unmap_hook, nullptr);
	auto pair = [&] {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 4096, &iova), 0);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 4096), 0);
	};
	for (int i = 0; i < 300; i++) pair();
	// A drain that stops at its first completion, holding the drain lock:
	// a service lcore's own (its period or the half-full request), or,
	// without one, a thread without an lcore running the service.
	std::thread drainer;
	if (!g_mode->service_lcore) drainer = std::thread([] { (void)iovam_dpdk_service_run(); });
	const uint64_t deadline = rte_get_timer_cycles() + 10 * rte_get_timer_hz();
	while (g_drain_gate_waits.load() == 0 && rte_get_timer_cycles() < deadline) usleep(100);
	ASSERT_NE(g_drain_gate_waits.load(), 0u) << "no drain started";
	// Opens the gate in 200 ms. Until then nothing completes, so the queue
	// is full after 1024 - 300 more unmaps and the next one must wait. No
	// more than that one: once the gate opens and that drain ends, a full
	// queue with nobody draining is drained by its lcore, as it should be.
	std::thread opener([] {
		usleep(200000);
		g_drain_gate_open.store(true);
	});
	const uint64_t t0 = rte_get_timer_cycles();
	for (int i = 0; i < 1024 - 300 + 1; i++) pair();
	const double waited_s = static_cast<double>(rte_get_timer_cycles() - t0) /
	                        static_cast<double>(rte_get_timer_hz());
	opener.join();
	if (drainer.joinable()) drainer.join();
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	EXPECT_GE(waited_s, 0.1) << "the queue never filled: the test proves nothing";
	EXPECT_EQ(stats().dyn_sync_unmaps, before.dyn_sync_unmaps);
	drain();
	EXPECT_EQ(stats().dyn_sync_unmaps, before.dyn_sync_unmaps);
}

// Each kind of DPDK memory is cut into mappings as the README says:
// preallocated (never freed) one per VA-contiguous run, freeable memory one
// per memseg page, at init or grown later by an ALLOC event.
TEST(Glue, MappingsAreCountedByKindOfMemory)
{
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.mem_maps_preallocated + st.mem_maps_init_pages + st.mem_maps_grown +
	                  st.dyn_maps,
	          st.dma_maps + st.dma_queued)
	        << "every DMA map is of one kind";
	if (!g_mode->events) {
		EXPECT_GE(st.mem_maps_preallocated, 1u);
		EXPECT_EQ(st.mem_maps_init_pages + st.mem_maps_grown, 0u);
		return;
	}
	if (std::string(g_mode->name) == "socket-mem") {
		EXPECT_GE(st.mem_maps_preallocated, 1u);
		EXPECT_GE(st.mem_bytes_preallocated, 16u << 20);
		EXPECT_LT(st.mem_maps_preallocated, st.mem_bytes_preallocated / (2u << 20))
		        << "preallocated memory is mapped per run, not per page";
	}
	// Grow the heap: each new page is one mapping of its page size.
	void *p = rte_malloc("iovam_kinds", 64u << 20, 0);
	ASSERT_NE(p, nullptr);
	iovam_dpdk_stats grown = stats();
	EXPECT_GT(grown.mem_events, st.mem_events);
	uint64_t maps = grown.mem_maps_grown - st.mem_maps_grown;
	uint64_t bytes = grown.mem_bytes_grown - st.mem_bytes_grown;
	ASSERT_GE(maps, 1u);
	const rte_memseg_list *msl = rte_mem_virt2memseg_list(p);
	ASSERT_NE(msl, nullptr);
	EXPECT_EQ(bytes, maps * msl->page_sz);
	rte_free(p);
}

// ---- Strict unmaps, completion, and where the drain's IOVAs go. ----

struct UnmapLog {
	std::mutex lock;
	std::vector<uint64_t> iovas; // page-aligned IOVAs whose unmap completed
	bool saw(uint64_t iova)
	{
		std::lock_guard lk(lock);
		for (uint64_t i : iovas)
			if (i == (iova & ~(kPage4k - 1))) return true;
		return false;
	}
};

void log_unmap(uint64_t iova, uint64_t, void *arg)
{
	auto *log = static_cast<UnmapLog *>(arg);
	std::lock_guard lk(log->lock);
	log->iovas.push_back(iova);
}

TEST(Glue, StrictUnmapIsDoneBeforeItReturns)
{
	drain();
	UnmapLog log;
	iovam_dpdk_test_set_unmap_hook(log_unmap, &log);
	std::vector<char> buf(64 << 10);
	iovam_dpdk_stats before = stats();
	// Three lazy unmaps queued, then a strict one: it completes its lcore's
	// queue, itself included, before it returns.
	uint64_t iova[4], seq[4];
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(iovam_dpdk_map(buf.data() + i * 8192, 100, &iova[i]), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data() + i * 8192, iova[i], 100, 0, &seq[i]), 0);
	ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data() + 3 * 8192, iova[3], 100,
	                              IOVAM_DPDK_UNMAP_F_STRICT, &seq[3]),
	          0);
	for (int i = 0; i < 4; i++) {
		EXPECT_TRUE(log.saw(iova[i])) << i;
		EXPECT_EQ(iovam_dpdk_unmap_done(seq[i]), 1) << i;
		EXPECT_NE(seq[i], 0u);
	}
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.dyn_pending, 0u);
	EXPECT_EQ(st.dyn_unmaps - before.dyn_unmaps, 4u);
	EXPECT_EQ(st.dyn_strict_unmaps - before.dyn_strict_unmaps, 1u);
	EXPECT_EQ(st.dma_unmaps - before.dma_unmaps, 4u); // done (skipped: no IOMMU), not queued
	// Gone from the live-mapping table: a second unmap is refused.
	EXPECT_EQ(iovam_dpdk_unmap(buf.data() + 3 * 8192, iova[3], 100), -ENOENT);
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
}

TEST(Glue, UnmapWaitReturnsOnlyAfterThatUnmapCompleted)
{
	drain();
	UnmapLog log;
	iovam_dpdk_test_set_unmap_hook(log_unmap, &log);
	std::vector<char> buf(64 << 10);
	uint64_t iova[6], seq[6];
	for (int i = 0; i < 6; i++) {
		ASSERT_EQ(iovam_dpdk_map(buf.data() + i * 8192, 3000, &iova[i]), 0);
		ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data() + i * 8192, iova[i], 3000, 0, &seq[i]), 0);
		EXPECT_GT(seq[i], i > 0 ? seq[i - 1] : 0);
	}
	if (!g_mode->service_lcore) {
		// Nobody drains here but us: pending until we wait.
		for (int i = 0; i < 6; i++) {
			EXPECT_EQ(iovam_dpdk_unmap_done(seq[i]), 0) << i;
			EXPECT_FALSE(log.saw(iova[i])) << i;
		}
	}
	ASSERT_EQ(iovam_dpdk_unmap_wait(seq[2]), 0);
	for (int i = 0; i <= 2; i++) {
		EXPECT_TRUE(log.saw(iova[i])) << i;
		EXPECT_EQ(iovam_dpdk_unmap_done(seq[i]), 1) << i;
	}
	for (int i = 3; i < 6; i++) EXPECT_EQ(iovam_dpdk_unmap_wait(seq[i]), 0) << i;
	EXPECT_TRUE(log.saw(iova[5]));
	// From a thread without an lcore id: the shared queue, same contract.
	std::thread t([&] {
		uint64_t io, sq;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &io), 0);
		ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data(), io, 10, 0, &sq), 0);
		ASSERT_EQ(iovam_dpdk_unmap_wait(sq), 0);
		EXPECT_TRUE(log.saw(io));
		EXPECT_EQ(iovam_dpdk_unmap_done(sq), 1);
	});
	t.join();
	// Bad input: documented errors, nothing changed.
	EXPECT_EQ(iovam_dpdk_unmap_done(0), -EINVAL);
	EXPECT_EQ(iovam_dpdk_unmap_done(UINT64_MAX), -EINVAL);
	EXPECT_EQ(iovam_dpdk_unmap_wait(0), -EINVAL);
	uint64_t io, sq = 0;
	ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &io), 0);
	EXPECT_EQ(iovam_dpdk_unmap_ex(buf.data(), io, 10, 1u << 7, &sq), -EINVAL);
	EXPECT_EQ(sq, 0u);
	EXPECT_EQ(iovam_dpdk_unmap_ex(buf.data(), io, 10, IOVAM_DPDK_UNMAP_F_STRICT, &sq), 0);
	EXPECT_TRUE(log.saw(io));
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
}

TEST(Glue, FailedUnmapIsNotReportedDoneUntilItsRetrySucceeds)
{
	if (g_mode->service_lcore) {
		// The service retries on its own: the window where the failure
		// shows is not ours to hold open. The contract is checked in the
		// other modes; here the strict failure path only.
		iovam_dpdk_test_fail_dma_unmap(1);
		std::vector<char> buf(8192);
		uint64_t io, sq = 0;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &io), 0);
		int rc = iovam_dpdk_unmap_ex(buf.data(), io, 10, IOVAM_DPDK_UNMAP_F_STRICT, &sq);
		iovam_dpdk_test_fail_dma_unmap(0);
		EXPECT_TRUE(rc == -EIO || rc == 0) << rc;
		EXPECT_EQ(iovam_dpdk_unmap_wait(sq), 0);
		return;
	}
	drain();
	UnmapLog log;
	iovam_dpdk_test_set_unmap_hook(log_unmap, &log);
	std::vector<char> buf(64 << 10);
	uint64_t iova[3], seq[3];
	ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &iova[0]), 0);
	ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data(), iova[0], 10, 0, &seq[0]), 0);
	ASSERT_EQ(iovam_dpdk_unmap_wait(seq[0]), 0); // before the failures: stays done
	{
		std::lock_guard lk(log.lock);
		log.iovas.clear(); // iova[0] is free again: the next maps may reuse it
	}
	iovam_dpdk_test_fail_dma_unmap(1);
	ASSERT_EQ(iovam_dpdk_map(buf.data() + 8192, 10, &iova[1]), 0);
	ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data() + 8192, iova[1], 10, 0, &seq[1]), 0);
	EXPECT_EQ(iovam_dpdk_unmap_wait(seq[1]), -EIO);
	EXPECT_EQ(iovam_dpdk_unmap_done(seq[1]), 0);
	EXPECT_FALSE(log.saw(iova[1]));
	// Strict, failing: accepted, -EIO, and pending too.
	ASSERT_EQ(iovam_dpdk_map(buf.data() + 16384, 10, &iova[2]), 0);
	EXPECT_EQ(iovam_dpdk_unmap_ex(buf.data() + 16384, iova[2], 10, IOVAM_DPDK_UNMAP_F_STRICT,
	                              &seq[2]),
	          -EIO);
	EXPECT_EQ(iovam_dpdk_unmap_done(seq[2]), 0);
	EXPECT_EQ(iovam_dpdk_unmap_done(seq[0]), 1);
	EXPECT_EQ(stats().unmaps_retrying, 2u);
	iovam_dpdk_test_fail_dma_unmap(0);
	EXPECT_EQ(iovam_dpdk_unmap_wait(seq[1]), 0); // the retry succeeds
	EXPECT_TRUE(log.saw(iova[1]));
	EXPECT_TRUE(log.saw(iova[2]));
	EXPECT_EQ(iovam_dpdk_unmap_done(seq[2]), 1);
	EXPECT_EQ(stats().unmaps_retrying, 0u);
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
}

// The drain runs on a thread that never maps (here a std::thread without an
// lcore id, as EAL's alarm thread; or the service lcore): the IOVAs of the
// unmaps it completes must reach the unmapping lcore's magazines (it reaps
// them itself, dyn_queue.h), not the drain thread's cache or the tree, so
// that lcore's next maps are magazine hits, not tree allocations.
TEST(Glue, DrainOnAnotherThreadRefillsTheMappingLcoresMagazines)
{
	drain();
	iovam_domain *dom = iovam_dpdk_domain();
	std::vector<char> buf(4u << 20);
	const unsigned n = 4 * IOVAM_MAG_SIZE;
	std::vector<uint64_t> iova(n), seq(n);
	auto map_all = [&] {
		for (unsigned i = 0; i < n; i++)
			ASSERT_EQ(iovam_dpdk_map(buf.data() + i * kPage4k, 64, &iova[i]), 0);
	};
	auto unmap_all = [&] {
		for (unsigned i = 0; i < n; i++)
			ASSERT_EQ(iovam_dpdk_unmap_ex(buf.data() + i * kPage4k, iova[i], 64, 0,
			                              &seq[i]),
			          0);
	};
	(void)iovam_cache_flush(dom, IOVAM_CACHE_NONE); // empty magazines and depot
	map_all();
	unmap_all();
	iovam_dpdk_stats before = stats();
	// Completed by another thread.
	std::thread t([&] {
		for (unsigned i = 0; i < n; i++) ASSERT_EQ(iovam_dpdk_unmap_wait(seq[i]), 0);
	});
	t.join();
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.dyn_unmaps - before.dyn_unmaps, before.dyn_pending);
	// Not given away by the drain thread: they wait for this lcore.
	EXPECT_EQ(st.dyn_returned_to_depot, before.dyn_returned_to_depot);
	EXPECT_EQ(st.dyn_returned_to_tree, before.dyn_returned_to_tree);
	iovam_cache_stats c0{}, c1{};
	ASSERT_EQ(iovam_cache_stats_get(dom, rte_lcore_id(), &c0), 0);
	map_all();
	ASSERT_EQ(iovam_cache_stats_get(dom, rte_lcore_id(), &c1), 0);
	EXPECT_EQ(c1.alloc_misses - c0.alloc_misses, 0u) << "maps went to the tree";
	EXPECT_EQ(c1.alloc_hits - c0.alloc_hits, n);
	unmap_all();
	drain();
	EXPECT_EQ(iovam_verify(dom), 0) << iovam_verify_error(dom);
}

// The telemetry commands, through EAL's telemetry socket, as
// dpdk-telemetry.py reads them.
std::string telemetry(const char *cmd)
{
	std::string path = std::string(rte_eal_get_runtime_dir()) + "/dpdk_telemetry.v2";
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0) return "socket failed";
	sockaddr_un sun{};
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
	std::string out;
	char buf[16384];
	if (connect(fd, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)) == 0 &&
	    read(fd, buf, sizeof(buf)) > 0 && // the greeting
	    write(fd, cmd, strlen(cmd)) == static_cast<ssize_t>(strlen(cmd))) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) out.assign(buf, static_cast<size_t>(n));
	} else {
		out = "cannot talk to " + path;
	}
	close(fd);
	return out;
}

TEST(Glue, TelemetryReportsStatsAndPools)
{
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create("iovam_tel_pool", 511, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	ASSERT_NE(mp, nullptr);
	// Every field of struct iovam_dpdk_stats (stats_fields.h fails to
	// compile unless its rows are the struct's fields), and nothing else.
	std::string st = telemetry("/iovam/stats");
	size_t keys = 0;
#define X(type, name, source) #name,
	for (const char *key : {IOVAM_DPDK_STATS_FIELDS(X)}) {
#undef X
		EXPECT_NE(st.find(std::string("\"") + key + "\":"), std::string::npos)
		        << key << ": " << st;
		keys++;
	}
	size_t printed = 0;
	for (size_t at = st.find("\":"); at != std::string::npos; at = st.find("\":", at + 1))
		printed++;
	EXPECT_EQ(printed, 2 + keys) << st; // the command's name, "initialised", the fields
	EXPECT_NE(st.find("\"pools\":1"), std::string::npos) << st;
	EXPECT_NE(st.find("\"initialised\":1"), std::string::npos) << st;
	std::string pools = telemetry("/iovam/pools");
	EXPECT_NE(pools.find("\"iovam_tel_pool\":["), std::string::npos) << pools;
	rte_mempool_free(mp);
	EXPECT_EQ(telemetry("/iovam/pools"), "{\"/iovam/pools\":{}}");
}

// /iovam/numa reports the caches per socket (all placed) and a pool's
// memory on the socket it was asked for.
TEST(Glue, NumaTelemetryPerSocket)
{
	const int socket = static_cast<int>(rte_lcore_to_socket_id(rte_lcore_id()));
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create("iovam_numa_pool", 511, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	ASSERT_NE(mp, nullptr);
	const std::string numa = telemetry("/iovam/numa");
	const std::string pool_key = "\"pool_iovam_numa_pool\":[" + std::to_string(socket) + "," +
	                             std::to_string(socket) + ",";
	EXPECT_NE(numa.find(pool_key), std::string::npos) << numa;
	const std::string socket_key = "\"socket_" + std::to_string(socket) + "\":[";
	const size_t at = numa.find(socket_key);
	ASSERT_NE(at, std::string::npos) << numa;
	unsigned long lcores = 0, placed = 0;
	ASSERT_EQ(sscanf(numa.c_str() + at + socket_key.size(), "%lu,%lu", &lcores, &placed), 2)
	        << numa;
	const size_t end = numa.find(']', at);
	ASSERT_NE(end, std::string::npos) << numa;
	const size_t values = std::count(numa.begin() + at, numa.begin() + end, ',') + 1;
#define X(name) +1
	// lcores, placed, the cache counters, the socket's depot ranges
	EXPECT_EQ(values, 3u IOVAM_CACHE_STATS_FIELDS(X)) << numa;
#undef X
	EXPECT_EQ(lcores, rte_lcore_count()) << numa; // one socket here
	EXPECT_EQ(placed, lcores) << numa;
	rte_mempool_free(mp);
}

// ---- Fault paths. ----

TEST(Glue, FailedMappingFailsTheEventCleanly)
{
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	iovam_dpdk_test_fail_dma_map(1);
	void *p = rte_malloc("iovam_fail", big(24), 0);
	std::vector<char> buf(8192);
	uint64_t iova;
	EXPECT_EQ(iovam_dpdk_map(buf.data(), 100, &iova), -EIO);
	iovam_dpdk_test_fail_dma_map(0);
	ASSERT_NE(p, nullptr); // DPDK's allocation itself succeeds
	iovam_dpdk_stats mid = stats();
	EXPECT_EQ(mid.mappings, before.mappings);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	if (g_mode->events) {
		EXPECT_EQ(mid.mem_event_failures, before.mem_event_failures + 1);
		EXPECT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(p) + big(12), &iova), -ENOENT);
	}
	rte_free(p);
	EXPECT_EQ(stats().mappings, before.mappings);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	// A pool on memory without IOVAs cannot be created.
	iovam_dpdk_test_fail_dma_map(1);
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create("iovam_fail_pool", 16383, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	iovam_dpdk_test_fail_dma_map(0);
	if (g_mode->events) {
		EXPECT_EQ(mp, nullptr);
		EXPECT_EQ(rte_errno, EFAULT);
	}
	rte_mempool_free(mp);
	EXPECT_EQ(stats().pools, 0u);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
}

TEST(Glue, BadInputGetsDocumentedErrors)
{
	uint64_t iova;
	char c;
	EXPECT_EQ(iovam_dpdk_init(nullptr), -EALREADY);
	EXPECT_EQ(iovam_dpdk_virt2iova(nullptr, &iova), -EINVAL);
	EXPECT_EQ(iovam_dpdk_virt2iova(&c, nullptr), -EINVAL);
	EXPECT_EQ(iovam_dpdk_virt2iova(&c, &iova), -ENOENT); // stack memory
	EXPECT_EQ(iovam_dpdk_map(nullptr, 1, &iova), -EINVAL);
	EXPECT_EQ(iovam_dpdk_map(&c, 0, &iova), -EINVAL);
	EXPECT_EQ(iovam_dpdk_map(&c, 1, nullptr), -EINVAL);
	EXPECT_EQ(iovam_dpdk_map(&c, SIZE_MAX, &iova), -EINVAL);
	EXPECT_EQ(iovam_dpdk_map(&c, uint64_t{1} << 33, &iova), -ENOMEM);
	// iovam_dpdk_unmap()'s table: BadUnmapsAreRefusedAndChangeNothing.
	EXPECT_EQ(iovam_dpdk_service_id(nullptr), -EINVAL);
	EXPECT_EQ(iovam_dpdk_stats_get(nullptr), -EINVAL);
	EXPECT_EQ(iovam_dpdk_conf_from_env(nullptr), -EINVAL);
	setenv("IOVAM_DMA_BITS", "x32", 1);
	iovam_dpdk_conf conf{};
	EXPECT_EQ(iovam_dpdk_conf_from_env(&conf), -EINVAL);
	setenv("IOVAM_DMA_BITS", "0x28", 1);
	EXPECT_EQ(iovam_dpdk_conf_from_env(&conf), 0);
	EXPECT_EQ(conf.dma_bits, 40u);
	// A failed parse leaves conf untouched, even the variables before it.
	setenv("IOVAM_IOVA_END", "0100000000000", 1); // decimal, not octal
	EXPECT_EQ(iovam_dpdk_conf_from_env(&conf), 0);
	EXPECT_EQ(conf.iova_end, 100000000000u);
	const iovam_dpdk_conf before = conf;
	for (const char *bad : {"abc", "3", "0x", "0x0x10", " 4096", "+4096", "-1", "4096 ",
	                        "99999999999999999999"}) {
		setenv("IOVAM_GRANULE", bad, 1);
		EXPECT_EQ(iovam_dpdk_conf_from_env(&conf), -EINVAL) << bad;
		EXPECT_EQ(memcmp(&conf, &before, sizeof(conf)), 0) << bad;
	}
	unsetenv("IOVAM_GRANULE");
	unsetenv("IOVAM_IOVA_END");
	unsetenv("IOVAM_DMA_BITS");
	rte_errno = 0;
	EXPECT_EQ(iovam_dpdk_pktmbuf_pool_create(nullptr, 63, 0, 0, 2048, SOCKET_ID_ANY), nullptr);
	EXPECT_EQ(rte_errno, EINVAL);
	EXPECT_EQ(iovam_dpdk_pktmbuf_pool_create("iovam_zero", 0, 0, 0, 2048, SOCKET_ID_ANY),
	          nullptr);
	EXPECT_EQ(rte_errno, EINVAL);
}

// What a refused unmap must leave as it was.
struct DynSnapshot {
	uint64_t dyn_maps, dyn_unmaps, dyn_pending, mappings, mapped_bytes, unmaps_retrying;
	bool operator==(const DynSnapshot &) const = default;
};

DynSnapshot dyn_snapshot()
{
	iovam_dpdk_stats st = stats();
	return {st.dyn_maps, st.dyn_unmaps,   st.dyn_pending,
	        st.mappings, st.mapped_bytes, st.unmaps_retrying};
}

// The glue API's bad-input table for unmap: each bad call gets its documented
// error, counts in bad_unmaps and changes nothing; the real unmaps still work.
TEST(Glue, BadUnmapsAreRefusedAndChangeNothing)
{
	std::vector<char> buf(64 << 10);
	char *a = buf.data() + 100; // not page aligned
	char *b = buf.data() + 20000;
	uint64_t ia, ib;
	ASSERT_EQ(iovam_dpdk_map(a, 5000, &ia), 0);
	ASSERT_EQ(iovam_dpdk_map(b, 300, &ib), 0);
	const uint64_t off_a = ia % kPage4k;
	// An IOVA page in the window that no dynamic mapping starts at (maps
	// allocate top-down: go below).
	uint64_t never = (ia / kPage4k - 1000) * kPage4k;
	if (never / kPage4k == ib / kPage4k) never -= 1000 * kPage4k;
	ASSERT_GE(never, kPage4k);
	void *dpdk = rte_malloc("iovam_bad_unmap", 4096, 4096);
	ASSERT_NE(dpdk, nullptr);
	uint64_t idpdk;
	ASSERT_EQ(iovam_dpdk_virt2iova(dpdk, &idpdk), 0);

	struct Case {
		const char *what;
		void *va;
		uint64_t iova;
		size_t len;
		int rc;
		bool counted; // in bad_unmaps (not: NULL va, len 0, va + len overflows)
	};
	const Case cases[] = {
	        {"never mapped", a, never + off_a, 5000, -ENOENT, true},
	        {"inside a mapping, not its start", a + 4096, ia + 4096, 100, -ENOENT, true},
	        {"DPDK memory, mapped by the memory-event hook", dpdk, idpdk, 4096, -ENOENT, true},
	        {"another length", a, ia, 4000, -EINVAL, true},
	        {"another length, same pages", a, ia, 4999, -EINVAL, true},
	        {"another va at the same offset", a + 8192, ia, 5000, -EINVAL, true},
	        {"someone else's mapping", a, ib - ib % kPage4k + off_a, 5000, -EINVAL, true},
	        {"va and iova at different offsets", a + 1, ia, 5000, -EINVAL, true},
	        {"below the window", a, off_a, 5000, -EINVAL, true},
	        {"above the window", a, kWindowEnd + off_a, 5000, -EINVAL, true},
	        {"va + len overflows", reinterpret_cast<void *>(UINTPTR_MAX - 100), ia, 5000,
	         -EINVAL, false},
	        {"NULL va", nullptr, ia, 5000, -EINVAL, false},
	        {"zero length", a, ia, 0, -EINVAL, false},
	};
	for (const Case &c : cases) {
		DynSnapshot before = dyn_snapshot();
		uint64_t bad = stats().bad_unmaps;
		EXPECT_EQ(iovam_dpdk_unmap(c.va, c.iova, c.len), c.rc) << c.what;
		EXPECT_EQ(dyn_snapshot(), before) << c.what;
		EXPECT_EQ(stats().bad_unmaps, bad + (c.counted ? 1 : 0)) << c.what;
		EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << c.what;
	}

	// A double unmap is refused while the first is queued and after it
	// completed; after the IOVA was handed out again too.
	ASSERT_EQ(iovam_dpdk_unmap(a, ia, 5000), 0);
	EXPECT_EQ(iovam_dpdk_unmap(a, ia, 5000), -ENOENT) << "double unmap, first queued";
	drain();
	DynSnapshot done = dyn_snapshot();
	EXPECT_EQ(iovam_dpdk_unmap(a, ia, 5000), -ENOENT) << "double unmap, first completed";
	EXPECT_EQ(dyn_snapshot(), done);
	// Still live and unharmed by all of the above.
	ASSERT_EQ(iovam_dpdk_unmap(b, ib, 300), 0);
	EXPECT_EQ(iovam_dpdk_unmap(b, ib, 300), -ENOENT);
	drain();
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.dyn_maps, st.dyn_unmaps);
	rte_free(dpdk);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
}

// Run the service (or let the service lcore run) until pred() held once, or
// 10 s passed.
template <typename Pred>
bool service_until(Pred pred)
{
	uint64_t deadline = rte_get_timer_cycles() + 10 * rte_get_timer_hz();
	while (!pred()) {
		if (rte_get_timer_cycles() >= deadline) return false;
		if (g_mode->service_lcore)
			std::this_thread::yield();
		else
			(void)iovam_dpdk_service_run();
	}
	return true;
}

// Released IOVA pages, as the unmap hook reports them.
std::set<uint64_t> g_released;
std::mutex g_released_lock;

void record_release(uint64_t iova, uint64_t len, void *)
{
	std::lock_guard lk(g_released_lock);
	for (uint64_t p = iova / kPage4k; p < (iova + len) / kPage4k; p++) g_released.insert(p);
}

bool released(uint64_t iova)
{
	std::lock_guard lk(g_released_lock);
	return g_released.count(iova / kPage4k) != 0;
}

// VFIO unmap failures (injected): the IOVA of a mapping whose unmap failed
// must not be handed out again, neither for a dynamic mapping nor for freed
// DPDK memory; the service retries, and once the failures stop everything
// drains back to where it was.
// New mappings never get an IOVA whose unmap is still failing.
void expect_held_iovas_not_reused(std::vector<char> &buf, const uint64_t *held, unsigned n_held)
{
	constexpr unsigned kMore = 64;
	std::set<uint64_t> held_pages;
	for (unsigned i = 0; i < n_held; i++) held_pages.insert(held[i] / kPage4k);
	uint64_t more[kMore];
	for (unsigned i = 0; i < kMore; i++) {
		ASSERT_EQ(iovam_dpdk_map(buf.data() + (n_held + i) * kPage4k, 100, &more[i]), 0);
		EXPECT_EQ(held_pages.count(more[i] / kPage4k), 0u) << "held IOVA handed out again";
	}
	for (unsigned i = 0; i < kMore; i++)
		ASSERT_EQ(iovam_dpdk_unmap(buf.data() + (n_held + i) * kPage4k, more[i], 100), 0);
}

// Freed DPDK memory whose unmap fails: the translation goes, the IOVA range
// stays out of the domain, and new memory (maybe at the same VA) gets other
// IOVAs. *first and *last: the freed memory's first and last IOVA.
void free_memory_whose_unmap_fails(uint64_t *first, uint64_t *last)
{
	const size_t len = big(38);
	void *p = rte_malloc("iovam_unmap_fail", len, 0);
	ASSERT_NE(p, nullptr);
	ASSERT_EQ(iovam_dpdk_virt2iova(p, first), 0);
	ASSERT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(p) + len - 1, last), 0);
	uint64_t retrying = stats().unmaps_retrying;
	rte_free(p);
	EXPECT_GE(stats().unmaps_retrying, retrying + len / (2u << 20));
	uint64_t iova;
	EXPECT_EQ(iovam_dpdk_virt2iova(p, &iova), -ENOENT);
	EXPECT_FALSE(released(*first));
	void *q = rte_malloc("iovam_unmap_fail2", len, 0);
	ASSERT_NE(q, nullptr);
	uint64_t q_first, q_last;
	ASSERT_EQ(iovam_dpdk_virt2iova(q, &q_first), 0);
	ASSERT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(q) + len - 1, &q_last), 0);
	EXPECT_TRUE(q_last < *first || q_first > *last) << "held IOVA range reused";
	rte_free(q);
}

TEST(Glue, FailedUnmapsHoldTheIovaUntilARetrySucceeds)
{
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	{
		std::lock_guard lk(g_released_lock);
		g_released.clear();
	}
	iovam_dpdk_test_set_unmap_hook(record_release, nullptr);
	std::vector<char> buf(1 << 20);
	constexpr unsigned kHeld = 16;
	uint64_t held[kHeld];
	for (unsigned i = 0; i < kHeld; i++)
		ASSERT_EQ(iovam_dpdk_map(buf.data() + i * kPage4k, 100, &held[i]), 0);

	iovam_dpdk_test_fail_dma_unmap(1);
	for (unsigned i = 0; i < kHeld; i++)
		ASSERT_EQ(iovam_dpdk_unmap(buf.data() + i * kPage4k, held[i], 100), 0);
	ASSERT_TRUE(service_until(
	        [&] { return stats().unmaps_retrying == before.unmaps_retrying + kHeld; }));
	iovam_dpdk_stats mid = stats();
	EXPECT_EQ(mid.dyn_pending, kHeld);
	EXPECT_GT(mid.dma_failures, before.dma_failures);
	for (unsigned i = 0; i < kHeld; i++) {
		EXPECT_FALSE(released(held[i]));
		// Claimed by its unmap: a second one is refused.
		EXPECT_EQ(iovam_dpdk_unmap(buf.data() + i * kPage4k, held[i], 100), -ENOENT);
	}
	ASSERT_NO_FATAL_FAILURE(expect_held_iovas_not_reused(buf, held, kHeld));
	uint64_t p_first = 0, p_last = 0;
	if (g_mode->events) {
		ASSERT_NO_FATAL_FAILURE(free_memory_whose_unmap_fails(&p_first, &p_last));
	}
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
	EXPECT_FALSE(released(held[0]));

	iovam_dpdk_test_fail_dma_unmap(0);
	ASSERT_TRUE(service_until([&] {
		iovam_dpdk_stats st = stats();
		return st.unmaps_retrying == before.unmaps_retrying && st.dyn_pending == 0;
	}));
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	for (uint64_t h : held) EXPECT_TRUE(released(h));
	if (g_mode->events) {
		EXPECT_TRUE(released(p_first));
		EXPECT_TRUE(released(p_last));
	}
	iovam_dpdk_stats after = stats();
	EXPECT_EQ(after.mappings, before.mappings);
	EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
	EXPECT_EQ(after.dyn_maps, after.dyn_unmaps);
	(void)iovam_cache_flush(iovam_dpdk_domain(), IOVAM_CACHE_NONE);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
}

// An ALLOC event whose 4th page mapping fails is undone, and the 2nd unmap of
// that undo fails too: the memory has no translation, the IOVAs whose
// unmap failed stay out of the domain, the domain verifies; once the faults
// stop the service retries and everything drains back.
TEST(Glue, FaultsInsideAnEventUndoCleanlyAndDrain)
{
	iovam_dpdk_stats before = stats();
	uint64_t ranges_before = live_ranges();
	iovam_dpdk_test_fail_dma_map(4);
	iovam_dpdk_test_fail_dma_unmap(2);
	void *p = rte_malloc("iovam_mid_event", big(24), 0);
	iovam_dpdk_test_fail_dma_map(0);
	iovam_dpdk_test_fail_dma_unmap(0);
	ASSERT_NE(p, nullptr); // DPDK's allocation itself succeeds
	iovam_dpdk_stats mid = stats();
	if (g_mode->events) {
		EXPECT_EQ(mid.mem_event_failures, before.mem_event_failures + 1);
		uint64_t iova;
		for (size_t off = 0; off < big(24); off += 2u << 20)
			EXPECT_EQ(iovam_dpdk_virt2iova(static_cast<char *>(p) + off, &iova),
			          -ENOENT);
		// Maps 1-3 done, map 4 failed; the undo's unmaps (3, 2, 1):
		// the 2nd of them failed. (A service lcore may already have
		// retried it, even before the faults stopped.)
		if (g_mode->service_lcore) {
			EXPECT_GE(mid.dma_failures, before.dma_failures + 2);
		} else {
			EXPECT_EQ(mid.dma_failures, before.dma_failures + 2);
			EXPECT_EQ(mid.unmaps_retrying, before.unmaps_retrying + 1);
		}
	} else {
		EXPECT_EQ(mid.dma_failures, before.dma_failures); // no event: nothing mapped
	}
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
	ASSERT_TRUE(
	        service_until([&] { return stats().unmaps_retrying == before.unmaps_retrying; }));
	iovam_dpdk_stats after = stats();
	EXPECT_EQ(after.mappings, before.mappings);
	EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	rte_free(p);
	EXPECT_EQ(settled_live_ranges(ranges_before), ranges_before);
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0) << iovam_verify_error(iovam_dpdk_domain());
}

// Last: fini with a pool, dynamic mappings and a queued unmap still live
// tears everything down and reports it: every mapping undone (the unmap hook
// sees every mapped byte), every IOVA back (else fini says -EFAULT); the pool
// can still be freed afterwards. Then: bad confs are refused; re-init works;
// a failing mapping makes init fail cleanly.
TEST(GlueZ, FiniLeavesNothingAndInitValidates)
{
	static std::atomic<uint64_t> unmapped{0};
	iovam_dpdk_test_set_unmap_hook([](uint64_t, uint64_t len, void *) { unmapped += len; },
	                               nullptr);
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create("iovam_busy", 511, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	ASSERT_NE(mp, nullptr);
	std::vector<char> buf(4 * 4096);
	uint64_t iova;
	for (int i = 0; i < 4; i++) ASSERT_EQ(iovam_dpdk_map(buf.data() + i * 4096, 10, &iova), 0);
	ASSERT_EQ(iovam_dpdk_unmap(buf.data() + 3 * 4096, iova, 10), 0);
	// More queued unmaps than one drain batch (256): fini must complete
	// them all, not leave them allocated.
	for (int i = 0; i < 600; i++) {
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &iova), 0);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 10), 0);
	}
	if (g_mode->service_lcore) drain(); // the service lcore would race the snapshot below
	iovam_dpdk_stats st = stats();
	uint64_t unmapped_before = unmapped.load();
	EXPECT_EQ(iovam_dpdk_fini(), 4); // 1 pool + 3 dynamic mappings
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	EXPECT_EQ(unmapped.load() - unmapped_before, st.mapped_bytes);
	rte_mempool_free(mp); // a plain ring pool now
	EXPECT_EQ(iovam_dpdk_fini(), -ENODEV);
	EXPECT_EQ(iovam_dpdk_stats_get(&st), -ENODEV);
	EXPECT_EQ(iovam_dpdk_map(buf.data(), 1, &iova), -ENODEV);
	EXPECT_EQ(iovam_dpdk_unmap(buf.data(), 4096, 1), -ENODEV);
	EXPECT_EQ(iovam_dpdk_virt2iova(buf.data(), &iova), -ENODEV);
	EXPECT_EQ(iovam_dpdk_service_run(), -ENODEV);
	EXPECT_EQ(iovam_dpdk_dma_replay(), -ENODEV);
	EXPECT_EQ(iovam_dpdk_domain(), nullptr);
	EXPECT_EQ(iovam_dpdk_pktmbuf_pool_create("x", 63, 0, 0, 2048, SOCKET_ID_ANY), nullptr);
	EXPECT_EQ(rte_errno, ENODEV);

	// {dma_bits, flags, granule, iova_base, iova_end, unmap_queue_size, max_dyn_mappings}
	const iovam_dpdk_conf bad[] = {
	        {19, 0, 0, 0, 0, 0, 0},      {65, 0, 0, 0, 0, 0, 0},
	        {0, 0x80, 0, 0, 0, 0, 0},    {0, 0, 6000, 0, 0, 0, 0},
	        {0, 0, 2048, 0, 0, 0, 0},    {0, 0, 0, 100, 0, 0, 0},
	        {0, 0, 0, 0, 4097, 0, 0},    {32, 0, 0, 0, (uint64_t{1} << 32) + 4096, 0, 0},
	        {0, 0, 0, 8192, 8192, 0, 0}, {0, 0, 0, 0, 0, 100, 0},
	        {0, 0, 0, 0, 0, 8, 0},       {0, 0, 0, 0, 0, 0, (1u << 24) + 1},
	};
	for (const auto &b : bad) EXPECT_EQ(iovam_dpdk_init(&b), -EINVAL);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 0);

	iovam_dpdk_test_fail_dma_map(1);
	EXPECT_EQ(iovam_dpdk_init(nullptr), -EIO);
	iovam_dpdk_test_fail_dma_map(0);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 0);

	// Granule 2 MiB is too big for --no-huge's 4 KiB pages.
	iovam_dpdk_conf big{0, 0, 2u << 20, 0, 0, 0, 0};
	int rc = iovam_dpdk_init(&big);
	if (std::string(g_mode->name) == "no-huge") {
		EXPECT_EQ(rc, -EINVAL);
	} else {
		EXPECT_EQ(rc, 0);
		EXPECT_EQ(iovam_dpdk_fini(), 0);
	}
	iovam_dpdk_conf narrow{40, 0, 0, 0, 0, 0, 0};
	ASSERT_EQ(iovam_dpdk_init(&narrow), 0);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// Plugin behaviour: nobody called iovam_dpdk_init(); the first pool with the
// "iovam" ops initialises the glue from the environment.
TEST(GlueZ, FirstIovamPoolSelfInitialisesFromEnvironment)
{
	ASSERT_EQ(iovam_dpdk_is_initialised(), 0);
	setenv("IOVAM_DISABLE", "1", 1);
	rte_mempool *mp = rte_pktmbuf_pool_create_by_ops("iovam_env_off", 511, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY,
	                                                 IOVAM_DPDK_MEMPOOL_OPS);
	EXPECT_EQ(mp, nullptr);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 0);
	unsetenv("IOVAM_DISABLE");
	setenv("IOVAM_DMA_BITS", "31", 1);
	setenv("IOVAM_NO_SERVICE", "1", 1);
	mp = rte_pktmbuf_pool_create_by_ops("iovam_env_on", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
	                                    SOCKET_ID_ANY, IOVAM_DPDK_MEMPOOL_OPS);
	unsetenv("IOVAM_DMA_BITS");
	unsetenv("IOVAM_NO_SERVICE");
	ASSERT_NE(mp, nullptr) << rte_strerror(rte_errno);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 1);
	iovam_domain_conf dc{};
	ASSERT_EQ(iovam_domain_conf_get(iovam_dpdk_domain(), &dc), 0);
	EXPECT_EQ((dc.end_pfn + 1) * dc.granule, uint64_t{1} << 31);
	rte_mbuf *m = rte_pktmbuf_alloc(mp);
	ASSERT_NE(m, nullptr);
	EXPECT_LT(m->buf_iova, uint64_t{1} << 31);
	rte_pktmbuf_free(m);
	rte_mempool_free(mp);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// Memory that exists before the first VFIO device: translated at once,
// mapped when the device comes (queue and replay). Simulated in no-IOMMU mode.
TEST(GlueZ, MemoryBeforeFirstDeviceIsQueuedThenReplayed)
{
	iovam_dpdk_test_simulate_no_device(1);
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE; // the service would replay too
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.mappings, 0u);
	EXPECT_GT(st.dma_queued, 0u);
	void *p = rte_malloc("iovam_queued", big(8), 0);
	ASSERT_NE(p, nullptr);
	expect_translated(p, big(8));
	std::vector<char> buf(4096);
	uint64_t iova;
	EXPECT_EQ(iovam_dpdk_map(buf.data(), 100, &iova), -EIO); // no device yet
	uint64_t queued = stats().dma_queued;
	EXPECT_EQ(iovam_dpdk_dma_replay(), static_cast<int>(queued));
	st = stats();
	EXPECT_EQ(st.dma_queued, 0u);
	EXPECT_EQ(st.mappings, queued);
	ASSERT_EQ(iovam_dpdk_map(buf.data(), 100, &iova), 0);
	ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 100), 0);
	rte_free(p);
	iovam_dpdk_test_simulate_no_device(0);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// A fault mid-walk: the init walk's last mapping fails. Init fails with -EIO
// and leaves nothing: every mapping it made was undone (the unmap hook saw
// them), no glue is left, and the next init works.
TEST(GlueZ, InitWalkFailingAtItsLastMappingLeavesNothing)
{
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	iovam_dpdk_stats walk = stats();
	ASSERT_EQ(iovam_dpdk_fini(), 0);
	ASSERT_GE(walk.mappings, 1u);

	static std::atomic<uint64_t> undone_bytes{0}, undone{0};
	undone_bytes = 0;
	undone = 0;
	iovam_dpdk_test_set_unmap_hook(
	        [](uint64_t, uint64_t len, void *) {
		        undone_bytes += len;
		        undone++;
	        },
	        nullptr);
	iovam_dpdk_test_fail_dma_map(static_cast<uint32_t>(walk.mappings));
	EXPECT_EQ(iovam_dpdk_init(&conf), -EIO);
	iovam_dpdk_test_fail_dma_map(0);
	iovam_dpdk_test_set_unmap_hook(nullptr, nullptr);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 0);
	EXPECT_EQ(undone.load(), walk.mappings - 1);
	EXPECT_LT(undone_bytes.load(), walk.mapped_bytes);
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	EXPECT_EQ(stats().mappings, walk.mappings);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// IOVAs the IOMMU cannot map (its reserved regions: the x86 MSI window, RMRRs)
// never reach the domain's users: a fake /sys/kernel/iommu_groups with two
// groups; their regions are RESERVED in the domain, maps avoid them, and a
// line that does not parse is skipped.
TEST(GlueZ, IommuReservedRegionsAreKeptOutOfTheWindow)
{
	if (iovam_dpdk_is_initialised()) { // run alone (--gtest_filter)
		ASSERT_GE(iovam_dpdk_fini(), 0);
	}
	// In $TMPDIR (or /tmp), removed on every way out of the test (ASSERTs return).
	std::string dir = (std::filesystem::temp_directory_path() /
	                   ("iovam_iommu_groups_" + std::to_string(getpid())))
	                          .string();
	struct RemoveDir {
		std::string path;
		~RemoveDir()
		{
			std::error_code ec;
			std::filesystem::remove_all(path, ec);
		}
	} remove_dir{dir};
	std::filesystem::create_directories(dir + "/0");
	std::filesystem::create_directories(dir + "/7");
	std::ofstream(dir + "/0/reserved_regions") << "0x00000000fee00000 0x00000000feefffff msi\n";
	std::ofstream(dir + "/7/reserved_regions")
	        << "0x00000000000a0000 0x00000000000bffff direct\n"
	        << "garbage\n"
	        << "0x00000000fee00000 0x00000000feefffff msi\n"
	        << "0x0000000200000000 0x00000002ffffffff reserved\n"; // above the window
	setenv("IOVAM_IOMMU_GROUPS_DIR", dir.c_str(), 1);
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	unsetenv("IOVAM_IOMMU_GROUPS_DIR");
	std::filesystem::remove_all(dir);

	iovam_domain *dom = iovam_dpdk_domain();
	uint64_t lo, hi;
	ASSERT_EQ(iovam_find(dom, 0xfee00, &lo, &hi), 0);
	EXPECT_LE(lo, 0xfee00u);
	EXPECT_GE(hi, 0xfeeffu);
	ASSERT_EQ(iovam_find(dom, 0xa0, &lo, &hi), 0);
	EXPECT_LE(lo, 0xa0u);
	EXPECT_GE(hi, 0xbfu);
	// Maps of 64 KiB, top-down from 4 GiB, walk across the MSI window.
	std::vector<char> buf(64 << 10);
	std::vector<uint64_t> iovas;
	for (int i = 0; i < 1024; i++) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), buf.size(), &iova), 0);
		EXPECT_TRUE(iova + buf.size() <= 0xfee00000u || iova > 0xfeefffffu)
		        << std::hex << iova << " is in the MSI window";
		iovas.push_back(iova);
	}
	EXPECT_LT(iovas.back(), 0xfee00000u) << "the maps did not get past the window";
	for (uint64_t iova : iovas) ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, buf.size()), 0);
	(void)iovam_dpdk_service_run();
	EXPECT_EQ(iovam_verify(dom), 0);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// Unmaps that still fail at fini (injected): fini tears down, but the IOVAs
// that may still be mapped are leaked on purpose, fini says so, and the next
// glue of the process keeps them reserved.
TEST(GlueZ, FiniReportsIovasItCouldNotUnmap)
{
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	std::vector<char> buf(8192);
	uint64_t leaked;
	ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &leaked), 0);
	iovam_dpdk_test_fail_dma_unmap(1);
	EXPECT_EQ(iovam_dpdk_fini(), -EFAULT);
	iovam_dpdk_test_fail_dma_unmap(0);
	EXPECT_EQ(iovam_dpdk_is_initialised(), 0);

	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	uint64_t lo, hi;
	ASSERT_EQ(iovam_find(iovam_dpdk_domain(), leaked / kPage4k, &lo, &hi), 0)
	        << "a leaked IOVA is not reserved in the next domain";
	// Maps that would have got it (the same request, top-down) get others.
	for (int i = 0; i < 64; i++) {
		uint64_t iova;
		ASSERT_EQ(iovam_dpdk_map(buf.data(), 10, &iova), 0);
		EXPECT_NE(iova / kPage4k, leaked / kPage4k);
		ASSERT_EQ(iovam_dpdk_unmap(buf.data(), iova, 10), 0);
		(void)iovam_dpdk_service_run();
	}
	EXPECT_EQ(iovam_verify(iovam_dpdk_domain()), 0);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

// A table sized for few mappings refuses the surplus with -ENOSPC (nothing
// kept), and takes mappings again once some are unmapped.
TEST(GlueZ, DynamicMappingsBeyondTheTableAreRefused)
{
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	conf.max_dyn_mappings = 16; // 16 near slots, 32 far ones
	ASSERT_EQ(iovam_dpdk_init(&conf), 0);
	std::vector<char> buf(64 * 4096);
	std::vector<uint64_t> iovas;
	int rc = 0;
	while (iovas.size() < 64) {
		uint64_t iova;
		rc = iovam_dpdk_map(buf.data() + iovas.size() * 4096, 10, &iova);
		if (rc != 0) break;
		iovas.push_back(iova);
	}
	EXPECT_EQ(rc, -ENOSPC);
	EXPECT_GE(iovas.size(), 16u);
	EXPECT_LE(iovas.size(), 48u);
	iovam_dpdk_stats st = stats();
	EXPECT_EQ(st.dyn_table_full, 1u);
	EXPECT_EQ(st.dyn_maps, iovas.size());
	for (size_t i = 0; i < iovas.size(); i++)
		ASSERT_EQ(iovam_dpdk_unmap(buf.data() + i * 4096, iovas[i], 10), 0);
	EXPECT_EQ(iovam_dpdk_service_run(), static_cast<int>(iovas.size()));
	for (size_t i = 0; i < iovas.size(); i++)
		ASSERT_EQ(iovam_dpdk_map(buf.data() + i * 4096, 10, &iovas[i]), 0);
	for (size_t i = 0; i < iovas.size(); i++)
		ASSERT_EQ(iovam_dpdk_unmap(buf.data() + i * 4096, iovas[i], 10), 0);
	EXPECT_EQ(iovam_dpdk_fini(), 0);
}

bool hugepages_ok()
{
	std::ifstream f("/proc/meminfo");
	std::string key;
	long val;
	while (f >> key >> val) {
		if (key == "HugePages_Free:") return val >= 128;
		f.ignore(256, '\n');
	}
	return false;
}

} // namespace

int main(int argc, char **argv)
{
	testing::InitGoogleTest(&argc, argv);
	std::string mode = "default";
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--mode=", 7) == 0) mode = argv[i] + 7;
	for (const Mode &m : kModes)
		if (mode == m.name) g_mode = &m;
	if (g_mode == nullptr) {
		fprintf(stderr, "unknown --mode=%s\n", mode.c_str());
		return 2;
	}
	if (std::string(g_mode->name) != "no-huge" && !hugepages_ok()) {
		fprintf(stderr, "FAIL: fewer than 128 free 2 MiB hugepages. As root:\n"
		                "  echo 512 > /proc/sys/vm/nr_hugepages\n"
		                "  mount -t hugetlbfs nodev /dev/hugepages\n");
		return 1;
	}
	// A prefix of its own per run (tests/dpdk/eal_run.sh passes one and
	// cleans up after a crash or a timeout too).
	std::string prefix = "--file-prefix=iovam_t_" + mode + "_" + std::to_string(getpid());
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--file-prefix=", 14) == 0) prefix = argv[i];
	std::vector<std::string> args = {"glue_test",
	                                 "-l",
	                                 "0-1",
	                                 "--no-pci",
	                                 prefix,
	                                 "--vdev=net_ring0",
	                                 "--vdev=net_ring1",
	                                 "--log-level=lib.iovam:info"};
	args.insert(args.end(), g_mode->eal.begin(), g_mode->eal.end());
	std::vector<char *> cargs;
	for (auto &s : args) cargs.push_back(s.data());
	if (rte_eal_init(static_cast<int>(cargs.size()), cargs.data()) < 0) {
		fprintf(stderr, "FAIL: rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	// Default conf: a 32-bit window, no-IOMMU here (no VFIO). Without a
	// service lcore the tests run the service themselves (no alarm), so that
	// they decide when unmaps complete.
	iovam_dpdk_conf conf{};
	if (!g_mode->service_lcore) conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	int rc = iovam_dpdk_init(&conf);
	if (rc != 0) {
		fprintf(stderr, "FAIL: iovam_dpdk_init: %d\n", rc);
		return 1;
	}
	int ret = RUN_ALL_TESTS();
	if (iovam_dpdk_is_initialised()) (void)iovam_dpdk_fini();
	// EAL leaves its runtime directory and hugepage files behind; each run
	// has its own prefix, so remove them.
	std::string runtime_dir = rte_eal_get_runtime_dir();
	rte_eal_cleanup();
	eal_leftovers_remove(runtime_dir);
	return ret;
}
