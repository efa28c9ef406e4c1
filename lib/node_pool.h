// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_NODE_POOL_H
#define IOVAM_NODE_POOL_H

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "node_slab.h"

namespace iovam::detail
{

// Tree nodes come from a per-domain pool, never from the general-purpose
// allocator while the domain lock is held (docs/DESIGN.md, section 3: the fast paths run with
// the lock held in datapath loops and must not block). The pool is a LIFO free
// list threaded through the free nodes themselves; it is refilled and trimmed
// outside the lock, by iovam_maintain() or before an operation takes the lock.
//
// A node request under the lock that the pool cannot serve fails, as
// GFP_ATOMIC does in the kernel; a test hook makes requests fail on demand.
class NodePool
{
public:
	// The slab owns the node size; a node is cache-line aligned (slab nodes
	// are aligned to their size).
	static constexpr size_t kNodeBytes = NodeSlab::kNodeBytes;
	static constexpr size_t kNodeAlign = 64;

	// Refill when fewer than kLowWater nodes are free, up to kRefillTo. The worst
	// single operation (a reserve splitting at both ends of a 10-level tree)
	// needs 2 * (10 + 2) nodes, so kLowWater covers it with room to spare.
	static constexpr uint32_t kLowWater = 32;
	static constexpr uint32_t kRefillTo = 64;
	// Trim back to kRefillTo when more than kHighWater are free (after a mass
	// free collapsed the tree), so tree_bytes follows the live set.
	static constexpr uint32_t kHighWater = 256;

	// A chain of free nodes built or released outside the lock.
	struct Chain {
		void *head = nullptr;
		uint32_t count = 0;
	};

	NodePool() = default;
	~NodePool();
	NodePool(const NodePool &) = delete;
	NodePool &operator=(const NodePool &) = delete;

	// --- under the owner's lock -------------------------------------------
	// A node, or nullptr if the pool is empty or a failure is injected.
	// Cost: a few loads and stores; no allocation, no syscall.
	void *take() noexcept;
	void put(void *node) noexcept;
	void splice(Chain chain) noexcept;           // add nodes from alloc_chain()
	Chain detach_excess(uint32_t keep) noexcept; // for release() outside the lock
	void fail_injection(uint32_t one_in, uint64_t seed) noexcept;

	// --- outside any lock ---------------------------------------------------
	// Allocates n nodes from the slab (node_slab.h). Returns fewer on ENOMEM.
	Chain alloc_chain(uint32_t n) noexcept;
	void release(Chain chain) noexcept;

	// --- any context (relaxed reads, for heuristics and statistics) --------
	uint32_t free_nodes() const noexcept { return free_count_.load(std::memory_order_relaxed); }
	uint64_t total_nodes() const noexcept
	{
		return total_nodes_.load(std::memory_order_relaxed);
	}
	uint64_t bytes() const noexcept { return total_nodes() * kNodeBytes; }
	uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
	bool needs_refill() const noexcept { return free_nodes() < kLowWater; }

private:
	bool injected_failure() noexcept;

	NodeSlab slab_; // where nodes come from and go back to, outside the owner's lock

	void *head_ = nullptr;
	std::atomic<uint32_t> free_count_{0};
	std::atomic<uint64_t> total_nodes_{0};
	std::atomic<uint64_t> failures_{0};
	uint32_t fail_one_in_ = 0; // 0 never, 1 always, N one in N
	uint64_t fail_rng_ = 0;
};

} // namespace iovam::detail

#endif // IOVAM_NODE_POOL_H
