/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * What a run of iovam_perf_bench covers: the smoke run (CI, < 60 s for the
 * whole perf/run on 2 cores) or the full one (about 10 min).
 */
#ifndef IOVAM_PERF_BENCH_CONFIG_H
#define IOVAM_PERF_BENCH_CONFIG_H

#include <cstdint>
#include <vector>

namespace iovam::perf
{

struct BenchConfig {
	bool smoke = false;
	std::vector<int64_t> live_ranges;   /* x axis of the tree plots */
	std::vector<int64_t> occupancy_pct; /* 50: "allocate 2N, free half" */
	std::vector<int64_t> fast_live_ranges;
	double min_time_s = 0.2;
};

inline BenchConfig make_bench_config(bool smoke)
{
	BenchConfig config;
	config.smoke = smoke;
	if (smoke) {
		config.live_ranges = {1 << 10, 1 << 14};
		config.occupancy_pct = {50};
		config.fast_live_ranges = {1 << 10};
		config.min_time_s = 0.01;
	} else {
		config.live_ranges = {1 << 10, 1 << 13, 1 << 16, 1 << 19, 1 << 20};
		config.occupancy_pct = {50, 90};
		config.fast_live_ranges = {1 << 10, 1 << 20};
		config.min_time_s = 0.2;
	}
	return config;
}

void register_tree_benchmarks(const BenchConfig &config);
void register_iovam_benchmarks(const BenchConfig &config);
void register_machine_benchmarks(const BenchConfig &config);

} // namespace iovam::perf

#endif
