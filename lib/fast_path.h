// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_FAST_PATH_H
#define IOVAM_FAST_PATH_H

// Internal helpers shared by the fast path's slow halves. The hit path itself
// is inline in iovam.h (iovam_alloc_fast/iovam_free_fast).

#include <cstdint>

#include "iovam.h"

namespace iovam::detail {

// ceil(log2(npages)) for 1 <= npages <= 32.
inline uint32_t size_class(uint64_t npages) noexcept { return iovam_size_class_(npages); }

}  // namespace iovam::detail

#endif  // IOVAM_FAST_PATH_H
