/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// SharedPages: the primary's VA -> IOVA translations of DPDK memory, published
// in a memzone ("iovam_shared") so that secondary processes can translate too.
//
// One 64-bit entry per memseg page of every memseg list that existed when the
// primary first initialised the glue: the iovam IOVA of the page's first byte,
// 0 for none (iovam never hands out IOVA 0: the window starts at one granule
// or above). A page is always IOVA-contiguous (a chunk is whole memseg pages
// of one IOVA range), so va -> iova is entry + offset. 2 MiB pages cost 4 KiB
// of table per GiB of VA reserved by EAL: 256 KiB for 22.11's default four
// lists of 8192 pages per socket.
//
// Writers: the primary's IovaMap, under its exclusive lock (add_chunk sets
// after the DMA map, remove_chunk and make_stale clear before the range goes
// back). Readers: anyone, lock-free: one relaxed load per page. DPDK maps
// memzones at the same VA in every process, so the table is read in place.
//
// The memzone is reserved once per primary process and kept until it exits:
// a secondary may hold a pointer to it across the primary's fini and a later
// init (it sees alive == 0 meanwhile, and a translation fails with -ENODEV),
// so it is never freed under one. Memseg lists created after the first init
// (external memory, rte_malloc_heap_create) have no entries: their memory is
// translated in the primary only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <rte_config.h>

namespace iovam::glue
{

class SharedPages
{
public:
	static constexpr const char *kMemzoneName = "iovam_shared";

	// Primary: reserve the memzone (or reuse this process's, with every
	// entry cleared). Call without DPDK's memory hotplug lock held (it
	// reserves memory) and before the glue records any translation.
	// nullptr on failure (rte_errno).
	static SharedPages *create_primary();
	// Secondary: the primary's table; nullptr with rte_errno ENOENT if the
	// primary never initialised the glue.
	static SharedPages *attach_secondary();

	// Primary, IovaMap's exclusive lock held: [va, va+len) (whole memseg
	// pages) now translates to iova / no longer translates.
	void set(uintptr_t va, uint64_t len, uint64_t iova);
	void clear(uintptr_t va, uint64_t len);
	// Primary: translations are valid (init published) / being torn down.
	void set_alive(bool alive) { alive_.store(alive ? 1 : 0, std::memory_order_release); }
	bool alive() const { return alive_.load(std::memory_order_acquire) != 0; }

	// Any process. Cost: a scan of the memseg list slots (a handful) and one
	// load per page; no lock, no syscall.
	bool translate(uintptr_t va, uint64_t *iova) const;
	// The longest IOVA-contiguous run from va, at most max_len bytes.
	bool translate_run(uintptr_t va, size_t max_len, uint64_t *iova, size_t *run_len) const;

	int primary_pid() const { return primary_pid_; }

private:
	struct ListSlot {
		uint64_t base_va;
		uint64_t page_bytes;
		uint64_t n_pages;
		uint64_t first_entry;
	};

	static constexpr uint64_t kMagic = 0x3148535f4d41564full; // "OVAM_SH1"

	const ListSlot *slot_of(uintptr_t va) const;
	std::atomic<uint64_t> *entries()
	{
		return reinterpret_cast<std::atomic<uint64_t> *>(this + 1);
	}
	const std::atomic<uint64_t> *entries() const
	{
		return reinterpret_cast<const std::atomic<uint64_t> *>(this + 1);
	}

	uint64_t magic_;
	std::atomic<uint32_t> alive_;
	int32_t primary_pid_;
	uint32_t n_slots_;
	uint64_t n_entries_;
	ListSlot slots_[RTE_MAX_MEMSEG_LISTS];
	// n_entries_ std::atomic<uint64_t> follow.
};

static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free,
              "page entries are read in place from other processes");

} // namespace iovam::glue
