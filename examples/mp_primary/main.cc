/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// mp_primary: a DPDK primary process with iovam that secondary processes can
// capture from (dpdk-dumpcap, dpdk-pdump) and inspect (dpdk-proc-info).
//
//   mp_primary -l 0 --no-pci --vdev net_null0 --vdev net_null1 --file-prefix P
//       -- [SECONDS [PPS]]
//
// Runs EAL as the primary, creates its mbuf pool with iovam
// (iovam_dpdk_pktmbuf_pool_create), enables packet capture (rte_pdump_init)
// and forwards between port pairs (0 <-> 1, 2 <-> 3, ...; an odd last port
// sends back to itself): net_null ports receive as fast as they are polled,
// so a capture always sees packets; PPS (0, the default: no limit) caps the
// packets received per second on all ports together, to keep capture files
// small. It stops after SECONDS (0, the default: never) or on SIGINT/SIGTERM, then checks that every mbuf came back to the
// pool, runs iovam_verify() and iovam_dpdk_fini() (which must find nothing
// left live), and exits 0 only if all of that held.
// SIGUSR1 asks it for iovam_verify() of its domain while it forwards; it
// answers with one line, "mp_primary: verify ok ..." or "... verify FAILED".
//
// Why a program of our own rather than Debian's dpdk-testpmd: a mempool's ops
// are an index into a table each process fills from its own libraries, and a
// capture tool creates its capture pool by ops name in its table, which the
// primary then fills through its own. Debian's dpdk-testpmd links
// librte_mempool_dpaa, so its table is shifted by one against the tools' and
// a capture makes it run the dpaa2 driver. This program links what
// `pkg-config libdpdk` gives (no mempool driver) and loads the drivers from
// EAL's driver directory as the tools do: the tables agree, which it prints
// at start ("ops table: ...").
#include <csignal>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pdump.h>

#include "eal_leftovers.h"
#include "iovam.h"
#include "iovam_dpdk.h"

namespace
{

constexpr const char *kPoolName = "mp_primary_pool";
constexpr unsigned kPoolSize = 8191;
constexpr unsigned kPoolCache = 256;
constexpr uint16_t kRingSize = 512;
constexpr unsigned kBurst = 32;

volatile sig_atomic_t g_stop;
volatile sig_atomic_t g_verify_requests;

void on_stop(int)
{
	g_stop = 1;
}
void on_verify(int)
{
	g_verify_requests = g_verify_requests + 1;
}

int setup_port(uint16_t port, rte_mempool *mp)
{
	rte_eth_conf conf{};
	int socket = rte_eth_dev_socket_id(port);
	int rc = rte_eth_dev_configure(port, 1, 1, &conf);
	if (rc == 0) rc = rte_eth_rx_queue_setup(port, 0, kRingSize, socket, nullptr, mp);
	if (rc == 0) rc = rte_eth_tx_queue_setup(port, 0, kRingSize, socket, nullptr);
	if (rc == 0) rc = rte_eth_dev_start(port);
	return rc;
}

// iovam_verify() of the domain, and the figures the line reports.
bool verify(const char *when, uint64_t forwarded)
{
	iovam_domain *d = iovam_dpdk_domain();
	iovam_dpdk_stats st{};
	bool ok = d != nullptr && iovam_verify(d) == 0 && iovam_dpdk_stats_get(&st) == 0;
	printf("mp_primary: verify %s (%s): live_ranges %" PRIu64 ", pools %" PRIu64
	       ", forwarded %" PRIu64 " packets%s%s\n",
	       ok ? "ok" : "FAILED", when, st.live_ranges, st.pools, forwarded,
	       d != nullptr && !ok ? ", " : "", d != nullptr && !ok ? iovam_verify_error(d) : "");
	fflush(stdout);
	return ok;
}

} // namespace

int main(int argc, char **argv)
{
	int n = eal_start(argc, argv, "mp_primary");
	if (n < 0) return 1;
	uint64_t seconds = eal_app_arg_u64(argc, argv, n, 1, 0);
	uint64_t pps = eal_app_arg_u64(argc, argv, n, 2, 0);
	if (rte_eal_process_type() != RTE_PROC_PRIMARY || rte_eth_dev_count_avail() < 1) {
		fprintf(stderr, "mp_primary: must be the primary, with ports "
		                "(--vdev net_null0 --vdev net_null1)\n");
		return eal_exit(1);
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	signal(SIGUSR1, on_verify);

	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE; // no dynamic mappings: nothing to serve
	int rc = iovam_dpdk_init(&conf);
	if (rc != 0) {
		fprintf(stderr, "mp_primary: iovam_dpdk_init: %s\n", strerror(-rc));
		return eal_exit(1);
	}
	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create(
	        kPoolName, kPoolSize, kPoolCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp == nullptr) {
		fprintf(stderr, "mp_primary: pool: %s\n", rte_strerror(rte_errno));
		(void)iovam_dpdk_fini();
		return eal_exit(1);
	}
	// The table a capture tool must share with us (see the file comment).
	std::string table;
	for (unsigned i = 0; i < rte_mempool_ops_table.num_ops; i++)
		table += (i ? ", " : "") + std::to_string(i) + " " +
		         rte_mempool_ops_table.ops[i].name;
	printf("mp_primary: ops table: %s\n", table.c_str());
	printf("mp_primary: pool %s, %u mbufs, ops %s (index %d)\n", kPoolName, kPoolSize,
	       rte_mempool_get_ops(mp->ops_index)->name, mp->ops_index);

	bool ok = true;
	uint16_t port;
	RTE_ETH_FOREACH_DEV(port)
	{
		rc = setup_port(port, mp);
		if (rc != 0) {
			fprintf(stderr, "mp_primary: port %u: %s\n", port, strerror(-rc));
			ok = false;
		}
	}
	rc = ok ? rte_pdump_init() : 0;
	if (rc != 0) {
		fprintf(stderr, "mp_primary: rte_pdump_init: %s\n", rte_strerror(rte_errno));
		ok = false;
	}
	uint16_t nb_ports = rte_eth_dev_count_avail();
	if (ok) {
		printf("mp_primary: ready: %u ports forwarding, capture enabled\n", nb_ports);
		fflush(stdout);
	}

	uint64_t forwarded = 0;
	unsigned verified = 0;
	uint64_t received = 0;
	const uint64_t hz = rte_get_tsc_hz();
	const uint64_t start = rte_get_tsc_cycles();
	const uint64_t end = seconds ? start + seconds * hz : 0;
	while (ok && !g_stop) {
		uint64_t now = rte_get_tsc_cycles();
		if (end != 0 && now >= end) break;
		// Under a rate cap, receive only what the elapsed time allows.
		uint64_t budget = UINT64_MAX;
		if (pps != 0) {
			double allowed = static_cast<double>(now - start) /
			                 static_cast<double>(hz) * static_cast<double>(pps);
			budget = allowed > static_cast<double>(received)
			                 ? static_cast<uint64_t>(allowed) - received
			                 : 0;
		}
		RTE_ETH_FOREACH_DEV(port)
		{
			uint16_t peer = (port ^ 1) < nb_ports ? port ^ 1 : port;
			rte_mbuf *burst[kBurst];
			uint16_t want = static_cast<uint16_t>(RTE_MIN(budget, uint64_t{kBurst}));
			uint16_t rx = want ? rte_eth_rx_burst(port, 0, burst, want) : 0;
			budget -= pps != 0 ? rx : 0;
			received += rx;
			uint16_t tx = rte_eth_tx_burst(peer, 0, burst, rx);
			for (uint16_t i = tx; i < rx; i++) rte_pktmbuf_free(burst[i]);
			forwarded += tx;
		}
		// One verify per request; requests that arrive together get one.
		unsigned requests = static_cast<unsigned>(g_verify_requests);
		if (requests != verified) {
			verified = requests;
			ok = verify("on request", forwarded);
		}
		if (pps != 0 && budget == 0)
			rte_delay_us_sleep(100); // capped: leave the CPU to the captures
	}

	RTE_ETH_FOREACH_DEV(port)
	{
		(void)rte_eth_dev_stop(port);
		(void)rte_eth_dev_close(port);
	}
	(void)rte_pdump_uninit();
	// Every mbuf is back: the captures copied packets into their own pools.
	unsigned avail = rte_mempool_avail_count(mp);
	printf("mp_primary: stopped: forwarded %" PRIu64 " packets, pool avail %u of %u\n",
	       forwarded, avail, kPoolSize);
	ok = ok && forwarded > 0 && avail == kPoolSize;
	ok = verify("at exit", forwarded) && ok;
	rte_mempool_free(mp);
	rc = iovam_dpdk_fini();
	printf("mp_primary: iovam_dpdk_fini %d: %s\n", rc, ok && rc == 0 ? "OK" : "FAILED");
	return eal_exit(ok && rc == 0 ? 0 : 1);
}
