/* Byte-checking DMA probe for the VM test, built against Debian's DPDK (no iovam code).
 *
 * Sends patterned frames (frames.h) from port 0 to port 1 through the VFIO-bound NICs and checks
 * every byte received on port 1. It is the test's control:
 *   --mode=positive  all frames must arrive intact (the DMA path works)          -> result=PASS
 *   --mode=negative  one frame's mbuf gets a buf_iova that no IOMMU mapping covers, so the NIC's
 *                    DMA read of it must fault; the frame must be missing or damaged
 *                    (and the guest kernel must log a DMAR fault, checked by run.sh) -> result=DETECTED
 * This proves that the VM test can fail: if a wrong IOVA went unnoticed, PASS would mean nothing.
 *
 * Usage: negative_probe <EAL args> -- [--mode=positive|negative] [--count=N]
 * Prints one line "PROBE: mode=... sent=... ok=... damaged=... missing=... foreign=... result=..."
 * In negative mode DETECTED means the poisoned frame did not arrive intact.
 * Exit status: 0 when result is PASS (positive) or DETECTED (negative), 1 otherwise. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_memory.h>

#include "frames.h"

#define BURST 32
#define RING_SIZE 512
#define NB_MBUFS 4095
#define LINK_WAIT_MS 10000
#define DRAIN_MS 3000 /* how long to wait for stragglers after the last frame was sent */

struct stats {
    uint64_t sent, ok, damaged, foreign;
};

static void die(const char *msg, int rc)
{
    fprintf(stderr, "negative_probe: %s (%d: %s)\n", msg, rc, rte_strerror(rc < 0 ? -rc : rc));
    printf("PROBE: result=ERROR (%s)\n", msg);
    fflush(stdout);
    exit(2);
}

static void port_init(uint16_t port, struct rte_mempool *pool)
{
    struct rte_eth_conf conf;
    uint16_t nb_rxd = RING_SIZE, nb_txd = RING_SIZE;
    int rc;

    memset(&conf, 0, sizeof(conf));
    if ((rc = rte_eth_dev_configure(port, 1, 1, &conf)) != 0)
        die("rte_eth_dev_configure", rc);
    if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd)) != 0)
        die("rte_eth_dev_adjust_nb_rx_tx_desc", rc);
    if ((rc = rte_eth_rx_queue_setup(port, 0, nb_rxd, rte_eth_dev_socket_id(port), NULL, pool)) != 0)
        die("rte_eth_rx_queue_setup", rc);
    if ((rc = rte_eth_tx_queue_setup(port, 0, nb_txd, rte_eth_dev_socket_id(port), NULL)) != 0)
        die("rte_eth_tx_queue_setup", rc);
    if ((rc = rte_eth_dev_start(port)) != 0)
        die("rte_eth_dev_start", rc);
    /* Promiscuous: the frames are addressed to port 1's MAC, but be robust to PMDs that filter. */
    rte_eth_promiscuous_enable(port);
}

/* Frames sent before the emulated link is up are silently dropped: wait for it. */
static void wait_link(uint16_t port)
{
    struct rte_eth_link link;
    int ms;

    for (ms = 0; ms < LINK_WAIT_MS; ms += 50) {
        memset(&link, 0, sizeof(link));
        if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP)
            return;
        rte_delay_ms(50);
    }
    die("link did not come up", -ETIMEDOUT);
}

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

/* Polls port 1 once and checks every received frame. */
static void receive(uint16_t rx_port, uint32_t count, uint8_t *seen, struct stats *st,
                    const struct rte_ether_addr *src, const struct rte_ether_addr *dst)
{
    struct rte_mbuf *pkts[BURST];
    uint16_t n, i;

    n = rte_eth_rx_burst(rx_port, 0, pkts, BURST);
    for (i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
        int64_t seq = -2;

        if (m->nb_segs == 1)
            seq = frame_check(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, count, src, dst);
        if (seq == -1) {
            st->foreign++;
        } else if (seq < 0 || seen[seq]) {
            st->damaged++; /* a duplicate is damage too: some other frame's bytes went missing */
        } else {
            seen[seq] = 1;
            st->ok++;
        }
        rte_pktmbuf_free(m);
    }
}

/* Builds frame seq in a fresh mbuf. In negative mode the chosen frame's mbuf comes from its own
 * pool and gets an unmapped buf_iova after the data was written through its virtual address. */
static struct rte_mbuf *make_frame(struct rte_mempool *pool, uint32_t seq,
                                   const struct rte_ether_addr *src,
                                   const struct rte_ether_addr *dst, rte_iova_t bad_iova)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
    uint32_t len = frame_len(seq);

    if (m == NULL)
        die("mbuf pool empty", -ENOMEM);
    frame_fill((uint8_t *)rte_pktmbuf_append(m, len), seq, src, dst);
    if (bad_iova != RTE_BAD_IOVA)
        m->buf_iova = bad_iova;
    return m;
}

int main(int argc, char **argv)
{
    struct rte_mempool *pool, *bad_pool = NULL;
    struct rte_ether_addr mac0, mac1;
    struct stats st = {0};
    uint32_t count = 2000, bad_seq, seq = 0, missing = 0, i;
    int negative = 0, rc, a, ok;
    rte_iova_t bad_iova = RTE_BAD_IOVA;
    uint8_t *seen;
    uint64_t deadline;

    rc = rte_eal_init(argc, argv);
    if (rc < 0)
        die("rte_eal_init", rc);
    for (a = rc + 1; a < argc; a++) {
        if (strcmp(argv[a], "--mode=negative") == 0)
            negative = 1;
        else if (strcmp(argv[a], "--mode=positive") == 0)
            negative = 0;
        else if (strncmp(argv[a], "--count=", 8) == 0)
            count = (uint32_t)strtoul(argv[a] + 8, NULL, 0);
        else
            die("unknown argument", -EINVAL);
    }
    if (rte_eth_dev_count_avail() < 2)
        die("need two ports", -ENODEV);
    bad_seq = count / 2;
    seen = calloc(count, 1);
    pool = rte_pktmbuf_pool_create("probe", NB_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   rte_socket_id());
    if (pool == NULL || seen == NULL)
        die("rte_pktmbuf_pool_create", -rte_errno);
    if (negative) {
        /* Own pool: the damaged mbuf must never be reused for a good frame or an RX buffer. */
        bad_pool = rte_pktmbuf_pool_create("bad", 7, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                           rte_socket_id());
        if (bad_pool == NULL)
            die("rte_pktmbuf_pool_create(bad)", -rte_errno);
        bad_iova = unmapped_iova();
    }
    port_init(0, pool);
    port_init(1, pool);
    wait_link(0);
    wait_link(1);
    rte_eth_macaddr_get(0, &mac0);
    rte_eth_macaddr_get(1, &mac1);
    printf("negative_probe: iova_mode=%s count=%u%s\n",
           rte_eal_iova_mode() == RTE_IOVA_VA ? "va" : "pa", count, negative ? " negative" : "");
    if (negative)
        printf("negative_probe: frame %u gets unmapped buf_iova 0x%" PRIx64 "\n", bad_seq, bad_iova);

    while (seq < count) {
        struct rte_mbuf *burst[BURST];
        uint16_t n = 0, sent = 0;

        while (n < BURST && seq + n < count) {
            uint32_t s = seq + n;
            int bad = negative && s == bad_seq;

            burst[n] = make_frame(bad ? bad_pool : pool, s, &mac0, &mac1,
                                  bad ? bad_iova : RTE_BAD_IOVA);
            n++;
        }
        /* Retry until the TX ring takes the whole burst, receiving meanwhile so port 1's
         * ring never overflows (that would look like a DMA loss). */
        deadline = rte_get_timer_cycles() + 5 * rte_get_timer_hz();
        while (sent < n) {
            sent += rte_eth_tx_burst(0, 0, burst + sent, n - sent);
            receive(1, count, seen, &st, &mac0, &mac1);
            if (rte_get_timer_cycles() > deadline)
                die("TX ring stuck", -ETIMEDOUT);
        }
        seq += n;
        st.sent += n;
    }
    deadline = rte_get_timer_cycles() + DRAIN_MS * rte_get_timer_hz() / 1000;
    while (st.ok + st.damaged < count && rte_get_timer_cycles() < deadline)
        receive(1, count, seen, &st, &mac0, &mac1);
    for (i = 0; i < count; i++)
        missing += !seen[i];

    ok = st.ok == count && st.damaged == 0 && missing == 0;
    printf("PROBE: mode=%s sent=%" PRIu64 " ok=%" PRIu64 " damaged=%" PRIu64 " missing=%u"
           " foreign=%" PRIu64 " bad_seq_seen=%d result=%s\n",
           negative ? "negative" : "positive", st.sent, st.ok, st.damaged, missing, st.foreign,
           negative ? seen[bad_seq] : -1,
           negative ? (seen[bad_seq] ? "MISSED" : "DETECTED") : (ok ? "PASS" : "FAIL"));
    fflush(stdout);
    rte_eth_dev_stop(0);
    rte_eth_dev_stop(1);
    rte_eal_cleanup();
    return negative ? seen[bad_seq] : !ok;
}
