/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam_dpdk: DPDK glue for the iovam IOVA manager.
 *
 * After rte_eal_init() an application calls iovam_dpdk_init(). From then on
 * every page of DPDK memory (what exists now and what the heaps grow into
 * later) has an IOVA chosen by iovam inside the configured DMA window, and is
 * DMA-mapped at that IOVA through DPDK's VFIO API. Mbuf pools created with the
 * mempool ops "iovam" (IOVAM_DPDK_MEMPOOL_OPS, or EAL option
 * --mbuf-pool-ops-name iovam) carry those IOVAs in buf_iova. Application
 * buffers outside DPDK memory are mapped on the fast path with
 * iovam_dpdk_map() and unmapped lazily with iovam_dpdk_unmap(); a DPDK
 * service ("iovam") completes the unmaps and returns the IOVAs.
 *
 * Without VFIO (vdev-only applications, kernels without an IOMMU driver) the
 * library runs in no-IOMMU mode: IOVAs are still allocated and translated,
 * the VFIO calls are skipped and counted.
 *
 * Loaded as an EAL plugin (-d libiovam_dpdk.so), the library configures itself
 * from environment variables on first use (see iovam_dpdk_conf_from_env()).
 *
 * Multi-process: pools of ops "iovam" are handed over to DPDK's ring_mp_mc
 * ops once fully populated, so any process, with or without this library,
 * uses them as ring pools (the "iovam" ops are registered after every
 * driver's, leaving the other ops' indexes as they are without iovam). In a
 * secondary, iovam_dpdk_init() attaches to the primary's translations:
 * iovam_dpdk_virt2iova(), iovam_dpdk_pktmbuf_pool_create() and the "iovam"
 * ops work there; iovam_dpdk_map/unmap, stats, service and replay calls
 * return -ENOTSUP (the domain and its DMA mappings are the primary's alone).
 *
 * Which IOVA: for an object of an iovam pool, rte_mempool_virt2iova(obj) and
 * mbuf->buf_iova are iovam IOVAs (inside the DMA window); rte_mem_virt2iova()
 * and the pool's memory chunk list keep DPDK's. Both are mapped; give devices
 * buf_iova or iovam_dpdk_virt2iova().
 *
 * Conventions (DPDK style): functions return 0 or a non-negative count on
 * success and a negative errno on failure; constructors return NULL and set
 * rte_errno.
 */
#ifndef IOVAM_DPDK_H
#define IOVAM_DPDK_H

#include <stddef.h>
#include <stdint.h>

#include "iovam.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mempool;

/**
 * Name of the mempool ops driver (EAL option --mbuf-pool-ops-name iovam). It
 * populates the pool with iovam IOVAs, then sets the pool's ops to
 * "ring_mp_mc" (rte_mempool_get_ops(mp->ops_index)->name is "ring_mp_mc"
 * afterwards). Registered when rte_eal_init() scans the vdev bus, or by
 * iovam_dpdk_init() if the library was loaded later.
 */
#define IOVAM_DPDK_MEMPOOL_OPS "iovam"

/** Name of the DPDK service component. */
#define IOVAM_DPDK_SERVICE_NAME "iovam"

/** Never call VFIO, even where it is available: allocate and translate only. */
#define IOVAM_DPDK_F_NO_IOMMU (1u << 0)
/**
 * Do not run the service by itself. Without this flag the service is mapped
 * to the first service lcore if there is one (it completes lazy unmaps every
 * 10 ms, sooner when an lcore's unmap queue is half full), else it runs
 * from an EAL alarm every 10 ms. With it, the application runs it: on a service lcore it maps
 * itself, with rte_service_run_iter_on_app_lcore(), or iovam_dpdk_service_run().
 */
#define IOVAM_DPDK_F_NO_SERVICE (1u << 1)

/**
 * Map dynamic mappings through DPDK's rte_vfio_container_dma_map() (its user
 * map list holds 256 merged entries) instead of raw VFIO ioctls on the default
 * container. A fallback should the container fd not be found correctly.
 */
#define IOVAM_DPDK_F_DYN_VIA_DPDK (1u << 2)

/**
 * Strict unmaps: every iovam_dpdk_unmap() returns only after the VFIO unmap
 * was done (the kernel's strict DMA mode; lazy is its default). As
 * IOVAM_DPDK_UNMAP_F_STRICT on every call.
 */
#define IOVAM_DPDK_F_STRICT_UNMAP (1u << 3)

/** Configuration of iovam_dpdk_init(). Zero fields take the defaults. */
struct iovam_dpdk_conf {
	/** Device DMA address width in bits, 20..64: every IOVA is below
	 *  2^dma_bits. 0 = 32 (the narrowest common device). */
	uint32_t dma_bits;
	/** IOVAM_DPDK_F_* */
	uint32_t flags;
	/** Bytes per IOVA page: a power of two, >= 4096 and <= the smallest
	 *  memseg page size (4096 with --no-huge). 0 = 4096. */
	uint64_t granule;
	/** Lowest IOVA handed out, a multiple of granule. 0 = one granule
	 *  (IOVA 0 is never handed out: it hides NULL-pointer DMA bugs). */
	uint64_t iova_base;
	/** One past the highest IOVA handed out, a multiple of granule, at most
	 *  2^dma_bits. 0 = 2^dma_bits. */
	uint64_t iova_end;
	/** Entries of each lcore's lazy-unmap queue: a power of two, 16..65536.
	 *  0 = 1024. A full queue makes iovam_dpdk_unmap() wait for the drain in
	 *  progress, or unmap synchronously when nobody drains. With the EAL alarm
	 *  (every 10 ms), an lcore unmapping more than this many per 10 ms fills
	 *  it each time. */
	uint32_t unmap_queue_size;
	/** Live dynamic mappings (iovam_dpdk_map()) the tracking table is sized
	 *  for, 1..2^24: it takes 96 bytes per mapping. 0 = 65536 (a VFIO type1
	 *  container holds at most 65535 mappings in all). Far beyond it
	 *  iovam_dpdk_map() fails with -ENOSPC. */
	uint32_t max_dyn_mappings;
};

/**
 * Fill conf from the environment (the plugin's configuration):
 *  - IOVAM_DMA_BITS: dma_bits
 *  - IOVAM_GRANULE: granule in bytes
 *  - IOVAM_IOVA_BASE, IOVAM_IOVA_END: the window
 *  - IOVAM_NO_IOMMU=1: IOVAM_DPDK_F_NO_IOMMU
 *  - IOVAM_NO_SERVICE=1: IOVAM_DPDK_F_NO_SERVICE
 *  - IOVAM_DYN_VIA_DPDK=1: IOVAM_DPDK_F_DYN_VIA_DPDK
 *  - IOVAM_STRICT_UNMAP=1: IOVAM_DPDK_F_STRICT_UNMAP
 *  - IOVAM_UNMAP_QUEUE: unmap_queue_size
 *  - IOVAM_MAX_DYN_MAPPINGS: max_dyn_mappings
 *  - IOVAM_DISABLE=1 (read by the plugin only): do nothing when loaded
 * Numbers are decimal or hex after 0x, nothing else: no sign, no spaces, no
 * octal (a leading 0 is decimal: 0100 is one hundred). Each variable must
 * also be acceptable alone (dma_bits 20..64, granule a power of two >= 4096,
 * flags 0 or 1, as iovam_dpdk_init() checks them; 0 means the default).
 * Unset or empty variables leave their field as it is.
 * @return 0; -EINVAL NULL conf or a variable that does not parse or is not
 *   acceptable: conf is then untouched, and one log line names the variable,
 *   its value and what it accepts. (In plugin mode that line also stops the
 *   application, through rte_exit().)
 */
int iovam_dpdk_conf_from_env(struct iovam_dpdk_conf *conf);

/**
 * Initialise the glue: create the IOVA domain, register the memory-event
 * callback, give every page of existing DPDK memory an IOVA and map it,
 * register the service. Call after rte_eal_init(), before creating iovam pools.
 * IOVAs the IOMMU cannot map are kept out of the window first: every
 * /sys/kernel/iommu_groups/<group>/reserved_regions entry (the x86 MSI window,
 * RMRRs; IOVAM_IOMMU_GROUPS_DIR replaces that folder, for tests) and, with a
 * VFIO device attached, whatever lies outside the container's IOVA ranges.
 * NULL conf takes every default.
 * In a secondary process: attach to the primary's translations (conf is
 * checked, then the primary's configuration applies).
 * @return 0;
 *   -EINVAL bad conf (see struct iovam_dpdk_conf), or granule larger than a
 *     memseg page;
 *   -EALREADY already initialised (or, in a secondary, attached);
 *   -ENOENT a secondary whose primary never initialised iovam;
 *   -ENOTSUP VFIO runs in its own no-IOMMU mode
 *     (devices then DMA to physical addresses: iovam's IOVAs would not reach
 *     memory) and IOVAM_DPDK_F_NO_IOMMU was not given;
 *   -EPERM rte_eal_init() has not run;
 *   -ENOMEM out of memory, or the window cannot hold existing memory;
 *   -EIO a DMA mapping of existing memory failed.
 *   On failure nothing is left registered, allocated or mapped.
 */
int iovam_dpdk_init(const struct iovam_dpdk_conf *conf);

/**
 * Undo iovam_dpdk_init(): stop the service, unregister the callback, complete
 * the queued unmaps, unmap every mapping (DPDK memory, and dynamic mappings the
 * application left live), return every IOVA and destroy the domain. As with
 * rte_eal_cleanup(), no other thread may be inside an iovam_dpdk_* call or
 * use an iovam IOVA meanwhile. Mempools with ops "iovam" left alive keep
 * working as plain ring pools, but their buf_iova no longer reach memory:
 * free them first.
 * In a secondary: detach (it owns nothing), return 0.
 * @return 0 nothing was left live;
 *   > 0 torn down, and that many things were still live and were unmapped
 *     anyway: iovam mempools plus dynamic mappings (each logged as a warning);
 *   -ENODEV not initialised;
 *   -EFAULT torn down, but IOVA ranges were still allocated at the end: an
 *     unmap failed even when retried, so its IOVA was kept on purpose (the
 *     IOMMU may still map it; every later iovam_dpdk_init() of this process
 *     reserves it), or a bug; logged.
 */
int iovam_dpdk_fini(void);

/** @return 1 if initialised (iovam_dpdk_init() or the plugin), else 0. */
int iovam_dpdk_is_initialised(void);

/**
 * Translate a DPDK memory address (heap, memzone, mempool) to iovam's IOVA.
 * Cost: one shared lock and an O(log n) map lookup; not for per-packet use
 * (mbufs carry buf_iova).
 * In a secondary: from the primary's shared table (a scan of the memseg
 * lists and one load; no lock).
 * @return 0 and *iova; -EINVAL NULL va or iova; -ENODEV not initialised (in
 *   a secondary: or the primary's glue is finalised);
 *   -ENOENT va is not DPDK memory known to iovam (in a secondary also memory
 *   of memseg lists created after the primary's first init).
 */
int iovam_dpdk_virt2iova(const void *va, uint64_t *iova);

/**
 * Dynamic mapping ("map_single"): give [va, va+len) an IOVA and DMA-map it.
 * Any thread may call it; an lcore uses its own IOVA cache (lock-free), other
 * threads the shared path. The page(s) of va must stay allocated until the
 * unmap has completed (iovam_dpdk_unmap_done()/iovam_dpdk_unmap_wait() tell
 * when, or unmap strictly).
 * Cost: no heap allocation; in no-IOMMU mode no system call; with VFIO one
 * VFIO_IOMMU_MAP_DMA ioctl.
 * @return 0 and *iova (with va's offset inside its granule page);
 *   -EINVAL NULL va or iova, len 0, va+len overflows;
 *   -ENODEV not initialised;
 *   -ENOTSUP a secondary process (mappings are the primary's);
 *   -ENOMEM no IOVA space left in the window;
 *   -ENOSPC far more live dynamic mappings than conf.max_dyn_mappings;
 *   -EAGAIN transient (the domain's node pool is empty: retry after the
 *     service ran);
 *   -EIO the VFIO mapping failed, or no VFIO device is attached yet (nothing
 *     is kept).
 */
int iovam_dpdk_map(void *va, size_t len, uint64_t *iova);

/**
 * Lazy unmap of a mapping from iovam_dpdk_map() (strict with
 * IOVAM_DPDK_F_STRICT_UNMAP): iovam_dpdk_unmap_ex() without flags or sequence
 * number. With the same va and len and the IOVA it returned. The device must be done with it. The VFIO unmap
 * happens later, batched, on the service; the IOVA returns to the domain only
 * after that unmap completed, so it cannot be handed out while the IOMMU
 * still maps it: it goes back into the calling lcore's cache at the lcore's
 * next iovam_dpdk_map(), iovam_dpdk_unmap() or iovam_dpdk_service_run() (up
 * to 16 per call; a thread without an lcore: the drain returns it). If the VFIO unmap fails, the IOVA stays out and the service
 * retries the unmap (unmaps_retrying) until it succeeds. When the calling
 * lcore's queue is full, the call waits for a drain in progress on another
 * thread (spinning for up to 50 us, then on a lock) or, when none is, first
 * completes that queue's unmaps itself (dyn_sync_unmaps). (DPDK's VFIO unmap needs the VA as well as the IOVA.)
 *
 * Until the VFIO unmap is done the device can still reach the buffer's pages
 * through the IOVA. Before the buffer's memory is reused for anything a
 * device must not reach (freed, handed to another owner, filled with
 * secrets), wait for that: unmap strictly (IOVAM_DPDK_UNMAP_F_STRICT or
 * IOVAM_DPDK_F_STRICT_UNMAP), or keep the sequence number of
 * iovam_dpdk_unmap_ex() and poll iovam_dpdk_unmap_done() / call
 * iovam_dpdk_unmap_wait() before reusing it. Lazy without waiting is right
 * for buffers that stay the application's (a TX buffer refilled and mapped
 * again by the same owner).
 * Every unmap is checked against the live mappings first; a refused one
 * changes nothing and counts in bad_unmaps.
 * Cost: a slot claim (one CAS) and a store into the lcore's single-producer
 * queue (no lock, no syscall); threads without an lcore take a short lock.
 * @return 0;
 *   -EINVAL NULL va, len 0, va+len overflows, an IOVA range outside the
 *     window, va and iova at different offsets in their page, or a live
 *     mapping at iova made from another va or with another length (it stays
 *     mapped);
 *   -ENOENT no live dynamic mapping starts at iova's page: never mapped,
 *     already unmapped (a double unmap), or DPDK memory mapped by the
 *     memory-event hook;
 *   -ENODEV not initialised;
 *   -ENOTSUP a secondary process.
 * Two concurrent unmaps of one mapping: one wins, the other gets -ENOENT.
 */
int iovam_dpdk_unmap(void *va, uint64_t iova, size_t len);

/** iovam_dpdk_unmap_ex() flag: done before the call returns (strict). */
#define IOVAM_DPDK_UNMAP_F_STRICT (1u << 0)

/**
 * iovam_dpdk_unmap() with flags and a sequence number for its completion
 * (as rte_dma_copy() returns a ring index for rte_dma_completed()).
 * Strict (IOVAM_DPDK_UNMAP_F_STRICT, or IOVAM_DPDK_F_STRICT_UNMAP at init):
 * before returning, the call completes the calling lcore's queued unmaps,
 * this one included: VFIO unmap (one per run of adjacent mappings), then the
 * IOVA goes back. Cost: the drain lock and a VFIO_IOMMU_UNMAP_DMA ioctl (the
 * kernel's IOTLB flush) per call, on top of the lazy unmap.
 * @param seq NULL, or receives the unmap's sequence number (never 0) for
 *   iovam_dpdk_unmap_done()/iovam_dpdk_unmap_wait(); set whenever the unmap
 *   was accepted (0 or -EIO).
 * @return 0 (strict: the VFIO unmap is done and the IOVA returned);
 *   -EINVAL unknown flags, or as iovam_dpdk_unmap();
 *   -ENOENT, -ENODEV as iovam_dpdk_unmap();
 *   -EIO (strict only) the unmap was accepted but is not done: its VFIO
 *     unmap failed, or an earlier failed one of its lcore holds it back (see
 *     iovam_dpdk_unmap_done()). The mapping is gone for the caller, a failed
 *     unmap's IOVA is held and the service retries it (unmaps_retrying);
 *     wait for *seq before reusing the buffer.
 */
int iovam_dpdk_unmap_ex(void *va, uint64_t iova, size_t len, uint32_t flags, uint64_t *seq);

/**
 * Poll the completion of an unmap (non-blocking, any thread, lock-free: two
 * loads). Done means its VFIO unmap was done: the buffer's memory may be
 * reused (the IOVA goes back as iovam_dpdk_unmap() says). Unmaps
 * of one lcore complete in order; after a VFIO unmap failed, later unmaps of
 * its lcore report pending until every failed unmap has been retried
 * successfully.
 * @return 1 done; 0 pending; -EINVAL not a sequence number; -ENODEV not
 *   initialised.
 */
int iovam_dpdk_unmap_done(uint64_t seq);

/**
 * Wait for the completion of an unmap: if it is pending, complete every
 * queued unmap on the calling thread (as the service does; it waits for a
 * drain in progress on another thread) and retry the failed ones. Any
 * thread; not from inside the iovam service.
 * @return 0 done; -EIO still pending after that: its VFIO unmap, or an
 *   earlier failed one of its lcore, failed again (the service keeps
 *   retrying; call again later); -EINVAL not a sequence number; -ENODEV not
 *   initialised.
 */
int iovam_dpdk_unmap_wait(uint64_t seq);

/**
 * Run one iteration of the service on the calling thread: complete queued
 * unmaps, retry mappings waiting for a VFIO device, run iovam_maintain();
 * serialised with the service lcore by a try-lock. Then (even on -EBUSY)
 * the calling lcore takes the IOVAs of its completed unmaps back into its
 * cache.
 * @return the number of unmaps completed (>= 0); -ENODEV not initialised;
 *   -ENOTSUP a secondary process; -EBUSY another thread is running it.
 */
int iovam_dpdk_service_run(void);

/**
 * @return 0 and *id (the rte_service id, for rte_service_map_lcore_set() or
 *   rte_service_run_iter_on_app_lcore()); -EINVAL NULL id; -ENODEV not
 *   initialised; -ENOTSUP a secondary process.
 */
int iovam_dpdk_service_id(uint32_t *id);

/**
 * Map now the memory that waits for a VFIO device (memory that existed before
 * the first device was attached). Call after hot-plugging the first device;
 * the service and the ethdev NEW event also do it.
 * @return the number of mappings made (>= 0); -ENODEV not initialised;
 *   -ENOTSUP a secondary process; -EIO a mapping failed (the rest stay queued).
 */
int iovam_dpdk_dma_replay(void);

/** Most objects an "iovam" pool holds: its ring has n + 1 entries rounded up
 * to a power of two, at most 2^30 (DPDK's largest ring). */
#define IOVAM_DPDK_POOL_MAX_OBJS ((1u << 30) - 1)

/**
 * Create a pktmbuf pool whose objects get iovam IOVAs (mempool ops "iovam").
 * Arguments as rte_pktmbuf_pool_create().
 * @return the pool, or NULL with rte_errno: EINVAL NULL name, n == 0 or
 *   n > IOVAM_DPDK_POOL_MAX_OBJS (the ops' alloc refuses such a pool too,
 *   however it is created); ENODEV not initialised; EINVAL, ENOSPC, EEXIST, ENOMEM as
 *   rte_pktmbuf_pool_create_by_ops(); EFAULT memory without an iovam IOVA (a
 *   DMA mapping failed).
 */
struct rte_mempool *iovam_dpdk_pktmbuf_pool_create(const char *name, unsigned int n,
                                                   unsigned int cache_size, uint16_t priv_size,
                                                   uint16_t data_room_size, int socket_id);

/** Counters (the telemetry command /iovam/stats prints every field, by these names). */
struct iovam_dpdk_stats {
	uint64_t live_ranges;        /**< domain: ALLOCATED ranges */
	uint64_t deferred_ranges;    /**< domain: DEFERRED markers */
	uint64_t cache_hits;         /**< alloc_fast hits, summed over caches */
	uint64_t cache_misses;       /**< alloc_fast misses, summed over caches */
	uint64_t mem_events;         /**< memory events handled (ALLOC and FREE) */
	uint64_t mem_event_failures; /**< ALLOC events that could not be mapped */
	uint64_t mapped_bytes;       /**< bytes with a live DMA mapping (or skipped one) */
	uint64_t mappings;           /**< live DMA mappings (VFIO entries) */
	uint64_t dma_maps;           /**< DMA map operations done (or skipped) */
	uint64_t dma_unmaps;         /**< DMA unmap operations done (or skipped) */
	uint64_t dma_skipped;        /**< of those, skipped in no-IOMMU mode */
	uint64_t dma_failures;       /**< map or unmap calls that failed */
	uint64_t dma_queued;         /**< mappings waiting for a VFIO device */
	uint64_t pools;              /**< live mempools with ops "iovam" */
	uint64_t dyn_maps;           /**< iovam_dpdk_map() successes */
	uint64_t dyn_unmaps;         /**< dynamic mappings whose IOVA was returned */
	uint64_t dyn_pending;        /**< dynamic unmaps queued, not completed */
	uint64_t dyn_sync_unmaps;    /**< unmaps that drained their full queue themselves */
	uint64_t bad_unmaps;         /**< iovam_dpdk_unmap() refused (not counted: NULL va,
	                               len 0, va + len overflows) */
	uint64_t unmaps_retrying;    /**< failed unmaps whose IOVA is held until a retry succeeds */
	uint64_t dyn_table_full;     /**< maps refused with -ENOSPC */
	uint64_t service_runs;       /**< service iterations */
	uint32_t no_iommu;           /**< 1 in no-IOMMU mode */
	uint32_t static_memory;      /**< 1 without memory events (--legacy-mem, --no-huge) */
	uint64_t dyn_strict_unmaps;  /**< strict unmaps (completed before returning) */
	uint64_t
	        dyn_returned_to_depot; /**< unmapped IOVA ranges the drain gave to the depot (threads without an lcore, retried unmaps; an lcore takes its own back into its cache) */
	uint64_t
	        dyn_returned_to_tree; /**< unmapped IOVA ranges freed to the tree (depot full, or large) */
	/** DMA mappings made for DPDK memory since init, by kind (each counts
	 *  once, also if it was queued or is unmapped by now), and their bytes.
	 *  Preallocated = never freed (--socket-mem/-m in dynamic mode,
	 *  --legacy-mem, --no-huge): one mapping per VA-contiguous run; */
	uint64_t mem_maps_preallocated;
	uint64_t mem_bytes_preallocated;
	/** present at init and freeable: one mapping per memseg page; */
	uint64_t mem_maps_init_pages;
	uint64_t mem_bytes_init_pages;
	/** grown at run time (memory events): one mapping per memseg page. */
	uint64_t mem_maps_grown;
	uint64_t mem_bytes_grown;
};

/** @return 0 and *st; -EINVAL NULL st; -ENODEV not initialised; -ENOTSUP a
 *  secondary process (read the primary's /iovam/stats). */
int iovam_dpdk_stats_get(struct iovam_dpdk_stats *st);

/**
 * The IOVA domain, for iovam_stats_get(), iovam_verify() and tests. Valid
 * until iovam_dpdk_fini(); do not free ranges you did not allocate.
 * @return the domain, or NULL with rte_errno ENODEV (not initialised) or
 *   ENOTSUP (a secondary process: the domain is the primary's).
 */
struct iovam_domain *iovam_dpdk_domain(void);

/* ---- Test hooks: make the glue fail on purpose. Not for production. ----
 * Only a library built with -Dtest_hooks=true has them (tests/dpdk and
 * tests/vm use one); a test defines IOVAM_DPDK_TEST_HOOKS to see them. */
/** The unmap hook's type (iovam_dpdk_test_set_unmap_hook()). */
typedef void (*iovam_dpdk_unmap_hook_t)(uint64_t iova, uint64_t len, void *arg);

#ifdef IOVAM_DPDK_TEST_HOOKS

/**
 * Make DMA map calls fail: one_in 0 never, 1 always, N every Nth call.
 * Applies in no-IOMMU mode too (the skipped call "fails").
 */
void iovam_dpdk_test_fail_dma_map(uint32_t one_in);

/**
 * Make DMA unmap calls fail: one_in 0 never, 1 always, N every Nth call. The
 * mapping stays (with VFIO it really is still mapped), its IOVA is held, and
 * the service retries. Applies in no-IOMMU mode too.
 */
void iovam_dpdk_test_fail_dma_unmap(uint32_t one_in);

/**
 * In no-IOMMU mode, make DMA map calls behave like VFIO before its first
 * device is attached: memory is translated but its mappings are queued
 * (dma_queued) until iovam_dpdk_dma_replay(); dynamic maps fail with -EIO.
 * Set it before iovam_dpdk_init(). 0 turns it off.
 */
void iovam_dpdk_test_simulate_no_device(int on);

/**
 * Called after each DMA unmap completed (or was skipped) and before the
 * IOVA range goes back to the domain. NULL removes it.
 */
void iovam_dpdk_test_set_unmap_hook(iovam_dpdk_unmap_hook_t hook, void *arg);
#endif /* IOVAM_DPDK_TEST_HOOKS */

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_DPDK_H */
