/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "dyn_table.h"

#include <bit>
#include <new>

namespace iovam::glue {

bool DynTable::init(uint32_t max_mappings)
{
	// Twice the slots: load <= 1/2 keeps probes short and a run of
	// kMaxProbe occupied slots practically impossible below max_mappings.
	uint64_t n = std::bit_ceil(uint64_t{max_mappings}) * 2;
	slots_ = new (std::nothrow) Slot[n];
	if (slots_ == nullptr)
		return false;
	mask_ = n - 1;
	bits_ = static_cast<unsigned>(std::countr_zero(n));
	return true;
}

void DynTable::fini()
{
	delete[] slots_;
	slots_ = nullptr;
	mask_ = 0;
	bits_ = 0;
}

}  // namespace iovam::glue
