/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam: an IOVA (I/O virtual address) manager.
 *
 * A domain hands out ranges of a device's DMA address space in units of pages
 * ("pfn" = iova / granule). It is thread-safe: every call on one domain may run
 * concurrently with every other, except that one cache_id is used by one thread
 * at a time (as an lcore id is).
 *
 * Conventions (DPDK style): functions return 0 or a non-negative count on
 * success and a negative errno on failure; a failed call changes nothing that
 * the caller owns or can see as allocated. One documented exception: a fast
 * allocation (iovam_alloc_fast(), iovam_alloc_fast_bulk()) that finds no room
 * flushes every cache back to the tree and tries once more, so its -ENOMEM
 * leaves the caches empty (the ranges they held are free space again).
 * Constructors return NULL and set errno. All pfn ranges are inclusive.
 */
#ifndef IOVAM_H
#define IOVAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** cache_id of a thread that has no per-lcore cache (an unregistered thread). */
#define IOVAM_CACHE_NONE UINT32_MAX

/** Largest request (in pages) served by the per-lcore caches; larger go to the tree. */
#define IOVAM_CACHE_MAX_PAGES 32

struct iovam_domain;

struct iovam_domain_conf {
	uint64_t granule;   /**< bytes per pfn: a power of two >= 4096, else -EINVAL */
	uint64_t start_pfn; /**< lowest allocatable pfn, >= 1 */
	uint64_t end_pfn;   /**< highest allocatable pfn (inclusive), >= start_pfn, < 2^63 */
	uint32_t n_caches;  /**< per-lcore caches; 0 = none */
};

struct iovam_stats {
	uint64_t live_ranges;         /**< ALLOCATED ranges, including those held in caches */
	uint64_t live_pages;          /**< pages in ALLOCATED ranges */
	uint64_t reserved_ranges;     /**< RESERVED ranges */
	uint64_t deferred_ranges;     /**< DEFERRED markers not yet erased */
	uint64_t cached_ranges;       /**< ranges held in magazines and depots */
	uint64_t tree_bytes;          /**< bytes of tree nodes, node pool, path hints */
	uint64_t node_alloc_failures; /**< node requests the pool could not serve */
};

/** Per-cache counters; cache_id IOVAM_CACHE_NONE reads the shared path's. */
struct iovam_cache_stats {
	uint64_t alloc_hits;    /**< alloc_fast served from this cache's magazines or the depot */
	uint64_t alloc_misses;  /**< alloc_fast that went to the tree */
	uint64_t free_hits;     /**< free_fast kept in this cache */
	uint64_t free_misses;   /**< free_fast to the tree, or a full magazine returned to it */
	uint64_t cached_ranges; /**< ranges held in this cache's magazines now */
};

/**
 * Create a domain.
 * @return the domain, or NULL with errno set: EINVAL bad conf (NULL, granule not
 *   a power of two >= 4096, start_pfn == 0, end_pfn < start_pfn, end_pfn >= 2^63,
 *   n_caches == UINT32_MAX); ENOMEM out of memory. All cache memory is allocated
 *   here: creation fails cleanly or the domain is complete.
 */
struct iovam_domain *iovam_domain_create(const struct iovam_domain_conf *conf);

/** Destroy a domain and everything in it. NULL is a no-op. */
void iovam_domain_destroy(struct iovam_domain *d);

/**
 * Allocate npages pages: the highest range [p, p+npages-1] with start_pfn <= p
 * and p+npages-1 <= min(limit_pfn, end_pfn) that overlaps no ALLOCATED,
 * RESERVED or DEFERRED range. With size_aligned, p is a multiple of
 * roundup_pow_of_two(npages).
 * @return 0 and *pfn_lo set; -EINVAL NULL d or pfn_lo, npages == 0 or
 *   limit_pfn < start_pfn; -ENOMEM nothing fits; -EAGAIN the node pool could not
 *   supply a node (transient: retry after iovam_maintain()).
 */
int iovam_alloc(struct iovam_domain *d, uint64_t npages, uint64_t limit_pfn, bool size_aligned,
                uint64_t *pfn_lo);

/**
 * Free the ALLOCATED range containing pfn.
 * @return 0; -EINVAL NULL d; -ENOENT pfn is free space or DEFERRED, or (checked
 *   mode, the default) its range was already given back with iovam_free_fast()
 *   and sits in a cache; -EPERM pfn is RESERVED. Erasing never needs a tree
 *   node, so the range is free space when this returns 0 (it never becomes
 *   DEFERRED: that is iovam_free_deferred(), the lazy variant). Its erase from
 *   the tree waits for the domain's next call, which skips it when it is an
 *   allocation that takes this very range back (README, "The pending free").
 */
int iovam_free(struct iovam_domain *d, uint64_t pfn);

/**
 * Lazy free: overwrite the ALLOCATED range containing pfn with a DEFERRED
 * marker in place (needs no node, cannot fail for lack of memory). The range
 * stays occupied until the next iovam_maintain().
 * @return 0; -EINVAL NULL d; -ENOENT pfn is free space or DEFERRED, or (checked
 *   mode) its range sits in a cache, as for iovam_free(); -EPERM RESERVED.
 */
int iovam_free_deferred(struct iovam_domain *d, uint64_t pfn);

/**
 * Reserve [pfn_lo, pfn_hi] (may lie below start_pfn): merged with the RESERVED
 * ranges it overlaps (not those merely adjacent) into one RESERVED range.
 * Ranges given back with iovam_free_fast() and held in a cache are free
 * space to the caller: if the span overlaps such ranges (and nothing live or
 * DEFERRED), every cache is flushed to the tree first, as iovam_alloc_fast()
 * does on -ENOMEM. (Unchecked mode cannot tell a cached range from a live
 * one of a cacheable shape: it flushes whenever the span overlaps one.)
 * @return 0; -EINVAL NULL d or not pfn_lo <= pfn_hi <= end_pfn; -EBUSY overlaps a
 *   live ALLOCATED range or a DEFERRED one (nothing is flushed then, but in
 *   unchecked mode); -EAGAIN no node (transient).
 */
int iovam_reserve(struct iovam_domain *d, uint64_t pfn_lo, uint64_t pfn_hi);

/**
 * Find the ALLOCATED or RESERVED range containing pfn.
 * @return 0 and the bounds; -EINVAL NULL d, pfn_lo or pfn_hi; -ENOENT not found
 *   (DEFERRED counts as absent).
 */
int iovam_find(struct iovam_domain *d, uint64_t pfn, uint64_t *pfn_lo, uint64_t *pfn_hi);

/**
 * Fast-path allocation through the per-lcore cache cache_id (< n_caches) or
 * the shared path (IOVAM_CACHE_NONE). Requests of up to IOVAM_CACHE_MAX_PAGES
 * are rounded up to a power of two and size-aligned; larger ones go to the tree,
 * size-aligned. Free the range with iovam_free_fast() and the same npages.
 * Inline (below), as rte_mempool_get() is; the library also exports it (define
 * IOVAM_NO_INLINE_FAST_PATH before including this header to call that).
 * @return 0 and *pfn_lo; -EINVAL NULL d or pfn_lo, npages == 0, limit_pfn <
 *   start_pfn, bad cache_id; -ENOMEM nothing fits (after flushing all caches);
 *   -EAGAIN no node (transient).
 */
#ifndef IOVAM_NO_INLINE_FAST_PATH
static inline
#endif
        int
        iovam_alloc_fast(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                         uint64_t limit_pfn, uint64_t *pfn_lo);

/**
 * Free a range from iovam_alloc_fast() (or a size-aligned iovam_alloc() range
 * of a power-of-two size), with the npages given to it.
 * Inline (below); the library also exports it.
 *
 * Checked mode (the default, IOVAM_CHECK_FAST_FREE) never lets a range have
 * two owners: every misuse below is refused, with nothing changed, at the
 * cost of a byte load and store per call (see iovam_domain_set_checks()).
 * Unchecked mode checks only what is marked "always" and trusts the rest.
 * @return 0; -EINVAL NULL d, bad cache_id, npages == 0, pfn_lo not aligned to
 *   the rounded size or outside the domain (always), or [pfn_lo, +npages) is
 *   not one ALLOCATED range of the rounded size (a wrong size, not its first
 *   pfn); -ENOENT pfn_lo is free space, DEFERRED, or a range already given
 *   back (by iovam_free_fast(): it sits in a cache; or by iovam_free());
 *   -EPERM pfn_lo is RESERVED. Ranges the caches do not take
 *   (> IOVAM_CACHE_MAX_PAGES, IOVAM_CACHE_NONE) are looked up in the tree and
 *   get these answers in both modes. Nothing changes on error.
 */
#ifndef IOVAM_NO_INLINE_FAST_PATH
static inline
#endif
        int
        iovam_free_fast(struct iovam_domain *d, uint32_t cache_id, uint64_t pfn_lo,
                        uint64_t npages);

/** The out-of-line rest of iovam_alloc_fast()/iovam_free_fast(): same contract. */
int iovam_alloc_fast_slow(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                          uint64_t limit_pfn, uint64_t *pfn_lo);
int iovam_free_fast_slow(struct iovam_domain *d, uint32_t cache_id, uint64_t pfn_lo,
                         uint64_t npages);

/**
 * Allocate n ranges of npages pages each through the fast path, all or none
 * (as rte_mempool_get_bulk() is to rte_mempool_get()). Each range is what
 * iovam_alloc_fast() with the same arguments would return: npages rounded and
 * size-aligned the same way, below limit_pfn, from cache_id's magazines, the
 * depot or the tree. Free them with iovam_free_fast_bulk() or
 * iovam_free_fast(), with the same npages. Inline (below), as
 * iovam_alloc_fast() is; the library also exports it.
 * @param pfn_lo array of n entries; receives the first pfn of each range.
 * @return 0 and pfn_lo[0..n) set (n == 0: 0 at once, nothing else is
 *   checked but d); -EINVAL NULL d, NULL pfn_lo with n > 0, npages == 0,
 *   limit_pfn < start_pfn, bad cache_id; -ENOMEM fewer than n ranges fit
 *   (after flushing all caches); -EAGAIN no node (transient). On error no
 *   range is allocated: those obtained before the failure go back to the
 *   tree (so a range that was cached may now be free space), and pfn_lo[]
 *   may have been written.
 */
#ifndef IOVAM_NO_INLINE_FAST_PATH
static inline
#endif
        int
        iovam_alloc_fast_bulk(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                              uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n);

/**
 * Free n ranges from iovam_alloc_fast() or iovam_alloc_fast_bulk(), all
 * allocated with this npages, all or none (as rte_mempool_put_bulk()).
 * Every range is checked before any is freed, as iovam_free_fast() checks
 * one (in order, so a range given twice in the array is refused: -ENOENT,
 * the first would have freed it); unchecked mode checks only alignment and
 * bounds of ranges the caches take. Inline (below); the library also
 * exports it.
 * @return 0 (n == 0: 0 at once, nothing else is checked but d); -EINVAL NULL
 *   d, NULL pfn_lo with n > 0, bad cache_id, npages == 0, or some pfn_lo[i]
 *   not aligned to the rounded size, outside the domain, or (checked) not one
 *   ALLOCATED range of that size; -ENOENT (checked) some pfn_lo[i] is free,
 *   DEFERRED or repeated; -EPERM (checked) some pfn_lo[i] is RESERVED. The
 *   error is that of the first bad entry; nothing is freed on error.
 */
#ifndef IOVAM_NO_INLINE_FAST_PATH
static inline
#endif
        int
        iovam_free_fast_bulk(struct iovam_domain *d, uint32_t cache_id, const uint64_t *pfn_lo,
                             unsigned int n, uint64_t npages);

/** The out-of-line rest of the two bulk calls: same contract. */
int iovam_alloc_fast_bulk_slow(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                               uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n);
int iovam_free_fast_bulk_slow(struct iovam_domain *d, uint32_t cache_id, const uint64_t *pfn_lo,
                              unsigned int n, uint64_t npages);

/**
 * Return the ranges held by cache cache_id, or by every cache and the depots
 * (IOVAM_CACHE_NONE), to the tree. May run while the owner of cache_id uses
 * it: a handshake (membarrier(2), so the owner's fast path pays no atomic
 * read-modify-write) makes the owner take its cache's slow lock while a flush
 * is pending, and the flush wait for an owner inside its fast path.
 * @return the number of ranges returned; -EINVAL NULL d or bad cache_id.
 */
int iovam_cache_flush(struct iovam_domain *d, uint32_t cache_id);

/**
 * Housekeeping, outside any fast path (the service core calls it): erase the
 * DEFERRED markers, refill the node pool, trim the depots.
 * @return the number of markers erased (>= 0); -EINVAL NULL d. A pool refill
 *   that finds no memory is not an error here: it shows as -EAGAIN from the
 *   next operation that needs a node.
 */
int iovam_maintain(struct iovam_domain *d);

/** @return 0 and *st filled; -EINVAL NULL d or st. */
int iovam_stats_get(struct iovam_domain *d, struct iovam_stats *st);

/**
 * Counters of one cache (or the shared path with IOVAM_CACHE_NONE).
 * @return 0; -EINVAL NULL d or st, bad cache_id.
 */
int iovam_cache_stats_get(struct iovam_domain *d, uint32_t cache_id, struct iovam_cache_stats *st);

/**
 * Read back a domain's configuration.
 * @return 0; -EINVAL NULL d or conf.
 */
int iovam_domain_conf_get(struct iovam_domain *d, struct iovam_domain_conf *conf);

/** iovam_domain_set_checks() flag: validate every iovam_free_fast() range (default). */
#define IOVAM_CHECK_FAST_FREE 1u

/**
 * Choose the fast free's mode. A new domain is checked (IOVAM_CHECK_FAST_FREE):
 * it keeps one byte per page of its window (at most the top 2^30 pages;
 * reserved address space, touched only where ranges are allocated) saying
 * which cacheable range is with a caller, so iovam_free_fast(),
 * iovam_free_fast_bulk(), iovam_free() and iovam_free_deferred() refuse a
 * range that is not (a double free, a free after the other call, a wrong
 * size, a RESERVED or never-allocated pfn) in O(1) on the fast path: a byte
 * load and store per call, about 1 ns. Two frees of one range that race on
 * two threads, unordered, may both pass (a data race in the caller).
 * flags 0 selects unchecked mode, which trusts that each range freed through
 * a cache came from iovam_alloc_fast() with that npages and is freed once
 * (as the kernel's free_iova_fast() and rte_mempool_put() trust their
 * callers): it checks alignment and bounds only, and a misuse makes two
 * owners of one range.
 * Only while no range is allocated (cached ones included): before first
 * use, or after freeing and flushing everything. Not concurrently with
 * other calls on d.
 * @return 0; -EINVAL NULL d or unknown flags; -EBUSY the mode would change
 *   while ranges are allocated or DEFERRED.
 */
int iovam_domain_set_checks(struct iovam_domain *d, uint32_t flags);

/**
 * Check every invariant of the domain (order, no overlap, gap annotations,
 * counts, cache contents). O(n); for tests and debugging.
 * @return 0; -EINVAL NULL d; -EFAULT an invariant is broken.
 */
int iovam_verify(struct iovam_domain *d);

/** The invariant the last failed iovam_verify() found broken ("" if none). */
const char *iovam_verify_error(struct iovam_domain *d);

/* ------------------------------------------------------------------------
 * Return batches: freeing ranges that other lcores allocated.
 *
 * A thread that frees ranges it did not allocate (the drain that completes
 * the unmaps of other lcores: a service lcore, an EAL alarm thread, any
 * thread) should not iovam_free_fast() them into its own cache: they would
 * stay where nobody allocates (or, without a cache, go to the tree one by
 * one), and the allocating lcores would refill from the tree. A return batch
 * gathers them in a private magazine per size class and moves each full one
 * (127 ranges) into the depot, whole, where an lcore whose magazines ran dry
 * takes it in one exchange; it never touches an lcore's magazines. A flush
 * moves the partial magazines (into the depot's top magazine when they fit
 * there). When the depot is full (32 magazines per class), ranges go to the
 * tree instead. The depot is node 0's, or that of the node
 * iovam_return_batch_set_node() names (iovam_numa.h: a depot per NUMA node).
 *
 * A batch belongs to one thread at a time (as a cache_id does); any number
 * may exist per domain, concurrently with every other call on it. Ranges a
 * batch holds are ALLOCATED and belong to it, not to the caches: flush at the
 * end of each pass of work (iovam_cache_flush() does not reach them).
 * ------------------------------------------------------------------------ */

struct iovam_return_batch;

struct iovam_return_batch_stats {
	uint64_t ranges_added;    /**< iovam_return_batch_add() successes */
	uint64_t puts_to_depot;   /**< magazines (whole or flushed partial) moved into the depot */
	uint64_t ranges_to_depot; /**< ranges they carried */
	uint64_t
	        ranges_to_tree; /**< ranges freed to the tree (depot full, or > IOVAM_CACHE_MAX_PAGES) */
	uint64_t ranges_held; /**< ranges in the batch now */
};

/**
 * Create a return batch for d (6 KiB of magazines, allocated here).
 * @return the batch, or NULL with errno: EINVAL NULL d; ENOMEM.
 */
struct iovam_return_batch *iovam_return_batch_create(struct iovam_domain *d);

/** Flush and free a batch (before its domain is destroyed). NULL is a no-op. */
void iovam_return_batch_destroy(struct iovam_return_batch *rb);

/**
 * Give back a range from iovam_alloc_fast() or iovam_alloc_fast_bulk() (on
 * any cache, with the npages given to it), as iovam_free_fast() would, but
 * towards the depot. Checked as iovam_free_fast() checks a range the caches
 * take: alignment and bounds always, and in checked mode (the default) that
 * it is with a caller, at this size: a range returned twice (to a batch or a
 * cache), freed with iovam_free(), RESERVED or never allocated is refused.
 * Ranges the caches never hold (more than IOVAM_CACHE_MAX_PAGES, or below
 * the cached window) are looked up and freed to the tree at once.
 * Cost: the O(1) checks, the live byte's load and store, and a store; once
 * per 127 ranges of a class the depot's lock and a 1 KiB copy. No
 * allocation, no syscall.
 * @return 0; -EINVAL NULL rb, npages == 0, pfn_lo not aligned to the rounded
 *   size or outside the domain, or (checked) not one ALLOCATED range of that
 *   size; -ENOENT (checked) free, DEFERRED, cached, batched or freed already;
 *   -EPERM (checked) RESERVED. Nothing changes on error.
 */
int iovam_return_batch_add(struct iovam_return_batch *rb, uint64_t pfn_lo, uint64_t npages);

/**
 * Move every range the batch holds into the depot (or the tree when the
 * depot is full).
 * @return the number of ranges moved (>= 0); -EINVAL NULL rb.
 */
int iovam_return_batch_flush(struct iovam_return_batch *rb);

/** @return 0 and *st; -EINVAL NULL rb or st. */
int iovam_return_batch_stats_get(const struct iovam_return_batch *rb,
                                 struct iovam_return_batch_stats *st);

/* ------------------------------------------------------------------------
 * The inline fast path (as rte_mempool_get()/rte_mempool_put() are inline).
 * What follows is this version's ABI, not API: applications use the two
 * functions above and never touch these structures.
 *
 * Cost on a magazine hit: the argument checks, the lcore's slot, a store and
 * a load of the flush handshake, the pop or push, one counter, and in
 * checked mode the range's live byte (a store on alloc, a load, compare and
 * store on free): about 20-25 instructions, no lock, no atomic
 * read-modify-write, no syscall.
 * ------------------------------------------------------------------------ */

#define IOVAM_MAG_SIZE      127 /* + a size word: a magazine is 1 KiB */
#define IOVAM_CACHE_CLASSES 6   /* 1, 2, 4, 8, 16, 32 pages */
#define IOVAM_LCORE_STRIDE  256 /* bytes from one lcore's slot to the next */

struct iovam_magazine {
	uint64_t size;
	uint64_t pfn[IOVAM_MAG_SIZE];
};

/* The head of each lcore's slot. in_use is written by the owner, flush_req by
 * a flusher on another thread: an asymmetric Dekker handshake whose other
 * half is membarrier(2) on the flusher's side. */
struct iovam_lcore_fast {
	uint32_t in_use;
	uint32_t flush_req;
	struct iovam_magazine *loaded[IOVAM_CACHE_CLASSES];
	uint64_t alloc_hits; /* ranges popped from this lcore's magazines */
	uint64_t free_hits;  /* ranges pushed */
};

/* What *d starts with. */
struct iovam_fast_view {
	uint32_t n_caches;
	uint32_t reserved;
	uint64_t free_max;                  /* free_fast caches npages - 1 < free_max (<= 32) */
	uint64_t cache_lo_pfn;              /* lowest pfn a cached range may start at */
	uint64_t span[IOVAM_CACHE_CLASSES]; /* highest pfn_lo - cache_lo_pfn per class */
	char *lcores;                       /* n_caches slots of IOVAM_LCORE_STRIDE bytes */
	/* Checked mode (the default): live[iovam_live_index_(pfn_lo -
	 * cache_lo_pfn)] is class + 1
	 * while a range of that class starting at pfn_lo is with the caller,
	 * 0 while it is cached or not allocated. NULL: unchecked mode. */
	uint8_t *live;
	uint64_t end_pfn;
};

/* Where the live-map byte of the range at offset off (pfn_lo - cache_lo_pfn)
 * lives: in each 4096-byte block of the map the low and the next 6 bits of
 * the offset trade places, so ranges of up to 32 pages that lie side by side
 * have their bytes in different cache lines. Two lcores' magazines are often
 * carved next to each other from the tree; with the bytes in one line, each
 * lcore's alloc and free took the line from the other (2 threads ran at half
 * the speed of one). A block still covers the same 4096 pages. Cost: two
 * shifts, two ands, two ors. */
static inline uint64_t iovam_live_index_(uint64_t off)
{
	return (off & ~(uint64_t)4095) | ((off & 63) << 6) | ((off >> 6) & 63);
}

/* The live-map byte of a range at pfn_lo (checked mode). Relaxed atomics:
 * plain loads and stores, no read-modify-write; distinct ranges have
 * distinct bytes. */
static inline uint8_t *iovam_live_byte_(const struct iovam_fast_view *v, uint64_t pfn_lo)
{
	return v->live + iovam_live_index_(pfn_lo - v->cache_lo_pfn);
}

#if defined(__SANITIZE_THREAD__)
#define IOVAM_TSAN_ 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IOVAM_TSAN_ 1
#endif
#endif

static inline int iovam_lcore_enter_(struct iovam_lcore_fast *l)
{
#ifdef IOVAM_TSAN_
	/* ThreadSanitizer does not model fences: a symmetric seq_cst Dekker. */
	__atomic_store_n(&l->in_use, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&l->flush_req, __ATOMIC_SEQ_CST) != 0) {
#else
	__atomic_store_n(&l->in_use, 1, __ATOMIC_RELAXED);
	/* The compiler must not hoist the load; the CPU's ordering of the
	 * store before it is the flusher's membarrier(2). */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(__atomic_load_n(&l->flush_req, __ATOMIC_ACQUIRE) != 0, 0)) {
#endif
		__atomic_store_n(&l->in_use, 0, __ATOMIC_RELEASE);
		return 0;
	}
	return 1;
}

static inline void iovam_lcore_leave_(struct iovam_lcore_fast *l)
{
	__atomic_store_n(&l->in_use, 0, __ATOMIC_RELEASE);
}

/* One writer (the owner): a load and a store, no read-modify-write. */
static inline void iovam_count_(uint64_t *ctr)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* iovam_count_() for a bulk: still one load and one store. */
static inline void iovam_count_n_(uint64_t *ctr, uint64_t n)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline unsigned int iovam_size_class_(uint64_t npages)
{
	return npages <= 1 ? 0 : 64 - (unsigned int)__builtin_clzll(npages - 1);
}

static inline struct iovam_lcore_fast *iovam_lcore_(const struct iovam_fast_view *v, uint32_t id)
{
	return (struct iovam_lcore_fast *)(v->lcores + (uint64_t)id * IOVAM_LCORE_STRIDE);
}

/*
 * The checked free (live != NULL): the range's live byte must hold its class
 * (else the slow path names the error: a double free, a free after
 * iovam_free(), a wrong size, a RESERVED or never-allocated pfn all leave
 * another value there). The byte is cleared inside the handshake, before
 * the range can be popped or flushed: one load, one compare, one store.
 * The IOVAM_CACHE_MAX_PAGES test is for the compiler: free_max <= 32, so it
 * costs nothing, and it proves cls < IOVAM_CACHE_CLASSES for any npages.
 */
static inline int iovam_free_fast_inline_(struct iovam_domain *d, uint32_t cache_id,
                                          uint64_t pfn_lo, uint64_t npages)
{
	const struct iovam_fast_view *v = (const struct iovam_fast_view *)d;
	if (__builtin_expect(d != NULL && npages - 1 < IOVAM_CACHE_MAX_PAGES &&
	                             npages - 1 < v->free_max && cache_id < v->n_caches,
	                     1)) {
		unsigned int cls = iovam_size_class_(npages);
		uint8_t *live = NULL;
		/* O(1) sanity: naturally aligned, inside the cached window. */
		if (__builtin_expect((pfn_lo & ((1ULL << cls) - 1)) == 0 &&
		                             pfn_lo - v->cache_lo_pfn <= v->span[cls],
		                     1) &&
		    (v->live == NULL ||
		     __builtin_expect(__atomic_load_n(live = iovam_live_byte_(v, pfn_lo),
		                                      __ATOMIC_RELAXED) == cls + 1,
		                      1))) {
			struct iovam_lcore_fast *l = iovam_lcore_(v, cache_id);
			if (__builtin_expect(iovam_lcore_enter_(l), 1)) {
				struct iovam_magazine *m = l->loaded[cls];
				uint64_t n = m->size;
				if (__builtin_expect(n < IOVAM_MAG_SIZE, 1)) {
					if (live != NULL)
						__atomic_store_n(live, (uint8_t)0,
						                 __ATOMIC_RELAXED);
					m->pfn[n] = pfn_lo;
					m->size = n + 1;
					iovam_count_(&l->free_hits);
					iovam_lcore_leave_(l);
					return 0;
				}
				iovam_lcore_leave_(l);
			}
		}
	}
	return iovam_free_fast_slow(d, cache_id, pfn_lo, npages);
}

/* Whether the n ranges on top of m all end at or below limit_pfn. */
static inline int iovam_mag_top_fits_(const struct iovam_fast_view *v,
                                      const struct iovam_magazine *m, uint64_t size, unsigned int n,
                                      uint64_t mask, uint64_t limit_pfn)
{
	uint64_t i;
	/* No limit at or above end_pfn excludes a cached range, so the usual
	 * call compares nothing per range. */
	if (__builtin_expect(limit_pfn >= v->end_pfn, 1)) return 1;
	for (i = size - n; i < size; ++i)
		if (m->pfn[i] + mask > limit_pfn) return 0;
	return 1;
}

/* Checked mode: clear the live byte of each of the n ranges, in order, so
 * that a range given twice finds its byte already cleared; if any byte is
 * not the class's, restore those cleared and fail (the slow path then names
 * the error). Unchecked: nothing to do. */
static inline int iovam_live_take_all_(const struct iovam_fast_view *v, const uint64_t *pfn_lo,
                                       unsigned int n, unsigned int cls)
{
	unsigned int i, j;
	if (v->live == NULL) return 1;
	for (i = 0; i < n; ++i) {
		uint8_t *b = iovam_live_byte_(v, pfn_lo[i]);
		if (__builtin_expect(__atomic_load_n(b, __ATOMIC_RELAXED) != cls + 1, 0)) {
			for (j = 0; j < i; ++j)
				__atomic_store_n(iovam_live_byte_(v, pfn_lo[j]), (uint8_t)(cls + 1),
				                 __ATOMIC_RELAXED);
			return 0;
		}
		__atomic_store_n(b, (uint8_t)0, __ATOMIC_RELAXED);
	}
	return 1;
}

/*
 * The bulk hit: all n ranges from (or into) the loaded magazine under one
 * enter/leave and one counter update, else the slow path does the whole
 * bulk. Cost on a hit: the single call's checks and handshake once, then per
 * range a copy (alloc) or a copy and two O(1) bound checks (free); still no
 * lock, no atomic read-modify-write, no syscall, no allocation.
 */
static inline int iovam_alloc_fast_bulk_inline_(struct iovam_domain *d, uint32_t cache_id,
                                                uint64_t npages, uint64_t limit_pfn,
                                                uint64_t *pfn_lo, unsigned int n)
{
	const struct iovam_fast_view *v = (const struct iovam_fast_view *)d;
	if (__builtin_expect(d != NULL && pfn_lo != NULL && npages - 1 < IOVAM_CACHE_MAX_PAGES,
	                     1) &&
	    __builtin_expect(cache_id < v->n_caches, 1)) {
		struct iovam_lcore_fast *l = iovam_lcore_(v, cache_id);
		unsigned int cls = iovam_size_class_(npages);
		if (__builtin_expect(iovam_lcore_enter_(l), 1)) {
			struct iovam_magazine *m = l->loaded[cls];
			uint64_t size = m->size;
			/* n == 0 goes to the slow path, which answers it. */
			if (__builtin_expect(n - 1 < size, 1) &&
			    iovam_mag_top_fits_(v, m, size, n, (1ULL << cls) - 1, limit_pfn)) {
				unsigned int i;
				/* Popped in the order n single calls would pop. */
				for (i = 0; i < n; ++i) pfn_lo[i] = m->pfn[size - 1 - i];
				m->size = size - n;
				if (v->live != NULL)
					for (i = 0; i < n; ++i)
						__atomic_store_n(iovam_live_byte_(v, pfn_lo[i]),
						                 (uint8_t)(cls + 1),
						                 __ATOMIC_RELAXED);
				iovam_count_n_(&l->alloc_hits, n);
				iovam_lcore_leave_(l);
				return 0;
			}
			iovam_lcore_leave_(l);
		}
	}
	return iovam_alloc_fast_bulk_slow(d, cache_id, npages, limit_pfn, pfn_lo, n);
}

/* A single allocation is a bulk of one: the compiler folds the loops, so
 * the hit is the same few instructions, and there is one ladder to keep. */
static inline int iovam_alloc_fast_inline_(struct iovam_domain *d, uint32_t cache_id,
                                           uint64_t npages, uint64_t limit_pfn, uint64_t *pfn_lo)
{
	return iovam_alloc_fast_bulk_inline_(d, cache_id, npages, limit_pfn, pfn_lo, 1);
}

static inline int iovam_free_fast_bulk_inline_(struct iovam_domain *d, uint32_t cache_id,
                                               const uint64_t *pfn_lo, unsigned int n,
                                               uint64_t npages)
{
	const struct iovam_fast_view *v = (const struct iovam_fast_view *)d;
	if (__builtin_expect(d != NULL && pfn_lo != NULL && npages - 1 < IOVAM_CACHE_MAX_PAGES &&
	                             npages - 1 < v->free_max && cache_id < v->n_caches,
	                     1)) {
		unsigned int cls = iovam_size_class_(npages);
		uint64_t mask = (1ULL << cls) - 1, bad = 0;
		unsigned int i;
		/* Every range is checked before any is pushed (all or none),
		 * without a branch per range. */
		for (i = 0; i < n; ++i)
			bad |= (pfn_lo[i] & mask) |
			       (uint64_t)(pfn_lo[i] - v->cache_lo_pfn > v->span[cls]);
		if (__builtin_expect(bad == 0, 1)) {
			struct iovam_lcore_fast *l = iovam_lcore_(v, cache_id);
			if (__builtin_expect(iovam_lcore_enter_(l), 1)) {
				struct iovam_magazine *m = l->loaded[cls];
				uint64_t size = m->size;
				if (__builtin_expect(n <= IOVAM_MAG_SIZE - size, 1) &&
				    iovam_live_take_all_(v, pfn_lo, n, cls)) {
					for (i = 0; i < n; ++i) m->pfn[size + i] = pfn_lo[i];
					m->size = size + n;
					iovam_count_n_(&l->free_hits, n);
					iovam_lcore_leave_(l);
					return 0;
				}
				iovam_lcore_leave_(l);
			}
		}
	}
	return iovam_free_fast_bulk_slow(d, cache_id, pfn_lo, n, npages);
}

#ifndef IOVAM_NO_INLINE_FAST_PATH
static inline int iovam_alloc_fast(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                   uint64_t limit_pfn, uint64_t *pfn_lo)
{
	return iovam_alloc_fast_inline_(d, cache_id, npages, limit_pfn, pfn_lo);
}

static inline int iovam_free_fast(struct iovam_domain *d, uint32_t cache_id, uint64_t pfn_lo,
                                  uint64_t npages)
{
	return iovam_free_fast_inline_(d, cache_id, pfn_lo, npages);
}

static inline int iovam_alloc_fast_bulk(struct iovam_domain *d, uint32_t cache_id, uint64_t npages,
                                        uint64_t limit_pfn, uint64_t *pfn_lo, unsigned int n)
{
	return iovam_alloc_fast_bulk_inline_(d, cache_id, npages, limit_pfn, pfn_lo, n);
}

static inline int iovam_free_fast_bulk(struct iovam_domain *d, uint32_t cache_id,
                                       const uint64_t *pfn_lo, unsigned int n, uint64_t npages)
{
	return iovam_free_fast_bulk_inline_(d, cache_id, pfn_lo, n, npages);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* IOVAM_H */
