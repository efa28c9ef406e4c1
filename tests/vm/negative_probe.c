/* Byte-checking DMA probe for the VM test, built against Debian's DPDK (no iovam code).
 *
 * Sends patterned frames (frames.h) from port 0 to port 1 through the VFIO-bound NICs and checks
 * every byte received on port 1. It is the test's control:
 *   --mode=positive  all frames must arrive intact (the DMA path works)          -> result=PASS
 *   --mode=negative  one frame's mbuf gets a buf_iova that no IOMMU mapping covers, so the NIC's
 *                    DMA read of it must fault; that frame must not arrive intact -> result=DETECTED
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
#define PROG "negative_probe"

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

/* Builds frame seq in a fresh mbuf; bad_iova (unless RTE_BAD_IOVA) replaces its buf_iova after
 * the data was written through the virtual address. */
static struct rte_mbuf *make_frame(struct rte_mempool *pool, uint32_t seq,
                                   const struct probe_rx *rx, rte_iova_t bad_iova)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

    if (m == NULL)
        probe_die(PROG, "mbuf pool empty", -ENOMEM);
    frame_fill((uint8_t *)rte_pktmbuf_append(m, frame_len(seq)), seq, &rx->src, &rx->dst);
    if (bad_iova != RTE_BAD_IOVA)
        m->buf_iova = bad_iova;
    return m;
}

int main(int argc, char **argv)
{
    struct rte_mempool *pool, *bad_pool = NULL;
    struct probe_rx rx;
    uint32_t count = 2000, bad_seq, seq = 0, missing;
    int negative = 0, rc, a, ok;
    rte_iova_t bad_iova = RTE_BAD_IOVA;

    rc = rte_eal_init(argc, argv);
    if (rc < 0)
        probe_die(PROG, "rte_eal_init", -rte_errno);
    for (a = rc + 1; a < argc; a++) {
        if (strcmp(argv[a], "--mode=negative") == 0)
            negative = 1;
        else if (strcmp(argv[a], "--mode=positive") == 0)
            negative = 0;
        else if (strncmp(argv[a], "--count=", 8) == 0)
            count = (uint32_t)strtoul(argv[a] + 8, NULL, 0);
        else
            probe_die(PROG, "unknown argument", -EINVAL);
    }
    if (count < 2)
        probe_die(PROG, "--count must be >= 2", -EINVAL);
    if (rte_eth_dev_count_avail() < 2)
        probe_die(PROG, "need two ports", -ENODEV);
    bad_seq = count / 2;
    memset(&rx, 0, sizeof(rx));
    rx.port = 1;
    rx.max_seq = count;
    rx.seen = calloc(count, 1);
    pool = rte_pktmbuf_pool_create("probe", NB_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   rte_socket_id());
    if (pool == NULL || rx.seen == NULL)
        probe_die(PROG, "rte_pktmbuf_pool_create", -rte_errno);
    if (negative) {
        /* Own pool: the poisoned mbuf must never be reused for a good frame or an RX buffer. */
        bad_pool = rte_pktmbuf_pool_create("bad", 7, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                           rte_socket_id());
        if (bad_pool == NULL)
            probe_die(PROG, "rte_pktmbuf_pool_create(bad)", -rte_errno);
        bad_iova = unmapped_iova();
    }
    if ((rc = probe_port_init(0, pool)) != 0 || (rc = probe_port_init(1, pool)) != 0)
        probe_die(PROG, "port init", rc);
    if ((rc = probe_wait_link(0)) != 0 || (rc = probe_wait_link(1)) != 0)
        probe_die(PROG, "link did not come up", rc);
    rte_eth_macaddr_get(0, &rx.src);
    rte_eth_macaddr_get(1, &rx.dst);
    printf(PROG ": iova_mode=%s count=%u%s\n",
           rte_eal_iova_mode() == RTE_IOVA_VA ? "va" : "pa", count, negative ? " negative" : "");
    if (negative)
        printf(PROG ": frame %u gets unmapped buf_iova 0x%" PRIx64 "\n", bad_seq, bad_iova);

    while (seq < count) {
        struct rte_mbuf *burst[PROBE_BURST];
        uint16_t n = 0;

        for (; n < PROBE_BURST && seq + n < count; n++) {
            int bad = negative && seq + n == bad_seq;

            burst[n] = make_frame(bad ? bad_pool : pool, seq + n, &rx,
                                  bad ? bad_iova : RTE_BAD_IOVA);
        }
        if ((rc = probe_send(burst, n, &rx)) != 0)
            probe_die(PROG, "TX ring stuck", rc);
        seq += n;
    }
    missing = probe_drain(&rx, 0, count);

    probe_report_missing(&rx, 0, count);
    ok = rx.st.ok == count && rx.st.damaged == 0 && missing == 0;
    printf("PROBE: mode=%s sent=%u ok=%" PRIu64 " damaged=%" PRIu64 " missing=%u"
           " foreign=%" PRIu64 " bad_seq_seen=%d result=%s\n",
           negative ? "negative" : "positive", count, rx.st.ok, rx.st.damaged, missing,
           rx.st.foreign, negative ? rx.seen[bad_seq] : -1,
           negative ? (rx.seen[bad_seq] ? "MISSED" : "DETECTED") : (ok ? "PASS" : "FAIL"));
    fflush(stdout);
    rte_eth_dev_stop(0);
    rte_eth_dev_stop(1);
    rte_eal_cleanup();
    return negative ? rx.seen[bad_seq] : !ok;
}
