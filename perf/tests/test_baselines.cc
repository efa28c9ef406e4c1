/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * The baselines are only a fair comparison if they are correct allocators.
 * A model test: random operations on each baseline and on a page-by-page
 * reference, compared after every step (fixed seed, not a benchmark).
 *  - every allocation lies in [start_pfn, limit_pfn], is aligned when asked
 *    and overlaps nothing;
 *  - first fit returns exactly the lowest fitting pfn;
 *  - the classic walk fails only when nothing fits (its two passes and the
 *    32-bit size memo must not lose space);
 *  - free, reserve (merge, refuse over allocated) and find agree.
 */
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <vector>

#include "baselines/cached_walk_allocator.h"
#include "baselines/first_fit_allocator.h"
#include "seeded_random.h"

namespace iovam::perf
{
namespace
{

/* 4 MiB granule: the 32-bit boundary falls at pfn 1024, inside a small domain. */
constexpr DomainShape kShape{uint64_t{1} << 22, 8, 2047, 0};
constexpr uint64_t kLimit32Pfn = 1023;
constexpr int kSteps = 20000;

int g_failures = 0;

void expect(bool ok, const char *what, int step)
{
	if (!ok && g_failures++ < 20) std::fprintf(stderr, "step %d: %s\n", step, what);
}

enum class Page : uint8_t { kFree, kAllocated, kReserved };

struct Reference {
	std::vector<Page> pages = std::vector<Page>(kShape.end_pfn + 1, Page::kFree);
	std::map<uint64_t, PfnRange> ranges; /* by pfn_lo: allocated and reserved */

	bool free_span(uint64_t lo, uint64_t npages) const
	{
		for (uint64_t p = lo; p < lo + npages; ++p)
			if (pages[p] != Page::kFree) return false;
		return true;
	}

	std::optional<uint64_t> lowest_fit(uint64_t npages, uint64_t limit_pfn,
	                                   uint64_t align) const
	{
		for (uint64_t lo = (kShape.start_pfn + align - 1) / align * align;
		     lo + npages - 1 <= limit_pfn; lo += align)
			if (free_span(lo, npages)) return lo;
		return std::nullopt;
	}

	void mark(uint64_t lo, uint64_t hi, Page state)
	{
		for (uint64_t p = lo; p <= hi; ++p) pages[p] = state;
	}

	std::optional<PfnRange> containing(uint64_t pfn) const
	{
		auto it = ranges.upper_bound(pfn);
		if (it == ranges.begin()) return std::nullopt;
		--it;
		if (it->second.pfn_hi < pfn) return std::nullopt;
		return it->second;
	}
};

/* One allocator under test, the reference it is compared with, and what the
 * steps need to remember. */
template <class A>
struct Model {
	A a{kShape};
	Reference ref;
	std::vector<uint64_t> live;
	uint64_t memo32_npages = UINT64_MAX; /* the classic walk's max32_alloc_npages_ */
	SeededRandom rng{kPerfSeed};
	bool exact_lowest; /* first fit: exactly the lowest fit */
	int step = 0;

	/* Returns false when the allocator broke the reference's state. */
	bool alloc()
	{
		const uint64_t npages = 1 + rng.below(rng.below(4) == 0 ? 40 : 6);
		/* Arbitrary limits only above 4 GiB: like the kernel, the
		 * classic walk keeps one failed-size memo for every limit at
		 * or below 4 GiB, so a failure under a low limit also refuses
		 * that size under kLimit32Pfn (faithful, not a test bug). */
		const uint64_t pick = rng.below(3);
		const uint64_t limit_pfn =
		        pick == 0   ? kShape.end_pfn
		        : pick == 1 ? kLimit32Pfn
		                    : kLimit32Pfn + 1 + rng.below(kShape.end_pfn - kLimit32Pfn);
		const bool size_aligned = rng.below(2) == 0;
		const uint64_t align = size_aligned ? align_npages(npages) : 1;
		const auto expected =
		        ref.lowest_fit(npages, std::min(limit_pfn, kShape.end_pfn), align);
		const auto got = a.alloc(npages, limit_pfn, size_aligned);
		/* The kernel's memo does not tell aligned from unaligned
		 * requests: after an aligned size fails below 4 GiB, the same
		 * size unaligned is refused too, until a free below 4 GiB. */
		const bool refused_by_memo =
		        !exact_lowest && limit_pfn == kLimit32Pfn && npages >= memo32_npages;
		expect(got.has_value() == expected.has_value() || (!got && refused_by_memo),
		       "alloc success differs", step);
		if (!got && limit_pfn == kLimit32Pfn)
			memo32_npages = std::min(memo32_npages, npages);
		if (!got) return true;
		const uint64_t lo = *got;
		expect(lo >= kShape.start_pfn && lo + npages - 1 <= limit_pfn, "out of bounds",
		       step);
		expect(lo % align == 0, "misaligned", step);
		expect(ref.free_span(lo, npages), "overlaps", step);
		if (exact_lowest) expect(lo == *expected, "first fit is not the lowest fit", step);
		if (!ref.free_span(lo, npages)) return false;
		ref.mark(lo, lo + npages - 1, Page::kAllocated);
		ref.ranges[lo] = PfnRange{lo, lo + npages - 1};
		live.push_back(lo);
		return true;
	}

	void free()
	{
		const size_t i = rng.below(live.size());
		const uint64_t lo = live[i];
		const uint64_t pfn = lo + rng.below(ref.ranges[lo].pfn_hi - lo + 1);
		expect(a.free(pfn), "free of a live range failed", step);
		if (lo <= kLimit32Pfn) memo32_npages = UINT64_MAX;
		ref.mark(lo, ref.ranges[lo].pfn_hi, Page::kFree);
		ref.ranges.erase(lo);
		live[i] = live.back();
		live.pop_back();
	}

	void reserve()
	{
		const uint64_t lo = kShape.start_pfn + rng.below(kShape.end_pfn - kShape.start_pfn);
		const uint64_t hi = std::min(kShape.end_pfn, lo + rng.below(4));
		bool any_allocated = false;
		for (uint64_t p = lo; p <= hi; ++p)
			any_allocated |= ref.pages[p] == Page::kAllocated;
		const bool ok = a.reserve(lo, hi);
		expect(ok == !any_allocated, "reserve result differs", step);
		if (!ok) return;
		uint64_t merged_lo = lo, merged_hi = hi;
		for (auto it = ref.ranges.begin(); it != ref.ranges.end();) {
			if (it->second.pfn_hi >= lo && it->first <= hi) {
				merged_lo = std::min(merged_lo, it->first);
				merged_hi = std::max(merged_hi, it->second.pfn_hi);
				it = ref.ranges.erase(it);
			} else {
				++it;
			}
		}
		ref.ranges[merged_lo] = PfnRange{merged_lo, merged_hi};
		ref.mark(merged_lo, merged_hi, Page::kReserved);
	}

	void find()
	{
		const uint64_t pfn = rng.below(kShape.end_pfn + 1);
		const auto expected = ref.containing(pfn);
		const auto got = a.find(pfn);
		expect(got.has_value() == expected.has_value(), "find differs", step);
		if (got && expected)
			expect(got->pfn_lo == expected->pfn_lo && got->pfn_hi == expected->pfn_hi,
			       "find bounds differ", step);
	}
};

template <class A>
void model_test(bool exact_lowest)
{
	Model<A> m;
	m.exact_lowest = exact_lowest;
	for (m.step = 0; m.step < kSteps; ++m.step) {
		const uint64_t op = m.rng.below(10);
		if (op < 5) {
			if (!m.alloc()) return;
		} else if (op < 8 && !m.live.empty()) {
			m.free();
		} else if (op == 8) {
			m.reserve();
		} else {
			m.find();
		}
	}
}

} // namespace
} // namespace iovam::perf

int main()
{
	using namespace iovam::perf;
	model_test<FirstFitAllocator>(true);
	const int first_fit_failures = g_failures;
	model_test<CachedWalkAllocator>(false);
	std::printf("first_fit: %d failures, classic_walk: %d failures\n", first_fit_failures,
	            g_failures - first_fit_failures);
	return g_failures == 0 ? 0 : 1;
}
