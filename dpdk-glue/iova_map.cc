/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "iova_map.h"

#include <cinttypes>
#include <cstdint>

#include "log.h"

namespace iovam::glue
{

const Chunk *IovaMap::find(uintptr_t va, uintptr_t *chunk_va) const
{
	auto it = chunks_.upper_bound(va);
	if (it == chunks_.begin()) return nullptr;
	--it;
	if (va - it->first >= it->second.len) return nullptr;
	*chunk_va = it->first;
	return &it->second;
}

bool IovaMap::translate_run(uintptr_t va, size_t max_len, uint64_t *iova, size_t *run_len) const
{
	auto it = chunks_.upper_bound(va);
	if (it == chunks_.begin()) return false;
	--it;
	uint64_t off = va - it->first;
	if (off >= it->second.len) return false;
	*iova = it->second.iova + off;
	uint64_t len = it->second.len - off;
	// Extend while the next chunk continues both the VA and the IOVA.
	for (auto next = std::next(it); len < max_len && next != chunks_.end(); it = next++) {
		if (next->first != it->first + it->second.len ||
		    next->second.iova != it->second.iova + it->second.len)
			break;
		len += next->second.len;
	}
	*run_len = len < max_len ? len : max_len;
	return true;
}

int IovaMap::add_range(uint64_t npages, uint64_t *pfn)
{
	int rc = window_.alloc(npages, pfn);
	if (rc == 0) ranges_[*pfn] = {npages, 0};
	return rc;
}

void IovaMap::add_chunk(uintptr_t va, const Chunk &c)
{
	chunks_[va] = c;
	ranges_[c.range_pfn].live_chunks++;
	if (shared_ != nullptr) shared_->set(va, c.len, c.iova);
}

void IovaMap::release_range(std::map<uint64_t, RangeUse>::iterator r)
{
	uint64_t pfn = r->first;
	ranges_.erase(r);
	int rc = window_.free(pfn);
	if (rc != 0) IOVAM_LOG(ERR, "IOVA range at pfn 0x%" PRIx64 " not given back: %d", pfn, rc);
}

void IovaMap::drop_from_range(uint64_t pfn)
{
	auto r = ranges_.find(pfn);
	if (--r->second.live_chunks == 0) release_range(r);
}

void IovaMap::remove_chunk(uintptr_t va)
{
	auto it = chunks_.find(va);
	uint64_t pfn = it->second.range_pfn;
	if (shared_ != nullptr) shared_->clear(va, it->second.len);
	chunks_.erase(it);
	drop_from_range(pfn);
}

void IovaMap::make_stale(uintptr_t va)
{
	auto it = chunks_.find(va);
	if (shared_ != nullptr) shared_->clear(va, it->second.len);
	stale_.emplace_back(va, it->second);
	chunks_.erase(it);
}

void IovaMap::remove_stale(size_t i)
{
	uint64_t pfn = stale_[i].second.range_pfn;
	stale_[i] = stale_.back();
	stale_.pop_back();
	drop_from_range(pfn);
}

} // namespace iovam::glue
