// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#include "gap_tree.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "hot_path.h"

namespace iovam::detail
{

struct GapTree::Leaf {
	uint8_t count;
	uint8_t unused[7];
	uint64_t tags;
	uint64_t pivot[kLeafSlots - 1];
};

struct GapTree::Inner {
	uint8_t count;
	uint8_t order1[kInnerSlots]; // Gap::order1 of each child
	uint8_t spare[13];
	uint64_t pivot[kInnerSlots - 1];
	uint64_t max_gap[kInnerSlots]; // Gap::len of each child
	void *child[kInnerSlots];
};

static_assert(sizeof(GapTree::Leaf) == NodePool::kNodeBytes, "leaf is one pool node");
static_assert(sizeof(GapTree::Inner) == NodePool::kNodeBytes, "inner node is one pool node");
static_assert(offsetof(GapTree::Leaf, count) == 0 && offsetof(GapTree::Inner, count) == 0,
              "count first in both kinds: node_count() reads it without knowing the kind");
static_assert(offsetof(GapTree::Inner, pivot) == 24 && offsetof(GapTree::Inner, max_gap) == 96 &&
                      offsetof(GapTree::Inner, child) == 176,
              "inner layout as pictured in gap_tree.h");
static_assert(GapTree::kLeafSlots < 256 && GapTree::kInnerSlots < 256, "counts fit a byte");
static_assert(offsetof(GapTree::Inner, pivot) >= 8 &&
                      offsetof(GapTree::Inner, pivot) + 8 * GapTree::kInnerSlots <=
                              NodePool::kNodeBytes,
              "child_bounds() reads a word on either side of the pivots, inside the node");
static_assert(2 * GapTree::kLeafSlots <= 64, "two tag bits per segment fit one u64");
static_assert(NodePool::kNodeBytes % NodePool::kNodeAlign == 0, "nodes tile cache lines");
static_assert(NodePool::kNodeBytes == size_t{1} << PathHints::kNodeShift,
              "slab nodes are aligned to their size: a hint slot drops no address bit");

namespace
{
constexpr uint32_t kRunMax = GapTree::kLeafSlots + 2; // a leaf plus two new segments
}

// A run of segments with explicit upper bounds: a leaf unpacked for a split or
// a merge, or the up-to-three segments that replace one.
struct GapTree::Run {
	uint64_t hi[kRunMax];
	Tag tag[kRunMax];
	uint32_t n = 0;
	void push(uint64_t h, Tag t)
	{
		hi[n] = h;
		tag[n] = t;
		++n;
	}
};

// Nodes reserved from the pool before a mutation starts, so that a mutation
// either has every node it needs or does not begin.
struct GapTree::Stash {
	void *node[2 * kMaxHeight + 4];
	uint32_t n = 0;
};

namespace
{

using Leaf = GapTree::Leaf;

inline Tag tag_at(const Leaf *l, uint32_t i)
{
	return static_cast<Tag>((l->tags >> (2 * i)) & 3);
}

inline void set_tag(Leaf *l, uint32_t i, Tag t)
{
	l->tags = (l->tags & ~(3ULL << (2 * i))) | (static_cast<uint64_t>(t) << (2 * i));
}

// One bit per FREE segment (tag 00), at bit 2i: the segments a gap scan visits.
inline uint64_t free_mask(const Leaf *l)
{
	const uint64_t used = l->tags | (l->tags >> 1);
	const uint64_t live = l->count == 32 ? ~0ULL : (1ULL << (2 * l->count)) - 1;
	return ~used & live & 0x5555555555555555ULL;
}

inline uint64_t remove_tag(uint64_t tags, uint32_t i)
{
	uint64_t low = tags & ((1ULL << (2 * i)) - 1);
	uint64_t high = (tags >> (2 * i + 2)) << (2 * i);
	return low | high;
}

inline uint64_t seg_lo(const Leaf *l, uint32_t i, uint64_t min)
{
	return i == 0 ? min : l->pivot[i - 1] + 1;
}

inline uint64_t seg_hi(const Leaf *l, uint32_t i, uint64_t max)
{
	return i + 1 == l->count ? max : l->pivot[i];
}

// Move n pivots of a leaf from src to dst (overlapping, either way), 8 bytes
// at a time. Why not memmove: its 16- and 32-byte loads read pivots that this
// operation or the one before it stored 8 bytes at a time, and a load that
// spans several stores still in the store buffer cannot take its data from
// them: it waits until they are written to the cache. A 1-page alloc+free
// pair that splits and merges a FREE segment (half the pages live) took 72
// ns with memmove and 54 with this loop (AMD EPYC under KVM, built -fPIC);
// the pair that only retags (90 % live) took 52 both ways. The empty asm
// hides the value, so that GCC neither turns the loop back into a memmove
// call nor vectorizes it. Cost: n loads and n stores, at most 30.
inline void move_pivots(uint64_t *dst, const uint64_t *src, uint32_t n)
{
	if (dst > src) {
		for (uint32_t k = n; k-- > 0;) {
			uint64_t v = src[k];
			__asm__("" : "+r"(v));
			dst[k] = v;
		}
	} else {
		for (uint32_t k = 0; k < n; ++k) {
			uint64_t v = src[k];
			__asm__("" : "+r"(v));
			dst[k] = v;
		}
	}
}

// 1 + the order of the largest naturally aligned power-of-two block inside
// [lo, hi]. With 2^j <= len < 2^(j+1) the answer is j or j - 1: any run of
// 2^j pages holds an aligned block of 2^(j-1), so one test decides.
inline uint8_t block_order1(uint64_t lo, uint64_t hi)
{
	const uint64_t len = hi - lo + 1;
	const int j = 63 - std::countl_zero(len);
	const uint64_t size = 1ULL << j;
	const uint64_t start = (lo + size - 1) & ~(size - 1); // no overflow: lo < 2^63
	return static_cast<uint8_t>(start <= hi - (size - 1) ? j + 1 : j);
}

// The four cache lines of a node, requested together: a descent that misses
// the cache waits for one node instead of for each line its search touches.
[[gnu::always_inline]] inline void prefetch_node(const void *node) // see prefetch_live()
{
	const char *c = static_cast<const char *>(node);
	__builtin_prefetch(c);
	__builtin_prefetch(c + 64);
	__builtin_prefetch(c + 128);
	__builtin_prefetch(c + 192);
}

// Index of the entry whose range holds pfn: the first pivot >= pfn, or the
// last. A binary search without branches on the data (the compiler turns
// the select into a conditional move): random pfns mispredict a branchy
// search at every step, about as costly as the search itself.
inline uint32_t pivot_index(const uint64_t *pivot, uint32_t count, uint64_t pfn)
{
	uint32_t n = count - 1; // pivots: the last entry has none
	if (n == 0) return 0;
	// The answer stays in [base, base + n]; each step halves n.
	const uint64_t *base = pivot;
	while (n > 1) {
		const uint32_t half = n / 2;
		base = base[half] < pfn ? base + half : base;
		n -= half;
	}
	return static_cast<uint32_t>(base - pivot) + (*base < pfn);
}

// An inner node's unused pivots hold kNoPivot (seal_pivots()), above every
// pfn, so the child holding pfn is the count of pivots below it: nine compares
// with carry, no loop, no dependency from one to the next, and the node's
// count is not read. (The binary search took about twice the instructions and
// four dependent loads; a descent at 1M ranges makes six of these.)
constexpr uint64_t kNoPivot = UINT64_MAX;

inline uint32_t inner_index(const uint64_t *pivot, uint64_t pfn)
{
	uint32_t i = 0;
#pragma GCC unroll 16
	for (uint32_t k = 0; k < GapTree::kInnerSlots - 1; ++k) i += pivot[k] < pfn;
	return i;
}

// Inner node in's child i covers [*min, *max] of its parent's range (given in
// *min and *max): pivot[i - 1] + 1 unless i is 0, to pivot[i] unless i is the
// last. Without a branch on i: a random descent takes the first or the last
// child at one level in four, and the two branches GCC made of the ifs
// mispredicted there. So both neighbour words are read whatever i is, at
// byte offsets inside the node: for i == 0 the word before pivot[0] (order1
// and spare bytes), for i == 9 the one after pivot[8] (max_gap[0]); the masks
// drop them. Cost: two loads, two compares, six logic operations.
[[gnu::always_inline]] inline void child_bounds(const GapTree::Inner *in, uint32_t i, uint64_t *min,
                                                uint64_t *max)
{
	const char *base = reinterpret_cast<const char *>(in) + offsetof(GapTree::Inner, pivot);
	uint64_t below, at;
	std::memcpy(&below, base + 8 * (static_cast<ptrdiff_t>(i) - 1), sizeof(below));
	std::memcpy(&at, base + 8 * static_cast<ptrdiff_t>(i), sizeof(at));
	const uint64_t has_below = 0 - static_cast<uint64_t>(i > 0);
	const uint64_t has_at = 0 - static_cast<uint64_t>(i + 1 < in->count);
	*min = (*min & ~has_below) | ((below + 1) & has_below);
	*max = (*max & ~has_at) | (at & has_at);
}

} // namespace

// ---------------------------------------------------------------------------
// Small node helpers

GapTree::Gap GapTree::leaf_gap(const Leaf *l, uint64_t min, uint64_t max, Gap enough) noexcept
{
	Gap best;
	for (uint64_t free_bits = free_mask(l); free_bits != 0; free_bits &= free_bits - 1) {
		const uint32_t i = static_cast<uint32_t>(std::countr_zero(free_bits)) / 2;
		const uint64_t lo = seg_lo(l, i, min), hi = seg_hi(l, i, max);
		const uint64_t len = hi - lo + 1;
		if (len <= best.len && 64 - std::countl_zero(len) <= best.order1)
			continue; // no better
		best.len = std::max(best.len, len);
		best.order1 = std::max(best.order1, block_order1(lo, hi));
		if (best.len >= enough.len && best.order1 >= enough.order1)
			break; // nothing more to find
	}
	return best;
}

GapTree::Gap GapTree::inner_gap(const Inner *in) noexcept
{
	Gap best;
	for (uint32_t i = 0; i < in->count; ++i) best = best.join(child_gap(in, i));
	return best;
}

GapTree::Gap GapTree::child_gap(const Inner *in, uint32_t i) noexcept
{
	return Gap{in->max_gap[i], in->order1[i]};
}

void GapTree::set_child_gap(Inner *in, uint32_t i, Gap g) noexcept
{
	in->max_gap[i] = g.len;
	in->order1[i] = g.order1;
}

// After an inner node's count changed: its unused pivots back to kNoPivot
// (inner_index() counts every pivot).
void GapTree::seal_pivots(Inner *in) noexcept
{
	for (uint32_t j = in->count > 0 ? in->count - 1u : 0; j < kInnerSlots - 1; ++j)
		in->pivot[j] = kNoPivot;
}

GapTree::Gap GapTree::node_gap(const void *node, uint32_t level, uint64_t min,
                               uint64_t max) const noexcept
{
	if (level + 1 == height_) return leaf_gap(static_cast<const Leaf *>(node), min, max);
	return inner_gap(static_cast<const Inner *>(node));
}

uint32_t GapTree::node_count(const void *node) noexcept
{
	// count is the first byte of both kinds.
	return *static_cast<const uint8_t *>(node);
}

Segment GapTree::leaf_segment(const void *leaf, uint32_t i, uint64_t min, uint64_t max) noexcept
{
	auto *l = static_cast<const Leaf *>(leaf);
	return Segment{seg_lo(l, i, min), seg_hi(l, i, max), tag_at(l, i)};
}

// With branches, unlike descend()'s child_bounds(): search() tries a node's
// children from the top down and a highest fit lies mostly in the top one,
// so these predict well, and the masked form's extra work costs more. Built
// on child_bounds() (four alternated rounds against 1358212, 2026-11-28),
// PairLimit32 went from 51.8 to 61.1 ns at 1K live and 69.6 to 80.4 at 1M,
// the 1-page churn from 178 to 191 at 1K; descents and finds did not change.
const void *GapTree::inner_child(const void *inner, uint32_t i, uint64_t min, uint64_t max,
                                 uint64_t *cmin, uint64_t *cmax) noexcept
{
	auto *in = static_cast<const Inner *>(inner);
	*cmin = i == 0 ? min : in->pivot[i - 1] + 1;
	*cmax = i + 1 == in->count ? max : in->pivot[i];
	return in->child[i];
}

void GapTree::free_node(void *node) noexcept
{
	pool_.put(node);
	--nodes_;
	++shape_;
}

void *GapTree::take_node(Stash &st) noexcept
{
	assert(st.n > 0 && "node need was under-estimated");
	++nodes_;
	++shape_;
	void *node = st.node[--st.n];
	std::memset(node, 0, NodePool::kNodeBytes);
	return node;
}

int GapTree::take_stash(Stash &st, uint32_t n) noexcept
{
	while (st.n < n) {
		void *node = pool_.take();
		if (node == nullptr) {
			return_stash(st);
			return -EAGAIN;
		}
		st.node[st.n++] = node;
	}
	return 0;
}

void GapTree::return_stash(Stash &st) noexcept
{
	while (st.n > 0) pool_.put(st.node[--st.n]);
}

// ---------------------------------------------------------------------------
// Life cycle

GapTree::~GapTree()
{
	if (root_ == nullptr) return;
	// Free bottom-up without recursion limits: the tree is at most kMaxHeight deep.
	struct Frame {
		void *node;
		uint32_t level;
		uint32_t next;
	} stack[kMaxHeight];
	uint32_t sp = 0;
	stack[sp++] = {root_, 0, 0};
	while (sp > 0) {
		Frame &f = stack[sp - 1];
		if (f.level + 1 < height_ && f.next < node_count(f.node)) {
			void *child = static_cast<Inner *>(f.node)->child[f.next++];
			stack[sp++] = {child, f.level + 1, 0};
			continue;
		}
		free_node(f.node);
		--sp;
	}
	root_ = nullptr;
}

int GapTree::init(uint64_t max_pfn) noexcept
{
	assert(root_ == nullptr && max_pfn < kNoFit);
	Stash st;
	if (take_stash(st, 1) != 0) return -ENOMEM;
	auto *l = static_cast<Leaf *>(take_node(st));
	l->count = 1;
	l->tags = static_cast<uint64_t>(Tag::kFree);
	root_ = l;
	height_ = 1;
	max_pfn_ = max_pfn;
	(void)hints_.init(max_pfn); // without its mapping it still works, see path_hints.h
	return 0;
}

// ---------------------------------------------------------------------------
// Descent and gap maintenance

// The bottom three nodes of pfn's last path (path_hints.h), each whole.
[[gnu::always_inline]] inline void GapTree::prefetch_hinted(uint64_t pfn) const noexcept
{
	// The grandparent first: a descent needs it first. Written out, not a
	// loop, so that tests/codegen/check_prefetch.sh can count them.
	static_assert(PathHints::kLevels == 3);
	if (const void *grandparent = hints_.get(2, pfn)) prefetch_node(grandparent);
	if (const void *parent = hints_.get(1, pfn)) prefetch_node(parent);
	if (const void *leaf = hints_.get(0, pfn)) prefetch_node(leaf);
}

// Cost: three 4-byte loads (their lines asked for by prefetch_hints()) and
// up to twelve prefetches.
void GapTree::prefetch_path(uint64_t pfn) const noexcept
{
	if (height_ >= kHintMinHeight) prefetch_hinted(pfn);
}

// At kHintMinHeight and up the bottom three nodes of pfn's last path are
// requested before the root is read (path_hints.h): at 1M ranges a random
// descent then waits for its two bottom inner levels and its leaf together,
// not one after the other. Cost: a compare, three loads, up to twelve
// prefetches and three stores.
IOVAM_HOT void GapTree::descend(uint64_t pfn, Path &p) const noexcept
{
	const bool hinted = height_ >= kHintMinHeight;
	if (hinted) prefetch_hinted(pfn);
	void *node = root_;
	uint64_t min = 0, max = max_pfn_;
	p.n = height_;
	for (uint32_t l = 0; l + 1 < height_; ++l) {
		auto *in = static_cast<Inner *>(node);
		uint32_t i = inner_index(in->pivot, pfn);
		p.s[l] = Step{node, i, min, max};
		child_bounds(in, i, &min, &max);
		node = in->child[i];
		prefetch_node(node);
	}
	auto *leaf = static_cast<Leaf *>(node);
	p.s[height_ - 1] = Step{node, pivot_index(leaf->pivot, leaf->count, pfn), min, max};
	if (hinted) {
		for (uint32_t up = 0; up < PathHints::kLevels; ++up)
			hints_.set(up, pfn, p.s[height_ - 1 - up].node);
	}
}

const void *GapTree::path_node(uint32_t up, uint64_t pfn) const noexcept
{
	assert(pfn <= max_pfn_ && up < height_);
	Path p;
	descend(pfn, p);
	return p.s[p.n - 1 - up].node;
}

// The node at from_level changed; recompute its largest gap and carry it up.
void GapTree::fix_gaps(Path &p, uint32_t from_level, bool stop_early) noexcept
{
	const Step &s = p.s[from_level];
	carry_gap(p, from_level, node_gap(s.node, from_level, s.min, s.max), stop_early, true);
}

// The node at `level` on p now has largest gap g: store it in its parent and
// carry the parent's up, stopping where an annotation is already right.
// may_grow: g may exceed the annotation it replaces. A grown annotation off
// another finger's path may hold what that finger's search passed over as
// holding no fit; a shrunk one still holds none.
void GapTree::carry_gap(Path &p, uint32_t level, Gap g, bool stop_early, bool may_grow) noexcept
{
	if (may_grow) note_growth(&p);
	for (uint32_t l = level; l-- > 0;) {
		auto *in = static_cast<Inner *>(p.s[l].node);
		if (stop_early && child_gap(in, p.s[l].idx) == g) return; // nothing above changes
		set_child_gap(in, p.s[l].idx, g);
		g = inner_gap(in);
	}
}

// After structural changes above a leaf: recompute the whole path to pfn.
void GapTree::fix_gaps_at(uint64_t pfn) noexcept
{
	Path p;
	descend(pfn, p);
	fix_gaps(p, height_ - 1, false);
}

// A FREE segment grew by merging its FREE neighbours: it contains each of
// them, so its length and block order bound theirs, and the node's gap is the
// old one joined with it.
[[gnu::always_inline]] inline void GapTree::gap_grew(Path &p, uint64_t lo, uint64_t hi) noexcept
{
	const Gap grown{hi - lo + 1, block_order1(lo, hi)};
	// Only erase_if() grows a gap, on the active finger: what its search
	// passed over is unchanged, but the other fingers' may have grown.
	assert(&p == &cur().path);
	for (uint32_t l = p.n - 1; l-- > 0;) {
		auto *in = static_cast<Inner *>(p.s[l].node);
		const Gap old = child_gap(in, p.s[l].idx);
		const Gap now = old.join(grown);
		if (now == old) return;
		if (l == p.n - 2) note_growth(&p); // the first change
		set_child_gap(in, p.s[l].idx, now);
	}
}

[[gnu::always_inline]] inline void GapTree::gap_shrank(Path &p, uint64_t old_lo,
                                                       uint64_t old_hi) noexcept
{
	if (p.n < 2) return;
	auto *parent = static_cast<Inner *>(p.s[p.n - 2].node);
	const Gap was = child_gap(parent, p.s[p.n - 2].idx);
	// Not the leaf's largest hole nor its best aligned block: nothing changes.
	// (A shorter hole can hold the larger aligned block, so test both.)
	if (was.len > old_hi - old_lo + 1 && was.order1 > block_order1(old_lo, old_hi)) return;
	if (&p == &cur().path && cur().shape == shape_) {
		// A carve by allocate() is often undone by the next free (a mapping's
		// life): leave the over-estimate until then, see settle().
		assert(pending_leaf_ == nullptr && "every mutation settles first");
		pending_leaf_ = p.leaf().node;
		pending_lo_ = old_lo;
		pending_hi_ = old_hi;
		return;
	}
	// The leaf's gap can only have shrunk: stop scanning once the old one is
	// matched (in a fragmented space the next 1-page hole ends the scan).
	const Step &s = p.s[p.n - 1];
	carry_gap(p, p.n - 1, leaf_gap(static_cast<Leaf *>(s.node), s.min, s.max, was), true,
	          false);
}

// The pending shrink's leaf gap, computed and carried up the finger's path
// (which still leads to it: the finger does not move, and no node changes
// shape, before a settle). Every operation but a free in the same leaf calls
// this first, so at most one leaf is pending and only its path over-estimates;
// a search that trusts the over-estimate enters that subtree, finds no fit
// and backtracks: still exact.
void GapTree::settle_slow(bool may_grow) noexcept
{
	Finger &f = cur();
	assert(f.shape == shape_ && f.path.leaf().node == pending_leaf_);
	const Step &s = f.path.leaf();
	pending_leaf_ = nullptr;
	carry_gap(f.path, f.path.n - 1, leaf_gap(static_cast<Leaf *>(s.node), s.min, s.max), true,
	          may_grow);
}

// Nodes a leaf needs to grow by `extra` segments: one per split on the way up,
// plus a new root if the root splits.
uint32_t GapTree::nodes_for_growth(const Path &p, uint32_t extra) const noexcept
{
	if (node_count(p.s[p.n - 1].node) + extra <= kLeafSlots) return 0;
	uint32_t need = 1;
	for (uint32_t l = p.n - 1; l-- > 0;) {
		if (node_count(p.s[l].node) < kInnerSlots) return need;
		++need;
	}
	return need + 1;
}

// ---------------------------------------------------------------------------
// Queries

Segment GapTree::lookup(uint64_t pfn) const noexcept
{
	assert(pfn <= max_pfn_);
	Path p;
	descend(pfn, p);
	const Step &s = p.s[p.n - 1];
	return leaf_segment(s.node, s.idx, s.min, s.max);
}

IOVAM_HOT Segment GapTree::lookup_near(uint64_t pfn) noexcept
{
	assert(pfn <= max_pfn_);
	const Step &s = finger_at(pfn).leaf();
	return leaf_segment(s.node, s.idx, s.min, s.max);
}

std::optional<uint64_t> GapTree::find_gap(uint64_t npages, uint64_t align, uint64_t lo_pfn,
                                          uint64_t hi_pfn) const noexcept
{
	return find_gap(npages, align, lo_pfn, hi_pfn, nullptr);
}

std::optional<uint64_t> GapTree::find_gap(uint64_t npages, uint64_t align, uint64_t lo_pfn,
                                          uint64_t hi_pfn, Path *path) const noexcept
{
	assert(npages > 0 && align > 0 && (align & (align - 1)) == 0);
	hi_pfn = std::min(hi_pfn, max_pfn_);
	if (hi_pfn < lo_pfn || hi_pfn - lo_pfn < npages - 1) return std::nullopt;
	return search(npages, align, lo_pfn, hi_pfn, path, nullptr);
}

// The order a FREE block must have for a subtree to be worth entering, plus
// one (Gap::order1's scale). Any fit [p, p + npages - 1] with p aligned
// contains an aligned block of 2^floor(log2 npages) pages at p when
// npages <= align; any run of npages pages contains one of
// 2^(floor(log2(npages + 1)) - 1). Unaligned requests need no order: the
// length test is exact for them.
uint8_t GapTree::needed_order1(uint64_t npages, uint64_t align) noexcept
{
	if (align == 1) return 0;
	const int floor_log2 = 63 - std::countl_zero(npages);
	if (npages <= align) return static_cast<uint8_t>(floor_log2 + 1);
	return static_cast<uint8_t>(63 - std::countl_zero(npages + 1));
}

// The highest fit for r inside [lo, hi]: the test of one FREE segment, for
// leaf_fit() and for the segments frees made (proof_state(), alloc_fresh()).
[[gnu::always_inline]] inline uint64_t GapTree::span_fit(uint64_t lo, uint64_t hi,
                                                         const Request &r) noexcept
{
	const uint64_t a = std::max(lo, r.lo_pfn), b = std::min(hi, r.hi_pfn);
	if (b < a || b - a < r.npages - 1) return kNoFit;
	const uint64_t pfn = (b - r.npages + 1) & ~(r.align - 1);
	if (pfn < a) return kNoFit;
	return pfn;
}

// The highest fit in leaf l (range [min, max]) among its segments 0..top:
// FREE segments highest first, one bit each in the scan mask. *idx is the
// segment that holds it.
// Inlined into its two callers: the call itself (nine arguments) cost a third
// of a one-step scan.
[[gnu::always_inline]] inline uint64_t GapTree::leaf_fit(const Leaf *l, uint64_t min, uint64_t max,
                                                         uint32_t top, uint64_t npages,
                                                         uint64_t align, uint64_t lo_pfn,
                                                         uint64_t hi_pfn, uint32_t *idx) noexcept
{
	const Request r{npages, align, lo_pfn, hi_pfn};
	const uint64_t lowest_end = lo_pfn + npages - 1; // a fit must end at or above this
	uint64_t free_bits = free_mask(l) & (~0ULL >> (63 - 2 * top));
	while (free_bits != 0) {
		const uint32_t i = static_cast<uint32_t>(63 - std::countl_zero(free_bits)) / 2;
		free_bits &= ~(3ULL << (2 * i));
		const uint64_t hi = seg_hi(l, i, max);
		if (hi < lowest_end) break;
		if (const uint64_t pfn = span_fit(seg_lo(l, i, min), hi, r); pfn != kNoFit) {
			*idx = i;
			return pfn;
		}
	}
	return kNoFit;
}

// Top-down, right to left: the first fit found is the highest. A child is
// entered only if its largest hole could hold npages and, for an aligned
// request, its largest aligned FREE block is of the needed order. For a
// power-of-two npages aligned to itself (the DMA API's size-aligned requests)
// that order test is exact: a block of order log2(npages) IS a fit. So the
// only children entered and found wanting are those cut by hi_pfn or lo_pfn
// (one per level each): O(height x fanout), at any fragmentation. For other
// (npages, align) a child whose best block is smaller than both npages and
// align rounded up may be entered and left: see find_gap() in gap_tree.h.
// Iterative: the path doubles as the backtracking stack.
std::optional<uint64_t> GapTree::search(uint64_t npages, uint64_t align, uint64_t lo_pfn,
                                        uint64_t hi_pfn, Path *path, Gap *right) const noexcept
{
	// `beside`: the join of every subtree the search passed over on its way to
	// the answer (tried and found wanting, or rejected by its annotation). They
	// cover every pfn between the answer's leaf and hi_pfn: what allocate()
	// keeps to serve the next request from the same leaf (see alloc_near()).
	Gap beside;
	Path local;
	Path &p = path != nullptr ? *path : local;
	p.n = height_;
	const uint64_t lowest_end = lo_pfn + npages - 1; // a fit must end at or above this
	const uint8_t need_order1 = needed_order1(npages, align);
	const uint32_t leaf_level = height_ - 1;
	uint64_t visited = 1; // nodes entered, for tests of the bound above
	const void *node = root_;
	uint64_t min = 0, max = max_pfn_;
	uint32_t level = 0;
	uint32_t next; // the highest index still to try in `node`
	auto top_index = [&](const void *n, uint64_t nmax, bool leaf) -> uint32_t {
		uint32_t count = node_count(n);
		if (hi_pfn >= nmax) return count - 1;
		return leaf ? pivot_index(static_cast<const Leaf *>(n)->pivot, count, hi_pfn)
		            : inner_index(static_cast<const Inner *>(n)->pivot, hi_pfn);
	};
	next = top_index(node, max, level == leaf_level);
	for (;;) {
		bool found_child = false;
		if (level == leaf_level) {
			uint32_t i = 0;
			const uint64_t pfn = leaf_fit(static_cast<const Leaf *>(node), min, max,
			                              next, npages, align, lo_pfn, hi_pfn, &i);
			if (pfn != kNoFit) {
				p.s[level] = Step{const_cast<void *>(node), i, min, max};
				last_search_nodes_ = visited;
				if (right != nullptr) *right = beside;
				return pfn;
			}
		} else {
			auto *in = static_cast<const Inner *>(node);
			// The highest child at or below `next` with a large enough hole and
			// block (usually the first one tried). If it ends below lowest_end,
			// every lower one does too.
			uint32_t i = next + 1;
			while (i-- > 0 &&
			       ((in->max_gap[i] < npages) | (in->order1[i] < need_order1)))
				beside = beside.join(child_gap(in, i));
			if (i <= next) {
				uint64_t cmin, cmax;
				const void *child = inner_child(in, i, min, max, &cmin, &cmax);
				if (cmax >= lowest_end) {
					p.s[level] = Step{const_cast<void *>(node), i, min, max};
					prefetch_node(child);
					++visited;
					node = child;
					min = cmin;
					max = cmax;
					++level;
					next = top_index(node, max, level == leaf_level);
					found_child = true;
				}
			}
		}
		if (found_child) continue;
		// Nothing here: back up to the parent's next lower child.
		for (;;) {
			if (level == 0) {
				last_search_nodes_ = visited;
				return std::nullopt;
			}
			--level;
			const Step &s = p.s[level];
			beside = beside.join(child_gap(static_cast<const Inner *>(s.node), s.idx));
			if (s.idx > 0) {
				node = s.node;
				min = s.min;
				max = s.max;
				next = s.idx - 1;
				break;
			}
		}
	}
}

std::optional<Segment> GapTree::next_tagged(uint64_t pfn, Tag tag) const noexcept
{
	for (uint64_t at = pfn;;) {
		Path p;
		descend(at, p);
		const Step &s = p.s[p.n - 1];
		auto *l = static_cast<const Leaf *>(s.node);
		for (uint32_t i = s.idx; i < l->count; ++i)
			if (tag_at(l, i) == tag) return leaf_segment(l, i, s.min, s.max);
		if (s.max == max_pfn_) return std::nullopt;
		at = s.max + 1;
	}
}

// ---------------------------------------------------------------------------
// Growth: carving segments and splitting nodes

// The path of the last allocation or free, reused when the next one lands in
// the same leaf and no node has changed shape since (shape_ counts every
// change of an inner node, a root or a node's range): the free that follows
// an allocation nearby, the common pattern, skips its descent.
[[gnu::always_inline]] inline GapTree::Path &GapTree::finger_at(uint64_t pfn) noexcept
{
	Finger &f = cur();
	if (f.shape == shape_) { // else its path may be no path at all
		Step &s = f.path.leaf();
		if (pfn >= s.min && pfn <= s.max) {
			auto *l = static_cast<const Leaf *>(s.node);
			// The look-then-erase of a free asks twice for the same segment.
			if (s.idx >= l->count || pfn < seg_lo(l, s.idx, s.min) ||
			    pfn > seg_hi(l, s.idx, s.max))
				s.idx = pivot_index(l->pivot, l->count, pfn);
			return f.path;
		}
	}
	return finger_at_slow(pfn);
}

// The finger active before (the free of the first of two allocations of
// different sizes), or a descent into the lookup finger.
GapTree::Path &GapTree::finger_at_slow(uint64_t pfn) noexcept
{
	settle(); // the pending shrink is the active finger's, and that is about to change
	if (Finger &p = fingers_[prev_]; p.shape == shape_) { // else its path may be no path
		Step &s = p.path.leaf();
		if (pfn >= s.min && pfn <= s.max) {
			auto *l = static_cast<const Leaf *>(s.node);
			s.idx = pivot_index(l->pivot, l->count, pfn);
			activate(prev_);
			return p.path;
		}
	}
	Finger &f = fingers_[kLookupFinger];
	descend(pfn, f.path);
	f.shape = shape_;
	f.beside_shape = kNoShape; // known for the old path only
	activate(kLookupFinger);
	return f.path;
}

// The highest fit when it lies in the active finger's leaf, without a
// descent: the pattern of a free followed by an allocation nearby, of
// allocations that carve one hole from the top, and of a few sizes in turn
// (each has its finger). Exact: the leaf's own segments are scanned, and
// everything between the leaf and hi_pfn is known to hold no fit, because the
// finger's last search passed over it (beside_gap, which covers up to
// beside_hi_pfn) and no annotation off the finger's path has grown since
// (carry_gap() and gap_grew() through any other path, and every change of
// shape, forget it) -- or, for the very request that search was for, because
// it found none there and no erase has made FREE space since (freed_): the
// way a size whose annotations cannot rule out the holes it entered (3 pages
// aligned to 4) is served from its leaf too. First of all, the finger's last
// answer is taken again when it is FREE again and no fit was made since.
// kNoFit: not known here; the caller searches from the root.
// Inlined into allocate(), its only caller (like leaf_fit(): the call's own cost
// was a sixth of the function's).
[[gnu::always_inline]] inline uint64_t GapTree::alloc_near(const Request &r, Proof *proof) noexcept
{
	const uint64_t npages = r.npages, align = r.align, lo_pfn = r.lo_pfn, hi_pfn = r.hi_pfn;
	Finger &f = cur();
	if (f.shape != shape_) return kNoFit;
	Step &s = f.path.leaf();
	auto *l = static_cast<const Leaf *>(s.node);
	// The finger's last answer, FREE again (its range freed: a pair), with no
	// fit made since: still the highest fit for the same request. An erase
	// leaves the leaf index on the FREE segment it made, so one segment tells.
	if (f.again_freed == freed_ && f.again == r) {
		const uint64_t x = f.again_pfn;
		if (s.idx < l->count && tag_at(l, s.idx) == Tag::kFree &&
		    seg_lo(l, s.idx, s.min) <= x && x + npages - 1 <= seg_hi(l, s.idx, s.max)) {
			last_search_nodes_ = 1;
			return x;
		}
	}
	if (f.beside_shape != shape_) return kNoFit;
	// The same request as the finger's search, and no fit made since: what the
	// search passed over still holds none, whatever the annotations say (for a
	// size that is not a power of two they cannot tell, see find_gap()).
	auto proven = [&] {
		if (*proof == Proof::kUnknown) *proof = proof_state(f, r, s.max);
		return *proof == Proof::kHolds;
	};
	const uint8_t need_order1 = needed_order1(npages, align);
	if (f.path.n > 1) { // the leaf's own annotation: skip a scan that cannot succeed
		const Step &up = f.path.s[f.path.n - 2];
		const Gap g = child_gap(static_cast<const Inner *>(up.node), up.idx);
		if (g.len < npages || g.order1 < need_order1) {
			// Only a free above the leaf can spare the search now (as the
			// answer, alloc_fresh()): worth the proof's scan if the last one
			// made a fit there.
			const FreedSpan &e = freed_log_[freed_ % kFreedLog];
			if (e.lo > s.max && span_fit(e.lo, e.hi, r) != kNoFit) (void)proven();
			return kNoFit;
		}
	}
	if (!known_above_leaf(f, r, s.max, need_order1, proof)) return kNoFit;
	if (hi_pfn < s.min) return kNoFit;
	uint32_t top = l->count - 1u;
	if (hi_pfn < s.max) top = pivot_index(l->pivot, l->count, hi_pfn);
	uint32_t i = 0;
	const uint64_t pfn = leaf_fit(l, s.min, s.max, top, npages, align, lo_pfn, hi_pfn, &i);
	if (pfn != kNoFit) {
		s.idx = i;
		last_search_nodes_ = 1; // the leaf alone
	}
	return pfn;
}

// Whether finger f (valid, its search's findings too) knows that no FREE
// segment above its leaf (range up to leaf_max) holds a fit for r: by the
// annotations its search passed over, while none off its path has grown; or
// by its proof for r, evaluated into *proof only when the annotations cannot
// tell (alloc_near() reads it afterwards). Inlined into its two callers.
[[gnu::always_inline]] inline bool GapTree::known_above_leaf(const Finger &f, const Request &r,
                                                             uint64_t leaf_max, uint8_t need_order1,
                                                             Proof *proof) const noexcept
{
	auto proven = [&] {
		if (*proof == Proof::kUnknown) *proof = proof_state(f, r, leaf_max);
		return *proof == Proof::kHolds;
	};
	if (f.beside_epoch != grown_ && !proven()) return false;
	if (r.hi_pfn <= leaf_max) return true;
	// A fit above the leaf would be the answer; there is none if the
	// annotations passed over cannot hold one (the search's own tests).
	if (r.hi_pfn > f.beside_hi_pfn) return false;
	// Only the annotations say what lies there. (Not "the search's own
	// request found nothing there": a subtree it entered and left, cut by
	// the limit or holding a long misaligned hole, can gain a fit by a
	// free that grows no annotation. The model test caught that.)
	return f.beside_gap.len < r.npages || f.beside_gap.order1 < need_order1 || proven();
}

// Whether finger f's proof for r (no fit in what its search passed over, all
// of it above leaf_max) still holds. The FREE space is now what it was when
// the proof was taken, less what carves took, plus the FREE segments the
// counted erases since then made (an uncounted one, the undo of the carve
// before it, restores a segment that was FREE). A FREE segment lies in one
// leaf, so each of those lies at or below leaf_max or wholly above it: the
// proof holds if those above hold no fit for r. If only the last one does,
// it holds the answer (alloc_fresh()). O(frees since, at most kFreedLog).
GapTree::Proof GapTree::proof_state(const Finger &f, const Request &r,
                                    uint64_t leaf_max) const noexcept
{
	if (!(f.proof == r) || f.proof_freed > freed_ || freed_ - f.proof_freed > kFreedLog)
		return Proof::kNone;
	for (uint64_t c = f.proof_freed + 1; c <= freed_; ++c) {
		const FreedSpan &e = freed_log_[c % kFreedLog];
		if (e.hi <= leaf_max || (e.lo > leaf_max && span_fit(e.lo, e.hi, r) == kNoFit))
			continue;
		return c == freed_ && e.lo > leaf_max ? Proof::kFreshFit : Proof::kNone;
	}
	return Proof::kHolds;
}

// The last counted erase made FREE segment e above finger k's leaf, and e
// holds the only fit for the finger's request above it (proof_state()): the
// highest fit in e is the highest fit. The finger that erased is on e while
// its leaf segment is exactly e (a carve from e since would have cut it): the
// carve goes through it, without a descent. Finger k stays where it is, on
// the holes it carves from the top; *keep_proof: what the carve leaves of e
// holds no fit either, so k's proof holds after it (see allocate()). The
// pattern of random frees whose range the next allocation takes: at 1M
// ranges a search from the root per pair before.
uint64_t GapTree::alloc_fresh(uint32_t k, const Request &r, bool *keep_proof) noexcept
{
	const FreedSpan &e = freed_log_[freed_ % kFreedLog];
	const uint32_t j = fresh_finger_;
	Finger &from = fingers_[j];
	if (j == k || from.shape != shape_) return kNoFit;
	const Step &s = from.path.leaf();
	auto *l = static_cast<const Leaf *>(s.node);
	if (s.idx >= l->count || tag_at(l, s.idx) != Tag::kFree ||
	    seg_lo(l, s.idx, s.min) != e.lo || seg_hi(l, s.idx, s.max) != e.hi)
		return kNoFit;
	const uint64_t pfn = span_fit(e.lo, e.hi, r);
	assert(pfn != kNoFit && "proof_state() found a fit in e");
	const uint64_t end = pfn + r.npages - 1;
	*keep_proof = (pfn == e.lo || span_fit(e.lo, pfn - 1, r) == kNoFit) &&
	              (end == e.hi || span_fit(end + 1, e.hi, r) == kNoFit);
	activate(j);
	last_search_nodes_ = 1;
	return pfn;
}

// What alloc_near() knows, asked of a pfn instead of the leaf's highest fit:
// the finger allocate() would use (the request's own, else the active one),
// what lies above its leaf by its search's annotations or by its proof, and
// the leaf's own segments above pfn.
IOVAM_HOT bool GapTree::proven_no_fit_above(uint64_t npages, uint64_t align, uint64_t lo_pfn,
                                            uint64_t hi_pfn, uint64_t pfn) noexcept
{
	assert(npages > 0 && align > 0 && (align & (align - 1)) == 0);
	Finger &own = fingers_[size_class(npages)];
	Finger &f = own.shape == shape_ ? own : cur();
	// Else its path may be no path at all, or its search's findings be about another.
	if (f.shape != shape_ || f.beside_shape != shape_) return false;
	const Request r{npages, align, lo_pfn, std::min(hi_pfn, max_pfn_)};
	const Step &s = f.path.s[f.path.n - 1];
	if (pfn < s.min) return false;
	Proof proof = Proof::kUnknown;
	if (!known_above_leaf(f, r, s.max, needed_order1(npages, align), &proof)) return false;
	// When the proof was what told: count the frees from here on, so that it
	// outlives more than kFreedLog of them (the domain's takes carve nothing,
	// and so never renew it as allocate() does). Not while the undo of the
	// last carve would make FREE again a segment above the leaf: that erase
	// is not counted. (The proof held before that carve too, so that segment
	// held no fit then; the test keeps the argument local, as allocate()
	// keeps its own by clearing the undo record.)
	if (proof == Proof::kHolds && (undo_lo_ > undo_hi_ || undo_hi_ <= s.max))
		f.proof_freed = freed_;
	if (pfn >= s.max) return true;
	TakeMemo &m = take_memo_;
	if (m.leaf == s.node && m.erased == erased_ && m.shape == shape_ && m.pfn == pfn &&
	    m.r == r)
		return true;
	uint32_t i = 0;
	const bool none =
	        leaf_fit(static_cast<const Leaf *>(s.node), s.min, s.max, node_count(s.node) - 1u,
	                 npages, align, std::max(lo_pfn, pfn + 1), r.hi_pfn, &i) == kNoFit;
	if (none) m = TakeMemo{s.node, erased_, shape_, pfn, r};
	return none;
}

IOVAM_HOT int GapTree::allocate(uint64_t npages, uint64_t align, uint64_t lo_pfn, uint64_t hi_pfn,
                                Tag tag, uint64_t *pfn_lo) noexcept
{
	assert(npages > 0 && align > 0 && (align & (align - 1)) == 0 && tag != Tag::kFree);
	hi_pfn = std::min(hi_pfn, max_pfn_);
	if (hi_pfn < lo_pfn || hi_pfn - lo_pfn < npages - 1) return -ENOMEM;
	settle(); // before the active finger changes: the pending shrink is its
	const Request req{npages, align, lo_pfn, hi_pfn};
	const uint32_t k = size_class(npages);
	if (fingers_[k].shape == shape_) activate(k);
	Proof proof = Proof::kUnknown;
	uint64_t pfn = alloc_near(req, &proof);
	bool fresh = false, keep_proof = false;
	if (pfn == kNoFit && proof == Proof::kFreshFit) {
		pfn = alloc_fresh(k, req, &keep_proof);
		fresh = pfn != kNoFit;
	}
	// The finger's proof holds after this allocation (the carve only takes
	// FREE space away): taken by its search, or kept over frees below its leaf.
	bool proved = pfn != kNoFit ? proof == Proof::kHolds : true;
	if (pfn == kNoFit) {
		activate(k);
		Finger &f = fingers_[k];
		f.shape = kNoShape; // the search writes its backtracking into the path
		f.beside_shape = kNoShape;
		f.proof_freed = kNoShape;
		Gap beside;
		const std::optional<uint64_t> found =
		        search(npages, align, lo_pfn, hi_pfn, &f.path, &beside);
		if (!found) return -ENOMEM;
		pfn = *found;
		f.shape = shape_;
		f.beside_shape = shape_;
		f.beside_epoch = grown_;
		f.beside_gap = beside;
		f.beside_hi_pfn = hi_pfn;
	}
	int rc = carve_path(cur().path, pfn, pfn + npages - 1, tag);
	if (rc != 0) return rc;
	if (fresh) {
		// Finger k's proof covers this carve's segment, above its leaf: the
		// free that undoes it must count (be logged) for k to see it.
		undo_lo_ = 1;
		undo_hi_ = 0;
		if (keep_proof) fingers_[k].proof_freed = freed_;
		*pfn_lo = pfn;
		return 0;
	}
	// After the carve, whose undo record replaced any older one: the undo of
	// a carve made before these were taken would make a fit they did not see.
	Finger &f = cur();
	if (proved) {
		f.proof_freed = freed_;
		f.proof = req;
	}
	f.again_freed = freed_;
	f.again = req;
	f.again_pfn = pfn;
	*pfn_lo = pfn;
	return 0;
}

int GapTree::carve(uint64_t pfn_lo, uint64_t pfn_hi, Tag tag) noexcept
{
	settle();
	Path p;
	descend(pfn_lo, p);
	return carve(p, pfn_lo, pfn_hi, tag);
}

int GapTree::carve(Path &p, uint64_t pfn_lo, uint64_t pfn_hi, Tag tag) noexcept
{
	return carve_path(p, pfn_lo, pfn_hi, tag);
}

// carve(Path &), inlined into allocate(): a call less on every allocation.
[[gnu::always_inline]] inline int GapTree::carve_path(Path &p, uint64_t pfn_lo, uint64_t pfn_hi,
                                                      Tag tag) noexcept
{
	assert(tag != Tag::kFree && pfn_lo <= pfn_hi && pfn_hi <= max_pfn_);
	settle(); // annotations only: p stays valid
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	uint64_t a = seg_lo(l, s.idx, s.min), b = seg_hi(l, s.idx, s.max);
	assert(tag_at(l, s.idx) == Tag::kFree && a <= pfn_lo && pfn_hi <= b);
	const uint32_t below = a < pfn_lo, above = pfn_hi < b;
	if (l->count + below + above <= kLeafSlots) {
		carve_in_leaf(p, a, b, pfn_lo, pfn_hi, tag);
		undo_lo_ = a;
		undo_hi_ = b;
		return 0;
	}

	Run run;
	if (below) run.push(pfn_lo - 1, Tag::kFree);
	run.push(pfn_hi, tag);
	if (above) run.push(b, Tag::kFree);

	Stash st;
	if (take_stash(st, nodes_for_growth(p, run.n - 1)) != 0) return -EAGAIN;
	replace_segment(p, run, st);
	assert(st.n == 0);
	return_stash(st);
	undo_lo_ = a;
	undo_hi_ = b;
	return 0;
}

// The FREE segment [a, b] at p's leaf index becomes [a, pfn_lo - 1] FREE (if
// a < pfn_lo), [pfn_lo, pfn_hi] `tag` and [pfn_hi + 1, b] FREE (if pfn_hi < b),
// in a leaf with room for them: one or two pivots go in before the segment's
// own, and two tag bits become up to six. replace_segment()'s in-place case
// for the shape every allocation and reservation has, without building a run
// or reserving nodes (about 40 instructions instead of 150). The finger is
// left on the new segment, for the free that looks it up next.
[[gnu::always_inline]] inline void GapTree::carve_in_leaf(Path &p, uint64_t a, uint64_t b,
                                                          uint64_t pfn_lo, uint64_t pfn_hi,
                                                          Tag tag) noexcept
{
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	const uint32_t i = s.idx, below = a < pfn_lo, above = pfn_hi < b, extra = below + above;
	assert(l->count + extra <= kLeafSlots);
	if (extra != 0) {
		// Pivots i .. count - 2 move up by extra (none when i is the last
		// segment, whose end is the leaf's max and stored by no pivot).
		move_pivots(&l->pivot[i + extra], &l->pivot[i], l->count - 1u - i);
		if (below) l->pivot[i] = pfn_lo - 1;
		if (above) l->pivot[i + below] = pfn_hi;
		const uint64_t low = l->tags & ((1ULL << (2 * i)) - 1);
		const uint64_t high = (l->tags >> (2 * i + 2)) << (2 * (i + 1 + extra));
		// FREE is 0: only the carved segment's tag needs setting.
		static_assert(static_cast<uint64_t>(Tag::kFree) == 0);
		l->tags = low | (static_cast<uint64_t>(tag) << (2 * (i + below))) | high;
		l->count = static_cast<uint8_t>(l->count + extra);
	} else {
		set_tag(l, i, tag);
	}
	s.idx = i + below;
	gap_shrank(p, a, b);
}

void GapTree::retag_occupied(uint64_t pfn, Tag tag) noexcept
{
	assert(tag != Tag::kFree);
	Path p;
	descend(pfn, p);
	auto *l = static_cast<Leaf *>(p.leaf().node);
	assert(tag_at(l, p.leaf().idx) != Tag::kFree);
	set_tag(l, p.leaf().idx, tag);
}

// Replace segment p.leaf().idx by the segments of `run` (same total extent).
void GapTree::replace_segment(Path &p, const Run &run, Stash &st) noexcept
{
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	const uint32_t i = s.idx, extra = run.n - 1;
	if (l->count + extra <= kLeafSlots) {
		const uint64_t old_lo = seg_lo(l, i, s.min), old_hi = seg_hi(l, i, s.max);
		const bool was_free = tag_at(l, i) == Tag::kFree;
		// In place: the new inner bounds go in as pivots before pivot[i].
		uint32_t tail = l->count - 1 - i; // pivots after segment i-1's
		move_pivots(&l->pivot[i + extra], &l->pivot[i], tail);
		for (uint32_t j = 0; j < extra; ++j) l->pivot[i + j] = run.hi[j];
		uint64_t low = l->tags & ((1ULL << (2 * i)) - 1);
		uint64_t high = (l->tags >> (2 * i + 2)) << (2 * (i + run.n));
		uint64_t mid = 0;
		for (uint32_t j = 0; j < run.n; ++j)
			mid |= static_cast<uint64_t>(run.tag[j]) << (2 * (i + j));
		l->tags = low | mid | high;
		l->count += extra;
		// A FREE segment was cut (carve) or split (split_at): the leaf's largest
		// hole can only shrink, and only if it was that one.
		if (was_free) gap_shrank(p, old_lo, old_hi);
		return;
	}
	Run all;
	for (uint32_t j = 0; j < l->count; ++j) {
		if (j == i) {
			for (uint32_t k = 0; k < run.n; ++k) all.push(run.hi[k], run.tag[k]);
		} else {
			all.push(seg_hi(l, j, s.max), tag_at(l, j));
		}
	}
	split_leaf(p, all, st);
}

namespace
{

// Where to split a node that overflowed to `total` entries after an insert at
// [pos, pos + k). Inserts at an edge keep coming there (a top-down allocator
// carves the top of the lowest hole again and again), so leave the far node
// full and the edge node nearly empty; otherwise split in half.
uint32_t split_point(uint32_t total, uint32_t pos, uint32_t k, uint32_t cap)
{
	uint32_t left;
	if (pos <= 1)
		left = pos + k;
	else if (pos + k + 1 >= total)
		left = pos;
	else
		left = total / 2;
	uint32_t lo = total > cap ? total - cap : 1;
	return std::clamp(left, std::max(lo, 1U), std::min(cap, total - 1));
}

void pack_leaf(GapTree::Leaf *l, const uint64_t *hi, const Tag *tag, uint32_t n)
{
	l->count = static_cast<uint8_t>(n);
	l->tags = 0;
	for (uint32_t j = 0; j < n; ++j) {
		l->tags |= static_cast<uint64_t>(tag[j]) << (2 * j);
		if (j + 1 < n) l->pivot[j] = hi[j];
	}
}

} // namespace

void GapTree::split_leaf(Path &p, const Run &all, Stash &st) noexcept
{
	Step &s = p.leaf();
	auto *left = static_cast<Leaf *>(s.node);
	uint32_t k = all.n - left->count + 1;
	uint32_t cut = split_point(all.n, s.idx, k, kLeafSlots);
	auto *right = static_cast<Leaf *>(take_node(st));
	pack_leaf(left, all.hi, all.tag, cut);
	pack_leaf(right, all.hi + cut, all.tag + cut, all.n - cut);
	uint64_t sep = all.hi[cut - 1];
	Gap gl = leaf_gap(left, s.min, sep);
	Gap gr = leaf_gap(right, sep + 1, s.max);
	insert_child(p, static_cast<int>(p.n) - 2, sep, right, gr, gl, st);
}

// The child at p.s[level].idx split into itself (gap gl) and `right` (gap gr)
// at `sep`; insert `right` after it, splitting upward as needed. level -1
// means the root split.
void GapTree::insert_child(Path &p, int level, uint64_t sep, void *right, Gap gr, Gap gl,
                           Stash &st) noexcept
{
	++shape_;
	if (level < 0) {
		auto *root = static_cast<Inner *>(take_node(st));
		root->count = 2;
		root->child[0] = root_;
		root->child[1] = right;
		root->pivot[0] = sep;
		seal_pivots(root);
		set_child_gap(root, 0, gl);
		set_child_gap(root, 1, gr);
		root_ = root;
		if (++height_ == kHintMinHeight) hints_in_use_ = true;
		return;
	}
	auto *in = static_cast<Inner *>(p.s[level].node);
	const uint32_t j = p.s[level].idx, n = in->count;
	if (n < kInnerSlots) {
		std::memmove(&in->child[j + 2], &in->child[j + 1], (n - j - 1) * sizeof(void *));
		std::memmove(&in->max_gap[j + 2], &in->max_gap[j + 1],
		             (n - j - 1) * sizeof(uint64_t));
		std::memmove(&in->order1[j + 2], &in->order1[j + 1], n - j - 1);
		std::memmove(&in->pivot[j + 1], &in->pivot[j], (n - 1 - j) * sizeof(uint64_t));
		in->pivot[j] = sep;
		in->child[j + 1] = right;
		set_child_gap(in, j, gl);
		set_child_gap(in, j + 1, gr);
		in->count = static_cast<uint8_t>(n + 1);
		fix_gaps(p, static_cast<uint32_t>(level));
		return;
	}
	// Full: lay out n + 1 children and n pivots, then cut in two.
	void *ch[kInnerSlots + 1];
	Gap gp[kInnerSlots + 1];
	uint64_t pv[kInnerSlots];
	for (uint32_t c = 0, o = 0; c < n; ++c) {
		ch[o] = in->child[c];
		gp[o] = c == j ? gl : child_gap(in, c);
		++o;
		if (c == j) {
			ch[o] = right;
			gp[o] = gr;
			++o;
		}
	}
	for (uint32_t c = 0, o = 0; c < n; ++c) {
		if (c == j) pv[o++] = sep;
		if (c + 1 < n) pv[o++] = in->pivot[c];
	}
	const uint32_t total = n + 1;
	uint32_t cut = split_point(total, j + 1, 1, kInnerSlots);
	auto *in2 = static_cast<Inner *>(take_node(st));
	in->count = static_cast<uint8_t>(cut);
	in2->count = static_cast<uint8_t>(total - cut);
	for (uint32_t c = 0; c < total; ++c) {
		Inner *dst = c < cut ? in : in2;
		uint32_t o = c < cut ? c : c - cut;
		dst->child[o] = ch[c];
		set_child_gap(dst, o, gp[c]);
		if (c + 1 < total && c + 1 != cut) dst->pivot[o] = pv[c];
	}
	seal_pivots(in);
	seal_pivots(in2);
	uint64_t sep_up = pv[cut - 1];
	insert_child(p, level - 1, sep_up, in2, inner_gap(in2), inner_gap(in), st);
}

// Make sure a segment starts at pfn, splitting the one that holds it.
void GapTree::split_at(uint64_t pfn, Stash &st) noexcept
{
	Path p;
	descend(pfn, p);
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	if (seg_lo(l, s.idx, s.min) == pfn) return;
	Run run;
	Tag t = tag_at(l, s.idx);
	run.push(pfn - 1, t);
	run.push(seg_hi(l, s.idx, s.max), t);
	replace_segment(p, run, st);
}

int GapTree::reserve(uint64_t pfn_lo, uint64_t pfn_hi, Segment *merged) noexcept
{
	settle();
	// Common case: the range lies in one segment; one descent does it all.
	Path p;
	descend(pfn_lo, p);
	const Step &s = p.leaf();
	const Segment first = leaf_segment(s.node, s.idx, s.min, s.max);
	if (first.pfn_hi >= pfn_hi) {
		if (first.tag == Tag::kReserved) {
			*merged = first;
			return 0;
		}
		*merged = Segment{pfn_lo, pfn_hi, Tag::kReserved};
		return carve(p, pfn_lo, pfn_hi, Tag::kReserved);
	}
	const Segment last = lookup(pfn_hi);
	uint64_t lo = first.tag == Tag::kReserved ? first.pfn_lo : pfn_lo;
	uint64_t hi = last.tag == Tag::kReserved ? last.pfn_hi : pfn_hi;
	*merged = Segment{lo, hi, Tag::kReserved};
	// Cold path: split the FREE ends off, then fold everything in between into
	// the first segment. The worst case of two splits is stashed up front.
	++shape_;
	bool split_lo = first.pfn_lo < lo, split_hi = hi < last.pfn_hi;
	Stash st;
	if ((split_lo || split_hi) && take_stash(st, 2 * (height_ + 2)) != 0) return -EAGAIN;
	if (split_lo) split_at(lo, st);
	if (split_hi) split_at(hi + 1, st);
	return_stash(st);
	{
		Path p;
		descend(lo, p);
		set_tag(static_cast<Leaf *>(p.leaf().node), p.leaf().idx, Tag::kReserved);
	}
	while (lookup(lo).pfn_hi < hi) absorb_next(lo);
	fix_gaps_at(lo);
	return 0;
}

int GapTree::reserve_looked_up(uint64_t pfn_lo, uint64_t pfn_hi, Segment *merged) noexcept
{
	assert(cur().shape == shape_);
	Path &p = cur().path;
	const Step &s = p.leaf();
	const Segment seg = leaf_segment(s.node, s.idx, s.min, s.max);
	assert(seg.pfn_lo <= pfn_lo && pfn_hi <= seg.pfn_hi);
	assert(seg.tag == Tag::kFree || seg.tag == Tag::kReserved);
	if (seg.tag == Tag::kReserved) {
		*merged = seg;
		return 0;
	}
	*merged = Segment{pfn_lo, pfn_hi, Tag::kReserved};
	// A carve only takes FREE space: what the finger's last search proved
	// holds no fit still holds none.
	return carve_path(p, pfn_lo, pfn_hi, Tag::kReserved);
}

// ---------------------------------------------------------------------------
// Shrinking: erase, absorbing a neighbour, rebalancing

Segment GapTree::erase(uint64_t pfn) noexcept
{
	Segment seg = erase_if(pfn, lookup(pfn).tag);
	assert(seg.tag != Tag::kFree);
	return seg;
}

Segment GapTree::erase_if(uint64_t pfn, Tag expect) noexcept
{
	return erase_at(finger_at(pfn), expect);
}

IOVAM_HOT Segment GapTree::erase_looked_up(Tag expect) noexcept
{
	assert(cur().shape == shape_ && cur().path.leaf().idx < node_count(cur().path.leaf().node));
	return erase_at(cur().path, expect);
}

// Common case in one descent: the neighbours that merge are in the same leaf.
// p is the finger, on the segment to erase.
[[gnu::always_inline]] inline Segment GapTree::erase_at(Path &p, Tag expect) noexcept
{
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	const uint32_t i = s.idx;
	Segment seg = leaf_segment(l, i, s.min, s.max);
	if (seg.tag != expect || expect == Tag::kFree) return seg;
	const bool next_in = i + 1 < l->count, prev_in = i > 0;
	// A neighbour in the next or previous leaf is read through the path (no
	// descent from the root); only when it is FREE does the erase move a leaf
	// boundary, the slow case.
	const bool next_free = next_in ? tag_at(l, i + 1) == Tag::kFree
	                               : seg.pfn_hi < max_pfn_ && edge_tag(p, true) == Tag::kFree;
	const bool prev_free = prev_in ? tag_at(l, i - 1) == Tag::kFree
	                               : seg.pfn_lo > 0 && edge_tag(p, false) == Tag::kFree;
	if ((!next_in && next_free) || (!prev_in && prev_free)) {
		settle();
		if (erase_across(p, prev_free, next_free)) return seg;
		return erase_slow(p, seg);
	}
	set_tag(l, i, Tag::kFree);
	uint64_t lo = seg.pfn_lo, hi = seg.pfn_hi;
	if (next_free) { // drop segment i's pivot and segment i+1's tag
		hi = seg_hi(l, i + 1, s.max);
		move_pivots(&l->pivot[i], &l->pivot[i + 1], l->count - 2 - i);
		l->tags = remove_tag(l->tags, i + 1);
		--l->count;
	}
	if (prev_free) { // drop segment i-1's pivot and segment i's tag
		lo = seg_lo(l, i - 1, s.min);
		move_pivots(&l->pivot[i - 1], &l->pivot[i], l->count - 1 - i);
		l->tags = remove_tag(l->tags, i);
		--l->count;
	}
	note_freed(lo, hi);
	s.idx = prev_free ? i - 1 : i; // on the FREE segment, for the next allocation
	if (pending_leaf_ == nullptr)
		gap_grew(p, lo, hi);
	else if (lo == pending_lo_ && hi == pending_hi_)
		pending_leaf_ = nullptr; // the carve undone: the leaf is as it was
	else
		settle_slow(true); // this erase may have grown the leaf's gap past the estimate
	if (l->count < kLeafMin && (next_free || prev_free)) rebalance_path(p);
	return seg;
}

// The tag of the segment beside p's leaf: the first one of the next leaf
// (next) or the last one of the previous leaf. The caller knows there is one.
// Climbs to the lowest ancestor with a sibling on that side and goes down its
// edge: about two nodes on average, each already near in memory.
Tag GapTree::edge_tag(const Path &p, bool next) const noexcept
{
	auto *leaf = static_cast<const Leaf *>(edge_leaf(p, next, edge_ancestor(p, next), nullptr));
	return tag_at(leaf, next ? 0 : leaf->count - 1u);
}

// The level of the lowest ancestor on p with a child beside p's branch on
// that side: it stores the boundary between p's leaf and the one beside it.
uint32_t GapTree::edge_ancestor(const Path &p, bool next) noexcept
{
	uint32_t a = p.n - 1;
	while (a-- > 0) {
		const uint32_t idx = p.s[a].idx;
		if (next ? idx + 1 < node_count(p.s[a].node) : idx > 0) break;
	}
	assert(a < p.n && "an edge neighbour exists");
	return a;
}

// The leaf beside p's leaf, down the edge of the ancestor at level a's other
// child; side[lv] (if given) gets the inner node passed at each level below a.
void *GapTree::edge_leaf(const Path &p, bool next, uint32_t a, Inner **side) noexcept
{
	const auto *lca = static_cast<const Inner *>(p.s[a].node);
	void *node = lca->child[next ? p.s[a].idx + 1 : p.s[a].idx - 1];
	for (uint32_t lv = a + 1; lv + 1 < p.n; ++lv) {
		auto *in = static_cast<Inner *>(node);
		if (side != nullptr) side[lv] = in;
		node = in->child[next ? 0 : in->count - 1u];
	}
	return node;
}

// A FREE neighbour lies in the next (or previous) leaf: the erased segment,
// with its FREE neighbour inside the leaf if it has one, leaves its leaf and
// joins that neighbour. Only the boundary between the two leaves moves: one
// pivot at their lowest common ancestor, and the annotations on the two
// paths below it. No descent: the path is the finger's and the neighbour's
// edge is reached from the ancestor (as edge_tag() does). false, with
// nothing changed, when the leaf would be left empty or the neighbour holds
// only that FREE segment (erase_slow() removes the leaf that empties).
//
// It takes nothing of erase_at()'s by address: passing the erased segment by
// reference kept it in memory through erase_at()'s fast path too, and the
// 1-page alloc+free pair at 1M ranges (which never comes here) went from 54
// to 62 ns (probe, alternated runs, same instructions).
//
// Until 2026-11-28 every such erase took erase_slow(): two lookups, two
// descents in absorb_next() and two more to fix the annotations, ~1 500
// instructions at 1M ranges; 4.5 % of the random 1-page frees take this path.
bool GapTree::erase_across(Path &p, bool prev_free, bool next_free) noexcept
{
	assert(pending_leaf_ == nullptr && "settled by the caller");
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	const uint32_t i = s.idx, n = l->count;
	const bool next = i + 1 == n && next_free; // else the previous leaf's
	// Segments k..m leave the leaf: the erased one and its FREE neighbour in it.
	uint32_t k, m;
	if (next) {
		if (i == 0 || (i == 1 && prev_free)) return false; // the leaf would be empty
		k = prev_free ? i - 1 : i;
		m = n - 1;
	} else {
		assert(i == 0 && prev_free);
		k = 0;
		m = next_free ? 1 : 0;
		if (m + 1 >= n) return false;
	}
	// The lowest ancestor with a child beside the leaf's branch on that side
	// stores the boundary; its other child's edge leads to the neighbour leaf.
	const uint32_t a = edge_ancestor(p, next);
	auto *lca = static_cast<Inner *>(p.s[a].node);
	const uint32_t ai = p.s[a].idx, bi = next ? ai + 1 : ai - 1;
	Inner *side[kMaxHeight];
	auto *b = static_cast<Leaf *>(edge_leaf(p, next, a, side));
	// A neighbour leaf of one segment would stay a node for one FREE segment:
	// erase_slow() merges it away instead, and frees the node. Any other
	// neighbour stores both bounds of its edge segment as pivots.
	if (b->count == 1) return false;
	uint64_t lo, hi;
	if (next) {
		assert(tag_at(b, 0) == Tag::kFree);
		lo = seg_lo(l, k, s.min);
		hi = b->pivot[0];
		lca->pivot[ai] = l->pivot[k - 1];
		l->count = static_cast<uint8_t>(k);
		l->tags &= (1ULL << (2 * k)) - 1;
	} else {
		assert(tag_at(b, b->count - 1u) == Tag::kFree);
		lo = b->pivot[b->count - 2u] + 1;
		hi = l->pivot[m];
		lca->pivot[bi] = hi;
		move_pivots(&l->pivot[0], &l->pivot[m + 1], n - 2 - m);
		l->tags >>= 2 * (m + 1);
		l->count = static_cast<uint8_t>(n - m - 1);
	}
	// The neighbour's edge segment grew to [lo, hi]: join it up its path.
	const Gap grown{hi - lo + 1, block_order1(lo, hi)};
	bool side_done = false;
	for (uint32_t lv = p.n - 1; lv-- > a + 1;) {
		Inner *in = side[lv];
		const uint32_t c = next ? 0 : in->count - 1u;
		const Gap old = child_gap(in, c), now = old.join(grown);
		if (now == old) {
			side_done = true;
			break;
		}
		set_child_gap(in, c, now);
	}
	if (!side_done) set_child_gap(lca, bi, child_gap(lca, bi).join(grown));
	// The leaf lost a FREE segment if the erased one had a FREE neighbour in
	// it: its gap may have shrunk. (Losing the erased segment alone leaves
	// its FREE segments, and so its gap, as they were.)
	if (next ? prev_free : next_free) {
		const uint64_t lmin = next ? s.min : hi + 1, lmax = next ? lca->pivot[ai] : s.max;
		Gap g = leaf_gap(l, lmin, lmax);
		uint32_t lv = p.n - 1;
		while (lv-- > a + 1) {
			auto *in = static_cast<Inner *>(p.s[lv].node);
			if (child_gap(in, p.s[lv].idx) == g) break; // nothing above changes
			set_child_gap(in, p.s[lv].idx, g);
			g = inner_gap(in);
		}
		if (lv == a) set_child_gap(lca, ai, g);
	}
	note_growth(nullptr);
	carry_gap(p, a, inner_gap(lca), true, false);
	count_freed(FreedSpan{lo, hi});
	// The paths through the two branches whose ranges changed are no paths
	// of the tree any more; every other finger still is one.
	for (Finger &f : fingers_) {
		if (f.shape == shape_ && f.path.s[a].node == lca &&
		    (f.path.s[a].idx == ai || f.path.s[a].idx == bi))
			f.shape = kNoShape;
	}
	if (l->count < kLeafMin) rebalance_at(next ? s.min : s.max);
	return true;
}

// A FREE neighbour lies in another leaf: merging moves a leaf boundary.
Segment GapTree::erase_slow(Path &p, Segment seg) noexcept
{
	// Merges across a leaf boundary: never the undo of a carve, whose FREE
	// segment lay in one leaf with occupied neighbours.
	count_freed(FreedSpan{}); // where it ends is not at hand
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	set_tag(l, s.idx, Tag::kFree);
	bool next_free = seg.pfn_hi < max_pfn_ && lookup(seg.pfn_hi + 1).tag == Tag::kFree;
	bool prev_free = seg.pfn_lo > 0 && lookup(seg.pfn_lo - 1).tag == Tag::kFree;
	assert((next_free || prev_free) && "erase_if() takes the fast path otherwise");
	if (next_free) absorb_next(seg.pfn_lo);
	if (prev_free) absorb_next(seg.pfn_lo - 1);
	return seg;
}

// The segment holding pfn grows over the next one, which disappears. Within a
// leaf that drops a pivot; across leaves it moves the one stored boundary (at
// the leaves' lowest common ancestor) and takes the first segment off the next
// leaf, removing that leaf (and any ancestor left empty) if it was its last.
void GapTree::absorb_next(uint64_t pfn) noexcept
{
	Path p;
	descend(pfn, p);
	Step &s = p.leaf();
	auto *l = static_cast<Leaf *>(s.node);
	const uint32_t i = s.idx;
	if (i + 1 < l->count) {
		move_pivots(&l->pivot[i], &l->pivot[i + 1], l->count - 2 - i);
		l->tags = remove_tag(l->tags, i + 1);
		--l->count;
		fix_gaps(p, p.n - 1);
		if (l->count < kLeafMin) rebalance_at(pfn);
		return;
	}
	const uint64_t boundary = s.max;
	assert(boundary < max_pfn_);
	++shape_; // a leaf boundary moves
	Path q;
	descend(boundary + 1, q);
	auto *r = static_cast<Leaf *>(q.leaf().node);
	assert(q.leaf().idx == 0);
	const uint64_t new_hi = r->count > 1 ? r->pivot[0] : q.leaf().max;
	uint32_t lca = 0;
	while (lca + 2 < p.n && p.s[lca + 1].node == q.s[lca + 1].node) ++lca;
	assert(q.s[lca].idx == p.s[lca].idx + 1);
	static_cast<Inner *>(p.s[lca].node)->pivot[p.s[lca].idx] = new_hi;
	if (r->count > 1) move_pivots(&r->pivot[0], &r->pivot[1], r->count - 2);
	r->tags >>= 2;
	--r->count;
	if (r->count == 0) remove_empty_branch(q, lca);
	fix_gaps_at(pfn);
	if (new_hi < max_pfn_) {
		fix_gaps_at(new_hi + 1);
		rebalance_at(new_hi + 1);
	}
}

// q's leaf is empty (its range was given away); unlink it and every ancestor
// it leaves empty, up to (not including) the common ancestor `lca`.
// Not dead code: splitting the last child of a full inner node leaves a
// one-child node (split_point gives 10 | 1), whose leaf has no sibling to
// merge with, so an erase can shrink that leaf to one segment and leave it
// so; the next merge across its low boundary empties it. Ascending carves
// build this (the domain's top-down allocator rarely does); each case --
// the leaf's parent emptied too, a first child below lca, a leaf in the
// middle of the tree -- is built in tests/unit/gap_tree_test.cc.
void GapTree::remove_empty_branch(Path &q, uint32_t lca) noexcept
{
	for (uint32_t l = q.n - 1; l > lca; --l) {
		free_node(q.s[l].node);
		auto *parent = static_cast<Inner *>(q.s[l - 1].node);
		const uint32_t j = q.s[l - 1].idx, n = parent->count;
		// Child j's range is empty: drop the child and the pivot between it and
		// its left neighbour (or, for the first child, the one after it).
		uint32_t pv = j > 0 ? j - 1 : 0;
		std::memmove(&parent->child[j], &parent->child[j + 1],
		             (n - 1 - j) * sizeof(void *));
		std::memmove(&parent->max_gap[j], &parent->max_gap[j + 1],
		             (n - 1 - j) * sizeof(uint64_t));
		std::memmove(&parent->order1[j], &parent->order1[j + 1], n - 1 - j);
		if (n >= 2)
			std::memmove(&parent->pivot[pv], &parent->pivot[pv + 1],
			             (n - 2 - pv) * sizeof(uint64_t));
		parent->count = static_cast<uint8_t>(n - 1);
		seal_pivots(parent);
		if (parent->count > 0) return;
	}
	assert(false && "the common ancestor keeps both branches");
}

// Restore fill after nodes on the path to pfn lost entries; collapse the root.
// Every caller has made the path's annotations exact first (rebalance_path()).
void GapTree::rebalance_at(uint64_t pfn) noexcept
{
	Path p;
	descend(pfn, p);
	rebalance_path(p);
}

// Restore fill along p, whose annotations are exact (no shrink pending on it);
// collapse the root. They stay exact without a walk up: a step moves entries
// between two siblings and sets both their annotations in the parent from
// what they hold now, and the parent's subtree holds the same segments as
// before, so its own annotation, and every one above, is unchanged. (The
// erase that calls this saved a second descent to pfn and a recompute of the
// path: with random frees of 1-page ranges at 8K live, a leaf falls below
// kLeafMin after about one in 26, and its rebalance took 2 990 instructions
// with them, 1 625 without.)
void GapTree::rebalance_path(Path &p) noexcept
{
	assert(pending_leaf_ == nullptr && "a pending shrink leaves its path over-estimated");
	for (uint32_t l = p.n - 1; l >= 1; --l) {
		uint32_t min = l + 1 == p.n ? kLeafMin : kInnerMin;
		if (node_count(p.s[l].node) < min) rebalance_step(p, l);
	}
	while (height_ > 1 && node_count(root_) == 1) {
		void *old = root_;
		root_ = static_cast<Inner *>(old)->child[0];
		--height_;
		free_node(old);
	}
}

namespace
{

// An inner node's entries laid out flat with the separator between two nodes.
struct InnerRun {
	void *child[2 * GapTree::kInnerSlots];
	GapTree::Gap gap[2 * GapTree::kInnerSlots];
	uint64_t pivot[2 * GapTree::kInnerSlots];
	uint32_t n = 0;
};

} // namespace

// Merge the node at p.s[level] with a sibling, or even them out when together
// they do not fit one node.
void GapTree::rebalance_step(Path &p, uint32_t level) noexcept
{
	++shape_; // leaf ranges or inner pivots may move
	auto *parent = static_cast<Inner *>(p.s[level - 1].node);
	if (parent->count < 2) return; // no sibling: the parent level deals with it
	const uint32_t j = p.s[level - 1].idx;
	const uint32_t ja = j > 0 ? j - 1 : j; // left of the pair
	const uint64_t pmin = p.s[level - 1].min, pmax = p.s[level - 1].max;
	const uint64_t amin = ja == 0 ? pmin : parent->pivot[ja - 1] + 1;
	const uint64_t amax = parent->pivot[ja];
	const uint64_t bmax = ja + 2 == parent->count ? pmax : parent->pivot[ja + 1];
	void *a = parent->child[ja];
	void *b = parent->child[ja + 1];
	const bool leaf = level + 1 == p.n;
	const uint32_t cap = leaf ? kLeafSlots : kInnerSlots;
	const uint32_t total = node_count(a) + node_count(b);

	if (leaf) {
		auto *la = static_cast<Leaf *>(a), *lb = static_cast<Leaf *>(b);
		uint64_t hi[2 * kLeafSlots];
		Tag tag[2 * kLeafSlots];
		uint32_t n = 0;
		for (uint32_t i = 0; i < la->count; ++i, ++n)
			hi[n] = seg_hi(la, i, amax), tag[n] = tag_at(la, i);
		for (uint32_t i = 0; i < lb->count; ++i, ++n)
			hi[n] = seg_hi(lb, i, bmax), tag[n] = tag_at(lb, i);
		if (total <= cap) {
			pack_leaf(la, hi, tag, n);
		} else {
			uint32_t cut = total / 2;
			pack_leaf(la, hi, tag, cut);
			pack_leaf(lb, hi + cut, tag + cut, n - cut);
			parent->pivot[ja] = hi[cut - 1];
			set_child_gap(parent, ja, leaf_gap(la, amin, hi[cut - 1]));
			set_child_gap(parent, ja + 1, leaf_gap(lb, hi[cut - 1] + 1, bmax));
			return;
		}
		set_child_gap(parent, ja, leaf_gap(la, amin, bmax));
	} else {
		auto *ia = static_cast<Inner *>(a), *ib = static_cast<Inner *>(b);
		InnerRun run;
		for (uint32_t i = 0; i < ia->count; ++i, ++run.n) {
			run.child[run.n] = ia->child[i];
			run.gap[run.n] = child_gap(ia, i);
			run.pivot[run.n] = i + 1 < ia->count ? ia->pivot[i] : amax;
		}
		for (uint32_t i = 0; i < ib->count; ++i, ++run.n) {
			run.child[run.n] = ib->child[i];
			run.gap[run.n] = child_gap(ib, i);
			run.pivot[run.n] = i + 1 < ib->count ? ib->pivot[i] : bmax;
		}
		auto fill = [&run](Inner *dst, uint32_t from, uint32_t to) {
			dst->count = static_cast<uint8_t>(to - from);
			for (uint32_t i = from; i < to; ++i) {
				dst->child[i - from] = run.child[i];
				set_child_gap(dst, i - from, run.gap[i]);
				if (i + 1 < to) dst->pivot[i - from] = run.pivot[i];
			}
		};
		if (total <= cap) {
			fill(ia, 0, total);
			seal_pivots(ia);
		} else {
			uint32_t cut = total / 2;
			fill(ia, 0, cut);
			fill(ib, cut, total);
			seal_pivots(ia);
			seal_pivots(ib);
			parent->pivot[ja] = run.pivot[cut - 1];
			set_child_gap(parent, ja, inner_gap(ia));
			set_child_gap(parent, ja + 1, inner_gap(ib));
			return;
		}
		set_child_gap(parent, ja, inner_gap(ia));
	}
	// Merged into a: drop b and the pivot between them.
	const uint32_t n = parent->count;
	std::memmove(&parent->child[ja + 1], &parent->child[ja + 2], (n - 2 - ja) * sizeof(void *));
	std::memmove(&parent->max_gap[ja + 1], &parent->max_gap[ja + 2],
	             (n - 2 - ja) * sizeof(uint64_t));
	std::memmove(&parent->order1[ja + 1], &parent->order1[ja + 2], n - 2 - ja);
	std::memmove(&parent->pivot[ja], &parent->pivot[ja + 1], (n - 2 - ja) * sizeof(uint64_t));
	parent->count = static_cast<uint8_t>(n - 1);
	seal_pivots(parent);
	free_node(b);
}

// ---------------------------------------------------------------------------
// Verification

namespace
{

// block_order1() the slow way, for verify(): try every order from the top.
uint8_t block_order1_by_search(uint64_t lo, uint64_t hi)
{
	for (int k = 63 - std::countl_zero(hi - lo + 1); k >= 0; --k) {
		const uint64_t size = 1ULL << k;
		const uint64_t start = lo % size == 0 ? lo : lo + (size - lo % size);
		if (start >= lo && start <= hi && hi - start >= size - 1)
			return static_cast<uint8_t>(k + 1);
	}
	return 0;
}

} // namespace

bool GapTree::verify_node(const void *node, uint32_t level, uint64_t min, uint64_t max, Gap *gap,
                          Tag *first, Tag *last, Census *c, const char **why) const noexcept
{
	c->nodes++;
	const uint32_t n = node_count(node);
	if (min > max) return *why = "node range empty", false;
	if (level + 1 == height_) {
		auto *l = static_cast<const Leaf *>(node);
		if (n < 1 || n > kLeafSlots) return *why = "leaf count out of range", false;
		if ((l->tags >> (2 * n)) != 0) return *why = "stray tag bits", false;
		uint64_t prev_hi = 0;
		Gap best;
		for (uint32_t i = 0; i < n; ++i) {
			uint64_t lo = seg_lo(l, i, min), hi = seg_hi(l, i, max);
			if (i > 0 && lo != prev_hi + 1)
				return *why = "segments not contiguous", false;
			if (hi < lo || hi > max || lo < min)
				return *why = "pivots out of order", false;
			Tag t = tag_at(l, i);
			if (i > 0 && t == Tag::kFree && tag_at(l, i - 1) == Tag::kFree)
				return *why = "adjacent FREE segments in a leaf", false;
			c->segments[static_cast<int>(t)]++;
			c->pages[static_cast<int>(t)] += hi - lo + 1;
			if (t == Tag::kFree)
				best = best.join(Gap{hi - lo + 1, block_order1_by_search(lo, hi)});
			prev_hi = hi;
		}
		*gap = best;
		*first = tag_at(l, 0);
		*last = tag_at(l, n - 1);
		return true;
	}
	auto *in = static_cast<const Inner *>(node);
	if (n < 1 || n > kInnerSlots) return *why = "inner count out of range", false;
	for (uint32_t j = n - 1; j < kInnerSlots - 1; ++j)
		if (in->pivot[j] != kNoPivot)
			return *why = "an unused inner pivot is not sealed", false;
	Gap best;
	Tag prev_last = Tag::kAllocated;
	for (uint32_t i = 0; i < n; ++i) {
		uint64_t cmin, cmax;
		const void *child = inner_child(in, i, min, max, &cmin, &cmax);
		if (cmin > cmax || cmax > max) return *why = "inner pivots out of order", false;
		Gap g;
		Tag f = Tag::kFree, la = Tag::kFree;
		if (!verify_node(child, level + 1, cmin, cmax, &g, &f, &la, c, why)) return false;
		// On the path to a leaf whose shrink is pending (settle()), the
		// annotations are still those from before the carve: upper bounds.
		const bool pending =
		        pending_leaf_ != nullptr && pending_lo_ >= cmin && pending_lo_ <= cmax;
		if (pending ? g.len > in->max_gap[i] : g.len != in->max_gap[i])
			return *why = "max_gap annotation wrong", false;
		if (pending ? g.order1 > in->order1[i] : g.order1 != in->order1[i])
			return *why = "aligned block annotation wrong", false;
		if (i > 0 && prev_last == Tag::kFree && f == Tag::kFree)
			return *why = "adjacent FREE segments across nodes", false;
		if (i == 0) *first = f;
		prev_last = la;
		best = best.join(g);
	}
	*last = prev_last;
	*gap = best;
	return true;
}

bool GapTree::verify(Census *census, const char **why) const noexcept
{
	Census local;
	Census *c = census != nullptr ? census : &local;
	*c = Census{};
	const char *dummy;
	if (why == nullptr) why = &dummy;
	if (root_ == nullptr || height_ == 0 || height_ > kMaxHeight)
		return *why = "no root", false;
	Gap g;
	Tag f = Tag::kFree, l = Tag::kFree;
	if (pending_leaf_ != nullptr) {
		const Segment cut = lookup(pending_lo_);
		if (cur().shape != shape_ || cur().path.s[cur().path.n - 1].node != pending_leaf_ ||
		    (cut.tag == Tag::kFree && cut.pfn_hi == pending_hi_))
			return *why = "pending shrink not on the finger's leaf", false;
	}
	// Every finger that says it is valid is a path of this tree, root to leaf:
	// each node the child its parent names, with the range its pivots give.
	// (An operation that moved a node or a boundary without counting it in
	// shape_ would leave a finger pointing at the old tree.)
	for (const Finger &fg : fingers_) {
		if (fg.shape != shape_) continue;
		const Path &p = fg.path;
		if (p.n != height_ || p.s[0].node != root_ || p.s[0].min != 0 ||
		    p.s[0].max != max_pfn_)
			return *why = "a finger's path does not start at the root", false;
		for (uint32_t lv = 0; lv + 1 < p.n; ++lv) {
			const Step &s = p.s[lv];
			if (s.idx >= node_count(s.node))
				return *why = "a finger's child index is out of range", false;
			uint64_t cmin, cmax;
			const void *child = inner_child(s.node, s.idx, s.min, s.max, &cmin, &cmax);
			if (child != p.s[lv + 1].node || cmin != p.s[lv + 1].min ||
			    cmax != p.s[lv + 1].max)
				return *why = "a finger's path is not a path of the tree", false;
		}
	}
	if (!verify_node(root_, 0, 0, max_pfn_, &g, &f, &l, c, why)) return false;
	if (c->nodes != nodes_) return *why = "node count mismatch", false;
	return true;
}

} // namespace iovam::detail
