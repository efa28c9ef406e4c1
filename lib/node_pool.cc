// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "node_pool.h"

namespace iovam::detail
{

namespace
{

void *&next_of(void *node)
{
	return *static_cast<void **>(node);
}

// splitmix64: a tiny, well-mixed, reproducible generator for fault injection.
uint64_t splitmix64(uint64_t &state)
{
	uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

} // namespace

NodePool::~NodePool()
{
	release(detach_excess(0));
}

bool NodePool::injected_failure() noexcept
{
	if (fail_one_in_ == 0) return false;
	if (fail_one_in_ == 1) return true;
	return splitmix64(fail_rng_) % fail_one_in_ == 0;
}

void *NodePool::take() noexcept
{
	if (injected_failure() || head_ == nullptr) {
		failures_.fetch_add(1, std::memory_order_relaxed);
		return nullptr;
	}
	void *node = head_;
	head_ = next_of(node);
	free_count_.store(free_count_.load(std::memory_order_relaxed) - 1,
	                  std::memory_order_relaxed);
	return node;
}

void NodePool::put(void *node) noexcept
{
	next_of(node) = head_;
	head_ = node;
	free_count_.store(free_count_.load(std::memory_order_relaxed) + 1,
	                  std::memory_order_relaxed);
}

// Nodes count as the domain's (total_nodes_) from the moment they enter the
// pool under the lock to the moment they leave it: verify() compares the
// total with the nodes in the tree and the pool under that same lock, so a
// chain being built or freed outside the lock must not be counted.
void NodePool::splice(Chain chain) noexcept
{
	total_nodes_.fetch_add(chain.count, std::memory_order_relaxed);
	while (chain.head != nullptr) {
		void *node = chain.head;
		chain.head = next_of(node);
		put(node);
	}
}

NodePool::Chain NodePool::detach_excess(uint32_t keep) noexcept
{
	Chain out;
	while (free_count_.load(std::memory_order_relaxed) > keep) {
		void *node = head_;
		head_ = next_of(node);
		free_count_.store(free_count_.load(std::memory_order_relaxed) - 1,
		                  std::memory_order_relaxed);
		next_of(node) = out.head;
		out.head = node;
		++out.count;
	}
	total_nodes_.fetch_sub(out.count, std::memory_order_relaxed);
	return out;
}

void NodePool::fail_injection(uint32_t one_in, uint64_t seed) noexcept
{
	fail_one_in_ = one_in;
	fail_rng_ = seed;
}

NodePool::Chain NodePool::alloc_chain(uint32_t n) noexcept
{
	Chain out;
	for (uint32_t i = 0; i < n; ++i) {
		void *node = slab_.alloc();
		if (node == nullptr) break;
		next_of(node) = out.head;
		out.head = node;
		++out.count;
	}
	return out;
}

void NodePool::release(Chain chain) noexcept
{
	while (chain.head != nullptr) {
		void *node = chain.head;
		chain.head = next_of(node);
		slab_.free(node);
	}
}

} // namespace iovam::detail
