/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/*
 * numa_probe: the DPDK glue on a two-node guest (tests/vm/numa.sh), one lcore per node.
 * Checks, asking the kernel where memory sits (move_pages(2) in query mode), never trusting
 * the request:
 *   caches  every lcore's iovam cache was placed on its socket (iovam_cache_get_node), and its
 *           loaded magazine sits on that node, before and after the lcore ran fast-path pairs
 *           through it (alloc/free on one lcore: no magazine crosses the shared depot)
 *   pools   iovam_dpdk_pktmbuf_pool_create() on each socket: every memory chunk of the pool and
 *           an object taken from it sit on the socket asked for
 *   telemetry  /iovam/numa (read from this process's own telemetry socket) shows one lcore and
 *           one placed cache per socket, and each pool on its socket
 * Last line: "NUMA_PROBE: sockets=N lcores=M result=PASS" (FAIL with the reasons above it).
 * Usage: numa_probe <EAL args>
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "iovam.h"
#include "iovam_dpdk.h"
#include "iovam_numa.h"

static int failures;

#define CHECK(cond, ...)                              \
	do {                                          \
		if (!(cond)) {                        \
			printf("FAIL: " __VA_ARGS__); \
			printf("\n");                 \
			failures++;                   \
		}                                     \
	} while (0)

/* The node the kernel holds the page of p on (-errno if it cannot say). */
static int kernel_node_of(const void *p)
{
	void *page = (void *)((uintptr_t)p & ~(uintptr_t)(getpagesize() - 1));
	int status = -1;
	if (syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0) != 0) return -errno;
	return status;
}

static const void *loaded_magazine(struct iovam_domain *d, unsigned int lc)
{
	const struct iovam_fast_view *v = (const struct iovam_fast_view *)d;
	return __atomic_load_n(&iovam_lcore_(v, lc)->loaded[0], __ATOMIC_RELAXED);
}

static void check_cache(struct iovam_domain *d, unsigned int lc, const char *when)
{
	int socket = (int)rte_lcore_to_socket_id(lc);
	int node = kernel_node_of(loaded_magazine(d, lc));
	printf("cache lcore=%u socket=%d set_node=%d magazine_kernel_node=%d (%s)\n", lc, socket,
	       iovam_cache_get_node(d, lc), node, when);
	CHECK(iovam_cache_get_node(d, lc) == socket, "lcore %u cache not placed on socket %d", lc,
	      socket);
	CHECK(node == socket, "lcore %u magazine on node %d, lcore on socket %d (%s)", lc, node,
	      socket, when);
}

/* Fast-path pairs on the calling lcore's own cache. */
static int pairs(void *arg)
{
	struct iovam_domain *d = arg;
	unsigned int lc = rte_lcore_id();
	for (int i = 0; i < 10000; i++) {
		uint64_t pfn;
		if (iovam_alloc_fast(d, lc, 1, UINT64_MAX, &pfn) != 0 ||
		    iovam_free_fast(d, lc, pfn, 1) != 0)
			return -1;
	}
	return 0;
}

struct chunk_check {
	int socket;
	unsigned int chunks, bad;
};

static void chunk_cb(struct rte_mempool *mp, void *opaque, struct rte_mempool_memhdr *memhdr,
                     unsigned int idx)
{
	struct chunk_check *c = opaque;
	(void)mp;
	(void)idx;
	int first = kernel_node_of(memhdr->addr);
	int last = kernel_node_of((const char *)memhdr->addr + memhdr->len - 1);
	c->chunks++;
	if (first != c->socket || last != c->socket) {
		printf("pool chunk %p len %zu on nodes %d..%d, asked %d\n", memhdr->addr,
		       memhdr->len, first, last, c->socket);
		c->bad++;
	}
}

/* One command to this process's own telemetry socket; the reply in buf. */
static void telemetry(const char *cmd, char *buf, size_t size)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/dpdk_telemetry.v2",
	         rte_eal_get_runtime_dir());
	buf[0] = 0;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0) return;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && read(fd, buf, size) > 0 &&
	    write(fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd)) {
		ssize_t n = read(fd, buf, size - 1);
		buf[n > 0 ? n : 0] = 0;
	} else {
		buf[0] = 0;
	}
	close(fd);
}

int main(int argc, char **argv)
{
	int rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		printf("NUMA_PROBE: rte_eal_init: %s result=FAIL\n", rte_strerror(rte_errno));
		return 1;
	}
	rc = iovam_dpdk_init(NULL);
	if (rc != 0) {
		printf("NUMA_PROBE: iovam_dpdk_init: %d result=FAIL\n", rc);
		return 1;
	}
	struct iovam_domain *d = iovam_dpdk_domain();
	unsigned int lc;
	RTE_LCORE_FOREACH(lc)
	check_cache(d, lc, "after init");
	RTE_LCORE_FOREACH_WORKER(lc)
	rte_eal_remote_launch(pairs, d, lc);
	CHECK(pairs(d) == 0, "fast-path pairs on the main lcore failed");
	RTE_LCORE_FOREACH_WORKER(lc)
	CHECK(rte_eal_wait_lcore(lc) == 0, "fast-path pairs on lcore %u failed", lc);
	RTE_LCORE_FOREACH(lc)
	check_cache(d, lc, "after 10000 pairs on its lcore");

	struct rte_mempool *pools[RTE_MAX_NUMA_NODES] = {0};
	for (unsigned int i = 0; i < rte_socket_count(); i++) {
		int socket = rte_socket_id_by_idx(i);
		char name[RTE_MEMPOOL_NAMESIZE];
		snprintf(name, sizeof(name), "numa_pool_%d", socket);
		pools[i] = iovam_dpdk_pktmbuf_pool_create(name, 1023, 0, 0,
		                                          RTE_MBUF_DEFAULT_BUF_SIZE, socket);
		CHECK(pools[i] != NULL, "pool on socket %d: %s", socket, rte_strerror(rte_errno));
		if (pools[i] == NULL) continue;
		struct chunk_check c = {.socket = socket};
		rte_mempool_mem_iter(pools[i], chunk_cb, &c);
		struct rte_mbuf *m = rte_pktmbuf_alloc(pools[i]);
		int obj_node = m ? kernel_node_of(m->buf_addr) : -1;
		printf("pool %s socket_asked=%d chunks=%u chunks_elsewhere=%u "
		       "mbuf_kernel_node=%d\n",
		       name, socket, c.chunks, c.bad, obj_node);
		CHECK(c.chunks > 0 && c.bad == 0, "pool %s memory not all on node %d", name,
		      socket);
		CHECK(obj_node == socket, "pool %s mbuf on node %d", name, obj_node);
		rte_pktmbuf_free(m);
	}

	char reply[8192];
	telemetry("/iovam/numa", reply, sizeof(reply));
	printf("telemetry /iovam/numa: %s\n", reply);
	for (unsigned int i = 0; i < rte_socket_count(); i++) {
		int socket = rte_socket_id_by_idx(i);
		char want[64];
		unsigned int lcores_here = 0;
		RTE_LCORE_FOREACH(lc)
		lcores_here += (int)rte_lcore_to_socket_id(lc) == socket;
		snprintf(want, sizeof(want), "\"socket_%d\":[%u,%u,", socket, lcores_here,
		         lcores_here);
		CHECK(lcores_here == 0 || strstr(reply, want) != NULL, "telemetry lacks %s", want);
		snprintf(want, sizeof(want), "\"pool_numa_pool_%d\":[%d,%d,", socket, socket,
		         socket);
		CHECK(pools[i] == NULL || strstr(reply, want) != NULL, "telemetry lacks %s", want);
	}

	for (unsigned int i = 0; i < rte_socket_count(); i++) rte_mempool_free(pools[i]);
	rc = iovam_dpdk_fini();
	CHECK(rc == 0, "iovam_dpdk_fini: %d", rc);
	printf("NUMA_PROBE: sockets=%u lcores=%u result=%s\n", rte_socket_count(),
	       rte_lcore_count(), failures == 0 ? "PASS" : "FAIL");
	rte_eal_cleanup();
	return failures == 0 ? 0 : 1;
}
