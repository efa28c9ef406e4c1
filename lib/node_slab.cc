// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "node_slab.h"

#include <sys/mman.h>

#include <cassert>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define IOVAM_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define IOVAM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define IOVAM_POISON(p, n)   ((void)(p), (void)(n))
#define IOVAM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace iovam::detail
{

struct NodeSlab::Chunk {
	uint32_t used;   // nodes handed out and not yet back
	uint32_t bump;   // slots below this have been handed out once
	void *free_head; // nodes that came back, threaded through their first word
	Chunk *prev;     // partial list
	Chunk *next;
};

namespace
{
void *&next_of(void *node)
{
	return *static_cast<void **>(node);
}
} // namespace

NodeSlab::~NodeSlab()
{
	static_assert(sizeof(Chunk) <= kNodeBytes, "the header fits slot 0");
	// Every node is back by now (the pool and the tree release theirs first):
	// what is left mapped is partial or empty chunks.
	while (partial_ != nullptr) {
		Chunk *c = partial_;
		assert(c->used == 0);
		unlink_partial(c);
		unmap_chunk(c);
	}
}

NodeSlab::Chunk *NodeSlab::chunk_of(void *node) noexcept
{
	return reinterpret_cast<Chunk *>(reinterpret_cast<uintptr_t>(node) & ~(kChunkBytes - 1));
}

// 2 MiB aligned: map twice the size and cut off the unaligned ends.
NodeSlab::Chunk *NodeSlab::map_chunk(bool huge) noexcept
{
	void *raw = mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) return nullptr;
	const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
	const uintptr_t aligned = (base + kChunkBytes - 1) & ~(kChunkBytes - 1);
	if (aligned > base) munmap(raw, aligned - base);
	if (aligned + kChunkBytes < base + 2 * kChunkBytes)
		munmap(reinterpret_cast<void *>(aligned + kChunkBytes),
		       base + 2 * kChunkBytes - aligned - kChunkBytes);
	void *mem = reinterpret_cast<void *>(aligned);
	// Advice only: without THP (or with it disabled) the chunk is 4 KiB pages.
	if (huge) (void)madvise(mem, kChunkBytes, MADV_HUGEPAGE);
	auto *c = static_cast<Chunk *>(mem);
	*c = Chunk{0, 1, nullptr, nullptr, nullptr};
	IOVAM_POISON(static_cast<char *>(mem) + kNodeBytes, kChunkBytes - kNodeBytes);
	return c;
}

void NodeSlab::unmap_chunk(Chunk *c) noexcept
{
	IOVAM_UNPOISON(c, kChunkBytes);
	munmap(c, kChunkBytes);
}

void NodeSlab::link_partial(Chunk *c) noexcept
{
	c->prev = nullptr;
	c->next = partial_;
	if (partial_ != nullptr) partial_->prev = c;
	partial_ = c;
}

void NodeSlab::unlink_partial(Chunk *c) noexcept
{
	if (c->prev != nullptr)
		c->prev->next = c->next;
	else
		partial_ = c->next;
	if (c->next != nullptr) c->next->prev = c->prev;
}

void *NodeSlab::alloc() noexcept
{
	for (;;) {
		{
			SpinGuard g(lock_);
			if (Chunk *c = partial_; c != nullptr) {
				void *node;
				if (c->free_head != nullptr) {
					node = c->free_head;
					IOVAM_UNPOISON(node, kNodeBytes);
					c->free_head = next_of(node);
				} else {
					node = reinterpret_cast<char *>(c) +
					       size_t{c->bump++} * kNodeBytes;
					IOVAM_UNPOISON(node, kNodeBytes);
				}
				if (c == empty_) empty_ = nullptr;
				if (++c->used == kNodesPerChunk - 1) unlink_partial(c); // full
				return node;
			}
		}
		// No room: map outside the lock. The first chunk stays in 4 KiB pages
		// (a small domain), later ones ask for a huge page.
		const bool huge = chunks() > 0;
		Chunk *c = map_chunk(huge);
		if (c == nullptr) return nullptr;
		SpinGuard g(lock_);
		++chunks_;
		link_partial(c);
	}
}

void NodeSlab::free(void *node) noexcept
{
	if (node == nullptr) return;
	Chunk *unmap = nullptr;
	{
		SpinGuard g(lock_);
		Chunk *c = chunk_of(node);
		assert(c->used > 0);
		next_of(node) = c->free_head;
		c->free_head = node;
		IOVAM_POISON(node, kNodeBytes);
		if (c->used == kNodesPerChunk - 1) link_partial(c); // was full: off the list
		if (--c->used == 0) {
			if (empty_ == nullptr) {
				empty_ = c; // keep one: hysteresis at a chunk boundary
			} else {
				unlink_partial(c);
				--chunks_;
				unmap = c;
			}
		}
	}
	if (unmap != nullptr) unmap_chunk(unmap);
}

uint32_t NodeSlab::chunks() const noexcept
{
	SpinGuard g(lock_);
	return chunks_;
}

} // namespace iovam::detail
