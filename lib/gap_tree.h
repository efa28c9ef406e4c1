// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_GAP_TREE_H
#define IOVAM_GAP_TREE_H

#include <cstdint>
#include <optional>

#include "path_hints.h"
#include "node_pool.h"

namespace iovam::detail
{

// What a range of pfns is. FREE is the only kind the allocator may hand out;
// DEFERRED is a freed range whose erase has not been done yet (docs/DESIGN.md, L1): it is
// occupied for the allocator and absent for find().
enum class Tag : uint8_t { kFree = 0, kAllocated = 1, kReserved = 2, kDeferred = 3 };

struct Segment {
	uint64_t pfn_lo;
	uint64_t pfn_hi; // inclusive
	Tag tag;
};

// GapTree: an augmented B+tree that partitions the pfn space [0, max_pfn] into
// segments, each FREE or occupied. Like the maple tree it stores ranges by
// their upper bounds ("pivots") and keeps free space as explicit segments, so
// a range costs one 8-byte pivot plus 2 bits of tag, and a hole between two
// ranges one more. Every internal node keeps, per child, the largest FREE
// segment in that child's subtree, so the highest hole of a given size below a
// limit is found top-down in O(log n), at any fragmentation.
//
// Invariants (checked by verify()):
//  - all leaves at one depth; a node's range is implied by its parent's pivots
//    (child i covers [pivot[i-1] + 1, pivot[i]], the last child up to the
//    parent's max), so every boundary is stored exactly once;
//  - pivots strictly increase; every non-root node has at least one entry;
//    an inner node's unused pivots (from count - 1 on) are UINT64_MAX, so
//    the child holding a pfn is the count of pivots below it;
//  - no two FREE segments are adjacent, in a leaf or across leaves: free space
//    is maximal, so max_gap is exact (docs/DESIGN.md, L4: a gap split over two nodes is
//    what makes a marker-in-the-gap scheme hard; we never split one);
//  - max_gap[i] == the largest FREE segment under child i, and order1[i] ==
//    1 + the order of the largest naturally aligned power-of-two block that
//    lies inside one FREE segment under child i (0: nothing FREE there);
//    on the path to the one leaf whose shrink is pending (settle() in
//    gap_tree.cc) both are upper bounds instead.
//
// Why order1: a size-aligned request of 2^k pages fits a subtree if and only
// if order1 > k, so the search never enters a subtree whose holes are long
// enough but misaligned (2-page holes at odd pfns defeat max_gap alone: the
// search entered every one of them, O(n) per call). A block of order k inside
// [lo, hi] is found in O(1) (block_order1() in gap_tree.cc), so keeping the
// byte costs no more than keeping max_gap.
//
// Node layout (both kinds are 256 bytes: four cache lines, one pool):
//
//   Leaf                                   Inner
//   +0   u8 count   segments, 1..31        +0   u8 count (children, 1..10)
//   +8   u64 tags   2 bits x 31 segments   +1   u8 order1[10]  aligned block
//   +16  u64 pivot[30]                     +11  (13 bytes spare)
//        pivot[i] = pfn_hi of segment i;   +24  u64 pivot[9]   child upper bounds,
//        the last one ends at the leaf's        UINT64_MAX where unused
//        max, given by the parent          +96  u64 max_gap[10] largest FREE
//                                          +176 void* child[10]
//
// A descent prefetches all four lines of the next node at once, so a random
// descent at 1M ranges waits for about one memory latency per level instead
// of one per line its binary search touches. From kHintMinHeight levels on it
// first prefetches the leaf, parent and grandparent the last descent into the
// same buckets of pfns went through (path_hints.h), so that those three
// arrive together while the upper levels are read.
//
// A leaf holds 31 segments in 256 bytes: 8.3 bytes each when full. With leaves
// about 3/4 full, a live range (one segment, half a hole on average in a
// fragmented space) costs about 16-19 bytes including inner nodes; the
// kernel's rbtree costs about 64 and its maple conversion measured 44-57.
//
// The tree is not thread-safe: the domain lock protects it. Nodes come from
// the NodePool; operations that may split nodes first reserve what they need
// and fail with -EAGAIN (changing nothing) when the pool cannot supply it.
// Erasing never needs a node: it only merges segments and frees nodes.
class GapTree
{
public:
	static constexpr uint32_t kLeafSlots = 31;
	static constexpr uint32_t kInnerSlots = 10;
	// Rebalance a node that falls below half full after an erase.
	static constexpr uint32_t kLeafMin = kLeafSlots / 2;
	static constexpr uint32_t kInnerMin = kInnerSlots / 2;
	// Height bound: even with every inner node at 2 children after edge splits,
	// 40 levels cover 2^40 leaves; the pfn space has at most 2^63 segments but
	// memory bounds the tree long before that.
	static constexpr uint32_t kMaxHeight = 40;
	// Descents read and write the path hints (path_hints.h) from this height
	// on: 4 levels hold up to 1000 leaves (256 KiB), which stay in L2; below
	// that the hints would only add instructions. From 4 levels on the
	// grandparent of a leaf is never the root.
	static constexpr uint32_t kHintMinHeight = 4;

	// Node layouts and scratch types, defined in gap_tree.cc.
	struct Leaf;
	struct Inner;
	struct Run;
	struct Stash;

	explicit GapTree(NodePool &pool) noexcept : pool_(pool) {}
	~GapTree();
	GapTree(const GapTree &) = delete;
	GapTree &operator=(const GapTree &) = delete;

	// One FREE segment [0, max_pfn]. -ENOMEM if the pool has no node.
	int init(uint64_t max_pfn) noexcept;

	uint64_t max_pfn() const noexcept { return max_pfn_; }
	uint32_t height() const noexcept { return height_; }
	uint64_t nodes() const noexcept { return nodes_; }
	// Nodes the last find_gap() or allocate() entered, root and leaf included:
	// what the white-box tests hold to O(height x fanout). 1 when allocate()
	// found its answer in its size class's finger leaf without a descent.
	uint64_t last_search_nodes() const noexcept { return last_search_nodes_; }
	// For tests of the path hints: the node `up` levels above the leaf (0:
	// the leaf) that a descent to pfn would prefetch first (nullptr: none
	// yet; any node: a stale hint), and the one on the path to pfn now (found
	// by a descent, which records the hints).
	const void *path_hint(uint32_t up, uint64_t pfn) const noexcept
	{
		return hints_.get(up, pfn);
	}
	const void *path_node(uint32_t up, uint64_t pfn) const noexcept;
	// Under the domain lock: true once per shrink below kHintMinHeight after
	// the tree had grown to it, when the hints have pages to give back and
	// no descent reads them; the caller then calls drop_hints().
	bool claim_idle_hints() noexcept
	{
		if (!hints_in_use_ || height_ >= kHintMinHeight) return false;
		hints_in_use_ = false;
		return true;
	}
	// Maintenance, outside the domain lock (see PathHints::drop()).
	uint64_t hint_bytes() const noexcept { return hints_.resident_bytes(); }
	void drop_hints() noexcept { hints_.drop(); }

	// What an inner node keeps per child about the FREE segments below it: the
	// longest (len, in pages) and 1 + the order of the largest naturally
	// aligned power-of-two block inside one (order1; 0 when none is FREE).
	struct Gap {
		uint64_t len = 0;
		uint8_t order1 = 0;
		Gap join(Gap o) const noexcept
		{
			return Gap{len > o.len ? len : o.len,
			           order1 > o.order1 ? order1 : o.order1};
		}
		bool operator==(const Gap &) const noexcept = default;
	};

	// The segment containing pfn (pfn <= max_pfn). O(log n).
	Segment lookup(uint64_t pfn) const noexcept;
	// lookup() through the fingers: no descent when pfn is in the leaf of the
	// last operation (or the one before), and the path stays as the active
	// finger, so an erase_if() of the
	// same pfn that follows (a checked free: look, check, erase) needs no
	// second descent.
	Segment lookup_near(uint64_t pfn) noexcept;

	// The highest p with lo_pfn <= p, p + npages - 1 <= hi_pfn, p % align == 0
	// (align a power of two) and [p, p + npages - 1] inside one FREE segment.
	// Bounded, at any fragmentation, by O(height x fanout) nodes for unaligned
	// requests and for npages == align (every size-aligned power of two: the
	// domain's and the caches' requests): a subtree is entered only if it holds
	// a fit, except the ones cut by lo_pfn or hi_pfn, one per level each, and
	// the path to a leaf whose shrink is pending (its annotations may
	// over-estimate until the next mutation settles it).
	// Other shapes (npages not a power of two, aligned to bit_ceil(npages)) are
	// exact but not bounded that way: a subtree whose best aligned block is of
	// order floor(log2 npages) may hold no fit and is entered and left, so the
	// worst case adds the number of such holes above the answer (holes of
	// npages pages that start one page past an aligned block); tested in
	// tests/unit/gap_tree_test.cc.
	std::optional<uint64_t> find_gap(uint64_t npages, uint64_t align, uint64_t lo_pfn,
	                                 uint64_t hi_pfn) const noexcept;

	// A descent's record: where a pfn lives, root to leaf. find_gap() can hand
	// its path to carve(), saving a second descent on the allocation path.
	struct Step {
		void *node;
		uint32_t idx; // child (inner) or segment (leaf) index on the way to pfn
		uint64_t min, max;
	};
	struct Path {
		Step s[kMaxHeight];
		uint32_t n; // == height; s[0] is the root, s[n - 1] the leaf
		Step &leaf() { return s[n - 1]; }
	};
	std::optional<uint64_t> find_gap(uint64_t npages, uint64_t align, uint64_t lo_pfn,
	                                 uint64_t hi_pfn, Path *path) const noexcept;
	// carve() on the path find_gap() returned for pfn_lo (nothing changed since).
	int carve(Path &path, uint64_t pfn_lo, uint64_t pfn_hi, Tag tag) noexcept;

	// find_gap() and carve() in one: the domain's allocation. 0 and *pfn_lo,
	// -ENOMEM (no fit) or -EAGAIN (no node for a split); nothing changed on
	// error. Leaves the path as the finger of npages' size class, for a free
	// that follows nearby, and serves the next allocation of that class from
	// the finger's leaf without a descent when the answer is known to lie there
	// (alloc_near() in gap_tree.cc), or from the FREE segment the last free
	// made, through that free's path, when it is known to be the highest fit
	// (alloc_fresh()).
	int allocate(uint64_t npages, uint64_t align, uint64_t lo_pfn, uint64_t hi_pfn, Tag tag,
	             uint64_t *pfn_lo) noexcept;

	// If the segment containing pfn is tagged `expect`, erase it (as erase());
	// either way return the segment as it was. One descent in the common case.
	Segment erase_if(uint64_t pfn, Tag expect) noexcept;
	// erase_if() of the segment the last lookup_near() returned, when nothing
	// has changed the tree since (a checked free: look, check, erase): the
	// finger is already on it, so no second finger check.
	Segment erase_looked_up(Tag expect) noexcept;

	// Turn [pfn_lo, pfn_hi], which lies inside one FREE segment, into one
	// segment tagged `tag` (not kFree). 0, or -EAGAIN with nothing changed when
	// the pool cannot supply the nodes a split needs.
	int carve(uint64_t pfn_lo, uint64_t pfn_hi, Tag tag) noexcept;

	// Re-tag, in place, the occupied segment containing pfn as another occupied
	// kind (ALLOCATED -> DEFERRED). No structural change: needs no node, cannot
	// fail, and leaves every gap annotation as it was.
	void retag_occupied(uint64_t pfn, Tag tag) noexcept;

	// Make the segment containing pfn FREE and merge it with FREE neighbours.
	// Needs no node. Returns the segment as it was.
	Segment erase(uint64_t pfn) noexcept;

	// Store one RESERVED segment over [pfn_lo, pfn_hi] extended to cover the
	// RESERVED segments it overlaps. Precondition: nothing in [pfn_lo, pfn_hi]
	// is ALLOCATED or DEFERRED. 0 and *merged, or -EAGAIN with nothing changed.
	int reserve(uint64_t pfn_lo, uint64_t pfn_hi, Segment *merged) noexcept;
	// reserve() when the last lookup_near(pfn_lo), with nothing changed since,
	// returned one FREE or RESERVED segment that holds all of [pfn_lo,
	// pfn_hi] (iovam_reserve's common case: look, check, reserve): the carve
	// starts from the finger, as an allocation's does, without a descent.
	int reserve_looked_up(uint64_t pfn_lo, uint64_t pfn_hi, Segment *merged) noexcept;

	// Whether it is known that no FREE segment holds a fit for the request
	// (as allocate() takes it) starting above pfn: the finger allocate() would
	// use knows there is none above its leaf (by what its search passed over,
	// or by its proof for this very request: see Finger and alloc_near()),
	// and pfn lies above that leaf, or in it above every fit its segments
	// hold. false: not known. Reads no node but that leaf, and writes none
	// (it only renews the proof's date). The domain's test of a range freed
	// and not yet erased (domain.h, the pending free) that the request would
	// take back.
	bool proven_no_fit_above(uint64_t npages, uint64_t align, uint64_t lo_pfn, uint64_t hi_pfn,
	                         uint64_t pfn) noexcept;

	// A descent to pfn that comes later, in two steps ahead of it, so that a
	// run of erases at random pfns overlaps their cache misses (a bulk free):
	// prefetch_hints() asks for the path hints' slots of pfn (it reads
	// nothing), prefetch_path() reads them and asks for the leaf, parent and
	// grandparent they name. Nothing below kHintMinHeight, where the tree
	// stays in cache. Hints only: they write nothing and decide nothing.
	// (prefetch_hints() is always inlined: see PathHints::prefetch_slots().)
	[[gnu::always_inline]] void prefetch_hints(uint64_t pfn) const noexcept
	{
		if (height_ >= kHintMinHeight) hints_.prefetch_slots(pfn);
	}
	void prefetch_path(uint64_t pfn) const noexcept;
	// The first segment tagged `tag` that ends at or after pfn, if any.
	std::optional<Segment> next_tagged(uint64_t pfn, Tag tag) const noexcept;

	// Calls fn(const Segment&) for every segment, in order. O(n).
	template <class Fn>
	void for_each(Fn &&fn) const
	{
		walk(root_, 0, 0, max_pfn_, fn);
	}

	// Counts of what verify() saw, for the domain's own cross-checks.
	struct Census {
		uint64_t segments[4] = {0, 0, 0, 0}; // by Tag
		uint64_t pages[4] = {0, 0, 0, 0};
		uint64_t nodes = 0;
	};
	// Every invariant above; false (and *why set) on the first broken one.
	bool verify(Census *census, const char **why) const noexcept;

private:
	void descend(uint64_t pfn, Path &p) const noexcept;
	void prefetch_hinted(uint64_t pfn) const noexcept;
	Path &finger_at(uint64_t pfn) noexcept;
	Path &finger_at_slow(uint64_t pfn) noexcept;
	// npages 1, 2, 3, 4, 5-8, 9 and more: the finger an allocation uses.
	static uint32_t size_class(uint64_t npages) noexcept
	{
		return npages <= 4 ? static_cast<uint32_t>(npages) - 1 : npages <= 8 ? 4 : 5;
	}
	// An annotation on the path p may have grown: what the fingers' searches
	// passed over may now hold a fit, except the active finger's when p is its
	// path (its search passed over what lies beside the path, not the path).
	// O(1): the fingers compare their beside_epoch with grown_.
	void note_growth(const Path *p) noexcept
	{
		Finger &f = cur();
		const bool keep = &f.path == p && f.beside_epoch == grown_;
		++grown_;
		if (keep) f.beside_epoch = grown_;
	}
	// stop_early: only the subtree of p.s[from_level] changed, so the walk may
	// stop where an annotation is already right.
	void fix_gaps(Path &p, uint32_t from_level, bool stop_early = true) noexcept;
	void fix_gaps_at(uint64_t pfn) noexcept;
	// Cheaper than fix_gaps when the change is known: a FREE segment of the
	// leaf on p grew to len pages, or one of old_len pages shrank or vanished.
	void gap_grew(Path &p, uint64_t lo, uint64_t hi) noexcept;
	void settle() noexcept
	{
		if (pending_leaf_ != nullptr) settle_slow();
	}
	// may_grow: an erase in the pending leaf changed it since the carve (every
	// other settle finds the leaf as the carve left it: the estimate comes down).
	void settle_slow(bool may_grow = false) noexcept;
	void gap_shrank(Path &p, uint64_t old_lo, uint64_t old_hi) noexcept;
	Segment erase_slow(Path &p, Segment seg) noexcept;
	bool erase_across(Path &p, bool prev_free, bool next_free) noexcept;
	Tag edge_tag(const Path &p, bool next) const noexcept;
	static uint32_t edge_ancestor(const Path &p, bool next) noexcept;
	static void *edge_leaf(const Path &p, bool next, uint32_t a, Inner **side) noexcept;
	uint32_t nodes_for_growth(const Path &p, uint32_t extra) const noexcept;
	int take_stash(Stash &st, uint32_t n) noexcept;
	void return_stash(Stash &st) noexcept;
	void replace_segment(Path &p, const Run &run, Stash &st) noexcept;
	Segment erase_at(Path &p, Tag expect) noexcept;
	int carve_path(Path &p, uint64_t pfn_lo, uint64_t pfn_hi, Tag tag) noexcept;
	void carve_in_leaf(Path &p, uint64_t a, uint64_t b, uint64_t pfn_lo, uint64_t pfn_hi,
	                   Tag tag) noexcept;
	void split_leaf(Path &p, const Run &all, Stash &st) noexcept;
	void insert_child(Path &p, int level, uint64_t sep, void *right, Gap right_gap,
	                  Gap left_gap, Stash &st) noexcept;
	void split_at(uint64_t pfn, Stash &st) noexcept;
	void absorb_next(uint64_t pfn) noexcept;
	void remove_empty_branch(Path &q, uint32_t lca) noexcept;
	void rebalance_at(uint64_t pfn) noexcept;
	void rebalance_path(Path &p) noexcept;
	void rebalance_step(Path &p, uint32_t level) noexcept;
	void free_node(void *node) noexcept;
	void *take_node(Stash &st) noexcept;

	std::optional<uint64_t> search(uint64_t npages, uint64_t align, uint64_t lo_pfn,
	                               uint64_t hi_pfn, Path *path, Gap *right) const noexcept;
	// "No fit" from the fit tests of a leaf or a segment (no fit can start at
	// the last pfn of the 64-bit space: init() asserts max_pfn is below it).
	// Not std::optional: GCC 12 stored its flag and its value apart and then
	// copied the two with one 16-byte load, which cannot be forwarded from
	// the two stores and waits for them; the two such loads in allocate()
	// held a fifth of its samples in profiles of BM_Tree_PairMixed at 8K and
	// of allocations from the front of a fragmented layout.
	static constexpr uint64_t kNoFit = ~uint64_t{0};
	static uint64_t leaf_fit(const Leaf *l, uint64_t min, uint64_t max, uint32_t top,
	                         uint64_t npages, uint64_t align, uint64_t lo_pfn, uint64_t hi_pfn,
	                         uint32_t *idx) noexcept;
	struct Request;
	struct Finger;
	// What the frees since a finger's search did to its proof (see Finger):
	// nothing above its leaf (kHolds); the last one made a FREE segment above
	// it that holds a fit, the new answer (kFreshFit); or unknown (kNone).
	enum class Proof : uint8_t { kUnknown, kNone, kHolds, kFreshFit };
	Proof proof_state(const Finger &f, const Request &r, uint64_t leaf_max) const noexcept;
	static uint64_t span_fit(uint64_t lo, uint64_t hi, const Request &r) noexcept;
	uint64_t alloc_near(const Request &r, Proof *proof) noexcept;
	bool known_above_leaf(const Finger &f, const Request &r, uint64_t leaf_max,
	                      uint8_t need_order1, Proof *proof) const noexcept;
	uint64_t alloc_fresh(uint32_t k, const Request &r, bool *keep_proof) noexcept;
	bool verify_node(const void *node, uint32_t level, uint64_t min, uint64_t max, Gap *gap,
	                 Tag *first, Tag *last, Census *c, const char **why) const noexcept;
	// A leaf's Gap over its FREE segments; may stop early once both fields
	// reach `enough` (an upper bound the caller knows).
	static Gap leaf_gap(const Leaf *l, uint64_t min, uint64_t max,
	                    Gap enough = Gap{UINT64_MAX, UINT8_MAX}) noexcept;
	static Gap inner_gap(const Inner *in) noexcept;
	static Gap child_gap(const Inner *in, uint32_t i) noexcept;
	static void set_child_gap(Inner *in, uint32_t i, Gap g) noexcept;
	static void seal_pivots(Inner *in) noexcept;
	Gap node_gap(const void *node, uint32_t level, uint64_t min, uint64_t max) const noexcept;
	void carry_gap(Path &p, uint32_t level, Gap g, bool stop_early, bool may_grow) noexcept;
	static uint8_t needed_order1(uint64_t npages, uint64_t align) noexcept;

	template <class Fn>
	void walk(const void *node, uint32_t level, uint64_t min, uint64_t max, Fn &fn) const;
	// Out-of-line helpers for walk() so the template needs no node definitions.
	static uint32_t node_count(const void *node) noexcept;
	static Segment leaf_segment(const void *leaf, uint32_t i, uint64_t min,
	                            uint64_t max) noexcept;
	static const void *inner_child(const void *inner, uint32_t i, uint64_t min, uint64_t max,
	                               uint64_t *cmin, uint64_t *cmax) noexcept;

	NodePool &pool_;
	void *root_ = nullptr;
	uint32_t height_ = 0; // levels; 1 = the root is a leaf
	uint64_t max_pfn_ = 0;
	uint64_t nodes_ = 0; // nodes in the tree (not in the pool)
	mutable uint64_t last_search_nodes_ = 0;
	// The fingers: root-to-leaf paths kept between operations, one per size
	// class of allocation (size_class()) and one for lookups, so requests of
	// a few sizes in turn each find their own hole again without a search.
	// A finger is valid while its shape == shape_ (see finger_at()); cur_ is
	// the active one, the one lookups, erases, carves and the pending shrink
	// use. 7 x 1.3 KiB per domain.
	static constexpr uint64_t kNoShape = UINT64_MAX;
	// An allocation request, as allocate() passes it on (hi_pfn clamped).
	struct Request {
		uint64_t npages = 0, align = 0, lo_pfn = 0, hi_pfn = 0;
		bool operator==(const Request &) const noexcept = default;
	};
	static constexpr uint32_t kSizeClasses = 6;
	static constexpr uint32_t kLookupFinger = kSizeClasses;
	struct Finger {
		Path path{};
		uint64_t shape = kNoShape;
		// What the search that built the path passed over on its right, up to
		// beside_hi_pfn: valid while beside_shape == shape_ and beside_epoch
		// == grown_ (see alloc_near()).
		uint64_t beside_shape = kNoShape;
		uint64_t beside_epoch = 0;
		Gap beside_gap{};
		uint64_t beside_hi_pfn = 0;
		// The request that search was for, which it proved has no fit in
		// what it passed over (subtrees it entered and left included), all
		// of it above the leaf: true, whatever the annotations say, while
		// every free counted since proof_freed made its FREE segment at or
		// below the leaf or one that holds no fit (proof_state()).
		uint64_t proof_freed = kNoShape;
		Request proof{};
		// The finger's last allocation: its request and answer, and freed_
		// after it. While freed_ stays, the FREE space is no larger than when
		// that answer was the highest fit, so if it is FREE again (its range
		// freed: a pair), it is the answer to the same request again.
		uint64_t again_freed = kNoShape;
		Request again{};
		uint64_t again_pfn = 0;
	};
	uint64_t shape_ = 0;
	// Written by descents, which are const: a cache of where they went.
	mutable PathHints hints_;
	bool hints_in_use_ = false; // grown to kHintMinHeight since the last claim_idle_hints()
	// Counts the erases that may have made a fit where there was none: all but
	// the undo of the carve just before (a mapping's life, map then unmap),
	// which leaves the FREE space no larger than before that carve; carves,
	// reserves and retags only take FREE space away. So a finger's proof
	// (see Finger), taken no later than that carve, still holds. (A proof
	// taken after it is the carving finger's own, about what lies beside the
	// leaf of that carve.) Cost on a pair: two stores, two compares.
	uint64_t freed_ = 0;
	// The FREE segment the last carve cut its range from, while no erase has
	// followed; empty (lo > hi) otherwise.
	uint64_t undo_lo_ = 1, undo_hi_ = 0;
	// The FREE segments the last kFreedLog counted erases made, the one of
	// count c at c % kFreedLog ([0, UINT64_MAX]: not known, a merge across
	// leaves), and the finger the last one went through: what lets a proof
	// outlive frees below its leaf, and a free above it be the next answer
	// (proof_state()). A free often lands below a finger that carves holes
	// from the top (random frees at 1M ranges: it searched on 70 % of pairs).
	static constexpr uint32_t kFreedLog = 8; // four size classes in turn, with room
	struct FreedSpan {
		uint64_t lo = 0, hi = UINT64_MAX;
	};
	FreedSpan freed_log_[kFreedLog];
	uint32_t fresh_finger_ = kLookupFinger;
	// An erase through the active finger made FREE segment `made` and was not
	// the undo of the carve before it.
	void count_freed(FreedSpan made) noexcept
	{
		++erased_;
		++freed_;
		freed_log_[freed_ % kFreedLog] = made;
		fresh_finger_ = cur_;
		undo_lo_ = 1;
		undo_hi_ = 0;
	}
	// An erase through the active finger left [lo, hi] FREE.
	void note_freed(uint64_t lo, uint64_t hi) noexcept
	{
		if (lo != undo_lo_ || hi != undo_hi_) return count_freed(FreedSpan{lo, hi});
		++erased_;
		undo_lo_ = 1;
		undo_hi_ = 0;
	}
	// Counts the annotation changes that may have grown one: each makes what
	// every finger but the one it went through passed over unknown.
	uint64_t grown_ = 0;
	// Every erase, the undo of a carve included (freed_ counts the others).
	uint64_t erased_ = 0;
	// proven_no_fit_above()'s last scan of a leaf that found no fit above pfn:
	// while no erase and no change of shape has happened, the FREE space is
	// no larger than it was (carves, reserves and retags only take it away)
	// and the leaf's bounds are where they were (only erase_across() moves
	// one without changing the shape, and it is an erase), so the answer
	// stands. The domain asks the same question on every pair that takes its
	// pending free back (a range mapped and unmapped again and again, no
	// erase between): with misaligned holes above it in its leaf
	// (perf/BM_Tree_NearFit) that scan was most of the pair. Cost: five
	// compares.
	struct TakeMemo {
		const void *leaf = nullptr;
		uint64_t erased = 0, shape = 0, pfn = 0;
		Request r{};
	};
	TakeMemo take_memo_;
	Finger fingers_[kSizeClasses + 1];
	uint32_t cur_ = kLookupFinger;
	uint32_t prev_ = kLookupFinger; // active before cur_: a free often follows two allocations
	void activate(uint32_t j) noexcept
	{
		if (j != cur_) prev_ = cur_;
		cur_ = j;
	}
	Finger &cur() noexcept { return fingers_[cur_]; }
	const Finger &cur() const noexcept { return fingers_[cur_]; }
	// A carve through the finger that cut its leaf's largest hole or best
	// block and has not recomputed the leaf's gap yet: the annotations on the
	// finger's path over-estimate until settle(), or until the free that
	// restores the FREE segment [pending_lo_, pending_hi_] makes them exact.
	void *pending_leaf_ = nullptr;
	uint64_t pending_lo_ = 0;
	uint64_t pending_hi_ = 0;
};

template <class Fn>
void GapTree::walk(const void *node, uint32_t level, uint64_t min, uint64_t max, Fn &fn) const
{
	uint32_t count = node_count(node);
	if (level + 1 == height_) {
		for (uint32_t i = 0; i < count; ++i) fn(leaf_segment(node, i, min, max));
		return;
	}
	for (uint32_t i = 0; i < count; ++i) {
		uint64_t cmin, cmax;
		const void *child = inner_child(node, i, min, max, &cmin, &cmax);
		walk(child, level + 1, cmin, cmax, fn);
	}
}

} // namespace iovam::detail

#endif // IOVAM_GAP_TREE_H
