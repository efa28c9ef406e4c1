/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Timestamps for single calls of 50-200 ns: steady_clock here reads in 10 ns
 * steps (kvm-clock) and costs about 20 ns, so p50s would be quantised. On
 * x86-64 with an invariant TSC (constant_tsc, nonstop_tsc) rdtscp is finer and
 * cheaper; it waits for earlier instructions to retire, so the call being
 * timed is complete when the closing stamp is taken. Ticks are converted
 * with a rate calibrated against steady_clock. Elsewhere: steady_clock.
 */
#ifndef IOVAM_PERF_CYCLE_CLOCK_H
#define IOVAM_PERF_CYCLE_CLOCK_H

#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace iovam::perf
{

class CycleClock
{
public:
	static uint64_t now()
	{
#if defined(__x86_64__)
		unsigned aux;
		return __rdtscp(&aux);
#else
		return static_cast<uint64_t>(
		        std::chrono::steady_clock::now().time_since_epoch().count());
#endif
	}

	/** Measures the tick rate over calibration_ms (once, at start-up). */
	explicit CycleClock(int calibration_ms = 50)
	{
		const auto wall0 = std::chrono::steady_clock::now();
		const uint64_t tick0 = now();
		std::this_thread::sleep_for(std::chrono::milliseconds(calibration_ms));
		const uint64_t tick1 = now();
		const auto wall1 = std::chrono::steady_clock::now();
		const double wall_ns =
		        std::chrono::duration<double, std::nano>(wall1 - wall0).count();
		ns_per_tick_ = wall_ns / static_cast<double>(tick1 - tick0);
	}

	double to_ns(uint64_t ticks) const
	{
		return static_cast<double>(ticks) * ns_per_tick_;
	}
	double ns_per_tick() const
	{
		return ns_per_tick_;
	}

private:
	double ns_per_tick_ = 1.0;
};

} // namespace iovam::perf

#endif
