/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Sequence numbers of the unmap queues (dyn_queue.h).
#include "dyn_queue.h"

#include <cerrno>

namespace iovam::glue {

namespace {

// (queue index + 1) << 48 | position mod 2^48 (0 is never one).
constexpr unsigned kSeqShift = 48;
constexpr uint64_t kSeqPosMask = (1ULL << kSeqShift) - 1;

}  // namespace

uint64_t seq_of(unsigned qi, uint64_t pos)
{
	return (static_cast<uint64_t>(qi) + 1) << kSeqShift | (pos & kSeqPosMask);
}

int seq_done(const Queue *queues, uint64_t seq)
{
	uint64_t qi = seq >> kSeqShift;
	if (qi == 0 || qi > kQueues)
		return -EINVAL;
	const Queue &q = queues[qi - 1];
	uint64_t done = q.done.load(std::memory_order_acquire);
	uint64_t floor = q.failed_floor.load(std::memory_order_acquire);
	// Positions are compared modulo 2^48: done - pos in (0, 2^47] means
	// the entry lies below done (2^47 unmaps per lcore in flight at most).
	uint64_t behind = (done - (seq & kSeqPosMask)) & kSeqPosMask;
	if (behind == 0 || behind > (1ULL << (kSeqShift - 1)))
		return 0;
	if (floor != UINT64_MAX && ((seq & kSeqPosMask) - floor) % (1ULL << kSeqShift) <
					   (1ULL << (kSeqShift - 1)))
		return 0; // at or after a failed unmap of this queue: retrying
	return 1;
}

}  // namespace iovam::glue
