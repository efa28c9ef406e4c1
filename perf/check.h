/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
/**
 * @file
 * A benchmark whose setup went wrong measures nothing: stop loudly instead.
 */
#ifndef IOVAM_PERF_CHECK_H
#define IOVAM_PERF_CHECK_H

#include <cstdio>
#include <cstdlib>

namespace iovam::perf
{

inline void check(bool ok, const char *what)
{
	if (ok) return;
	std::fprintf(stderr, "iovam perf: %s\n", what);
	std::abort();
}

} // namespace iovam::perf

#endif
