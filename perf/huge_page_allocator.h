/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * A std::allocator for the harness's own big arrays (a layout's live and
 * freed pfns): 2 MiB-aligned anonymous memory, madvise()d for transparent
 * huge pages, as the tree's node slabs and the machine scenario's region are.
 *
 * Why: at 1M live ranges live_pfns is 8 MiB. On 4 KiB pages a random slot
 * misses the TLB, and the churn's prefetch of the next victim's slot
 * (churn.h) then waits for the page walk before it retires: the perf
 * machine's cpu-clock profile of the 1M churn put 9 % of the pair's time in
 * the harness, 86 % of that on that prefetch. That is the harness's cost, not
 * the allocator's (a user frees an IOVA it already holds), and it was paid by
 * every allocator alike. On huge pages the array is four TLB entries.
 *
 * Only for arrays the benchmarks index at random; each allocation takes at
 * least 2 MiB of address space (touched only where written).
 */
#ifndef IOVAM_PERF_HUGE_PAGE_ALLOCATOR_H
#define IOVAM_PERF_HUGE_PAGE_ALLOCATOR_H

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace iovam::perf
{

template <class T>
struct HugePageAllocator {
	using value_type = T;
	static constexpr size_t kHugeBytes = size_t{2} << 20;

	HugePageAllocator() noexcept = default;
	template <class U>
	HugePageAllocator(const HugePageAllocator<U> &) noexcept
	{
	}

	static size_t map_bytes(size_t n) noexcept
	{
		return (n * sizeof(T) + kHugeBytes - 1) / kHugeBytes * kHugeBytes;
	}

	T *allocate(size_t n)
	{
		if (n > SIZE_MAX / sizeof(T) - kHugeBytes) throw std::bad_alloc();
		/* One extra huge page of address space, to align the start. */
		const size_t bytes = map_bytes(n) + kHugeBytes;
		void *raw = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (raw == MAP_FAILED) throw std::bad_alloc();
		const auto start = reinterpret_cast<uintptr_t>(raw);
		const uintptr_t aligned = (start + kHugeBytes - 1) & ~(uintptr_t{kHugeBytes} - 1);
		/* Give back the unaligned head and the tail past the array. */
		if (aligned > start) munmap(raw, aligned - start);
		const uintptr_t end = start + bytes, used_end = aligned + map_bytes(n);
		if (end > used_end) munmap(reinterpret_cast<void *>(used_end), end - used_end);
		(void)madvise(reinterpret_cast<void *>(aligned), map_bytes(n), MADV_HUGEPAGE);
		return reinterpret_cast<T *>(aligned);
	}

	void deallocate(T *p, size_t n) noexcept { munmap(p, map_bytes(n)); }

	template <class U>
	bool operator==(const HugePageAllocator<U> &) const noexcept
	{
		return true;
	}
};

/** pfn arrays the benchmarks index at random. */
using PfnVector = std::vector<uint64_t, HugePageAllocator<uint64_t>>;

} // namespace iovam::perf

#endif // IOVAM_PERF_HUGE_PAGE_ALLOCATOR_H
