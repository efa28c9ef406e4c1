/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Google Benchmark calls a benchmark function several times while it picks
 * the iteration count. Building a 1M-range layout takes about a second, so
 * the layout is kept between those calls, keyed by benchmark name and
 * arguments. One slot only: two 1M layouts need not be resident at once, and
 * the memory figures of a later layout are not skewed by an earlier one.
 * The pair benchmarks leave the set of ranges as they found it.
 */
#ifndef IOVAM_PERF_FIXTURE_CACHE_H
#define IOVAM_PERF_FIXTURE_CACHE_H

#include <memory>
#include <string>

#include <benchmark/benchmark.h>

namespace iovam::perf
{

class FixtureCache
{
public:
	template <class T, class Make>
	static T &get(const std::string &key, Make &&make)
	{
		if (key != key_ || !fixture_) {
			fixture_.reset(); /* free the old layout before building the new one */
			std::shared_ptr<T> fresh = make();
			fixture_ = fresh;
			key_ = key;
		}
		return *static_cast<T *>(fixture_.get());
	}

	static void drop()
	{
		fixture_.reset();
		key_.clear();
	}

private:
	static inline std::string key_;
	static inline std::shared_ptr<void> fixture_;
};

/** "name/live:N/occ_pct:P" style key for the current arguments. */
inline std::string fixture_key(const std::string &name, const benchmark::State &state, int n_args)
{
	/* append(), not "/" + to_string(): GCC 12 -O3 reports a false -Wrestrict
	 * on operator+ of a literal and a temporary (GCC bug 105651). */
	std::string key = name;
	for (int i = 0; i < n_args; ++i) key.append("/").append(std::to_string(state.range(i)));
	return key;
}

} // namespace iovam::perf

#endif
