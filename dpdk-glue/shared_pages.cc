/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "shared_pages.h"

#include <unistd.h>

#include <cerrno>
#include <new>

#include <rte_errno.h>
#include <rte_memory.h>
#include <rte_memzone.h>

#include "log.h"

namespace iovam::glue
{

namespace
{

struct ListsCtx {
	const rte_memseg_list *lists[RTE_MAX_MEMSEG_LISTS];
	unsigned n;
	uint64_t pages;
};

int collect_list_cb(const rte_memseg_list *msl, void *arg)
{
	auto &ctx = *static_cast<ListsCtx *>(arg);
	if (msl->base_va == nullptr || msl->page_sz == 0 || ctx.n == RTE_MAX_MEMSEG_LISTS) return 0;
	ctx.lists[ctx.n++] = msl;
	ctx.pages += msl->memseg_arr.len;
	return 0;
}

} // namespace

SharedPages *SharedPages::create_primary()
{
	const rte_memzone *mz = rte_memzone_lookup(kMemzoneName);
	if (mz != nullptr) {
		// An earlier init of this process: same lists, cleared entries
		// (fini left them cleared; clear again for a failed init).
		auto *sp = static_cast<SharedPages *>(mz->addr);
		for (uint64_t i = 0; i < sp->n_entries_; i++)
			sp->entries()[i].store(0, std::memory_order_relaxed);
		return sp;
	}
	ListsCtx ctx{};
	if (rte_memseg_list_walk(collect_list_cb, &ctx) < 0) {
		rte_errno = EINVAL;
		return nullptr;
	}
	size_t bytes = sizeof(SharedPages) + ctx.pages * sizeof(std::atomic<uint64_t>);
	mz = rte_memzone_reserve(kMemzoneName, bytes, SOCKET_ID_ANY, 0);
	if (mz == nullptr) {
		IOVAM_LOG(ERR, "memzone %s (%zu bytes): %s", kMemzoneName, bytes,
		          rte_strerror(rte_errno));
		return nullptr;
	}
	// Memzone memory is zeroed by DPDK: every entry starts as "none".
	auto *sp = new (mz->addr) SharedPages;
	sp->magic_ = kMagic;
	sp->alive_.store(0, std::memory_order_relaxed);
	sp->primary_pid_ = getpid();
	sp->n_slots_ = ctx.n;
	uint64_t first = 0;
	for (unsigned i = 0; i < ctx.n; i++) {
		const rte_memseg_list *msl = ctx.lists[i];
		sp->slots_[i] = {reinterpret_cast<uint64_t>(msl->base_va), msl->page_sz,
		                 msl->memseg_arr.len, first};
		first += msl->memseg_arr.len;
	}
	sp->n_entries_ = first;
	for (uint64_t i = 0; i < first; i++) new (&sp->entries()[i]) std::atomic<uint64_t>(0);
	return sp;
}

SharedPages *SharedPages::attach_secondary()
{
	const rte_memzone *mz = rte_memzone_lookup(kMemzoneName);
	if (mz == nullptr || static_cast<SharedPages *>(mz->addr)->magic_ != kMagic) {
		rte_errno = ENOENT;
		return nullptr;
	}
	return static_cast<SharedPages *>(mz->addr);
}

const SharedPages::ListSlot *SharedPages::slot_of(uintptr_t va) const
{
	for (uint32_t i = 0; i < n_slots_; i++) {
		const ListSlot &s = slots_[i];
		if (va >= s.base_va && (va - s.base_va) / s.page_bytes < s.n_pages) return &s;
	}
	return nullptr;
}

void SharedPages::set(uintptr_t va, uint64_t len, uint64_t iova)
{
	// A chunk may span lists only with static memory (one VA-contiguous
	// run); walk page by page and find each page's list when it changes.
	for (uint64_t off = 0; off < len;) {
		const ListSlot *s = slot_of(va + off);
		if (s == nullptr) return; // a list created after the table: primary-only
		uint64_t page = (va + off - s->base_va) / s->page_bytes;
		for (; page < s->n_pages && off < len; page++, off += s->page_bytes)
			entries()[s->first_entry + page].store(iova + off,
			                                       std::memory_order_relaxed);
	}
}

void SharedPages::clear(uintptr_t va, uint64_t len)
{
	for (uint64_t off = 0; off < len;) {
		const ListSlot *s = slot_of(va + off);
		if (s == nullptr) return;
		uint64_t page = (va + off - s->base_va) / s->page_bytes;
		for (; page < s->n_pages && off < len; page++, off += s->page_bytes)
			entries()[s->first_entry + page].store(0, std::memory_order_relaxed);
	}
}

bool SharedPages::translate(uintptr_t va, uint64_t *iova) const
{
	const ListSlot *s = slot_of(va);
	if (s == nullptr) return false;
	uint64_t off = (va - s->base_va) % s->page_bytes;
	uint64_t e = entries()[s->first_entry + (va - s->base_va) / s->page_bytes].load(
	        std::memory_order_relaxed);
	if (e == 0) return false;
	*iova = e + off;
	return true;
}

bool SharedPages::translate_run(uintptr_t va, size_t max_len, uint64_t *iova, size_t *run_len) const
{
	if (!translate(va, iova)) return false;
	const ListSlot *s = slot_of(va);
	uint64_t len = s->page_bytes - (va - s->base_va) % s->page_bytes;
	// Extend page by page while the next page continues the IOVA.
	uint64_t next_iova;
	while (len < max_len && translate(va + len, &next_iova) && next_iova == *iova + len) {
		const ListSlot *n = slot_of(va + len);
		len += n->page_bytes;
	}
	*run_len = len < max_len ? len : max_len;
	return true;
}

} // namespace iovam::glue
