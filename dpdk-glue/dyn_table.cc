/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "dyn_table.h"

#include <algorithm>
#include <bit>
#include <new>

namespace iovam::glue
{

bool DynTable::init(uint32_t max_mappings)
{
	// Near part: N >= max_mappings slots; far part: 2N, so that it alone
	// holds every mapping at load <= 1/2, which keeps its probes short and
	// a run of kMaxProbe occupied slots practically impossible.
	uint64_t n = std::bit_ceil(uint64_t{max_mappings});
	slots_ = new (std::nothrow) Slot[3 * n];
	if (slots_ == nullptr) return false;
	near_mask_ = n - 1;
	far_mask_ = 2 * n - 1;
	far_bits_ = static_cast<unsigned>(std::countr_zero(2 * n));
	// A window never wraps onto itself.
	near_probe_ = static_cast<uint32_t>(std::min<uint64_t>(kNearProbe, n));
	far_probe_ = static_cast<uint32_t>(std::min<uint64_t>(kMaxProbe, 2 * n));
	return true;
}

void DynTable::fini()
{
	delete[] slots_;
	slots_ = nullptr;
	near_mask_ = 0;
	far_mask_ = 0;
	far_bits_ = 0;
	near_probe_ = 0;
	far_probe_ = 0;
}

} // namespace iovam::glue
