/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// DynTable: the live dynamic mappings (iovam_dpdk_map), so that
// iovam_dpdk_unmap() can refuse at once, changing nothing, what is not one:
// an IOVA never mapped, one already unmapped (a double unmap), DPDK memory
// mapped by the memory-event hook, or a mapping with another VA or length.
// Without it a double unmap whose first unmap already completed would return
// the IOVA to the domain twice, and the next two maps would share it: two
// owners of one IOVA, the corruption iovam exists to prevent. (The kernel's
// dma-debug checks dma_unmap_single() against its own table the same way.)
//
// Open addressing with linear probing over a power-of-two array of slots,
// keyed by the mapping's first IOVA page (pfn >= 1: IOVA 0 is never handed
// out, so a zero key means empty):
//
//   slot (32 B, two per cache line)
//   +-----------------------+----------------+----------------+-----------+
//   | key: pfn << 2 | state | va             | len (bytes)    | tag       |
//   +-----------------------+----------------+----------------+-----------+
//   va and len exactly as given to iovam_dpdk_map(); tag, while unmapping:
//   the unmap's sequence number (dyn_queue.h), or once its unmap failed the
//   retry list's link; 0 while live.
//   key 0 = empty, never used; kBusy = claimed by a map filling the slot
//
//   empty/dead --map: CAS to kBusy, fill, release-store live--> live
//   live --unmap: CAS--> unmapping     (a second unmap loses: -ENOENT)
//   unmapping, its sequence number completed --a map may claim it--> kBusy
//   unmapping, on the retry list --the drain, once the unmap succeeded--> dead
//   dead --a later map may claim it--> kBusy ...
//
// The drain never writes a slot whose unmap succeeded at once: a map tells
// from the tag that the slot is free (the queue's completed position, a line
// it reads once per drain pass). So the lines of the live table are written
// by the mapping lcores only, and a drain on another core does not take them
// away from the lcore that maps next to them. The IOVA goes back to the
// domain only after the unmap completed, so a pfn is live in at most one
// slot. A slot never becomes empty again, so a lookup
// stops at the first empty slot (see below).
//
// Where a key lives: two probe windows, tried in this order.
//  1. Near: kNearProbe slots from pfn mod N (identity) in the near part of
//     the table, N slots for max_mappings <= N mappings. Live pfns come in
//     dense runs (each lcore's magazine hands out neighbours, and the drain
//     returns them sorted), so the slots of the pfns in flight are one
//     compact, sequential stretch of the table. That is what makes a map
//     cheap when its slot was last touched long ago: with the EAL alarm
//     draining every 10 ms, a pfn is mapped again ~10 ms after its previous
//     mapping, and on a busy machine a line untouched that long has left the
//     core's caches. A hashed slot then costs a cache and a TLB miss per map
//     (bench_dyn_map, alarm drain at 50K pairs/s: 160-180 ns a pair); a
//     sequential stretch is streamed by the prefetcher and shares its lines
//     and pages (about 40 ns).
//  2. Far: up to kMaxProbe slots from a Fibonacci hash of the pfn in the far
//     part, 2N slots of its own, for keys whose near window is taken.
//     Identity merges runs whose pfns differ by a multiple of N into one
//     cluster (two runs of 32 K pages 256 MiB apart: dyn_table_test has such
//     patterns); their keys overflow to the far part, where Fibonacci
//     hashing spreads them: the longest probe for those runs is a few slots,
//     for random pfns about 20 at load 1/2. A part of its own, because a far
//     window starting inside a dense near cluster could not probe past it.
// Slots never become empty again, so a lookup may stop at the first empty
// slot of each window: every slot between a key's home and its slot was in
// use when it was inserted, and still is. A pfn is live in at most one slot
// (its older mappings' slots are dead). A map that finds no free slot in
// either window fails (-ENOSPC); a lookup probes at most kNearProbe +
// kMaxProbe slots. The far part alone holds every mapping the table is sized
// for at load <= 1/2; dead slots are free for maps. Memory: 3N x 32 B (6 MiB
// for the default 65536 mappings).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace iovam::glue
{

class DynTable
{
public:
	// Longest probe of the far window. At load 1/2 random keys need about
	// 20 at 2^17 slots; a refused unmap scans at most kNearProbe + this
	// many slots (8.5 KiB).
	static constexpr uint32_t kMaxProbe = 256;
	// The near window: 16 slots, 8 cache lines.
	static constexpr uint32_t kNearProbe = 16;
	static constexpr uint64_t kNone = UINT64_MAX;

	enum State : uint64_t { kLive = 1, kUnmapping = 2, kDead = 3 };

	struct alignas(32) Slot {
		std::atomic<uint64_t> key{0};
		uint64_t va = 0;              // written by the map that owns the slot (kBusy),
		uint64_t len = 0;             // read by the unmap that won it (kUnmapping)
		std::atomic<uint64_t> tag{0}; // see above
	};
	static_assert(sizeof(Slot) == 32, "two slots per 64-byte cache line");

	// Sized for max_mappings live mappings (>= 1). false: out of memory.
	bool init(uint32_t max_mappings);
	void fini();
	uint64_t slots() const { return 3 * (near_mask_ + 1); }

	// Record a new live mapping. done(tag) says whether the unmap whose
	// sequence number is tag completed (false for anything else): such an
	// unmapping slot is free. Returns its slot, or kNone: no free slot in
	// either window (far more live mappings than the table is sized for).
	// Cost: usually the pfn's own near slot (free since its previous
	// mapping's unmap completed, in a line its neighbours share), done(),
	// one CAS, four stores.
	template <typename Done>
	uint64_t insert(uint64_t pfn, uint64_t va, uint64_t len, const Done &done)
	{
		uint64_t s = take_free(near_window(pfn), done);
		if (__builtin_expect(s == kNone, 0)) {
			s = take_free(far_window(pfn), done);
			if (s == kNone) return kNone;
		}
		slots_[s].va = va;
		slots_[s].len = len;
		slots_[s].tag.store(0, std::memory_order_relaxed);
		slots_[s].key.store(pfn << 2 | kLive, std::memory_order_release);
		return s;
	}
	// Without sequence numbers: only empty and dead slots are free.
	uint64_t insert(uint64_t pfn, uint64_t va, uint64_t len)
	{
		return insert(pfn, va, len, [](uint64_t) { return false; });
	}

	// Claim the live mapping at pfn for its unmap: it must have been mapped
	// from exactly va with len bytes. 0 and *slot; -ENOENT no live
	// mapping starts at pfn (never mapped, or already being unmapped);
	// -EINVAL it does, but with another va or length (left live).
	// Cost: usually one probe (the near home) and one CAS.
	int claim(uint64_t pfn, uint64_t va, uint64_t len, uint64_t *slot)
	{
		int rc = claim_in(near_window(pfn), pfn, va, len, slot);
		if (__builtin_expect(rc == kNotHere, 0))
			rc = claim_in(far_window(pfn), pfn, va, len, slot);
		return rc == kNotHere ? -ENOENT : rc;
	}

	// The claimed mapping's IOMMU unmap completed: free the slot. Call
	// before its IOVA goes back to the domain, for a slot whose tag is not
	// its completed sequence number (a retried unmap, fini).
	void release(uint64_t slot)
	{
		uint64_t k = slots_[slot].key.load(std::memory_order_relaxed);
		slots_[slot].key.store((k & ~uint64_t{3}) | kDead, std::memory_order_release);
	}

	// A claimed (kUnmapping) slot's mapping and tag: set by the unmap that
	// claimed it (its sequence number, before the entry is queued), then
	// by the drain (the retry list's link, under its drain lock).
	uint64_t pfn(uint64_t slot) const
	{
		uint64_t k;
		// A map's ABA check may hold it for an instant (take_free()).
		while ((k = slots_[slot].key.load(std::memory_order_acquire)) == kBusy)
			std::this_thread::yield();
		return k >> 2;
	}
	uint64_t va(uint64_t slot) const { return slots_[slot].va; }
	uint64_t len(uint64_t slot) const { return slots_[slot].len; }
	uint64_t tag(uint64_t slot) const
	{
		return slots_[slot].tag.load(std::memory_order_relaxed);
	}
	void set_tag(uint64_t slot, uint64_t tag)
	{
		slots_[slot].tag.store(tag, std::memory_order_relaxed);
	}

	// Claim every live mapping (fini: whatever the application left), calling
	// fn(slot, pfn, va, len) for each. Not concurrent with map or unmap.
	template <typename Fn>
	uint64_t claim_all_live(Fn &&fn)
	{
		uint64_t n = 0;
		for (uint64_t s = 0; s < slots(); s++) {
			uint64_t k = slots_[s].key.load(std::memory_order_acquire);
			if ((k & 3) != kLive || k == kBusy) continue;
			slots_[s].key.store((k & ~uint64_t{3}) | kUnmapping,
			                    std::memory_order_relaxed);
			fn(s, k >> 2, slots_[s].va, slots_[s].len);
			n++;
		}
		return n;
	}

private:
	// Claimed by a map still filling the slot: pfn 0 is never a key, and a
	// lookup skips it (kLive with pfn 0 matches nothing).
	static constexpr uint64_t kBusy = kLive;

	// A probe window: `probe` slots from home within one part of the table
	// (slots [0, N) near, [N, 3N) far), wrapping inside the part.
	struct Window {
		uint64_t base, mask, home;
		uint32_t probe;
		uint64_t slot(uint64_t i) const { return base + ((home + i) & mask); }
	};
	Window near_window(uint64_t pfn) const { return {0, near_mask_, pfn, near_probe_}; }
	Window far_window(uint64_t pfn) const
	{
		return {near_mask_ + 1, far_mask_,
		        (pfn * 0x9E3779B97F4A7C15ull) >> (64 - far_bits_), far_probe_};
	}

	// The first free slot of window w, claimed (kBusy); kNone if there is
	// none.
	template <typename Done>
	uint64_t take_free(const Window &w, const Done &done)
	{
		for (uint64_t i = 0; i < w.probe; i++) {
			const uint64_t s = w.slot(i);
			// Acquire: an unmapping key's tag is its claimer's (written
			// after the map's tag reset), never an older one.
			uint64_t k = slots_[s].key.load(std::memory_order_acquire);
			while (k == 0 || (k & 3) == kDead ||
			       ((k & 3) == kUnmapping &&
			        done(slots_[s].tag.load(std::memory_order_relaxed)))) {
				// Acquire: the slot's last reader (the unmap, the
				// drain) finished with va/len before its release.
				if (!slots_[s].key.compare_exchange_weak(k, kBusy,
				                                         std::memory_order_acquire,
				                                         std::memory_order_acquire))
					continue;
				// ABA: between our look and the CAS the slot may have
				// been taken, mapped and unmapped again by others (the
				// same key, a pending tag now). Then it is not free:
				// put it back before anyone but pfn() notices.
				if ((k & 3) == kUnmapping &&
				    !done(slots_[s].tag.load(std::memory_order_relaxed))) {
					slots_[s].key.store(k, std::memory_order_release);
					break;
				}
				return s;
			}
		}
		return kNone;
	}

	// claim() within one window (a window ends at its first empty slot):
	// kNotHere, or what claim() returns.
	static constexpr int kNotHere = 1;
	int claim_in(const Window &w, uint64_t pfn, uint64_t va, uint64_t len, uint64_t *slot)
	{
		const uint64_t live = pfn << 2 | kLive;
		for (uint64_t i = 0; i < w.probe; i++) {
			const uint64_t s = w.slot(i);
			uint64_t k = slots_[s].key.load(std::memory_order_relaxed);
			if (k == 0) return kNotHere;
			if (k != live) continue;
			// Win the slot first, then read what the map wrote (the CAS
			// acquires its release); a mismatch puts it back.
			if (!slots_[s].key.compare_exchange_strong(k, pfn << 2 | kUnmapping,
			                                           std::memory_order_acq_rel,
			                                           std::memory_order_relaxed))
				return -ENOENT; // another unmap of it won
			if (slots_[s].va != va || slots_[s].len != len) {
				slots_[s].key.store(live, std::memory_order_release);
				return -EINVAL;
			}
			*slot = s;
			return 0;
		}
		return kNotHere;
	}

	Slot *slots_ = nullptr;
	uint64_t near_mask_ = 0;  // N - 1
	uint64_t far_mask_ = 0;   // 2N - 1
	unsigned far_bits_ = 0;   // log2(2N)
	uint32_t near_probe_ = 0; // kNearProbe, or N in a smaller table
	uint32_t far_probe_ = 0;  // kMaxProbe, or 2N
};

} // namespace iovam::glue
