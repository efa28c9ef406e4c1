// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// White-box tests of GapTree below the domain: tree shapes the domain's
// top-down allocator rarely or never builds, driven through the tree's own
// API and mirrored on a std::map reference, verify() after every mutation.
//
// The shapes of interest come from edge splits. Growth at the high end of a
// leaf (ascending carves) splits it 30 | 2, and when that leaf is the last
// child of a full inner node the inner node splits 10 | 1: a one-child inner
// node that rebalancing cannot help at the leaf level (the leaf has no
// sibling). An erase that shrinks that leaf to one segment leaves it so, and
// the next cross-leaf merge into it empties the leaf: the tree must then
// unlink the leaf, and every ancestor left without children, through
// GapTree::remove_empty_branch(). Each test asserts the shape it builds (the
// leaf's range as a descent reports it) so that a change of split policy fails
// the test instead of silently testing nothing.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "gap_tree.h"
#include "path_hints.h"
#include "node_pool.h"

namespace
{

using iovam::detail::GapTree;
using iovam::detail::NodePool;
using iovam::detail::PathHints;
using iovam::detail::Segment;
using iovam::detail::Tag;

constexpr uint64_t kMaxPfn = (1ULL << 20) - 1;
// Ranges this long keep every scenario well inside kMaxPfn (a height-4 tree
// needs about 3000 of them) while leaving room to carve single pages in one.
constexpr uint64_t kRangePages = 100;

// A tree on its own pool, and the occupied segments it must hold: the
// reference. FREE space is what the reference does not cover, as maximal
// holes (the tree's invariant).
class Harness
{
public:
	explicit Harness(uint64_t max_pfn = kMaxPfn) : max_pfn_(max_pfn)
	{
		top_up();
		EXPECT_EQ(tree_.init(max_pfn), 0);
	}

	GapTree &tree() { return tree_; }

	// Each mutation is checked against the reference and followed by verify().
	void carve(uint64_t pfn_lo, uint64_t pfn_hi, Tag tag)
	{
		top_up();
		ASSERT_EQ(tree_.carve(pfn_lo, pfn_hi, tag), 0)
		        << "carve [" << pfn_lo << ", " << pfn_hi << "]";
		ref_[pfn_lo] = Occupied{pfn_hi, tag};
		check("carve", pfn_lo);
	}

	// count ALLOCATED ranges of kRangePages from pfn 0 up, back to back.
	void carve_ranges(uint64_t count)
	{
		for (uint64_t i = 0; i < count && !::testing::Test::HasFatalFailure(); ++i)
			carve(i * kRangePages, i * kRangePages + kRangePages - 1, Tag::kAllocated);
	}

	void erase(uint64_t pfn)
	{
		auto it = ref_.upper_bound(pfn);
		ASSERT_NE(it, ref_.begin()) << pfn << " is not occupied";
		--it;
		ASSERT_GE(it->second.hi, pfn) << pfn << " is not occupied";
		const Segment was = tree_.erase(pfn);
		EXPECT_EQ(was.pfn_lo, it->first);
		EXPECT_EQ(was.pfn_hi, it->second.hi);
		EXPECT_EQ(was.tag, it->second.tag);
		ref_.erase(it);
		check("erase", pfn);
	}

	// The descent to the FREE segment holding pfn: its leaf's range and, per
	// level, the child taken. The allocator's own search hands it out.
	GapTree::Path path_to_free(uint64_t pfn)
	{
		const Segment s = tree_.lookup(pfn);
		EXPECT_EQ(s.tag, Tag::kFree) << pfn;
		GapTree::Path p{};
		auto got = tree_.find_gap(s.pfn_hi - s.pfn_lo + 1, 1, s.pfn_lo, s.pfn_hi, &p);
		EXPECT_TRUE(got.has_value() && *got == s.pfn_lo) << pfn;
		return p;
	}

	// True when the FREE segment holding pfn is all its leaf holds.
	bool alone_in_leaf(uint64_t pfn)
	{
		const Segment s = tree_.lookup(pfn);
		GapTree::Path p = path_to_free(pfn);
		return p.leaf().min == s.pfn_lo && p.leaf().max == s.pfn_hi;
	}

	uint64_t occupied() const { return ref_.size(); }

	// The segment holding pfn, by the reference.
	Segment want_at(uint64_t pfn) const
	{
		auto it = ref_.upper_bound(pfn);
		uint64_t free_lo = 0;
		if (it != ref_.begin()) {
			const auto &[lo, o] = *std::prev(it);
			if (o.hi >= pfn) return Segment{lo, o.hi, o.tag};
			free_lo = o.hi + 1;
		}
		const uint64_t free_hi = it == ref_.end() ? max_pfn_ : it->first - 1;
		return Segment{free_lo, free_hi, Tag::kFree};
	}

private:
	struct Occupied {
		uint64_t hi;
		Tag tag;
	};

	// Erasing gives nodes back; carving may take up to one per level plus a
	// root. Keep far more than that so only the shape decides.
	void top_up()
	{
		if (pool_.free_nodes() < 2 * GapTree::kMaxHeight)
			pool_.splice(pool_.alloc_chain(256));
	}

	void check(const char *what, uint64_t pfn)
	{
		const char *why = "";
		ASSERT_TRUE(tree_.verify(nullptr, &why)) << what << " " << pfn << ": " << why;
		std::vector<Segment> want;
		uint64_t next_pfn = 0;
		for (auto &[lo, o] : ref_) {
			if (lo > next_pfn) want.push_back(Segment{next_pfn, lo - 1, Tag::kFree});
			want.push_back(Segment{lo, o.hi, o.tag});
			next_pfn = o.hi + 1;
		}
		if (next_pfn <= max_pfn_ &&
		    (ref_.empty() || std::prev(ref_.end())->second.hi < max_pfn_))
			want.push_back(Segment{next_pfn, max_pfn_, Tag::kFree});
		std::vector<Segment> got;
		tree_.for_each([&got](const Segment &s) { got.push_back(s); });
		ASSERT_EQ(got.size(), want.size()) << what << " " << pfn;
		for (size_t i = 0; i < got.size(); ++i) {
			ASSERT_TRUE(got[i].pfn_lo == want[i].pfn_lo &&
			            got[i].pfn_hi == want[i].pfn_hi && got[i].tag == want[i].tag)
			        << what << " " << pfn << ": segment " << i << " is ["
			        << got[i].pfn_lo << ", " << got[i].pfn_hi << "] tag "
			        << static_cast<int>(got[i].tag) << ", want [" << want[i].pfn_lo
			        << ", " << want[i].pfn_hi << "] tag "
			        << static_cast<int>(want[i].tag);
		}
	}

	// The pool outlives the tree, which gives its nodes back when destroyed.
	NodePool pool_;
	GapTree tree_{pool_};
	const uint64_t max_pfn_;
	std::map<uint64_t, Occupied> ref_;
};

// Ascending allocations of `range_pages` pages from pfn 0 until the tree is
// `height` levels high; returns how many were carved.
uint64_t grow_ascending_until(Harness &h, uint64_t range_pages, uint32_t height)
{
	uint64_t n = 0;
	while (h.tree().height() < height) {
		h.carve(n * range_pages, n * range_pages + range_pages - 1, Tag::kAllocated);
		if (::testing::Test::HasFatalFailure()) return n;
		++n;
	}
	return n;
}

// The simplest case: the right spine. Single pages carved upwards until the
// root splits leave the last leaf [A, FREE] alone under a one-child inner
// node; freeing A makes that leaf one FREE segment; freeing the page before
// (the last segment of the previous leaf) merges across the leaf boundary
// and must unlink the emptied leaf.
TEST(GapTreeEmptyBranch, LastLeafOfTheRightSpine)
{
	Harness h;
	const uint64_t n = grow_ascending_until(h, 1, 3);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	const uint64_t last_pfn = n - 1; // the last page carved: first of the last leaf
	{
		GapTree::Path p = h.path_to_free(kMaxPfn);
		ASSERT_EQ(p.leaf().min, last_pfn) << "the split left [A, FREE] in the last leaf";
		ASSERT_EQ(p.s[0].idx, 1u) << "and the new root has two children";
	}
	h.erase(last_pfn);
	ASSERT_TRUE(h.alone_in_leaf(kMaxPfn)) << "the leaf holds one FREE segment";
	const uint64_t nodes = h.tree().nodes();
	h.erase(last_pfn - 1);
	EXPECT_EQ(h.tree().nodes(), nodes - 1) << "exactly the emptied leaf is freed";
	GapTree::Path p = h.path_to_free(kMaxPfn);
	EXPECT_LT(p.leaf().min, last_pfn - 1) << "the merged hole lives in the previous leaf";
}

// Erasing the range at hole_pfn, the last in a leaf of one segment, frees
// exactly that leaf: the merged hole lives in the previous leaf.
void expect_leaf_freed_by_erase(Harness &h, uint64_t hole_pfn)
{
	const uint64_t nodes = h.tree().nodes();
	h.erase(hole_pfn);
	EXPECT_EQ(h.tree().nodes(), nodes - 1);
	GapTree::Path p = h.path_to_free(hole_pfn);
	EXPECT_EQ(p.leaf().max, hole_pfn + kRangePages - 1);
	EXPECT_LT(p.leaf().min, hole_pfn);
}

// A hole at the end of a full leaf that is the last child of a full inner
// node, with more of the tree after it: filling the hole upwards splits the
// leaf 30 | 2 and its parent 10 | 1 in the middle of the tree. The emptied
// leaf's range then ends below max_pfn and the rebalance after the merge
// starts at the next leaf.
TEST(GapTreeEmptyBranch, LeafInTheMiddleOfTheTree)
{
	Harness h;
	// 700 ranges: leaves of 30 (the first 10 under the root's first child, the
	// next 10 under its second) and a root of 3 children.
	h.carve_ranges(700);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	ASSERT_EQ(h.tree().height(), 3u);
	// Free the last range of the root's first child's last leaf.
	const uint64_t hole_pfn = 299 * kRangePages;
	h.erase(hole_pfn);
	{
		GapTree::Path p = h.path_to_free(hole_pfn);
		ASSERT_EQ(p.s[0].idx, 0u);
		ASSERT_EQ(p.s[1].idx, 9u) << "the last child of a full inner node";
		ASSERT_EQ(p.leaf().max, hole_pfn + kRangePages - 1) << "the hole ends its leaf";
	}
	h.carve(hole_pfn, hole_pfn, Tag::kAllocated);
	h.carve(hole_pfn + 1, hole_pfn + 1, Tag::kAllocated);
	{
		GapTree::Path p = h.path_to_free(hole_pfn + 2);
		ASSERT_EQ(p.leaf().min, hole_pfn + 1) << "the split left [A, FREE] in a new leaf";
		ASSERT_EQ(p.s[0].idx, 1u)
		        << "under a new one-child node after the root's first child";
	}
	h.erase(hole_pfn + 1);
	ASSERT_TRUE(h.alone_in_leaf(hole_pfn + 1));
	{
		GapTree::Path p = h.path_to_free(hole_pfn + 1);
		ASSERT_GT(p.s[1].idx, 0u) << "the leaf has a left sibling in its parent now";
		ASSERT_LT(p.leaf().max, kMaxPfn);
	}
	expect_leaf_freed_by_erase(h, hole_pfn);
}

// As above, but the one-child node lands first in its parent: the root is
// full and the split child is its 9th, so the root splits 9 | 2 and the new
// node is the first child of the right half; the rebalance after the leaf
// shrinks merges that node with its right sibling, so the leaf is the first
// of several children. Unlinking it there drops the pivot after it, and the
// common ancestor of the two leaves is two levels above the emptied one.
TEST(GapTreeEmptyBranch, FirstChildBelowTheCommonAncestor)
{
	Harness h;
	// 2800 ranges: 93 leaves, the root's first 9 children full, its 10th
	// (the right spine) not yet.
	h.carve_ranges(2800);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	ASSERT_EQ(h.tree().height(), 3u);
	const uint64_t hole_pfn = 2699 * kRangePages; // the last range of the 9th child's last leaf
	// FREE markers in the leaves on either side (their neighbours stay
	// ALLOCATED, so nothing merges): descents to them show where the leaves are.
	const uint64_t probe_pfn = 2701 * kRangePages, probe_prev_pfn = 2680 * kRangePages;
	h.erase(probe_pfn);
	h.erase(probe_prev_pfn);
	h.erase(hole_pfn);
	{
		GapTree::Path p = h.path_to_free(hole_pfn);
		ASSERT_EQ(p.s[0].idx, 8u);
		ASSERT_EQ(p.s[1].idx, 9u);
		ASSERT_EQ(p.leaf().max, hole_pfn + kRangePages - 1);
		ASSERT_EQ(h.path_to_free(probe_pfn).s[0].idx, 9u);
	}
	h.carve(hole_pfn, hole_pfn, Tag::kAllocated);
	h.carve(hole_pfn + 1, hole_pfn + 1, Tag::kAllocated);
	ASSERT_EQ(h.tree().height(), 4u) << "the full root split";
	{
		GapTree::Path p = h.path_to_free(hole_pfn + 2);
		ASSERT_EQ(p.leaf().min, hole_pfn + 1);
		ASSERT_EQ(p.s[0].idx, 1u);
		ASSERT_EQ(p.s[1].idx, 0u) << "the one-child node is first in the root's right half";
	}
	h.erase(hole_pfn + 1);
	ASSERT_TRUE(h.alone_in_leaf(hole_pfn + 1));
	{
		// The rebalance merged the one-child node into its sibling, and then the
		// root's halves back into one: height 3 again.
		GapTree::Path p = h.path_to_free(hole_pfn + 1), q = h.path_to_free(probe_pfn);
		ASSERT_EQ(p.s[p.n - 2].idx, 0u)
		        << "the one-segment leaf is its parent's first child";
		ASSERT_EQ(p.s[p.n - 2].node, q.s[q.n - 2].node)
		        << "and the next leaf is its sibling";
		ASSERT_NE(p.s[p.n - 2].node, h.path_to_free(probe_prev_pfn).s[p.n - 2].node)
		        << "the previous leaf has another parent";
	}
	expect_leaf_freed_by_erase(h, hole_pfn);
	// The leaf after the removed one still starts where the hole ends.
	EXPECT_EQ(h.path_to_free(probe_pfn).leaf().min, hole_pfn + kRangePages);
}

// Ascending growth until the tree is 4 levels high splits full nodes at two
// levels at once: the last leaf hangs under a chain of two one-child nodes.
// The rebalance after the leaf shrinks to one segment evens out the upper
// node only (the lower one has no sibling when its level is visited), so the
// cross-leaf merge empties the leaf and then its parent: two levels unlinked.
TEST(GapTreeEmptyBranch, ChainOfOneChildNodes)
{
	Harness h;
	const uint64_t n = grow_ascending_until(h, kRangePages, 4);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	const uint64_t last_pfn = (n - 1) * kRangePages;
	ASSERT_EQ(h.path_to_free(kMaxPfn).leaf().min, last_pfn);
	h.erase(last_pfn);
	ASSERT_TRUE(h.alone_in_leaf(kMaxPfn));
	const uint64_t nodes = h.tree().nodes();
	h.erase(last_pfn - kRangePages);
	EXPECT_EQ(h.tree().nodes(), nodes - 2) << "the leaf and its one-child parent";
	EXPECT_LT(h.path_to_free(kMaxPfn).leaf().min, last_pfn - kRangePages);
}

// The emptied leaf holds the segment being erased: a RESERVED top segment
// left alone in its leaf (its FREE neighbour was merged away into the
// previous leaf) is erased, and the previous leaf's FREE tail absorbs it.
TEST(GapTreeEmptyBranch, ErasedSegmentAloneInItsLeaf)
{
	Harness h;
	const uint64_t top_lo_pfn = kMaxPfn - 9;
	h.carve(top_lo_pfn, kMaxPfn, Tag::kReserved);
	const uint64_t n = grow_ascending_until(h, kRangePages, 4);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	const uint64_t last_pfn = (n - 1) * kRangePages;
	ASSERT_EQ(h.path_to_free(top_lo_pfn - 1).leaf().min, last_pfn)
	        << "the last leaf is [A, FREE, RESERVED]";
	// The previous leaf's last range first: erasing A then hands A and the
	// FREE segment after it to the previous leaf (erase_across()).
	h.erase(last_pfn - kRangePages);
	h.erase(last_pfn);
	{
		GapTree::Path p = h.path_to_free(top_lo_pfn - 1);
		ASSERT_EQ(p.leaf().max, top_lo_pfn - 1)
		        << "the RESERVED segment is alone in the last leaf";
	}
	const uint64_t nodes = h.tree().nodes();
	h.erase(top_lo_pfn);
	// The leaf and the one-child node above it (the chain ascending growth
	// leaves, see ChainOfOneChildNodes: one rebalance, after the erase that
	// left the leaf one segment, evened out the node above that only).
	EXPECT_EQ(h.tree().nodes(), nodes - 2);
	EXPECT_LT(h.path_to_free(kMaxPfn).leaf().min, top_lo_pfn)
	        << "the previous leaf is the last now";
}

// An erase beside a FREE segment at the edge of the next or the previous leaf
// moves the boundary between the two leaves (GapTree::erase_across()): the
// erased segment, with its FREE neighbour in its own leaf if it has one,
// joins the other leaf's FREE segment. No node is freed or taken, and the
// merged hole lives in the neighbour leaf. Leaves of 30 ranges (as above):
// leaf j holds ranges 30j..30j+29, the first 10 leaves under the root's
// first child, so the boundary between leaves 9 and 10 is stored in the root.
TEST(GapTreeEraseAcross, TheBoundaryMovesToTheNeighbourLeaf)
{
	Harness h;
	h.carve_ranges(700);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	ASSERT_EQ(h.tree().height(), 3u);
	auto range = [](uint64_t j) { return j * kRangePages; };
	const uint64_t nodes = h.tree().nodes();

	// The previous leaf's last range is FREE; erasing the next leaf's first
	// range hands it over (boundary in the root).
	h.erase(range(299));
	ASSERT_EQ(h.path_to_free(range(299)).leaf().max, range(300) - 1) << "299 ends leaf 9";
	h.erase(range(300));
	{
		GapTree::Path p = h.path_to_free(range(300));
		EXPECT_EQ(p.s[0].idx, 0u) << "the hole stays in the root's first child";
		EXPECT_EQ(p.leaf().min, range(270));
		EXPECT_EQ(p.leaf().max, range(301) - 1) << "leaf 9 took range 300";
	}
	EXPECT_EQ(h.tree().nodes(), nodes);

	// The next leaf's first range is FREE; erasing the previous leaf's last
	// range hands it over (boundary in their parent).
	h.erase(range(330));
	h.erase(range(329));
	EXPECT_EQ(h.path_to_free(range(330)).leaf().min, range(329)) << "leaf 11 took range 329";
	EXPECT_EQ(h.tree().nodes(), nodes);

	// With a FREE neighbour inside the leaf: both leave it.
	h.erase(range(358));
	h.erase(range(360));
	h.erase(range(359));
	EXPECT_EQ(h.path_to_free(range(360)).leaf().min, range(358))
	        << "leaf 12 took ranges 358 and 359";
	h.erase(range(389));
	h.erase(range(391));
	h.erase(range(390));
	{
		GapTree::Path p = h.path_to_free(range(390));
		EXPECT_EQ(p.leaf().max, range(392) - 1) << "leaf 12 took ranges 390 and 391";
		EXPECT_EQ(h.tree().lookup(range(390)).pfn_lo, range(389));
	}
	EXPECT_EQ(h.tree().nodes(), nodes);

	// Carving the moved holes again works from the leaves they now live in.
	h.carve(range(300), range(301) - 1, Tag::kAllocated);
	h.carve(range(359), range(360) - 1, Tag::kAllocated);
	h.carve(range(391), range(392) - 1, Tag::kAllocated);
}

// Random ascending carves with erases biased to the highest live range: the
// pattern that keeps making one-child nodes and one-segment leaves, checked
// against the reference after every step.
TEST(GapTreeModel, AscendingCarvesAndTopErases)
{
	for (uint64_t seed = 1; seed <= 6; ++seed) {
		std::mt19937_64 rng(seed);
		const uint64_t max_pfn = 20000 + rng() % 100000;
		Harness h(max_pfn);
		std::map<uint64_t, uint64_t> live; // pfn_lo -> pfn_hi
		for (int op = 0; op < 6000; ++op) {
			if (rng() % 100 < 60) {
				// The lowest FREE segment at or above a random pfn (or the lowest).
				auto s = h.tree().next_tagged(rng() % max_pfn, Tag::kFree);
				if (!s) s = h.tree().next_tagged(0, Tag::kFree);
				if (!s) continue;
				const uint64_t npages = std::min<uint64_t>(
				        1 + rng() % 3, s->pfn_hi - s->pfn_lo + 1);
				const Tag tag = rng() % 8 == 0 ? Tag::kReserved : Tag::kAllocated;
				h.carve(s->pfn_lo, s->pfn_lo + npages - 1, tag);
				live[s->pfn_lo] = s->pfn_lo + npages - 1;
			} else if (!live.empty()) {
				auto it = live.lower_bound(rng() % (max_pfn + 1));
				if (it == live.end() || rng() % 2 == 0) it = std::prev(live.end());
				h.erase(it->first);
				live.erase(it);
			}
			ASSERT_FALSE(::testing::Test::HasFatalFailure())
			        << "seed " << seed << " op " << op;
		}
	}
}

// ---------------------------------------------------------------------------
// Bounded aligned search: nodes entered per find_gap() on layouts built to
// defeat a search pruned by hole length alone.

// A tree whose top 4 * holes pages repeat (live, hole, hole, live): every
// hole is `hole_pages` long and starts `skew` pages past a multiple of 4, and
// 1024 pages below them are free. Built with carves in the pool it owns.
struct NearFitTree {
	NodePool pool;
	GapTree tree{pool};
	uint64_t base = 0; // first pfn of the patterned region (a multiple of 4)
	uint64_t slack_hi = 0;

	NearFitTree(uint64_t holes, uint64_t skew, uint64_t hole_pages)
	{
		const uint64_t max_pfn = 1024 + 4 * holes + 3;
		base = 1024;
		slack_hi = base - 1;
		top_up();
		EXPECT_EQ(tree.init(max_pfn), 0);
		// Occupy the patterned region whole, then carve the holes out of it by
		// erasing: everything not a hole is one ALLOCATED page.
		for (uint64_t i = 0; i < holes; ++i) {
			const uint64_t at = base + 4 * i;
			for (uint64_t pfn = at; pfn < at + 4; ++pfn) {
				top_up();
				EXPECT_EQ(tree.carve(pfn, pfn, Tag::kAllocated), 0);
			}
		}
		top_up();
		EXPECT_EQ(tree.carve(max_pfn - 3, max_pfn, Tag::kReserved), 0);
		for (uint64_t i = 0; i < holes; ++i) {
			const uint64_t lo = base + 4 * i + skew;
			for (uint64_t pfn = lo; pfn < lo + hole_pages; ++pfn) tree.erase(pfn);
		}
		const char *why = "";
		EXPECT_TRUE(tree.verify(nullptr, &why)) << why;
	}
	~NearFitTree() = default;

	void top_up()
	{
		if (pool.free_nodes() < 2 * GapTree::kMaxHeight) pool.splice(pool.alloc_chain(256));
	}

	// allocate() and erase() of the tree, each followed by verify().
	uint64_t allocate(uint64_t npages, uint64_t align, uint64_t hi_pfn = UINT64_MAX)
	{
		top_up();
		uint64_t pfn = 0;
		EXPECT_EQ(tree.allocate(npages, align, 0, hi_pfn, Tag::kAllocated, &pfn), 0);
		check();
		return pfn;
	}
	void erase(uint64_t pfn)
	{
		tree.erase(pfn);
		check();
	}
	void check()
	{
		const char *why = "";
		EXPECT_TRUE(tree.verify(nullptr, &why)) << why;
	}
};

// Power-of-two sizes aligned to themselves: the answer is in the free space
// below every hole, and the search enters no hole's subtree on the way: the
// nodes it enters stay within a few per level, whatever the number of holes.
TEST(GapTreeAlignedSearch, MisalignedNearFitHolesAreNeverEntered)
{
	for (uint64_t holes : {1000u, 10000u, 100000u}) {
		NearFitTree t(holes, 1, 2); // [4i + 1, 4i + 2]: long enough, misaligned
		const uint64_t height = t.tree.height();
		for (uint64_t npages : {2u, 4u, 8u, 64u}) {
			auto got = t.tree.find_gap(npages, npages, 0, t.tree.max_pfn());
			ASSERT_TRUE(got.has_value()) << holes << " holes, " << npages;
			EXPECT_EQ(*got, (t.slack_hi + 1 - npages) & ~(npages - 1))
			        << holes << " holes, " << npages;
			EXPECT_LE(t.tree.last_search_nodes(), 3 * height)
			        << holes << " holes, " << npages << " pages: height " << height;
		}
		// A 1-page request takes the highest hole at once.
		auto one = t.tree.find_gap(1, 1, 0, t.tree.max_pfn());
		ASSERT_TRUE(one.has_value());
		EXPECT_EQ(*one, t.base + 4 * (holes - 1) + 2);
		EXPECT_LE(t.tree.last_search_nodes(), 3 * height);
	}
}

// An exactly fitting aligned hole is found, however many near misses lie
// above it: one aligned [4j + 2, 4j + 3] hole among misaligned ones.
TEST(GapTreeAlignedSearch, ExactFitAmongNearFits)
{
	NearFitTree t(20000, 1, 2);
	const uint64_t j = 7777;
	const uint64_t fit = t.base + 4 * j + 2; // hole [4j + 1, 4j + 2]; free 4j + 3
	t.top_up();
	t.tree.erase(fit + 1);
	auto got = t.tree.find_gap(2, 2, 0, t.tree.max_pfn());
	ASSERT_TRUE(got.has_value());
	EXPECT_EQ(*got, fit);
	EXPECT_LE(t.tree.last_search_nodes(), 3 * t.tree.height());
	// Below a limit under the fit: the free space at the bottom again.
	got = t.tree.find_gap(2, 2, 0, fit);
	ASSERT_TRUE(got.has_value());
	EXPECT_EQ(*got, t.slack_hi - 1);
	EXPECT_LE(t.tree.last_search_nodes(), 4 * t.tree.height());
}

// The stated limit of the bound (gap_tree.h, find_gap): 3 pages aligned to 4
// in holes [4i + 1, 4i + 3]. Each hole holds an aligned block of 2 pages, as
// every fit of 3 would, but no fit: the search enters the leaves that hold
// such holes (about holes / 15 of them) and still returns the exact answer.
TEST(GapTreeAlignedSearch, NonPowerOfTwoWorstCaseIsTheStatedOne)
{
	const uint64_t holes = 30000;
	NearFitTree t(holes, 1, 3);
	auto got = t.tree.find_gap(3, 4, 0, t.tree.max_pfn());
	ASSERT_TRUE(got.has_value());
	EXPECT_EQ(*got, (t.slack_hi - 2) & ~3ULL);
	// Leaves hold 4..31 segments, two per hole here: at most holes / 2 + the
	// inner nodes above them; at least one leaf per 15 holes.
	EXPECT_GE(t.tree.last_search_nodes(), holes / 16);
	EXPECT_LE(t.tree.last_search_nodes(), t.tree.nodes());
	// Power-of-two requests on the same layout stay bounded.
	got = t.tree.find_gap(4, 4, 0, t.tree.max_pfn());
	ASSERT_TRUE(got.has_value());
	EXPECT_LE(t.tree.last_search_nodes(), 3 * t.tree.height());
}

// allocate() serves a request from the finger's leaf, without a descent, only
// while everything between that leaf and the limit is known to hold no fit:
// the pair pattern (allocate, free, allocate again) is served there, and a fit
// that appears higher up (a free elsewhere), a limit below the leaf or above
// what the last search covered, or another size all get the exact answer.
TEST(GapTreeNearAlloc, ServedFromTheFingerLeafOnlyWhileExact)
{
	NearFitTree t(20000, 1, 2);
	GapTree &tree = t.tree;
	const uint64_t max_pfn = tree.max_pfn();
	const uint64_t slack_fit = t.slack_hi - 1; // every 2-page aligned fit is below the holes
	EXPECT_EQ(t.allocate(2, 2, max_pfn), slack_fit);
	EXPECT_GT(tree.last_search_nodes(), 1U); // a descent from the root
	for (int round = 0; round < 3; ++round) {
		t.erase(slack_fit);
		EXPECT_EQ(t.allocate(2, 2, max_pfn), slack_fit);
		EXPECT_EQ(tree.last_search_nodes(), 1U) << "round " << round;
	}
	t.erase(slack_fit);

	// A fit appears far above the finger's leaf: the next answer is that one.
	auto fit_at = [&](uint64_t hole) { return t.base + 4 * hole + 2; }; // [4j + 1, 4j + 2]
	const uint64_t high = fit_at(12345), low = fit_at(2345);
	t.erase(high + 1);
	EXPECT_EQ(t.allocate(2, 2, max_pfn), high);
	t.erase(high);
	EXPECT_EQ(t.allocate(2, 2, max_pfn), high);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	t.erase(high);
	// A second, lower fit: the free that makes it moves the finger to its
	// leaf, where the answer is not (what was passed over belongs to the old
	// finger's path).
	t.erase(low + 1);
	EXPECT_EQ(t.allocate(2, 2, max_pfn), high);
	t.erase(high);
	// A limit below both: the search covers only up to the limit, so a later
	// request with a higher limit cannot be served from the slack's leaf.
	EXPECT_EQ(t.allocate(2, 2, t.base + 8), slack_fit);
	t.erase(slack_fit);
	EXPECT_EQ(t.allocate(2, 2, max_pfn), high);
	t.erase(high);
	// Another size: 1 page goes to the highest hole.
	const uint64_t top_hole = t.base + 4 * 19999 + 2;
	EXPECT_EQ(t.allocate(1, 1, max_pfn), top_hole);
	t.erase(top_hole);
	EXPECT_EQ(t.allocate(1, 1, max_pfn), top_hole);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	t.erase(top_hole);
	// A limit inside the finger's leaf, below its highest hole.
	EXPECT_EQ(t.allocate(1, 1, top_hole - 1), top_hole - 1);
}

// Requests of two sizes in turn, whose answers lie in different leaves: each
// size class keeps its own finger, so after one search each the answers come
// from the leaves. A free that grows a hole in one finger's leaf past what was
// there before (not the undo of its carve) makes what the other finger's
// search passed over unknown: its next answer is that new hole.
TEST(GapTreeNearAlloc, EachSizeClassKeepsItsFinger)
{
	NearFitTree t(20000, 1, 2);
	GapTree &tree = t.tree;
	const uint64_t max_pfn = tree.max_pfn();
	const uint64_t slack_fit = t.slack_hi - 1;        // the highest 2-page aligned fit
	const uint64_t top_hole = t.base + 4 * 19999 + 2; // the highest page of the top hole
	for (int round = 0; round < 4; ++round) {
		EXPECT_EQ(t.allocate(1, 1), top_hole);
		if (round > 0) {
			EXPECT_EQ(tree.last_search_nodes(), 1U) << "1 page, round " << round;
		}
		t.erase(top_hole);
		EXPECT_EQ(t.allocate(2, 2), slack_fit);
		if (round > 0) {
			EXPECT_EQ(tree.last_search_nodes(), 1U) << "2 pages, round " << round;
		}
		t.erase(slack_fit);
	}
	// The 1-page finger cuts the top hole [top_hole - 1, top_hole]; freeing
	// the page below it makes [top_hole - 2, top_hole - 1] FREE: an aligned
	// 2-page fit far above the slack.
	EXPECT_EQ(t.allocate(1, 1), top_hole);
	t.erase(top_hole - 2);
	EXPECT_EQ(t.allocate(2, 2), top_hole - 2);
	EXPECT_EQ(tree.find_gap(2, 2, 0, max_pfn), std::optional<uint64_t>(slack_fit));
}

// A size that is not a power of two, aligned: the annotations cannot tell
// whether the holes the search entered and left hold a fit, so what the finger
// passed over is known from the search alone. It stays known while no erase but
// the undo of the carve just before it has made FREE space: pairs of two sizes
// in turn are served from their fingers' leaves, and a free that makes a fit in
// what the search passed over is found.
TEST(GapTreeNearAlloc, NonPowerOfTwoPairsKeepWhatTheirSearchFound)
{
	const uint64_t holes = 3000;
	NearFitTree t(holes, 1, 3); // [4i + 1, 4i + 3]: a 2-page block each, no 3 at 4
	GapTree &tree = t.tree;
	const uint64_t slack_fit = (t.slack_hi - 2) & ~3ULL;
	const uint64_t top_hole = t.base + 4 * (holes - 1) + 3;
	for (int round = 0; round < 4; ++round) {
		EXPECT_EQ(t.allocate(3, 4), slack_fit);
		if (round == 0) {
			EXPECT_GT(tree.last_search_nodes(), holes / 16); // every hole's leaf
		} else {
			EXPECT_EQ(tree.last_search_nodes(), 1U) << "3 at 4, round " << round;
		}
		t.erase(slack_fit);
		EXPECT_EQ(t.allocate(1, 1), top_hole);
		t.erase(top_hole);
	}
	// The page between holes j and j + 1 freed: [4j + 1, 4j + 7] is FREE, and
	// holds 3 pages at 4j + 4.
	const uint64_t j = holes - 10, joint = t.base + 4 * (j + 1);
	t.erase(joint);
	EXPECT_EQ(t.allocate(3, 4), joint);
	// Two carves, the second found by a search made while the first was
	// taken: freeing the first is no undo of the carve just before, so what
	// that search passed over (joint's leaf) is no longer trusted.
	EXPECT_EQ(t.allocate(3, 4), slack_fit);
	t.erase(joint);
	t.erase(slack_fit);
	EXPECT_EQ(t.allocate(3, 4), joint);
	t.erase(joint);
}

// A size class's last answer, freed again, is its next answer to the same
// request while no erase but the undo of the carve just before has made FREE
// space: the FREE space can only have shrunk since it was the highest fit. If
// another request took it meanwhile, the answer is searched for as before.
TEST(GapTreeNearAlloc, ThePairsAnswerComesAgainOnlyWhileItIsFree)
{
	NearFitTree t(20000, 1, 2); // every 2-page aligned fit is in the slack
	GapTree &tree = t.tree;
	const uint64_t x = t.slack_hi - 1;
	const uint64_t top_hole = t.base + 4 * 19999 + 2;
	EXPECT_EQ(t.allocate(2, 2), x);
	t.erase(x);
	EXPECT_EQ(t.allocate(1, 1), top_hole); // kept: FREE space only shrinks
	EXPECT_EQ(t.allocate(2, 2), x);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	t.erase(x);
	const uint64_t four = t.allocate(4, 4); // [x - 2, x + 1]: takes x's range
	EXPECT_EQ(four, x - 2);
	EXPECT_EQ(t.allocate(2, 2), x - 4);
	t.erase(x - 4);
	t.erase(four); // not the undo of the carve before it: x is FREE again
	EXPECT_EQ(t.allocate(2, 2), x);
	t.erase(x);
	t.erase(top_hole);
	EXPECT_EQ(t.allocate(2, 2), x);
	t.erase(x);
}

// Random frees around a finger that carves holes from the top down (the
// pattern of random frees at 1M ranges): a free below its leaf leaves what
// its search passed over without a fit, so the next page still comes from
// the leaf; a free above it is the next answer, taken through the path of
// that free. Neither needs a descent. What they cannot prove (two fits above,
// what a carve leaves of a longer range) goes to a search.
TEST(GapTreeNearAlloc, RandomFreesAboveOrBelowTheFingerNeedNoSearch)
{
	NearFitTree t(20000, 1, 2);
	GapTree &tree = t.tree;
	auto hole = [&](uint64_t j) { return t.base + 4 * j + 1; }; // [hole, hole + 1] FREE
	// 1-page allocations take the holes' pages from the top: hole(19998) + 1,
	// hole(19998), hole(19997) + 1, ...
	auto front = [&](uint64_t i) { return hole(19998 - i / 2) + (i % 2 == 0 ? 1 : 0); };
	const uint64_t pair = t.allocate(2, 1); // the top hole, as one range
	EXPECT_EQ(pair, hole(19999));
	std::vector<uint64_t> pages;
	for (uint64_t i = 0; i < 400; ++i) {
		pages.push_back(t.allocate(1, 1));
		ASSERT_EQ(pages.back(), front(i));
	}
	uint64_t next = 400;
	// Below the finger's leaf (a page that merges with hole 100).
	t.erase(hole(100) - 1);
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	// Above it: the freed page, then the finger's holes again.
	t.erase(pages[10]);
	EXPECT_EQ(t.allocate(1, 1), pages[10]);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	// The free of a page taken that way, right after: not the undo of a carve
	// the finger's proof saw, so the page is the answer again.
	t.erase(pages[20]);
	EXPECT_EQ(t.allocate(1, 1), pages[20]);
	t.erase(pages[20]);
	EXPECT_EQ(t.allocate(1, 1), pages[20]);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	// A freed 2-page range: its top page, then what the carve left of it
	// (not the finger's next hole).
	t.erase(pair);
	EXPECT_EQ(t.allocate(1, 1), pair + 1);
	EXPECT_EQ(tree.last_search_nodes(), 1U);
	EXPECT_EQ(t.allocate(1, 1), pair);
	// Two fits above: the higher one, found by a search.
	t.erase(pages[30]);
	t.erase(pages[5]);
	EXPECT_EQ(t.allocate(1, 1), pages[5]);
	EXPECT_EQ(t.allocate(1, 1), pages[30]);
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(tree.last_search_nodes(), 1U);
}

// A boundary moved far below the allocation finger (erase_across()) leaves
// that finger a path of the tree and its finding standing: the next
// allocation is served from its leaf, without a search. Before, every such
// erase took erase_slow(), which changed the tree's shape and logged an
// unknown FREE segment, and the next allocation searched from the root.
TEST(GapTreeNearAlloc, ABoundaryMovedElsewhereKeepsTheFinger)
{
	NearFitTree t(20000, 1, 2);
	GapTree &tree = t.tree;
	auto hole = [&](uint64_t j) { return t.base + 4 * j + 1; }; // [hole, hole + 1] FREE
	auto front = [&](uint64_t i) { return hole(19998 - i / 2) + (i % 2 == 0 ? 1 : 0); };
	EXPECT_EQ(t.allocate(2, 1), hole(19999));
	uint64_t next = 0;
	for (; next < 10; ++next) ASSERT_EQ(t.allocate(1, 1), front(next));
	// An ALLOCATED page far below whose FREE neighbour is the edge segment of
	// the next leaf (a unit's first page, its hole after a boundary) or of
	// the previous one (a unit's last page, its hole before a boundary).
	uint64_t x = 0, other = 0;
	for (uint64_t j = 100; j < 10000 && x == 0; ++j) {
		const uint64_t first = t.base + 4 * j, last = first + 3;
		if (tree.path_node(0, first) != tree.path_node(0, first + 1))
			x = first, other = first + 1;
		else if (tree.path_node(0, last - 1) != tree.path_node(0, last))
			x = last, other = last - 1;
	}
	ASSERT_NE(x, 0u) << "no leaf boundary beside a hole";
	const void *hole_leaf = tree.path_node(0, other);
	const Segment merged = tree.lookup(other);
	const uint64_t nodes = tree.nodes();
	ASSERT_EQ(t.allocate(1, 1), front(next++)); // the finger is the active one again
	t.erase(x);
	EXPECT_EQ(tree.nodes(), nodes) << "a boundary moved, no node freed";
	EXPECT_EQ(tree.path_node(0, x), hole_leaf) << "the page joined the hole's leaf";
	EXPECT_EQ(tree.lookup(x).pfn_lo, std::min(x, merged.pfn_lo));
	EXPECT_EQ(tree.lookup(x).pfn_hi, std::max(x, merged.pfn_hi));
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(tree.last_search_nodes(), 1U) << "served from the finger's leaf";
	EXPECT_EQ(t.allocate(1, 1), front(next++));
	EXPECT_EQ(tree.last_search_nodes(), 1U);
}

// A carve by allocate() that shrinks its leaf's largest hole leaves the
// annotations above as they were until the next operation (the free that
// undoes it restores them exactly; anything else recomputes the leaf): in
// between, searches still get exact answers, and verify() accepts the
// over-estimate only on that leaf's path.
// proven_no_fit_above() may only say what the tree's own exact search
// confirms: whenever it answers true, find_gap() finds no fit starting above
// that pfn. Random allocations (1..8 pages, unaligned or size-aligned) and
// random frees on a fragmented tree; each answer is asked about the pfn just
// allocated, the page above and below it, and a random pfn. It must also
// answer true where the domain needs it (the pfn a 1-page allocation just
// returned, nothing freed since): the domain's pending free depends on that.
// Each question is asked twice, and the last ones asked are asked again after
// every step: an answer the tree remembers (its last scan that found no fit,
// see TakeMemo in gap_tree.h) must still hold after carves, and be dropped
// after any erase, the undo of a carve included.
TEST(GapTreeNearAlloc, ProvenNoFitAboveOnlySaysWhatASearchConfirms)
{
	NearFitTree t(3000, 1, 2);
	GapTree &tree = t.tree;
	std::mt19937_64 rng(11);
	std::vector<uint64_t> live;
	uint64_t asked = 0, proven = 0, top_asked = 0, top_proven = 0;
	struct Question {
		uint64_t npages, align, pfn;
	};
	std::vector<Question> recent;
	auto ask_once = [&](uint64_t npages, uint64_t align, uint64_t pfn) {
		++asked;
		if (!tree.proven_no_fit_above(npages, align, 0, UINT64_MAX, pfn)) return false;
		++proven;
		EXPECT_FALSE(pfn < tree.max_pfn() &&
		             tree.find_gap(npages, align, pfn + 1, tree.max_pfn()).has_value())
		        << "a fit of " << npages << " pages (align " << align << ") above " << pfn;
		return true;
	};
	auto ask = [&](uint64_t npages, uint64_t align, uint64_t pfn) {
		if (pfn > tree.max_pfn()) return false;
		const bool first = ask_once(npages, align, pfn);
		EXPECT_EQ(ask_once(npages, align, pfn), first) << "asked again at once, " << pfn;
		recent.push_back(Question{npages, align, pfn});
		if (recent.size() > 8) recent.erase(recent.begin());
		return first;
	};
	for (int step = 0; step < 20000 && !::testing::Test::HasFailure(); ++step) {
		const bool aligned = rng() % 2 == 0;
		const uint64_t npages = rng() % 3 == 0 ? 1 + rng() % 8 : 1;
		const uint64_t align = aligned ? std::bit_ceil(npages) : 1;
		if (live.size() < 100 || rng() % 2 == 0) {
			const uint64_t pfn = t.allocate(npages, align);
			live.push_back(pfn);
			const bool top = npages == 1 && align == 1;
			top_asked += top;
			top_proven += ask(npages, align, pfn) && top;
			ask(npages, align, pfn + 1);
			if (pfn > 0) ask(npages, align, pfn - 1);
		} else if (rng() % 4 == 0) {
			t.erase(live.back()); // often the undo of the carve just before
			live.pop_back();
		} else {
			const size_t v = rng() % live.size();
			t.erase(live[v]);
			live[v] = live.back();
			live.pop_back();
		}
		for (const Question &q : recent) ask_once(q.npages, q.align, q.pfn);
		ask(npages, align, rng() % (tree.max_pfn() + 1));
	}
	EXPECT_GT(proven, asked / 10) << "proven " << proven << " of " << asked;
	EXPECT_GT(top_proven, top_asked * 9 / 10) << "proven " << top_proven << " of " << top_asked;
}

TEST(GapTreeNearAlloc, PendingShrinkStaysExact)
{
	NearFitTree t(20000, 1, 2);
	GapTree &tree = t.tree;
	const uint64_t max_pfn = tree.max_pfn(), slack_pages = t.slack_hi + 1;
	ASSERT_EQ(tree.find_gap(slack_pages, 1, 0, max_pfn), std::optional<uint64_t>(0));
	for (int round = 0; round < 3; ++round) {
		const uint64_t pfn =
		        t.allocate(2, 2); // cuts the top off the slack: the largest hole
		EXPECT_EQ(pfn, t.slack_hi - 1);
		// The path still says slack_pages; the search enters, finds less, and says so.
		EXPECT_FALSE(tree.find_gap(slack_pages, 1, 0, max_pfn).has_value());
		EXPECT_EQ(tree.find_gap(slack_pages - 2, 1, 0, max_pfn),
		          std::optional<uint64_t>(0));
		t.erase(pfn); // undoes the carve
		EXPECT_EQ(tree.find_gap(slack_pages, 1, 0, max_pfn), std::optional<uint64_t>(0));
	}
	// Two carves, then their frees in the other order: nothing is undone
	// exactly, so each step recomputes, and verify() sees exact annotations.
	const uint64_t a = t.allocate(2, 2), b = t.allocate(2, 2);
	EXPECT_EQ(b, a - 2);
	t.erase(a);
	// [0, b - 1] FREE, b ALLOCATED, a FREE again, between b and the holes.
	EXPECT_EQ(tree.find_gap(slack_pages - 4, 1, 0, max_pfn), std::optional<uint64_t>(0));
	EXPECT_FALSE(tree.find_gap(slack_pages - 3, 1, 0, max_pfn).has_value());
	t.erase(b);
	EXPECT_EQ(tree.find_gap(slack_pages, 1, 0, max_pfn), std::optional<uint64_t>(0));
}

// block_order1 through the tree: every FREE segment [lo, hi] of a small
// region, under an inner node (200 pages carved above it make the tree two
// levels deep), against the aligned blocks found by brute force; verify()
// recomputes every annotation its own way.
TEST(GapTreeAlignedSearch, AlignedFitMatchesBruteForceOnEverySegment)
{
	NodePool pool;
	const uint64_t region_hi = 70, max_pfn = 1000;
	for (uint64_t lo = 1; lo < region_hi; ++lo) {
		for (uint64_t hi = lo; hi < region_hi; ++hi) {
			if (pool.free_nodes() < 64) pool.splice(pool.alloc_chain(64));
			GapTree tree(pool);
			ASSERT_EQ(tree.init(max_pfn), 0);
			ASSERT_EQ(tree.carve(0, lo - 1, Tag::kAllocated), 0);
			ASSERT_EQ(tree.carve(hi + 1, region_hi + 99, Tag::kAllocated), 0);
			for (uint64_t pfn = region_hi + 100; pfn < region_hi + 500; pfn += 2)
				ASSERT_EQ(tree.carve(pfn, pfn, Tag::kAllocated), 0);
			ASSERT_GE(tree.height(), 2u);
			for (uint64_t k = 0; k < 7; ++k) {
				const uint64_t size = 1ULL << k;
				std::optional<uint64_t> want;
				for (uint64_t p = hi + 1; p-- > lo;)
					if (p % size == 0 && p + size - 1 <= hi) {
						want = p;
						break;
					}
				EXPECT_EQ(tree.find_gap(size, size, 0, region_hi + 99), want)
				        << "[" << lo << ", " << hi << "] 2^" << k;
			}
			const char *why = "";
			ASSERT_TRUE(tree.verify(nullptr, &why)) << why;
		}
	}
}

} // namespace

// ---------------------------------------------------------------------------
// Path hints (path_hints.h): a descent records the bottom three nodes of its
// path for its pfn's buckets and prefetches the recorded ones before it
// starts. A hint is only a prefetch, so what matters is that the hints are
// right after a descent, that stale ones change no answer, and that small
// trees leave the tables alone.

// What the tables record: nodes are 256-byte aligned (a slot keeps 32 bits of
// the address above that).
struct alignas(256) FakeNode {
	char bytes[256];
};

TEST(GapTreePathHints, TablesFollowTheSpaceUpToTheirCap)
{
	PathHints small;
	ASSERT_TRUE(small.init(1000)); // leaf buckets 0..62, parents 0..7, grandparents 0
	EXPECT_EQ(small.slots(0), 64u);
	EXPECT_EQ(small.slots(1), 8u);
	EXPECT_EQ(small.slots(2), 1u);
	PathHints huge;
	ASSERT_TRUE(huge.init(UINT64_MAX >> 12));
	FakeNode a, b, c;
	for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
		EXPECT_EQ(huge.slots(up), PathHints::kMaxSlots) << up;
		EXPECT_EQ(huge.get(up, 4096), nullptr) << up;
	}
	huge.set(0, 4096, &a);
	huge.set(1, 4096, &b);
	huge.set(2, 4096, &c);
	EXPECT_EQ(huge.get(0, 4096 + 15), &a); // same bucket of 16
	EXPECT_EQ(huge.get(0, 4096 + 16), nullptr);
	EXPECT_EQ(huge.get(1, 4096 + 127), &b); // same bucket of 128
	EXPECT_EQ(huge.get(1, 4096 + 128), nullptr);
	EXPECT_EQ(huge.get(2, 4096 + 1023), &c); // same bucket of 1024
	EXPECT_EQ(huge.get(2, 4096 + 1024), nullptr);
	// Buckets kMaxSlots apart share a slot: the later one wins.
	huge.set(0, 4096 + (PathHints::kMaxSlots << PathHints::kBucketShift[0]), &b);
	EXPECT_EQ(huge.get(0, 4096), &b);
	EXPECT_EQ(huge.get(1, 4096), &b) << "the levels do not share slots";
	// Without a mapping each level's pfns share one slot, and it still works.
	PathHints none;
	for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
		EXPECT_EQ(none.slots(up), 1u);
		none.set(up, 0, &a);
		EXPECT_EQ(none.get(up, 123456789), &a);
	}
	EXPECT_EQ(none.resident_bytes(), 0u);
}

// A slot keeps 32 bits of a node's address: the bits above are the window's,
// set by the first node recorded, and a node outside it gets no hint (a hint
// that pointed elsewhere would be a wasted prefetch, not a wrong answer, but
// none is cheaper).
TEST(GapTreePathHints, ANodeOutsideTheFirstNodesWindowGetsNoHint)
{
	PathHints h;
	ASSERT_TRUE(h.init(1 << 20));
	FakeNode here;
	const auto addr = reinterpret_cast<uint64_t>(&here);
	// The same offset in the next 1 TiB window, and one just inside this one.
	auto *elsewhere = reinterpret_cast<void *>(addr ^ (uint64_t{1} << PathHints::kWindowShift));
	auto *near =
	        reinterpret_cast<void *>(addr ^ (uint64_t{1} << (PathHints::kWindowShift - 1)));
	h.set(0, 0, &here);
	h.set(0, 16, elsewhere);
	h.set(0, 32, near);
	EXPECT_EQ(h.get(0, 0), &here);
	EXPECT_EQ(h.get(0, 16), nullptr);
	EXPECT_EQ(h.get(0, 32), near);
	// The window is the first node's, whatever comes later.
	PathHints g;
	ASSERT_TRUE(g.init(1 << 20));
	g.set(1, 0, elsewhere);
	g.set(1, 128, &here);
	EXPECT_EQ(g.get(1, 0), elsewhere);
	EXPECT_EQ(g.get(1, 128), nullptr);
}

TEST(GapTreePathHints, OnlyTouchedPagesAreResidentAndDropGivesThemBack)
{
	PathHints h;
	ASSERT_TRUE(h.init(UINT64_MAX >> 12)); // 3 x 8 MiB of address space
	EXPECT_EQ(h.resident_bytes(), 0u);
	FakeNode a;
	const uint64_t far = uint64_t{1} << 24; // leaf slot 2^20: another page
	for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
		h.set(up, 0, &a);
		h.set(up, far, &a);
	}
	// Leaves: two pages; parents: slots 0 and 2^17, two pages; grandparents:
	// slots 0 and 2^14, two pages.
	EXPECT_EQ(h.resident_bytes(), 6 * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
	h.drop();
	EXPECT_EQ(h.resident_bytes(), 0u);
	for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
		EXPECT_EQ(h.get(up, 0), nullptr) << up;
		EXPECT_EQ(h.get(up, far), nullptr) << up;
	}
}

TEST(GapTreePathHints, SmallTreesDoNotUseThem)
{
	Harness h;
	grow_ascending_until(h, 1, GapTree::kHintMinHeight - 1);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	for (uint64_t pfn = 0; pfn < 64; ++pfn) {
		EXPECT_EQ(h.tree().lookup(pfn).pfn_lo, pfn);
		for (uint32_t up = 0; up < PathHints::kLevels; ++up)
			EXPECT_EQ(h.tree().path_hint(up, pfn), nullptr) << pfn << " " << up;
	}
}

TEST(GapTreePathHints, ADescentLeavesItsPathAsTheHints)
{
	Harness h;
	const uint64_t n = grow_ascending_until(h, 1, GapTree::kHintMinHeight);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	std::mt19937_64 rng(11);
	for (int i = 0; i < 4000; ++i) {
		const uint64_t pfn = rng() % (n + 64);
		const Segment got = h.tree().lookup(pfn), want = h.want_at(pfn);
		ASSERT_TRUE(got.pfn_lo == want.pfn_lo && got.pfn_hi == want.pfn_hi &&
		            got.tag == want.tag)
		        << pfn;
		for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
			const void *hint = h.tree().path_hint(up, pfn);
			ASSERT_NE(hint, nullptr) << pfn << " " << up;
			EXPECT_EQ(hint, h.tree().path_node(up, pfn)) << pfn << " " << up;
		}
		// Three different nodes, none of them the root.
		EXPECT_NE(h.tree().path_hint(0, pfn), h.tree().path_hint(1, pfn));
		EXPECT_NE(h.tree().path_hint(1, pfn), h.tree().path_hint(2, pfn));
		EXPECT_NE(h.tree().path_hint(2, pfn),
		          h.tree().path_node(h.tree().height() - 1, pfn));
	}
}

TEST(GapTreePathHints, StaleHintsChangeNoAnswer)
{
	Harness h;
	const uint64_t n = grow_ascending_until(h, 1, GapTree::kHintMinHeight);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	for (uint64_t pfn = 0; pfn < n; ++pfn) (void)h.tree().lookup(pfn);
	// Frees merge leaves and carves split them: segments move to other nodes,
	// and nodes are freed and taken again, while the hints stay as they were.
	for (uint64_t pfn = 0; pfn < n; pfn += 3) h.erase(pfn);
	for (uint64_t pfn = 0; pfn < n / 2; pfn += 3) h.carve(pfn, pfn, Tag::kReserved);
	ASSERT_FALSE(::testing::Test::HasFatalFailure());
	uint64_t stale[PathHints::kLevels] = {};
	for (uint64_t pfn = 0; pfn < n; ++pfn) {
		const void *hint[PathHints::kLevels];
		for (uint32_t up = 0; up < PathHints::kLevels; ++up)
			hint[up] = h.tree().path_hint(up, pfn);
		const Segment got = h.tree().lookup(pfn), want = h.want_at(pfn);
		ASSERT_TRUE(got.pfn_lo == want.pfn_lo && got.pfn_hi == want.pfn_hi &&
		            got.tag == want.tag)
		        << pfn;
		for (uint32_t up = 0; up < PathHints::kLevels; ++up) {
			const void *node = h.tree().path_node(up, pfn);
			stale[up] += hint[up] != node;
			EXPECT_EQ(h.tree().path_hint(up, pfn), node) << pfn << " " << up;
		}
	}
	// The layout made some stale at each level, or this test tested nothing.
	for (uint32_t up = 0; up < PathHints::kLevels; ++up) EXPECT_GT(stale[up], 0u) << up;
}
