/* Byte-checking DMA probe for the VM test, built against Debian's DPDK (no iovam code).
 *
 * Sends patterned frames (frames.h) from port 0 to port 1 through the VFIO-bound NICs and checks
 * every byte received on port 1. It is the test's control:
 *   --mode=positive  all frames must arrive intact (the DMA path works)          -> result=PASS
 *   --mode=negative  one frame's mbuf gets a buf_iova that no IOMMU mapping covers, so the NIC's
 *                    DMA read of it must fault; that frame must not arrive
 *                    intact                                                      -> result=DETECTED
 *                    (run.sh also looks for the guest kernel's DMAR fault)
 * This proves that the VM test can fail: if a wrong IOVA went unnoticed, PASS would mean nothing.
 *
 * Usage: negative_probe <EAL args> -- [--mode=positive|negative] [--count=N]
 * Prints one line "PROBE: mode=... sent=... ok=... damaged=... missing=... foreign=... result=..."
 * Exit status: 0 when result is PASS (positive) or DETECTED (negative), 1 otherwise. */
#include <rte_eal.h>
#include <rte_memory.h>

#include "probe_common.h"

#define NB_MBUFS 4095
#define PROG     "negative_probe"

static int memseg_max_end(const struct rte_memseg_list *msl, const struct rte_memseg *ms, void *arg)
{
	uint64_t *max_end = arg;

	(void)msl;
	if (ms->iova != RTE_BAD_IOVA && ms->iova + ms->len > *max_end)
		*max_end = ms->iova + ms->len;
	return 0;
}

/* An IOVA that no DPDK memory segment covers, so VFIO never mapped it: 1 GiB past the highest
 * mapped IOVA, aligned to 1 GiB. Stays far below the 39-bit address width of qemu's VT-d. */
static rte_iova_t unmapped_iova(void)
{
	uint64_t max_end = 0;

	rte_memseg_walk(memseg_max_end, &max_end);
	return RTE_ALIGN_CEIL(max_end, 1ULL << 30) + (1ULL << 30);
}

struct send_args {
	struct rte_mempool *pool, *bad_pool;
	const struct probe_rx *rx;
	uint32_t bad_seq;    /* the frame that gets bad_iova (negative mode) */
	rte_iova_t bad_iova; /* RTE_BAD_IOVA: none (positive mode) */
};

/* Frame seq in a fresh mbuf; the bad one from its own pool, its buf_iova replaced by bad_iova
 * after the data was written through the virtual address. */
static struct rte_mbuf *make_frame(uint32_t seq, void *arg)
{
	const struct send_args *s = arg;
	int bad = s->bad_iova != RTE_BAD_IOVA && seq == s->bad_seq;
	struct rte_mbuf *m = probe_frame(PROG, bad ? s->bad_pool : s->pool, seq, s->rx);

	if (bad) m->buf_iova = s->bad_iova;
	return m;
}

static void parse_args(int first, int argc, char **argv, int *negative, uint32_t *count)
{
	int a;

	for (a = first; a < argc; a++) {
		if (strcmp(argv[a], "--mode=negative") == 0)
			*negative = 1;
		else if (strcmp(argv[a], "--mode=positive") == 0)
			*negative = 0;
		else if (!probe_arg_u32(argv[a], "--count=", count))
			probe_die(PROG, "unknown argument", -EINVAL);
	}
	if (*count < 2) probe_die(PROG, "--count must be >= 2", -EINVAL);
}

/* Negative mode: the poisoned mbuf gets its own pool, so that it is never reused for a good
 * frame or an RX buffer, and an IOVA nothing maps. */
static void prepare_bad_frame(struct send_args *s, uint32_t count)
{
	s->bad_seq = count / 2;
	s->bad_pool =
	        rte_pktmbuf_pool_create("bad", 7, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (s->bad_pool == NULL) probe_die(PROG, "rte_pktmbuf_pool_create(bad)", -rte_errno);
	s->bad_iova = unmapped_iova();
	printf(PROG ": frame %u gets unmapped buf_iova 0x%" PRIx64 "\n", s->bad_seq, s->bad_iova);
}

int main(int argc, char **argv)
{
	struct send_args s = {.bad_pool = NULL, .bad_iova = RTE_BAD_IOVA};
	struct probe_rx rx;
	uint32_t count = 2000, missing;
	int negative = 0, ok, seen_bad;

	parse_args(probe_eal_init(PROG, argc, argv), argc, argv, &negative, &count);
	if (rte_eth_dev_count_avail() < 2) probe_die(PROG, "need two ports", -ENODEV);
	memset(&rx, 0, sizeof(rx));
	rx.port = 1;
	rx.max_seq = count;
	rx.seen = calloc(count, 1);
	s.pool = rte_pktmbuf_pool_create("probe", NB_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
	                                 rte_socket_id());
	if (s.pool == NULL || rx.seen == NULL)
		probe_die(PROG, "rte_pktmbuf_pool_create", -rte_errno);
	s.rx = &rx;
	probe_ports_start(PROG, s.pool, &rx);
	printf(PROG ": iova_mode=%s count=%u%s\n", rte_eal_iova_mode() == RTE_IOVA_VA ? "va" : "pa",
	       count, negative ? " negative" : "");
	if (negative) prepare_bad_frame(&s, count);

	probe_send_range(PROG, 0, count, &rx, make_frame, &s);
	missing = probe_drain(&rx, 0, count);

	probe_report_missing(&rx, 0, count);
	ok = rx.st.ok == count && rx.st.damaged == 0 && missing == 0;
	seen_bad = negative ? rx.seen[s.bad_seq] : -1;
	printf("PROBE: mode=%s sent=%u ok=%" PRIu64 " damaged=%" PRIu64 " missing=%u"
	       " foreign=%" PRIu64 " bad_seq_seen=%d result=%s\n",
	       negative ? "negative" : "positive", count, rx.st.ok, rx.st.damaged, missing,
	       rx.st.foreign, seen_bad,
	       negative ? (seen_bad ? "MISSED" : "DETECTED") : (ok ? "PASS" : "FAIL"));
	fflush(stdout);
	rte_eth_dev_stop(0);
	rte_eth_dev_stop(1);
	rte_eal_cleanup();
	return negative ? seen_bad : !ok;
}
