// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// unique_ptr owners of the C API's handles, and VERIFY(), for the unit tests
// of the caches and return batches.
#ifndef IOVAM_TESTS_OWNED_HANDLES_H
#define IOVAM_TESTS_OWNED_HANDLES_H

#include <gtest/gtest.h>

#include <memory>

#include "iovam.h"

namespace iovam::test
{

struct DomainDeleter {
	void operator()(iovam_domain *d) const { iovam_domain_destroy(d); }
};
using DomainPtr = std::unique_ptr<iovam_domain, DomainDeleter>;
struct BatchDeleter {
	void operator()(iovam_return_batch *b) const { iovam_return_batch_destroy(b); }
};
using BatchPtr = std::unique_ptr<iovam_return_batch, BatchDeleter>;

} // namespace iovam::test

// Every invariant of d holds; else the one that broke.
#define VERIFY(d) ASSERT_EQ(iovam_verify(d), 0) << iovam_verify_error(d)

#endif // IOVAM_TESTS_OWNED_HANDLES_H
