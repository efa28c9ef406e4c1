/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * A fixed-seed generator with a specified output (xorshift64*, Vigna 2016),
 * so that layouts and request sequences are the same on every standard
 * library: std::shuffle and the std distributions are not.
 */
#ifndef IOVAM_PERF_SEEDED_RANDOM_H
#define IOVAM_PERF_SEEDED_RANDOM_H

#include <cstdint>
#include <utility>
#include <vector>

namespace iovam::perf
{

/** The seed of every layout and sequence in perf/ (any fixed value will do). */
inline constexpr uint64_t kPerfSeed = 0x10a3'5eed'2026'0004;

class SeededRandom
{
public:
	explicit SeededRandom(uint64_t seed) : state_(seed ? seed : 1) {}

	uint64_t next()
	{
		state_ ^= state_ >> 12;
		state_ ^= state_ << 25;
		state_ ^= state_ >> 27;
		return state_ * 0x2545F4914F6CDD1DULL;
	}

	/** Uniform in [0, bound) (the modulo bias is negligible for our bounds). */
	uint64_t below(uint64_t bound) { return next() % bound; }

	/** Fisher-Yates. */
	template <class T>
	void shuffle(std::vector<T> &items)
	{
		for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
	}

private:
	uint64_t state_;
};

/**
 * Request sizes cycled by the pair benchmarks: a power-of-two-long table so
 * the timed loop indexes it with a mask, no division and no generator call.
 */
class SizeSequence
{
public:
	static constexpr size_t kLength = 4096;

	/** Every request of npages pages. */
	static SizeSequence constant(uint64_t npages) { return SizeSequence(npages, npages, 0); }

	/** Uniform in [min_npages, max_npages] times unit_npages, fixed seed. */
	static SizeSequence uniform(uint64_t min_npages, uint64_t max_npages,
	                            uint64_t unit_npages = 1)
	{
		SizeSequence seq(0, 0, 0);
		SeededRandom rng(kPerfSeed ^ 0x5153);
		for (auto &npages : seq.npages_)
			npages =
			        (min_npages + rng.below(max_npages - min_npages + 1)) * unit_npages;
		return seq;
	}

	uint64_t operator[](size_t i) const { return npages_[i & (kLength - 1)]; }
	void set(size_t i, uint64_t npages) { npages_[i & (kLength - 1)] = npages; }

private:
	SizeSequence(uint64_t lo, uint64_t, int) : npages_(kLength, lo) {}
	std::vector<uint64_t> npages_;
};

} // namespace iovam::perf

#endif
