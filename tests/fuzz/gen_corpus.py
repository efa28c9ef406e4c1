#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Writes the seed corpus of tests/fuzz/fuzz_api.cc into tests/fuzz/corpus/:
# a few op sequences in the target's input format (see the comment at the top
# of fuzz_api.cc), deterministic. Usage: tests/fuzz/gen_corpus.py
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
NUM_CONFS = 8  # kConfs in fuzz_api.cc

# Opcodes (op byte % kNumOps, 23, when byte 0 >= 32; else % 21, the count
# before the bulk ops, so that the seeds written before them, whose byte 0
# is below 32, decode as they always did).
ALLOC, FREE, FREE_DEFERRED, RESERVE, FIND, ALLOC_FAST, FREE_FAST, FREE_FAST_BAD = range(8)
FLUSH, MAINTAIN, STATS, FAIL, SET_CHECKS, NULL_ARGS = range(8, 14)
ALLOC_FAST_BATCH, FREE_FAST_BATCH, ALLOC_BATCH, FREE_BATCH, RESERVE_BATCH = range(16, 21)
ALLOC_FAST_BULK, FREE_FAST_BULK = range(21, 23)
CACHE_NONE = bytes([7])  # pick_cache: m % 8 == 7


def count(n):
    """The batch_count() byte for about n calls (1..64 exact, then steps of 4 up to 316)."""
    return n - 1 if n <= 64 else min(255, 192 + (n - 64 + 3) // 4)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


class Gen:
    def __init__(self, conf, n_caches, seed, bulk_ops=False):
        self.b = bytearray([conf + NUM_CONFS * n_caches + (32 if bulk_ops else 0)])
        self.r = random.Random(seed)

    def npages(self):
        # mode 0..2: 1 + (m >> 3) % 8; mode 3..4: 1 + (m >> 3) % 32; 5: 1 + next % 64
        k = self.r.random()
        if k < 0.6:
            return bytes([(self.r.randrange(8) << 3) | self.r.randrange(3)])
        if k < 0.9:
            return bytes([(self.r.randrange(32) << 3) | (3 + self.r.randrange(2))])
        return bytes([5, self.r.randrange(256)])

    def limit(self):
        k = self.r.random()
        if k < 0.6:
            return bytes([0])  # UINT64_MAX
        if k < 0.8:
            return bytes([3])  # dma32_last
        return bytes([5]) + u16(self.r.randrange(65536))  # start + x % window

    def pfn_of_range(self):
        return bytes([0]) + u16(self.r.randrange(65536)) + bytes([self.r.randrange(6)])

    def pfn_in_window(self):
        return bytes([3]) + u16(self.r.randrange(65536))

    def cache(self):
        return bytes([self.r.randrange(32) << 3])  # (m >> 3) % n_caches, or NONE with 0 caches

    def alloc(self):
        self.b += bytes([ALLOC, self.r.randrange(2) * 1]) + self.npages() + self.limit()

    def free(self, deferred=False):
        self.b += bytes([FREE_DEFERRED if deferred else FREE]) + self.pfn_of_range()

    def free_nth(self, idx):
        """Free the range at index idx of the model's ranges (pick_pfn mode 0, its first pfn)."""
        self.b += bytes([FREE, 0]) + u16(idx) + bytes([0])

    def free_deferred(self):
        self.free(deferred=True)

    def reserve(self):
        self.b += bytes([RESERVE, 4]) + self.pfn_in_window() + bytes([self.r.randrange(4)])

    def find(self):
        self.b += bytes([FIND, 0]) + self.pfn_of_range()

    def alloc_fast(self):
        self.b += bytes([ALLOC_FAST, 0]) + self.cache() + self.npages() + self.limit()

    def free_fast(self):
        self.b += bytes([FREE_FAST]) + u16(self.r.randrange(65536)) + bytes([0]) + self.cache()

    def free_fast_bad(self):
        self.b += bytes([FREE_FAST_BAD, self.r.randrange(256)]) + bytes(self.r.randrange(256) for _ in range(4))

    def flush(self):
        self.b += bytes([FLUSH]) + self.cache()

    def flush_all(self):
        self.b += bytes([FLUSH]) + CACHE_NONE

    def maintain(self):
        self.b += bytes([MAINTAIN])

    def stats(self):
        self.b += bytes([STATS, self.r.randrange(8)])

    def fail(self, mode):
        self.b += bytes([FAIL, mode]) + u32(self.r.randrange(1 << 32))

    def set_checks(self, on):
        self.b += bytes([SET_CHECKS, 1 if on else 0])

    def null_args(self):
        self.b += bytes([NULL_ARGS, self.r.randrange(8)])

    def alloc_fast_batch(self, n, npages=b"\x00", cache=b"\x00"):
        self.b += bytes([ALLOC_FAST_BATCH, count(n)]) + cache + npages + bytes([0])

    def free_fast_batch(self, n, how=0, cache=b"\x00"):
        self.b += bytes([FREE_FAST_BATCH, count(n)]) + cache + bytes([how])

    def alloc_batch(self, n, aligned=0, npages=b"\x00"):
        self.b += bytes([ALLOC_BATCH, count(n), aligned]) + npages + bytes([0])

    def free_batch(self, n, how=0):
        self.b += bytes([FREE_BATCH, count(n), how])

    def climb_alloc_batch(self, n):
        """n single pages, the limit climbing by one page per call (op_alloc_batch f & 2)."""
        self.b += bytes([ALLOC_BATCH, count(n), 2, 0, 0])

    def reserve_batch(self, n, stride=2, merge=False):
        self.b += bytes([RESERVE_BATCH, count(n), (stride - 2) | (16 if merge else 0)])

    def alloc_fast_bulk(self, n=None, npages=b"\x00", cache=b"\x00", limit=b"\x00"):
        n = n or 1 + self.r.randrange(64)
        self.b += bytes([ALLOC_FAST_BULK, 0, count(n)]) + cache + npages + limit

    def free_fast_bulk(self, n=None, cache=b"\x00", bad=None):
        """Owned ranges of one size from index 0; bad: (kind, position) of one bad entry
        (kind 1 past the end, 3 repeated, 4 a pfn in the window: checked only)."""
        n = n or 1 + self.r.randrange(64)
        self.b += bytes([FREE_FAST_BULK, 0, count(n)]) + cache + bytes([2 | (4 if bad else 0)]) + u16(0)
        if bad:
            kind, pos = bad
            extra = {1: bytes([0]), 3: bytes([0]), 4: bytes([3]) + u16(self.r.randrange(65536))}[kind]
            self.b += bytes([kind]) + extra + u16(pos)

    def mix(self, n, weights):
        ops = list(weights)
        for _ in range(n):
            getattr(self, self.r.choices(ops, [weights[o] for o in ops])[0])()


def write(name, g):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(g.b))


def main():
    mixed = {"alloc": 30, "free": 12, "free_deferred": 5, "reserve": 3, "find": 6, "alloc_fast": 16,
             "free_fast": 16, "free_fast_bad": 3, "flush": 2, "maintain": 2, "stats": 2, "null_args": 1}
    for conf in range(NUM_CONFS):
        g = Gen(conf, 1 + conf % 3, seed=conf)
        g.mix(150, mixed)
        write(f"mixed-conf{conf}", g)
    # Fill the small window, free half, then fast-path churn with node failures.
    g = Gen(0, 2, seed=100)
    for _ in range(80):
        g.alloc()
    for _ in range(40):
        g.free()
    g.fail(2 + (3 << 2))  # one in 5
    g.mix(200, {"alloc_fast": 5, "free_fast": 5, "alloc": 3, "free": 2, "maintain": 1, "flush": 1})
    g.fail(1)  # always
    g.mix(40, {"alloc": 3, "reserve": 2, "free": 2, "alloc_fast": 2})
    g.fail(0)
    g.maintain()
    write("fill-churn-faults", g)
    # The 32-bit boundary window: exhaust below 4 GiB, free, retry (the estimate).
    g = Gen(1, 3, seed=101)
    for _ in range(60):
        g.b += bytes([ALLOC, 1, 5, 63, 3])  # 1..64 pages, aligned, limit dma32_last
    g.mix(200, {"alloc": 4, "free": 3, "free_deferred": 2, "maintain": 1, "alloc_fast": 3, "free_fast": 3})
    write("dma32-estimate", g)
    # Checked fast frees and deferred frees on the tiny window.
    g = Gen(5, 2, seed=102)
    g.set_checks(True)
    g.mix(200, {"alloc_fast": 4, "free_fast": 3, "free_fast_bad": 3, "free_deferred": 2, "maintain": 1,
                "reserve": 1, "alloc": 2, "stats": 1})
    write("tiny-checked", g)
    # Magazines past 127 ranges, the depot, swaps with prev; then a deep tree
    # fragmented and destroyed full (byte 0 >= 224).
    g = Gen(3, 1, seed=103)
    g.alloc_fast_batch(310)
    g.free_fast_batch(300, how=0)
    g.alloc_fast_batch(300)
    g.flush()
    g.alloc_fast_batch(200, npages=bytes([3 << 3]))  # 4 pages
    g.free_fast_batch(200, how=2)
    g.maintain()
    write("magazines-depot", g)
    g = Gen(3, 2, seed=104)
    g.b[0] = 224 + 3 + 8 * 2
    g.alloc_batch(316)
    g.alloc_batch(316, aligned=1, npages=bytes([1 << 3]))
    g.free_batch(300, how=1)
    g.free_batch(200, how=4 | 8 | 2)
    g.alloc_fast_batch(200)
    g.free_fast_batch(150, how=2)
    write("deep-tree-destroy-full", g)
    # More than 9 full magazines of one class in the depot, then maintain()
    # trims it back to 8 (1400 ranges: about the kMaxCalls budget).
    g = Gen(3, 2, seed=105)
    for n in (316, 316, 316, 316, 136):
        g.alloc_fast_batch(n)
    for n in (316, 316, 316, 316, 136):
        g.free_fast_batch(n, how=1)
    g.maintain()
    g.stats()
    write("depot-trim", g)
    # The depot at kDepotMax: 4424 single pages freed into cache 0 (its two
    # magazines, 32 in the depot, then one back to the tree), all flushed.
    g = Gen(3, 1, seed=106)
    for _ in range(14):
        g.alloc_fast_batch(316)
    for _ in range(14):
        g.free_fast_batch(316, how=0)
    g.stats()
    g.flush_all()
    g.maintain()
    write("depot-full", g)
    # A tree of about 300 nodes (4108 reserved pages, a page apart) folded
    # into one RESERVED segment: maintain() trims the pool the nodes went to.
    g = Gen(3, 0, seed=107)
    for i in range(13):
        g.reserve_batch(316, merge=i == 12)
    g.maintain()
    g.stats()
    g.alloc_batch(8)
    write("reserve-fold-pool-trim", g)
    # 300 pages carved upwards: the last carve split the last leaf 30 | 2 and
    # its full parent 10 | 1. Freeing the top page leaves that leaf one FREE
    # segment; freeing the page below merges across into it and empties it
    # (GapTree::remove_empty_branch). Then more climbing and mixed ops.
    g = Gen(3, 0, seed=108)
    for n in (64, 64, 64, 64, 44):
        g.climb_alloc_batch(n)
    g.free_nth(299)
    g.free_nth(298)
    g.climb_alloc_batch(316)
    g.mix(40, {"alloc": 3, "free": 3, "reserve": 1, "find": 1, "maintain": 1})
    write("climb-empty-leaf", g)
    # The bulk calls: bursts within a magazine and past two (the ladder: prev,
    # depot, tree), mixed with singles; checked frees with a repeated entry in
    # the middle, an ENOMEM bulk on the small window, bad arguments.
    g = Gen(3, 2, seed=109, bulk_ops=True)
    g.alloc_fast_bulk(32)
    g.free_fast_bulk(32)
    g.alloc_fast_bulk(32)
    g.alloc_fast_bulk(300)
    g.free_fast_bulk(300)
    g.mix(30, {"alloc_fast": 3, "free_fast": 3, "alloc_fast_bulk": 2, "free_fast_bulk": 2})
    g.set_checks(True)
    g.free_fast_bulk(16, bad=(3, 8))  # repeated: -ENOENT, nothing freed
    g.free_fast_bulk(16, cache=CACHE_NONE, bad=(4, 5))
    g.set_checks(False)
    g.free_fast_bulk(16, bad=(1, 3))  # past the end: -EINVAL
    g.b += bytes([FREE_FAST_BULK, 0, 3, 0, 0, 0])  # NULL array, 4 entries: -EINVAL
    g.b += bytes([FREE_FAST_BULK, 0, 3, 0, 1 | 8 | 32])  # bad cache id: -EINVAL
    write("bulk-ladder", g)
    g = Gen(0, 2, seed=110, bulk_ops=True)
    g.alloc_fast_bulk(200, npages=bytes([1 << 3]))  # 2 pages: 150 fit in [1, 300]
    g.alloc_fast_bulk(100)
    g.free_fast_bulk(60)
    g.alloc_fast_bulk(120, cache=bytes([1 << 3]))
    g.mix(60, {"alloc_fast_bulk": 3, "free_fast_bulk": 3, "alloc": 1, "free": 1, "flush": 1})
    write("bulk-enomem", g)


if __name__ == "__main__":
    main()
