/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * A single-producer single-consumer ring of pfns, to hand ranges from the
 * thread that allocated them to the one that frees them (the DPDK pattern of
 * mbufs received on one lcore and freed after transmit on another), so that
 * magazines travel between caches through the depot.
 */
#ifndef IOVAM_PERF_SPSC_RING_H
#define IOVAM_PERF_SPSC_RING_H

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace iovam::perf
{

class SpscRing
{
public:
	/* A power of two; 4096 in-flight ranges cover many bursts of 32. */
	static constexpr size_t kCapacity = 4096;

	/** All n or nothing. @return false if the ring lacks room. */
	bool push(const uint64_t *pfns, size_t n)
	{
		const size_t tail = tail_.load(std::memory_order_relaxed);
		const size_t head = head_.load(std::memory_order_acquire);
		if (kCapacity - (tail - head) < n) return false;
		for (size_t i = 0; i < n; ++i) slots_[(tail + i) & (kCapacity - 1)] = pfns[i];
		tail_.store(tail + n, std::memory_order_release);
		return true;
	}

	/** @return how many pfns were taken (at most max). */
	size_t pop(uint64_t *pfns, size_t max)
	{
		const size_t head = head_.load(std::memory_order_relaxed);
		const size_t tail = tail_.load(std::memory_order_acquire);
		const size_t n = std::min(max, tail - head);
		for (size_t i = 0; i < n; ++i) pfns[i] = slots_[(head + i) & (kCapacity - 1)];
		head_.store(head + n, std::memory_order_release);
		return n;
	}

private:
	/* Producer and consumer positions on their own cache lines. */
	alignas(64) std::atomic<size_t> head_{0};
	alignas(64) std::atomic<size_t> tail_{0};
	alignas(64) uint64_t slots_[kCapacity] = {};
};

} // namespace iovam::perf

#endif
