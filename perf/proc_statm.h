/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * Resident bytes of this process, from /proc/self/statm (field 2, in pages).
 */
#ifndef IOVAM_PERF_PROC_STATM_H
#define IOVAM_PERF_PROC_STATM_H

#include <cstdint>
#include <cstdio>

#include <unistd.h>

namespace iovam::perf
{

inline uint64_t resident_bytes()
{
	FILE *f = std::fopen("/proc/self/statm", "r");
	if (!f) return 0;
	unsigned long long size_pages = 0;
	unsigned long long resident_pages = 0;
	const int n = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
	std::fclose(f);
	if (n != 2) return 0;
	return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

} // namespace iovam::perf

#endif
