/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "log.h"

#include <rte_common.h>

namespace iovam::glue
{

int g_logtype = RTE_LOGTYPE_EAL;

} // namespace iovam::glue

// rte_log_register_type_and_pick_level() also applies a --log-level pattern
// given before the type existed, which is the plugin's case: EAL parses its
// arguments before it loads -d libraries.
RTE_INIT(iovam_log_init)
{
	int t = rte_log_register_type_and_pick_level("lib.iovam", RTE_LOG_INFO);
	if (t >= 0) iovam::glue::g_logtype = t;
}
