/* Port set-up, sending and byte-checked receiving shared by the VM probes
 * (negative_probe.c: Debian DPDK only; probe.c: with the iovam glue).
 * Port 0 sends, port 1 receives; both NICs sit on one qemu hub. */
#ifndef IOVAM_VM_PROBE_COMMON_H
#define IOVAM_VM_PROBE_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "frames.h"

#define PROBE_BURST        32
#define PROBE_RING_SIZE    512
#define PROBE_LINK_WAIT_MS 10000
#define PROBE_DRAIN_MS     3000 /* wait for stragglers after the last frame was sent */
#define PROBE_TX_STUCK_S   5

struct rx_stats {
	uint64_t ok, damaged, foreign;
};

/* Fatal set-up error: one verdict line the host can parse, then exit. */
static inline void probe_die(const char *prog, const char *msg, int rc)
{
	fprintf(stderr, "%s: %s (%d: %s)\n", prog, msg, rc, rte_strerror(rc < 0 ? -rc : rc));
	printf("PROBE: result=ERROR (%s: %s)\n", msg, rte_strerror(rc < 0 ? -rc : rc));
	fflush(stdout);
	exit(2);
}

/* One RX and one TX queue; RX buffers come from pool (so the NIC writes to pool's IOVAs). */
static inline int probe_port_init(uint16_t port, struct rte_mempool *pool)
{
	struct rte_eth_conf conf;
	uint16_t nb_rxd = PROBE_RING_SIZE, nb_txd = PROBE_RING_SIZE;
	int rc;

	memset(&conf, 0, sizeof(conf));
	if ((rc = rte_eth_dev_configure(port, 1, 1, &conf)) != 0) return rc;
	if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd)) != 0) return rc;
	if ((rc = rte_eth_rx_queue_setup(port, 0, nb_rxd, rte_eth_dev_socket_id(port), NULL,
	                                 pool)) != 0)
		return rc;
	if ((rc = rte_eth_tx_queue_setup(port, 0, nb_txd, rte_eth_dev_socket_id(port), NULL)) != 0)
		return rc;
	if ((rc = rte_eth_dev_start(port)) != 0) return rc;
	/* Frames are addressed to port 1's MAC; promiscuous guards against PMDs that filter. */
	rte_eth_promiscuous_enable(port);
	return 0;
}

/* Frames sent before the emulated link is up are silently dropped: wait for it. */
static inline int probe_wait_link(uint16_t port)
{
	struct rte_eth_link link;
	int ms;

	for (ms = 0; ms < PROBE_LINK_WAIT_MS; ms += 50) {
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(port, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			return 0;
		rte_delay_ms(50);
	}
	return -ETIMEDOUT;
}

/* Receiver state: which sequence numbers arrived intact, from whom, to whom. */
struct probe_rx {
	uint16_t port;
	uint32_t max_seq;
	uint8_t *seen;
	struct rte_ether_addr src, dst;
	struct rx_stats st;
	/* Optional check of each received mbuf (e.g. its buf_iova); returns 0 if fine. */
	int (*check_mbuf)(const struct rte_mbuf *m);
	uint64_t bad_mbufs;
};

/* Polls the RX port once and checks every byte of every frame. */
static inline void probe_receive(struct probe_rx *rx)
{
	struct rte_mbuf *pkts[PROBE_BURST];
	uint16_t n, i;

	n = rte_eth_rx_burst(rx->port, 0, pkts, PROBE_BURST);
	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		int64_t seq = -2;

		if (rx->check_mbuf != NULL && rx->check_mbuf(m) != 0) rx->bad_mbufs++;
		if (m->nb_segs == 1)
			seq = frame_check(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len,
			                  rx->max_seq, &rx->src, &rx->dst);
		if (seq == -1) {
			rx->st.foreign++;
		} else if (seq < 0 || rx->seen[seq]) {
			/* A duplicate is damage too: another frame's bytes went missing. */
			rx->st.damaged++;
		} else {
			rx->seen[seq] = 1;
			rx->st.ok++;
		}
		rte_pktmbuf_free(m);
	}
}

/* Sends n mbufs on port 0 queue 0, receiving meanwhile so the RX ring never overflows (an
 * overflow would look like a DMA loss). Returns 0, or -ETIMEDOUT if the TX ring is stuck. */
static inline int probe_send(struct rte_mbuf **pkts, uint16_t n, struct probe_rx *rx)
{
	uint64_t deadline = rte_get_timer_cycles() + PROBE_TX_STUCK_S * rte_get_timer_hz();
	uint16_t sent = 0;

	while (sent < n) {
		sent += rte_eth_tx_burst(0, 0, pkts + sent, n - sent);
		probe_receive(rx);
		if (sent < n && rte_get_timer_cycles() > deadline) {
			rte_pktmbuf_free_bulk(pkts + sent, n - sent);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

/* Receives until the frames [first, last) all arrived or PROBE_DRAIN_MS passed; returns how
 * many of them are missing. */
static inline uint32_t probe_drain(struct probe_rx *rx, uint32_t first, uint32_t last)
{
	uint64_t deadline = rte_get_timer_cycles() + PROBE_DRAIN_MS * rte_get_timer_hz() / 1000;
	uint32_t i, missing;

	for (;;) {
		missing = 0;
		for (i = first; i < last; i++) missing += !rx->seen[i];
		if (missing == 0 || rte_get_timer_cycles() > deadline) return missing;
		probe_receive(rx);
	}
}

/* Prints up to 16 sequence numbers of [first, last) that did not arrive intact, and the
 * ports' counters: tells a lost frame (imissed, rx_nombuf) from a DMA problem. */
static inline void probe_report_missing(const struct probe_rx *rx, uint32_t first, uint32_t last)
{
	struct rte_eth_stats es;
	uint32_t i, shown = 0;
	uint16_t port;

	for (i = first; i < last && shown < 16; i++)
		if (!rx->seen[i]) printf("%s%u", shown++ ? " " : "missing seq: ", i);
	if (shown) printf("\n");
	for (port = 0; port < 2; port++)
		if (rte_eth_stats_get(port, &es) == 0)
			printf("port %u: ipackets=%" PRIu64 " opackets=%" PRIu64 " imissed=%" PRIu64
			       " ierrors=%" PRIu64 " oerrors=%" PRIu64 " rx_nombuf=%" PRIu64 "\n",
			       port, es.ipackets, es.opackets, es.imissed, es.ierrors, es.oerrors,
			       es.rx_nombuf);
}

/* rte_eal_init() or die; returns the index of the first argument after EAL's and "--". */
static inline int probe_eal_init(const char *prog, int argc, char **argv)
{
	int rc = rte_eal_init(argc, argv);

	if (rc < 0) probe_die(prog, "rte_eal_init", -rte_errno);
	return rc + 1;
}

/* If arg is prefix (e.g. "--count=") and a number: stores the number in *value, returns 1. */
static inline int probe_arg_u32(const char *arg, const char *prefix, uint32_t *value)
{
	size_t len = strlen(prefix);

	if (strncmp(arg, prefix, len) != 0) return 0;
	*value = (uint32_t)strtoul(arg + len, NULL, 0);
	return 1;
}

/* Both ports up with RX buffers from pool, their links up, and rx addressed from port 0's MAC
 * to port 1's; or dies. */
static inline void probe_ports_start(const char *prog, struct rte_mempool *pool,
                                     struct probe_rx *rx)
{
	int rc;

	if ((rc = probe_port_init(0, pool)) != 0 || (rc = probe_port_init(1, pool)) != 0)
		probe_die(prog, "port init", rc);
	if ((rc = probe_wait_link(0)) != 0 || (rc = probe_wait_link(1)) != 0)
		probe_die(prog, "link did not come up", rc);
	rte_eth_macaddr_get(0, &rx->src);
	rte_eth_macaddr_get(1, &rx->dst);
}

/* A fresh mbuf from pool holding frame seq; or dies. */
static inline struct rte_mbuf *probe_frame(const char *prog, struct rte_mempool *pool, uint32_t seq,
                                           const struct probe_rx *rx)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	if (m == NULL) probe_die(prog, "mbuf pool empty", -ENOMEM);
	frame_fill((uint8_t *)rte_pktmbuf_append(m, frame_len(seq)), seq, &rx->src, &rx->dst);
	return m;
}

/* Sends frames [first, last) in bursts, frame seq built by make(seq, arg); or dies. */
static inline void probe_send_range(const char *prog, uint32_t first, uint32_t last,
                                    struct probe_rx *rx,
                                    struct rte_mbuf *(*make)(uint32_t seq, void *arg), void *arg)
{
	uint32_t seq = first;
	int rc;

	while (seq < last) {
		struct rte_mbuf *burst[PROBE_BURST];
		uint16_t n = 0;

		for (; n < PROBE_BURST && seq + n < last; n++) burst[n] = make(seq + n, arg);
		if ((rc = probe_send(burst, n, rx)) != 0) probe_die(prog, "TX ring stuck", rc);
		seq += n;
	}
}

#endif
