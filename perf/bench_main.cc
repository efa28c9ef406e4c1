/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * iovam_perf_bench: every Google Benchmark scenario, iovam and the baselines
 * in the same process and run. Extra flag: --smoke (small sizes, short
 * runs); all --benchmark_* flags work as usual.
 */
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_config.h"

int main(int argc, char **argv)
{
	bool smoke = false;
	std::vector<char *> args;
	for (int i = 0; i < argc; ++i) {
		if (std::strcmp(argv[i], "--smoke") == 0)
			smoke = true;
		else
			args.push_back(argv[i]);
	}
	int n_args = static_cast<int>(args.size());
	args.push_back(nullptr);

	const auto config = iovam::perf::make_bench_config(smoke);
	iovam::perf::register_tree_benchmarks(config);
	iovam::perf::register_iovam_benchmarks(config);
	iovam::perf::register_machine_benchmarks(config);

	benchmark::Initialize(&n_args, args.data());
	if (benchmark::ReportUnrecognizedArguments(n_args, args.data())) return 1;
	benchmark::AddCustomContext("iovam_perf_mode", smoke ? "smoke" : "full");
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
