/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The glue's DPDK log type "lib.iovam" (set its level with EAL's
// --log-level=lib.iovam:debug).
#pragma once

#include <rte_log.h>

namespace iovam::glue
{

// Registered by a constructor (log.cc), so it is valid before rte_eal_init()
// parses --log-level; RTE_LOGTYPE_EAL if registration failed.
extern int g_logtype;

} // namespace iovam::glue

#define IOVAM_LOG(level, fmt, ...)                         \
	rte_log(RTE_LOG_##level, ::iovam::glue::g_logtype, \
	        "IOVAM: " fmt "\n" __VA_OPT__(, ) __VA_ARGS__)
