/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * BM_Machine_RandomRead<machine>/bytes:N: one load whose address the load
 * before it gave, from a random cache line of an N-byte region (a pointer
 * chase). It is no allocator: it is what the machine charges for a random
 * access that misses its caches, measured in the same run as the tree
 * figures, so that a figure at 1M live ranges can be read against it. A
 * random free at 1M needs at least one such access (its leaf is one of about
 * 16 MiB of leaves), whatever the allocator.
 *
 * The region is madvise()d for transparent huge pages like the tree's node
 * chunks (lib/node_slab.cc), so the figure is the memory's latency, not the
 * TLB's.
 */
#include <sys/mman.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_config.h"
#include "check.h"
#include "seeded_random.h"

namespace iovam::perf
{
namespace
{

constexpr size_t kLineBytes = 64;
constexpr size_t kHugeBytes = size_t{2} << 20;

/* A region of bytes whose lines form one random cycle: line i holds the
 * address of the next line to read. */
class Chase
{
public:
	explicit Chase(size_t bytes)
	{
		map_bytes_ = bytes + kHugeBytes;
		void *raw = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		check(raw != MAP_FAILED, "chase: mmap failed");
		raw_ = raw;
		auto at = (reinterpret_cast<uintptr_t>(raw) + kHugeBytes - 1) & ~(kHugeBytes - 1);
		base_ = reinterpret_cast<char *>(at);
		(void)madvise(base_, bytes, MADV_HUGEPAGE);
		const size_t n = bytes / kLineBytes;
		std::vector<uint32_t> order(n);
		for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
		/* Lines in a random order, each pointing at the next: one cycle
		 * through every line, whatever the order. */
		SeededRandom(kPerfSeed ^ 0x6d61u).shuffle(order);
		for (size_t i = 0; i < n; ++i)
			*reinterpret_cast<char **>(base_ + order[i] * kLineBytes) =
			        base_ + order[(i + 1) % n] * kLineBytes;
	}
	~Chase() { munmap(raw_, map_bytes_); }
	Chase(const Chase &) = delete;
	Chase &operator=(const Chase &) = delete;

	char *start() const { return base_; }

private:
	size_t map_bytes_ = 0;
	void *raw_ = nullptr;
	char *base_ = nullptr;
};

void bm_random_read(benchmark::State &state)
{
	static std::map<size_t, std::unique_ptr<Chase>> chases; /* built once per size */
	const auto bytes = static_cast<size_t>(state.range(0));
	auto &chase = chases[bytes];
	if (!chase) chase = std::make_unique<Chase>(bytes);
	char *p = chase->start();
	for (auto _ : state) {
		p = *reinterpret_cast<char **>(p);
		benchmark::DoNotOptimize(p);
	}
	state.counters["region_mib"] = static_cast<double>(bytes >> 20);
}

} // namespace

void register_machine_benchmarks(const BenchConfig &config)
{
	auto *b = benchmark::RegisterBenchmark("BM_Machine_RandomRead<machine>", bm_random_read);
	b->ArgName("bytes");
	for (int64_t mib :
	     config.smoke ? std::vector<int64_t>{1, 4} : std::vector<int64_t>{1, 4, 16, 64})
		b->Arg(mib << 20);
	b->MinTime(config.min_time_s)->Unit(benchmark::kNanosecond);
}

} // namespace iovam::perf
