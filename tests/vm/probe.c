/* The iovam DMA probe for the VM test: real NICs, VFIO, an emulated VT-d that enforces mappings.
 *
 * 1. iovam_dpdk_init() with a narrow DMA window (IOVAM_DMA_BITS, default 32 bits here), so the
 *    IOVAs iovam hands out differ from EAL's (which are virtual addresses >= 4 GiB, or physical).
 * 2. An iovam mbuf pool (mempool ops "iovam") feeds both RX rings and the TX frames: every
 *    mbuf's buf_iova must lie in the window, differ from EAL's IOVA and match
 *    iovam_dpdk_virt2iova(). Patterned frames go port 0 -> port 1, every byte checked.
 * 3. Application buffers from plain mmap (not DPDK memory), mapped with iovam_dpdk_map(),
 *    attached to mbufs as external buffers and sent; their free callback calls
 *    iovam_dpdk_unmap(). Every byte is checked on receipt, and the service must complete every
 *    lazy unmap.
 * 4. Teardown: ports closed, pool freed, iovam_dpdk_fini() must succeed (nothing leaked).
 * A wrong IOVA anywhere shows up as a DMAR fault in the guest kernel log (run.sh checks) and as
 * missing or damaged frames here.
 *
 * qemu 7.2's e1000e drops (silently) a TX buffer that crosses a page boundary when the IOMMU maps
 * the two pages to guest-physical pages that are not adjacent (its net_tx_pkt maps each fragment
 * in one piece). Real NICs have no such limit, and virtio-net has none either, so page-crossing
 * application buffers are used only with --dyn-cross-page=1 (run.sh: virtio).
 *
 * --mode=stale is the glue's negative control (run after the positive steps, its DMAR faults are
 * wanted): an application buffer is mapped, unmapped, the unmap completed by the service, and the
 * buffer is then sent with its stale IOVA. The IOMMU must refuse it (frame lost or damaged, DMAR
 * fault) while good frames before and after it still arrive: otherwise iovam_dpdk_unmap() does
 * not really remove the mapping, which nothing else here would notice. Before that, a second
 * buffer's unmap fails (iovam_dpdk_test_fail_dma_unmap): it must stay mapped (a frame from it
 * arrives) until the failures stop and the service's retry unmaps it (then it faults too).
 *
 * --teardown-strict=0 reports a failing iovam_dpdk_fini() (after the ports closed, which may
 * have detached the VFIO groups) without failing on it; the default fails.
 *
 * Usage: probe <EAL args> -- [--mode=positive|stale] [--count=N] [--dyn=N] [--dyn-cross-page=0|1]
 *        [--teardown-strict=0|1]
 * Prints one line "PROBE: mode=iovam ... result=PASS|FAIL" (stale: DETECTED|MISSED|ERROR);
 * exit 0 only for PASS / DETECTED. */
#include <sys/mman.h>

#include <rte_eal.h>
#include <rte_mempool.h>
#include <rte_memory.h>

#include "iovam_dpdk.h"
#include "probe_common.h"

#define PROG       "probe"
#define NB_MBUFS   4095
#define DYN_STRIDE 8192u /* each application buffer gets two pages of its own... */
#define DYN_LEN    2048u /* ...and is 2 KiB long at an offset: in one page, or across two */

struct dyn_buf {
	uint8_t *va;
	uint64_t iova;
	struct rte_mbuf_ext_shared_info shinfo;
	int unmap_rc;
	int freed;
};

static uint64_t g_window_end;  /* one past the highest IOVA iovam may hand out */
static uint64_t g_iova_bad;    /* mbufs whose buf_iova is outside the window or not iovam's */
static uint64_t g_iova_is_eal; /* mbufs whose buf_iova equals EAL's own IOVA for that address */
static uint64_t g_dyn_freed, g_dyn_unmap_errors;

/* A mbuf's buf_iova must be iovam's: in the window and what iovam_dpdk_virt2iova() says. */
static int check_iova(const struct rte_mbuf *m)
{
	uint64_t iova = 0;

	if (rte_mem_virt2iova(m->buf_addr) == m->buf_iova) g_iova_is_eal++;
	if (m->buf_iova + m->buf_len > g_window_end ||
	    iovam_dpdk_virt2iova(m->buf_addr, &iova) != 0 || iova != m->buf_iova) {
		if (g_iova_bad++ < 5)
			printf(PROG ": bad mbuf iova: va %p iova 0x%" PRIx64 " iovam 0x%" PRIx64
			            "\n",
			       m->buf_addr, m->buf_iova, iova);
		return -1;
	}
	return 0;
}

static void check_pool_obj(struct rte_mempool *mp, void *arg, void *obj, unsigned int idx)
{
	(void)mp, (void)arg, (void)idx;
	check_iova(obj);
}

/* Runs when the PMD frees a transmitted external buffer: hand its mapping back (lazily). */
static void dyn_free_cb(void *addr, void *opaque)
{
	struct dyn_buf *b = opaque;

	(void)addr;
	b->unmap_rc = iovam_dpdk_unmap(b->va, b->iova, DYN_LEN);
	if (b->unmap_rc != 0) g_dyn_unmap_errors++;
	b->freed = 1;
	g_dyn_freed++;
}

static struct rte_mbuf *pool_frame(struct rte_mempool *pool, uint32_t seq,
                                   const struct probe_rx *rx)
{
	struct rte_mbuf *m = probe_frame(PROG, pool, seq, rx);

	check_iova(m);
	return m;
}

static uint64_t map_dyn(uint8_t *va);

/* Maps an application buffer with iovam and wraps it in a mbuf (external buffer). */
static struct rte_mbuf *dyn_frame(struct rte_mempool *pool, struct dyn_buf *b, uint32_t seq,
                                  const struct probe_rx *rx, uint64_t granule)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	if (m == NULL) probe_die(PROG, "mbuf pool empty", -ENOMEM);
	b->iova = map_dyn(b->va);
	if (b->iova + DYN_LEN > g_window_end || b->iova == (uintptr_t)b->va ||
	    (b->iova & (granule - 1)) != ((uintptr_t)b->va & (granule - 1))) {
		if (g_iova_bad++ < 5)
			printf(PROG ": bad dyn iova: va %p iova 0x%" PRIx64 "\n", (void *)b->va,
			       b->iova);
	}
	b->shinfo.free_cb = dyn_free_cb;
	b->shinfo.fcb_opaque = b;
	rte_mbuf_ext_refcnt_set(&b->shinfo, 1);
	rte_pktmbuf_attach_extbuf(m, b->va, b->iova, DYN_LEN, &b->shinfo);
	frame_fill((uint8_t *)rte_pktmbuf_append(m, frame_len(seq)), seq, &rx->src, &rx->dst);
	return m;
}

static void noop_free_cb(void *addr, void *opaque)
{
	(void)addr, (void)opaque; /* the stale buffer's mapping is already gone */
}

/* Attaches [va, +DYN_LEN) at iova to a pool mbuf as frame seq and sends it. */
static void send_ext_frame(struct rte_mempool *pool, struct probe_rx *rx, uint8_t *va,
                           uint64_t iova, uint32_t seq, struct rte_mbuf_ext_shared_info *shinfo,
                           const char *what)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	int rc;

	if (m == NULL) probe_die(PROG, "mbuf pool empty", -ENOMEM);
	shinfo->free_cb = noop_free_cb;
	shinfo->fcb_opaque = NULL;
	rte_mbuf_ext_refcnt_set(shinfo, 1);
	rte_pktmbuf_attach_extbuf(m, va, iova, DYN_LEN, shinfo);
	frame_fill((uint8_t *)rte_pktmbuf_append(m, frame_len(seq)), seq, &rx->src, &rx->dst);
	printf(PROG ": sending frame %u from va %p with %s iova 0x%" PRIx64 "\n", seq, (void *)va,
	       what, iova);
	if ((rc = probe_send(&m, 1, rx)) != 0) probe_die(PROG, "TX ring stuck", rc);
}

static uint64_t map_dyn(uint8_t *va)
{
	uint64_t iova = 0;
	int rc, tries;

	for (tries = 0; (rc = iovam_dpdk_map(va, DYN_LEN, &iova)) == -EAGAIN && tries < 100;
	     tries++)
		iovam_dpdk_service_run(); /* transient: the node pool refills on the service */
	if (rc != 0) probe_die(PROG, "iovam_dpdk_map", rc);
	return iova;
}

/* Runs the service until no unmap is pending or retrying (2 s at most). */
static int unmaps_settled(void)
{
	struct iovam_dpdk_stats st;
	int tries;

	for (tries = 0; tries < 200; tries++) {
		iovam_dpdk_service_run();
		if (iovam_dpdk_stats_get(&st) == 0 && st.dyn_pending == 0 &&
		    st.unmaps_retrying == 0)
			return 1;
		rte_delay_ms(10);
	}
	return 0;
}

/* The use-after-unmap control (--mode=stale), see the top of this file. Frames:
 *   0..15  good, from the pool
 *   16     HELD: buffer b's unmap fails (injected): the IOVA must stay mapped and held, so the
 *          frame arrives
 *   17     STALE: buffer a, sent after its unmap completed: must fault
 *   18     RETRIED: buffer b again, after the failures stopped and the service's retry unmapped
 *          it: must fault too
 *   19..34 good */
static int run_stale(struct rte_mempool *pool, struct probe_rx *rx, uint8_t *va)
{
	static struct rte_mbuf_ext_shared_info shinfo[3];
	enum { GOOD = 16, HELD_SEQ = GOOD, STALE_SEQ, RETRIED_SEQ, LAST = RETRIED_SEQ + 1 + GOOD };
	struct rte_mbuf *burst[GOOD];
	struct iovam_dpdk_stats st;
	uint8_t *va_b = va + DYN_STRIDE;
	uint64_t iova, iova_b;
	uint32_t i, good_missing = 0;
	int rc, tries, held = 0;
	const char *result;

	for (i = 0; i < GOOD; i++) burst[i] = pool_frame(pool, i, rx);
	if ((rc = probe_send(burst, GOOD, rx)) != 0) probe_die(PROG, "TX ring stuck", rc);

	iova_b = map_dyn(va_b);
	iovam_dpdk_test_fail_dma_unmap(1);
	if ((rc = iovam_dpdk_unmap(va_b, iova_b, DYN_LEN)) != 0)
		probe_die(PROG, "iovam_dpdk_unmap", rc);
	for (tries = 0; tries < 200 && !held; tries++) {
		iovam_dpdk_service_run();
		held = iovam_dpdk_stats_get(&st) == 0 && st.unmaps_retrying >= 1;
		if (!held) rte_delay_ms(10);
	}
	if (!held) probe_die(PROG, "the injected unmap failure was not seen", -ETIMEDOUT);
	send_ext_frame(pool, rx, va_b, iova_b, HELD_SEQ, &shinfo[0], "held");
	probe_drain(rx, HELD_SEQ, HELD_SEQ + 1);
	iovam_dpdk_test_fail_dma_unmap(0);

	iova = map_dyn(va);
	if ((rc = iovam_dpdk_unmap(va, iova, DYN_LEN)) != 0)
		probe_die(PROG, "iovam_dpdk_unmap", rc);
	/* The unmaps are lazy, b's is retried: wait until the service says both completed. */
	if (!unmaps_settled()) probe_die(PROG, "unmap never completed", -ETIMEDOUT);
	send_ext_frame(pool, rx, va, iova, STALE_SEQ, &shinfo[1], "stale");
	send_ext_frame(pool, rx, va_b, iova_b, RETRIED_SEQ, &shinfo[2], "retried-unmap");
	for (i = RETRIED_SEQ + 1; i < LAST; i++)
		burst[i - RETRIED_SEQ - 1] = pool_frame(pool, i, rx);
	if ((rc = probe_send(burst, GOOD, rx)) != 0) probe_die(PROG, "TX ring stuck", rc);
	probe_drain(rx, 0, LAST);
	for (i = 0; i < LAST; i++)
		good_missing += i != STALE_SEQ && i != RETRIED_SEQ && !rx->seen[i];
	probe_report_missing(rx, 0, LAST);
	/* The control is valid only if the good frames around it arrived (a dead port proves
     * nothing) and the held one did (else a failed unmap lost its mapping anyway). */
	result = good_missing                                   ? "ERROR"
	         : rx->seen[STALE_SEQ] || rx->seen[RETRIED_SEQ] ? "MISSED"
	                                                        : "DETECTED";
	printf("PROBE: mode=stale stale_iova=0x%" PRIx64 " stale_seen=%d held_iova=0x%" PRIx64
	       " held_seen=%d retried_seen=%d good_missing=%u result=%s\n",
	       iova, rx->seen[STALE_SEQ], iova_b, rx->seen[HELD_SEQ], rx->seen[RETRIED_SEQ],
	       good_missing, result);
	fflush(stdout);
	rte_eth_dev_stop(0);
	rte_eth_dev_stop(1);
	rte_eal_cleanup();
	return strcmp(result, "DETECTED") != 0;
}

struct send_args {
	struct rte_mempool *pool;
	struct dyn_buf *dyn; /* NULL: frames from the pool; else dyn[seq - first] */
	uint32_t first;
	const struct probe_rx *rx;
	uint64_t granule;
};

static struct rte_mbuf *make_frame(uint32_t seq, void *arg)
{
	const struct send_args *s = arg;

	return s->dyn ? dyn_frame(s->pool, &s->dyn[seq - s->first], seq, s->rx, s->granule)
	              : pool_frame(s->pool, seq, s->rx);
}

/* Sends frames [first, last), each built by pool_frame or (dyn != NULL) dyn_frame. */
static void send_range(struct rte_mempool *pool, struct dyn_buf *dyn, uint32_t first, uint32_t last,
                       struct probe_rx *rx, uint64_t granule)
{
	struct send_args s = {
	        .pool = pool, .dyn = dyn, .first = first, .rx = rx, .granule = granule};

	probe_send_range(PROG, first, last, rx, make_frame, &s);
}

/* Runs the service until every lazy unmap completed (or 2 s passed). */
static void settle_unmaps(struct iovam_dpdk_stats *st)
{
	int i;

	for (i = 0; i < 200; i++) {
		iovam_dpdk_service_run(); /* -EBUSY: a service lcore/alarm is running it: fine */
		if (iovam_dpdk_stats_get(st) == 0 && st->dyn_pending == 0) return;
		rte_delay_ms(10);
	}
}

struct probe_opts {
	uint32_t count, ndyn, cross_page;
	int stale, teardown_strict;
};

static void parse_args(int first, int argc, char **argv, struct probe_opts *o)
{
	uint32_t strict = 1;
	int a;

	for (a = first; a < argc; a++) {
		if (strcmp(argv[a], "--mode=stale") == 0)
			o->stale = 1;
		else if (strcmp(argv[a], "--mode=positive") == 0)
			o->stale = 0;
		else if (!probe_arg_u32(argv[a], "--count=", &o->count) &&
		         !probe_arg_u32(argv[a], "--dyn=", &o->ndyn) &&
		         !probe_arg_u32(argv[a], "--teardown-strict=", &strict) &&
		         !probe_arg_u32(argv[a], "--dyn-cross-page=", &o->cross_page))
			probe_die(PROG, "unknown argument", -EINVAL);
	}
	o->teardown_strict = strict != 0;
}

/* The glue in a narrow DMA window (32 bits unless IOVAM_DMA_BITS says otherwise); returns the
 * IOVA granule. */
static uint64_t glue_init(struct iovam_dpdk_conf *conf)
{
	int rc;

	memset(conf, 0, sizeof(*conf));
	if ((rc = iovam_dpdk_conf_from_env(conf)) != 0)
		probe_die(PROG, "iovam_dpdk_conf_from_env", rc);
	if (conf->dma_bits == 0) conf->dma_bits = 32;
	rc = iovam_dpdk_init(conf);
	if (rc != 0 && rc != -EALREADY) /* -EALREADY: also loaded as a plugin */
		probe_die(PROG, "iovam_dpdk_init", rc);
	g_window_end = conf->iova_end         ? conf->iova_end
	               : conf->dma_bits >= 64 ? UINT64_MAX
	                                      : 1ULL << conf->dma_bits;
	return conf->granule ? conf->granule : 4096;
}

/* Application buffers in plain mmap'ed memory, DYN_STRIDE apart; *area is the mapping. Offsets
 * 0..1920 keep a buffer in its first page; with cross_page, offsets up to 3968 make most frames
 * span two pages (and so two IOMMU page translations). */
static struct dyn_buf *dyn_bufs(uint32_t ndyn, uint32_t cross_page, uint8_t **area)
{
	struct dyn_buf *dyn = calloc(ndyn ? ndyn : 1, sizeof(*dyn));
	uint32_t i;

	*area = mmap(NULL, (size_t)(ndyn ? ndyn : 1) * DYN_STRIDE, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dyn == NULL || *area == MAP_FAILED) probe_die(PROG, "out of memory", -ENOMEM);
	for (i = 0; i < ndyn; i++)
		dyn[i].va = *area + (size_t)i * DYN_STRIDE +
		            (cross_page ? (i % 32) * 128 : (i % 16) * 128);
	return dyn;
}

/* Teardown in the order a careful application uses: get the TX rings to release the
 * transmitted buffers and let the glue complete their unmaps while the devices are still
 * attached; closing a port may detach its VFIO group (virtio does), and when the last group
 * leaves the container the kernel drops every mapping. Returns iovam_dpdk_fini()'s result. */
static int teardown(struct rte_mempool *pool, uint32_t ndyn, struct iovam_dpdk_stats *st)
{
	uint64_t freed_before_close;

	rte_eth_tx_done_cleanup(0, 0, 0); /* -ENOTSUP on some PMDs: stop/close free them then */
	rte_eth_dev_stop(0);
	rte_eth_dev_stop(1);
	memset(st, 0, sizeof(*st));
	settle_unmaps(st);
	freed_before_close = g_dyn_freed;
	rte_eth_dev_close(0);
	rte_eth_dev_close(1);
	settle_unmaps(st);
	printf(PROG ": %" PRIu64 " of %u application buffers released before the ports closed\n",
	       freed_before_close, ndyn);
	printf(PROG ": stats mappings=%" PRIu64 " mapped_bytes=%" PRIu64 " dma_maps=%" PRIu64
	            " dma_unmaps=%" PRIu64 " dma_failures=%" PRIu64 " dyn_maps=%" PRIu64
	            " dyn_unmaps=%" PRIu64 " dyn_pending=%" PRIu64 " bad_unmaps=%" PRIu64
	            " mem_event_failures=%" PRIu64 " no_iommu=%u pools=%" PRIu64 "\n",
	       st->mappings, st->mapped_bytes, st->dma_maps, st->dma_unmaps, st->dma_failures,
	       st->dyn_maps, st->dyn_unmaps, st->dyn_pending, st->bad_unmaps,
	       st->mem_event_failures, st->no_iommu, st->pools);
	rte_mempool_free(pool);
	return iovam_dpdk_fini();
}

/* The verdict line; returns 1 for PASS. */
static int report(const struct probe_opts *o, const struct probe_rx *rx, uint32_t missing,
                  uint32_t missing_dyn, const struct iovam_dpdk_stats *st, int fini_rc)
{
	uint32_t sent = o->count + o->ndyn;
	int ok = rx->st.ok == sent && rx->st.damaged == 0 && missing == 0 && missing_dyn == 0 &&
	         g_iova_bad == 0 && g_iova_is_eal == 0 && rx->bad_mbufs == 0 &&
	         g_dyn_freed == o->ndyn && g_dyn_unmap_errors == 0 && st->dyn_pending == 0 &&
	         st->dyn_unmaps >= o->ndyn && st->bad_unmaps == 0 && st->dma_failures == 0 &&
	         st->mem_event_failures == 0 && st->no_iommu == 0 &&
	         (fini_rc == 0 || !o->teardown_strict);

	printf("PROBE: mode=iovam sent=%u ok=%" PRIu64 " damaged=%" PRIu64 " missing=%u"
	       " dyn_missing=%u foreign=%" PRIu64 " iova_bad=%" PRIu64 " iova_is_eal=%" PRIu64
	       " dyn_freed=%" PRIu64 "/%u unmap_errors=%" PRIu64 " fini=%d result=%s\n",
	       sent, rx->st.ok, rx->st.damaged, missing, missing_dyn, rx->st.foreign, g_iova_bad,
	       g_iova_is_eal, g_dyn_freed, o->ndyn, g_dyn_unmap_errors, fini_rc,
	       ok ? "PASS" : "FAIL");
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	struct probe_opts o = {
	        .count = 3000, .ndyn = 512, .cross_page = 0, .stale = 0, .teardown_strict = 1};
	struct iovam_dpdk_conf conf;
	struct iovam_dpdk_stats st;
	struct rte_mempool *pool;
	struct probe_rx rx;
	struct dyn_buf *dyn;
	uint8_t *area;
	uint32_t missing, missing_dyn;
	uint64_t granule;
	int fini_rc, ok;

	parse_args(probe_eal_init(PROG, argc, argv), argc, argv, &o);
	if (rte_eth_dev_count_avail() < 2) probe_die(PROG, "need two ports", -ENODEV);
	granule = glue_init(&conf);
	pool = iovam_dpdk_pktmbuf_pool_create("iovam_probe", NB_MBUFS, 256, 0,
	                                      RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (pool == NULL) probe_die(PROG, "iovam_dpdk_pktmbuf_pool_create", -rte_errno);
	rte_mempool_obj_iter(pool, check_pool_obj, NULL);
	printf(PROG ": iova_mode=%s dma_bits=%u dyn=%u cross_page=%u pool ops=%s, %" PRIu64
	            " of %u mbufs with a bad IOVA\n",
	       rte_eal_iova_mode() == RTE_IOVA_VA ? "va" : "pa", conf.dma_bits, o.ndyn,
	       o.cross_page, rte_mempool_get_ops(pool->ops_index)->name, g_iova_bad, NB_MBUFS);

	memset(&rx, 0, sizeof(rx));
	rx.port = 1;
	rx.max_seq = o.count + o.ndyn < 64 ? 64 : o.count + o.ndyn; /* stale mode uses 35 */
	rx.seen = calloc(rx.max_seq, 1);
	rx.check_mbuf = check_iova; /* RX buffers come from the iovam pool too */
	dyn = dyn_bufs(o.ndyn, o.cross_page, &area);
	if (rx.seen == NULL) probe_die(PROG, "out of memory", -ENOMEM);
	probe_ports_start(PROG, pool, &rx);
	if (o.stale) return run_stale(pool, &rx, area);

	send_range(pool, NULL, 0, o.count, &rx, granule);
	missing = probe_drain(&rx, 0, o.count);
	send_range(pool, dyn, o.count, o.count + o.ndyn, &rx, granule);
	missing_dyn = probe_drain(&rx, o.count, o.count + o.ndyn);
	if (o.ndyn)
		printf(PROG ": dyn buffer va %p -> iova 0x%" PRIx64 "\n", (void *)dyn[0].va,
		       dyn[0].iova);
	probe_report_missing(&rx, 0, o.count + o.ndyn);
	fini_rc = teardown(pool, o.ndyn, &st);
	ok = report(&o, &rx, missing, missing_dyn, &st, fini_rc);
	rte_eal_cleanup();
	return !ok;
}
