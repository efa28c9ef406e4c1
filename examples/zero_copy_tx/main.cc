/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// zero_copy_tx: transmit application buffers without copying them, against
// copying them into mbufs, in the same run.
//
// The payloads live in ordinary application memory (one anonymous mmap, not
// DPDK memory). Zero-copy: for each packet the app maps its buffer with
// iovam_dpdk_map() (an IOVA below the device's DMA limit, from the lcore's
// cache), attaches it to a header mbuf as an external buffer, and sends it.
// When the driver frees the mbuf after transmission, the external buffer's
// free callback unmaps it with iovam_dpdk_unmap() (lazy: the service does
// the VFIO unmap and only then recycles the IOVA) and gives the buffer back
// to the application. Baseline: the same buffers memcpy'd into mbufs of a
// pool large enough for them, and sent. For 64 B, 1500 B and 9000 B
// payloads, each mode in turn; throughput in Mpps and Gbit/s of payload.
//
//   zero_copy_tx -l 0 --no-pci --vdev net_null0 --file-prefix zc -- [packets per run]
//   zero_copy_tx -l 0-1 -s 0x2 --no-pci --vdev net_null0 --file-prefix zc -- [packets]
//
// With a service lcore (-s) the iovam service runs there; otherwise the app
// runs it on its own lcore with rte_service_run_iter_on_app_lcore(). Over a
// vdev (net_null frees each mbuf at once) this measures the CPU cost per
// packet of each way, not a NIC's DMA; with VFIO add an ioctl per map.
#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_service.h>

#include "eal_leftovers.h"
#include "iovam_dpdk.h"

namespace
{

constexpr unsigned kBuffers = 4096;
constexpr unsigned kBufSize = 16384; // room for the largest payload, 4 KiB aligned
constexpr unsigned kSizes[] = {64, 1500, 9000};
constexpr unsigned kMaxPayload = 9000;
constexpr unsigned kBurst = 32;

// One application buffer and the bookkeeping its free callback needs.
struct Slot {
	char *va;
	uint64_t iova;
	unsigned len;
	bool in_flight;
	rte_mbuf_ext_shared_info shinfo;
};

Slot g_slots[kBuffers];
unsigned g_free[kBuffers]; // stack of free slot indexes
unsigned g_nfree;
uint64_t g_above_4g, g_errors;
bool g_have_service_lcore;
uint32_t g_service;

// Called by rte_pktmbuf_free() in the driver once the device is done.
void tx_done(void *addr, void *opaque)
{
	auto *s = static_cast<Slot *>(opaque);
	if (iovam_dpdk_unmap(addr, s->iova, s->len) != 0) g_errors++;
	s->in_flight = false;
	g_free[g_nfree++] = static_cast<unsigned>(s - g_slots);
}

int setup_port(uint16_t port, rte_mempool *mp)
{
	rte_eth_conf conf{};
	if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, 256, rte_eth_dev_socket_id(port), nullptr, mp) != 0 ||
	    rte_eth_tx_queue_setup(port, 0, 256, rte_eth_dev_socket_id(port), nullptr) != 0)
		return -1;
	return rte_eth_dev_start(port);
}

uint16_t send(rte_mbuf **burst, unsigned nb)
{
	uint16_t tx = rte_eth_tx_burst(0, 0, burst, static_cast<uint16_t>(nb));
	for (unsigned i = tx; i < nb; i++)
		rte_pktmbuf_free(burst[i]); // not sent: (zero-copy) unmapped by tx_done too
	return tx;
}

// Zero-copy: map, attach, send; the free callback unmaps. Seconds taken.
double run_zero_copy(rte_mempool *hdr, unsigned len, uint64_t packets)
{
	uint64_t sent = 0;
	uint64_t start = rte_get_tsc_cycles();
	while (sent < packets) {
		rte_mbuf *burst[kBurst];
		unsigned nb = 0;
		while (nb < kBurst && g_nfree > 0) {
			Slot &s = g_slots[g_free[--g_nfree]];
			rte_mbuf *m = rte_pktmbuf_alloc(hdr);
			if (m == nullptr || iovam_dpdk_map(s.va, len, &s.iova) != 0) {
				g_errors++;
				rte_pktmbuf_free(m);
				g_free[g_nfree++] = static_cast<unsigned>(&s - g_slots);
				break;
			}
			s.len = len;
			s.in_flight = true;
			if (s.iova + len > (uint64_t{1} << 32)) g_above_4g++;
			rte_mbuf_ext_refcnt_set(&s.shinfo, 1);
			rte_pktmbuf_attach_extbuf(m, s.va, s.iova, static_cast<uint16_t>(len),
			                          &s.shinfo);
			m->data_off = 0;
			m->data_len = static_cast<uint16_t>(len);
			m->pkt_len = len;
			burst[nb++] = m;
		}
		sent += send(burst, nb);
		if (!g_have_service_lcore && (sent / kBurst) % 8 == 0)
			(void)rte_service_run_iter_on_app_lcore(g_service, 1);
	}
	return static_cast<double>(rte_get_tsc_cycles() - start) /
	       static_cast<double>(rte_get_tsc_hz());
}

// Baseline: copy the same application buffers into mbufs and send.
double run_memcpy(rte_mempool *big, unsigned len, uint64_t packets)
{
	uint64_t sent = 0;
	unsigned next = 0;
	uint64_t start = rte_get_tsc_cycles();
	while (sent < packets) {
		rte_mbuf *burst[kBurst];
		if (rte_pktmbuf_alloc_bulk(big, burst, kBurst) != 0) {
			g_errors++;
			break;
		}
		for (unsigned i = 0; i < kBurst; i++) {
			rte_mbuf *m = burst[i];
			memcpy(rte_pktmbuf_mtod(m, char *), g_slots[next].va, len);
			next = (next + 1) % kBuffers;
			m->data_len = static_cast<uint16_t>(len);
			m->pkt_len = len;
		}
		sent += send(burst, kBurst);
	}
	return static_cast<double>(rte_get_tsc_cycles() - start) /
	       static_cast<double>(rte_get_tsc_hz());
}

} // namespace

int main(int argc, char **argv)
{
	int n = eal_start(argc, argv, "zero_copy_tx");
	if (n < 0) return 1;
	uint64_t packets = eal_app_arg_u64(argc, argv, n, 1, 1000000);
	if (rte_eth_dev_count_avail() < 1) {
		fprintf(stderr, "no port: add --vdev net_null0\n");
		return eal_exit(1);
	}
	// Default conf: 32-bit DMA window. The service maps itself to a service
	// lcore if there is one; otherwise we run it here (no alarm thread).
	iovam_dpdk_conf conf{};
	g_have_service_lcore = rte_service_lcore_count() > 0;
	if (!g_have_service_lcore) conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	int rc = iovam_dpdk_init(&conf);
	if (rc != 0) {
		fprintf(stderr, "iovam_dpdk_init: %s\n", strerror(-rc));
		return eal_exit(1);
	}
	(void)iovam_dpdk_service_id(&g_service);

	// Header mbufs for zero-copy (the payload is attached, never copied);
	// mbufs with room for the largest payload for the memcpy baseline.
	rte_mempool *hdr = iovam_dpdk_pktmbuf_pool_create(
	        "zc_hdr", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	rte_mempool *big = iovam_dpdk_pktmbuf_pool_create(
	        "zc_copy", 4095, 256, 0, RTE_PKTMBUF_HEADROOM + kMaxPayload, rte_socket_id());
	if (hdr == nullptr || big == nullptr || setup_port(0, hdr) != 0) {
		fprintf(stderr, "pool/port setup: %s\n", rte_strerror(rte_errno));
		return eal_exit(1);
	}
	void *mem = mmap(nullptr, size_t{kBuffers} * kBufSize, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return eal_exit(1);
	}
	for (unsigned i = 0; i < kBuffers; i++) {
		Slot &s = g_slots[i];
		s.va = static_cast<char *>(mem) + size_t{i} * kBufSize;
		memset(s.va, static_cast<int>(i), kMaxPayload);
		s.shinfo.free_cb = tx_done;
		s.shinfo.fcb_opaque = &s;
		g_free[g_nfree++] = i;
	}

	for (unsigned len : kSizes) {
		double zc = run_zero_copy(hdr, len, packets);
		double cp = run_memcpy(big, len, packets);
		double zc_mpps = static_cast<double>(packets) / zc / 1e6;
		double cp_mpps = static_cast<double>(packets) / cp / 1e6;
		printf("zero_copy_tx: %4u B: zero-copy %7.2f Mpps (%7.1f Gbit/s), memcpy %7.2f "
		       "Mpps "
		       "(%7.1f Gbit/s), zero-copy/memcpy %.2fx\n",
		       len, zc_mpps, zc_mpps * len * 8 / 1e3, cp_mpps, cp_mpps * len * 8 / 1e3,
		       zc_mpps / cp_mpps);
	}

	// Let the service finish the lazy unmaps.
	iovam_dpdk_stats st{};
	for (int i = 0; i < 1000000; i++) {
		if (!g_have_service_lcore) (void)rte_service_run_iter_on_app_lcore(g_service, 1);
		(void)iovam_dpdk_stats_get(&st);
		if (st.dyn_pending == 0) break;
	}
	printf("zero_copy_tx: %" PRIu64 " packets per size and mode; IOVAs above 4 GiB: %" PRIu64
	       ", errors: %" PRIu64 "\n",
	       packets, g_above_4g, g_errors);
	printf("iovam: dyn_maps %" PRIu64 " dyn_unmaps %" PRIu64 " dyn_pending %" PRIu64
	       " dma_maps %" PRIu64 " dma_unmaps %" PRIu64 " cache_hits %" PRIu64
	       " cache_misses %" PRIu64 " service_runs %" PRIu64 "\n",
	       st.dyn_maps, st.dyn_unmaps, st.dyn_pending, st.dma_maps, st.dma_unmaps,
	       st.cache_hits, st.cache_misses, st.service_runs);

	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	rte_mempool_free(hdr);
	rte_mempool_free(big);
	rc = iovam_dpdk_fini();
	munmap(mem, size_t{kBuffers} * kBufSize);
	bool ok = rc == 0 && g_errors == 0 && g_above_4g == 0 && st.dyn_pending == 0 &&
	          st.dyn_maps == st.dyn_unmaps && st.dyn_maps >= packets * std::size(kSizes);
	printf("zero_copy_tx: %s\n", ok ? "OK" : "FAILED");
	return eal_exit(ok ? 0 : 1);
}
