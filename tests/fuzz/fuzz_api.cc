// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// libFuzzer target for the iovam C API. The input is decoded into a sequence
// of C API calls on one domain; every call is mirrored on a std::map
// reference (tests/unit/reference_model.h) and its result is checked exactly,
// iovam_verify() runs after every operation, and any mismatch aborts.
//
// Input format (all reads past the end yield 0; decoding stops at the end):
//   byte 0: conf = b % kNumConfs, n_caches = (b / kNumConfs) % 4,
//           b >= 32: all kNumOps ops (else the kNumOpsBeforeBulk older ones),
//           b >= 224: destroy the domain full instead of draining it first
//   then repeated ops: one opcode byte (op = byte % the op count) and its args.
// At most kMaxOps ops (and kMaxCalls calls, batches included) run; the domain
// is then drained, checked empty, and destroyed, or destroyed as it is
// (LeakSanitizer must be clean either way).
//
// Lib bugs found: tests/fuzz/crashes/README.md (both fixed; while open, the
// calls hitting them were skipped in op_free_fast_bad so fuzzing could go on).

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "iovam.h"
#include "iovam_test.h"
#include "reference_model.h" // tests/unit

using iovam::test::fast_size_pages;
using iovam::test::ReferenceModel;
using iovam::test::RefRange;
using iovam::test::RefTag;

namespace
{

constexpr uint64_t kMaxOps = 2000;
// API calls that mutate, batches included: bounds the time of one input.
// Room for the deepest states: a full depot needs 2 * 127 + 32 * 127 + 1 =
// 4319 ranges of one class freed into one cache (8638 calls with their
// allocations), and a pool trim a tree of more than 256 nodes that then
// collapses (about 4000 reserved pages with gaps, merged by one reserve).
constexpr uint64_t kMaxCalls = 10000;
// Ops 21 and 22 (the bulk calls) came later. Inputs whose byte 0 is below
// 32 (all the seeds from before them) decode op bytes modulo the old count,
// so they replay exactly the calls they always did (their unconsumed
// argument bytes act as op bytes, some of them >= 21); byte 0 >= 32 selects
// the full set.
constexpr uint32_t kNumOpsBeforeBulk = 21;
constexpr uint32_t kNumOps = 23;
constexpr uint64_t k2p63 = 1ULL << 63;
constexpr uint64_t kMiB = 1ULL << 20;

struct Conf {
	uint64_t granule, start_pfn, end_pfn;
};

// The first byte picks one of these (and n_caches 0..3).
constexpr Conf kConfs[] = {
        {kMiB, 1, 300},              // small window, always full / fragmented
        {kMiB, 1, 8191},             // straddles 4 GiB (dma32_last = 4095)
        {kMiB, 4000, 4200},          // small window right across 4 GiB
        {4096, 1, (1ULL << 36) - 1}, // 48-bit space, 4 KiB pages
        {4096, 4096, 8191},          // start above 1, all below 4 GiB
        {kMiB, 1, 20},               // tiny: smaller than the largest size class
        {2 * kMiB, 3, 3000},         // 2 MiB granule (dma32_last = 2047)
        {1ULL << 32, 1, 100},        // 4 GiB granule: dma32_last = 0 < start
};
constexpr uint32_t kNumConfs = sizeof(kConfs) / sizeof(kConfs[0]);

// Forward byte reader; zeros past the end.
struct Reader {
	const uint8_t *p;
	size_t n, i = 0;
	bool done() const { return i >= n; }
	uint8_t u8() { return i < n ? p[i++] : 0; }
	uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
	uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
	uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
};

const char *g_op = "?";
char g_conf[128] = "";
uint64_t g_op_index = 0;

[[noreturn]] void fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	std::fprintf(stderr, "\nFUZZ MISMATCH at op #%" PRIu64 " (%s) on %s, %s:%d: %s\n  ",
	             g_op_index, g_op, g_conf, file, line, cond);
	va_list ap;
	va_start(ap, fmt);
	std::vfprintf(stderr, fmt, ap);
	va_end(ap);
	std::fprintf(stderr, "\n");
	std::fflush(stderr);
	std::abort();
}

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

class Fuzz
{
public:
	Fuzz(const uint8_t *data, size_t size) : in_{data, size}
	{
		uint8_t b = in_.u8();
		const Conf &c = kConfs[b % kNumConfs];
		conf_ = {c.granule, c.start_pfn, c.end_pfn,
		         static_cast<uint32_t>((b / kNumConfs) % 4)};
		destroy_full_ = b >= 224; // 1 input in 8
		num_ops_ = b >= 32 ? kNumOps : kNumOpsBeforeBulk;
		start_ = c.start_pfn;
		end_ = c.end_pfn;
		dma32_last_ = (1ULL << 32) / c.granule == 0 ? 0 : (1ULL << 32) / c.granule - 1;
		ref_.emplace(start_, end_);
		std::snprintf(g_conf, sizeof g_conf,
		              "conf %u {granule %" PRIu64 ", [%" PRIu64 ", %" PRIu64
		              "], n_caches %u}",
		              b % kNumConfs, conf_.granule, start_, end_, conf_.n_caches);
	}

	void run()
	{
		g_op = "create";
		g_op_index = 0;
		d_ = iovam_domain_create(&conf_);
		CHECK(d_ != nullptr, "create failed errno=%d", errno);
		check_all();
		for (uint64_t i = 0; i < kMaxOps && calls_ < kMaxCalls && !in_.done(); ++i) {
			g_op_index = i;
			++calls_;
			step();
			check_all();
			if (i % 64 == 63) full_scan();
		}
		g_op_index = kMaxOps;
		full_scan();
		// Mostly drain to empty and check; else destroy the domain with whatever
		// it holds (deep trees, cached ranges, markers): LeakSanitizer checks it.
		if (!destroy_full_) drain_to_empty();
		iovam_domain_destroy(d_);
		d_ = nullptr;
	}

private:
	// ---------------------------------------------------------------- checks

	void check_verify()
	{
		int rc = iovam_verify(d_);
		CHECK(rc == 0, "verify rc=%d: %s", rc, iovam_verify_error(d_));
	}

	void check_stats()
	{
		uint64_t n[3] = {0, 0, 0}, pages = 0;
		for (auto &[lo, r] : ref_->ranges()) {
			++n[static_cast<int>(r.tag)];
			if (r.tag == RefTag::kAllocated) pages += r.hi - lo + 1;
		}
		const uint64_t live = n[static_cast<int>(RefTag::kAllocated)];
		const uint64_t reserved = n[static_cast<int>(RefTag::kReserved)];
		const uint64_t deferred = n[static_cast<int>(RefTag::kDeferred)];
		iovam_stats st{};
		CHECK(iovam_stats_get(d_, &st) == 0, "stats_get");
		CHECK(st.live_ranges == live, "live_ranges %" PRIu64 " want %" PRIu64,
		      st.live_ranges, live);
		CHECK(st.live_pages == pages, "live_pages %" PRIu64 " want %" PRIu64, st.live_pages,
		      pages);
		CHECK(st.reserved_ranges == reserved, "reserved_ranges %" PRIu64 " want %" PRIu64,
		      st.reserved_ranges, reserved);
		CHECK(st.deferred_ranges == deferred, "deferred_ranges %" PRIu64 " want %" PRIu64,
		      st.deferred_ranges, deferred);
		CHECK(st.cached_ranges == ref_->cached().size(),
		      "cached_ranges %" PRIu64 " want %zu", st.cached_ranges,
		      ref_->cached().size());
		CHECK(st.tree_bytes > 0 && st.tree_bytes % 256 == 0, "tree_bytes %" PRIu64,
		      st.tree_bytes);
		CHECK(st.node_alloc_failures >= last_failures_, "node_alloc_failures went down");
		if (!fail_on_)
			CHECK(st.node_alloc_failures == last_failures_,
			      "node failure without injection");
		last_failures_ = st.node_alloc_failures;
	}

	void check_all()
	{
		check_verify();
		check_stats();
	}

	// Every model range and every hole edge, through iovam_find().
	void full_scan()
	{
		uint64_t prev_hi_plus1 = 0;
		for (auto &[lo, r] : ref_->ranges()) {
			if (lo > prev_hi_plus1) { // a hole [prev_hi_plus1, lo - 1]
				expect_absent(prev_hi_plus1);
				expect_absent(lo - 1);
			}
			for (uint64_t p : {lo, r.hi}) {
				uint64_t flo = 0, fhi = 0;
				int rc = iovam_find(d_, p, &flo, &fhi);
				if (r.tag == RefTag::kDeferred) {
					CHECK(rc == -ENOENT, "find(%" PRIu64 ") in DEFERRED rc=%d",
					      p, rc);
				} else {
					CHECK(rc == 0 && flo == lo && fhi == r.hi,
					      "find(%" PRIu64 ") rc=%d [%" PRIu64 ",%" PRIu64
					      "] want [%" PRIu64 ",%" PRIu64 "]",
					      p, rc, flo, fhi, lo, r.hi);
				}
			}
			prev_hi_plus1 = r.hi + 1;
		}
		if (prev_hi_plus1 <= end_) {
			expect_absent(prev_hi_plus1);
			expect_absent(end_);
		}
	}

	void expect_absent(uint64_t p)
	{
		uint64_t flo, fhi;
		int rc = iovam_find(d_, p, &flo, &fhi);
		CHECK(rc == -ENOENT, "find(%" PRIu64 ") in a hole rc=%d", p, rc);
	}

	// Ranges freed into a cache are the cache's: those it gave back to the tree
	// are free space now. Only called when nothing else changed the tree since
	// the model was last exact.
	uint64_t reconcile()
	{
		iovam_stats st{};
		CHECK(iovam_stats_get(d_, &st) == 0, "stats_get");
		const size_t cached = ref_->cached().size();
		if (st.cached_ranges == cached) return 0;
		CHECK(st.cached_ranges < cached, "cached_ranges grew: %" PRIu64 " > %zu",
		      st.cached_ranges, cached);
		return ref_->reconcile_cached([this](uint64_t pfn, uint64_t pfn_hi) {
			uint64_t lo = 0, hi = 0;
			int rc = iovam_find(d_, pfn, &lo, &hi);
			if (rc == -ENOENT) return false;
			CHECK(rc == 0 && lo == pfn && hi == pfn_hi,
			      "cached %" PRIu64 ": find rc=%d [%" PRIu64 ",%" PRIu64 "]", pfn, rc,
			      lo, hi);
			return true;
		});
	}

	// ---------------------------------------------------------------- pickers

	uint64_t window() const { return end_ - start_ + 1; }

	uint64_t pick_pfn()
	{
		uint8_t m = in_.u8();
		auto &rs = ref_->ranges();
		switch (m % 8) {
		case 0:
		case 1:
		case 2:
			if (!rs.empty()) {
				auto it = rs.begin();
				std::advance(it, in_.u16() % rs.size());
				uint8_t e = in_.u8();
				switch (e % 6) {
				case 0: return it->first;
				case 1: return it->second.hi;
				case 2: return it->first - 1;
				case 3: return it->second.hi + 1;
				default: {
					uint64_t span = it->second.hi - it->first;
					return it->first + (span ? in_.u16() % (span + 1) : 0);
				}
				}
			}
			[[fallthrough]];
		case 3:
		case 4: {
			uint64_t w = window() < (1ULL << 32) ? window() : (1ULL << 32);
			uint64_t off = (m & 0x80) ? in_.u32() : in_.u16();
			return (m & 0x40) ? end_ - off % w : start_ + off % w;
		}
		case 5: {
			const uint64_t special[] = {0,
			                            start_ - 1,
			                            start_,
			                            end_,
			                            end_ + 1,
			                            UINT64_MAX,
			                            k2p63,
			                            k2p63 - 1,
			                            dma32_last_,
			                            dma32_last_ + 1,
			                            dma32_last_ - 1,
			                            end_ - 31,
			                            32,
			                            64};
			return special[in_.u8() % (sizeof(special) / sizeof(special[0]))];
		}
		case 6: return dma32_last_ + static_cast<int8_t>(in_.u8());
		default: return in_.u64();
		}
	}

	uint64_t pick_npages()
	{
		uint8_t m = in_.u8();
		switch (m % 8) {
		case 0:
		case 1:
		case 2: return 1 + (m >> 3) % 8;
		case 3:
		case 4: return 1 + (m >> 3) % 32;
		case 5: return 1 + in_.u8() % 64;
		case 6: return 1 + in_.u16() % (window() < 65536 ? window() + 1 : 65536);
		default: {
			const uint64_t special[] = {
			        0,  window(), window() + 1, k2p63, k2p63 + 1, UINT64_MAX, 33, 32,
			        64, 31,       window() / 2, 128,   4096,      k2p63 - 1};
			return special[in_.u8() % (sizeof(special) / sizeof(special[0]))];
		}
		}
	}

	uint64_t pick_limit()
	{
		uint8_t m = in_.u8();
		switch (m % 8) {
		case 0:
		case 1:
		case 2: return UINT64_MAX;
		case 3: return dma32_last_;
		case 4: return dma32_last_ + static_cast<int8_t>(in_.u8());
		case 5:
		case 6: return start_ + in_.u16() % window();
		default: {
			const uint64_t special[] = {start_ - 1, 0,        start_,      end_,
			                            end_ + 1,   end_ - 1, start_ + 31, k2p63};
			return special[in_.u8() % (sizeof(special) / sizeof(special[0]))];
		}
		}
	}

	// A valid cache id or IOVAM_CACHE_NONE; with bad, sometimes an invalid one.
	uint32_t pick_cache(bool allow_bad)
	{
		uint8_t m = in_.u8();
		uint32_t n = conf_.n_caches;
		if (allow_bad && m % 16 == 15) {
			const uint32_t bad[] = {n, n + 1, UINT32_MAX - 1, 1000};
			return bad[(m >> 4) % 4];
		}
		if (n == 0 || m % 8 == 7) return IOVAM_CACHE_NONE;
		return (m >> 3) % n;
	}

	bool cache_ok(uint32_t c) const { return c == IOVAM_CACHE_NONE || c < conf_.n_caches; }

	// ---------------------------------------------------------------- ops

	void step()
	{
		static constexpr const char *kNames[] = {"alloc",
		                                         "free",
		                                         "free_deferred",
		                                         "reserve",
		                                         "find",
		                                         "alloc_fast",
		                                         "free_fast",
		                                         "free_fast_bad",
		                                         "cache_flush",
		                                         "maintain",
		                                         "stats",
		                                         "fail_node_alloc",
		                                         "set_checks",
		                                         "null_and_bad_args",
		                                         "alloc",
		                                         "free_fast",
		                                         "alloc_fast_batch",
		                                         "free_fast_batch",
		                                         "alloc_batch",
		                                         "free_batch",
		                                         "reserve_batch",
		                                         "alloc_fast_bulk",
		                                         "free_fast_bulk"};
		uint8_t op = static_cast<uint8_t>(in_.u8() % num_ops_);
		g_op = kNames[op];
		switch (op) {
		case 0:
		case 14: op_alloc(); break;
		case 1: op_free(false); break;
		case 2: op_free(true); break;
		case 3: op_reserve(); break;
		case 4: op_find(); break;
		case 5: op_alloc_fast(); break;
		case 6:
		case 15: op_free_fast(); break;
		case 7: op_free_fast_bad(); break;
		case 8: op_flush(); break;
		case 9: op_maintain(); break;
		case 10: op_stats(); break;
		case 11: op_fail(); break;
		case 12: op_set_checks(); break;
		case 13: op_null(); break;
		case 16: op_alloc_fast_batch(); break;
		case 17: op_free_fast_batch(); break;
		case 18: op_alloc_batch(); break;
		case 19: op_free_batch(); break;
		case 20: op_reserve_batch(); break;
		case 21: op_alloc_fast_bulk(); break;
		case 22: op_free_fast_bulk(); break;
		}
	}

	void op_alloc()
	{
		uint8_t f = in_.u8();
		bool aligned = f & 1;
		bool null_out = (f >> 1) % 16 == 15;
		uint64_t n = pick_npages(), limit = pick_limit();
		do_alloc(n, limit, aligned, null_out);
	}

	void do_alloc(uint64_t n, uint64_t limit, bool aligned, bool null_out)
	{
		uint64_t pfn = 0xdeadbeef;
		int rc = iovam_alloc(d_, n, limit, aligned, null_out ? nullptr : &pfn);
		if (null_out || n == 0 || limit < start_) {
			CHECK(rc == -EINVAL,
			      "alloc(n=%" PRIu64 ", limit=%" PRIu64 ", null=%d) rc=%d want -EINVAL",
			      n, limit, null_out, rc);
			return;
		}
		std::optional<uint64_t> want;
		if (n <= k2p63) want = ref_->fit(n, limit, aligned);
		if (!want) {
			CHECK(rc == -ENOMEM,
			      "alloc(n=%" PRIu64 ", limit=%" PRIu64
			      ", aligned=%d) rc=%d pfn=%" PRIu64 " want -ENOMEM",
			      n, limit, aligned, rc, pfn);
			return;
		}
		if (rc == -EAGAIN) {
			CHECK(fail_on_, "alloc -EAGAIN without injection (n=%" PRIu64 ")", n);
			return;
		}
		CHECK(rc == 0 && pfn == *want,
		      "alloc(n=%" PRIu64 ", limit=%" PRIu64 ", aligned=%d) rc=%d pfn=%" PRIu64
		      " want %" PRIu64,
		      n, limit, aligned, rc, pfn, *want);
		ref_->insert(pfn, pfn + n - 1, RefTag::kAllocated);
	}

	void op_free(bool deferred)
	{
		uint64_t pfn = pick_pfn();
		auto it = ref_->containing(pfn);
		int want;
		if (it == ref_->ranges().end() || it->second.tag == RefTag::kDeferred)
			want = -ENOENT;
		else if (it->second.tag == RefTag::kReserved)
			want = -EPERM;
		else if (ref_->is_cached(it->first)) {
			// Freed already with free_fast: checked, refused; unchecked, it would
			// make a second owner (what that mode trusts us not to do).
			if (!checks_on_) return;
			want = -ENOENT;
		} else
			want = 0;
		int rc = deferred ? iovam_free_deferred(d_, pfn) : iovam_free(d_, pfn);
		CHECK(rc == want, "%s(%" PRIu64 ") rc=%d want %d",
		      deferred ? "free_deferred" : "free", pfn, rc, want);
		if (rc == 0) {
			fast_owned_.erase(it->first);
			if (deferred)
				it->second.tag = RefTag::kDeferred;
			else
				ref_->ranges().erase(it);
		}
	}

	void op_reserve()
	{
		uint8_t f = in_.u8();
		uint64_t lo = pick_pfn(), hi;
		switch (f % 8) {
		case 0: hi = lo; break;
		case 1: hi = pick_pfn(); break;            // may be below lo
		case 2: hi = lo - 1 - in_.u8() % 4; break; // lo > hi
		case 3: hi = end_ + in_.u8() % 3; break;   // up to end, or past it
		default: hi = lo + ((f & 0x80) ? in_.u8() : in_.u8() % 4); break;
		}
		ref_->reserve_flushes_caches(lo, hi, checks_on_);
		ReferenceModel probe = *ref_;
		int want = probe.reserve(lo, hi);
		int rc = iovam_reserve(d_, lo, hi);
		if (rc == -EAGAIN && want == 0) {
			CHECK(fail_on_, "reserve -EAGAIN without injection");
			return;
		}
		CHECK(rc == want, "reserve(%" PRIu64 ", %" PRIu64 ") rc=%d want %d", lo, hi, rc,
		      want);
		if (rc == 0) *ref_ = std::move(probe);
	}

	void op_find()
	{
		uint8_t f = in_.u8();
		uint64_t pfn = pick_pfn(), lo = 1, hi = 2;
		bool null_lo = f % 8 == 6, null_hi = f % 8 == 7;
		int rc = iovam_find(d_, pfn, null_lo ? nullptr : &lo, null_hi ? nullptr : &hi);
		if (null_lo || null_hi) {
			CHECK(rc == -EINVAL, "find with NULL out rc=%d", rc);
			return;
		}
		auto it = ref_->containing(pfn);
		if (it == ref_->ranges().end() || it->second.tag == RefTag::kDeferred) {
			CHECK(rc == -ENOENT,
			      "find(%" PRIu64 ") rc=%d [%" PRIu64 ",%" PRIu64 "] want -ENOENT", pfn,
			      rc, lo, hi);
		} else {
			CHECK(rc == 0 && lo == it->first && hi == it->second.hi,
			      "find(%" PRIu64 ") rc=%d [%" PRIu64 ",%" PRIu64 "] want [%" PRIu64
			      ",%" PRIu64 "]",
			      pfn, rc, lo, hi, it->first, it->second.hi);
		}
	}

	void op_alloc_fast()
	{
		uint8_t f = in_.u8();
		bool null_out = f % 16 == 15;
		uint32_t cache = pick_cache(true);
		uint64_t n = pick_npages(), limit = pick_limit();
		do_alloc_fast(cache, n, limit, null_out);
	}

	void do_alloc_fast(uint32_t cache, uint64_t n, uint64_t limit, bool null_out)
	{
		uint64_t pfn = 0xdeadbeef;
		// Where the tree would put it: the highest aligned fit now or, only when
		// nothing fits, after every cache is flushed.
		const bool sane =
		        !null_out && n != 0 && n <= k2p63 && limit >= start_ && cache_ok(cache);
		const uint64_t size = sane ? fast_size_pages(n) : 0;
		const bool had_cached = !ref_->cached().empty();
		std::optional<uint64_t> want_before, want_flushed;
		if (sane) {
			want_before = ref_->fit(size, limit, true);
			if (!want_before && had_cached)
				want_flushed = ref_->without_cached().fit(size, limit, true);
		}
		int rc = iovam_alloc_fast(d_, cache, n, limit, null_out ? nullptr : &pfn);
		if (!sane) {
			check_alloc_fast_refused(rc, cache, n, limit, null_out);
			return;
		}
		if (rc == -ENOMEM || rc == -EAGAIN) {
			check_alloc_fast_failed(rc, cache, n, limit, 1);
			return;
		}
		CHECK(rc == 0, "alloc_fast(cache=%u, n=%" PRIu64 ", limit=%" PRIu64 ") rc=%d",
		      cache, n, limit, rc);
		check_fast_range(pfn, n, limit, "alloc_fast");
		if (ref_->is_cached(pfn) && ref_->ranges().at(pfn).hi == pfn + size - 1) {
			// From a cache (or, after a flush, the same range again through the tree).
			ref_->uncache(pfn);
			reconcile();
		} else {
			// From the tree: the highest aligned fit before the call, or (only
			// when nothing fitted) after every cache was flushed.
			bool flushed = ref_->drop_cached_overlapping(pfn, pfn + size - 1) > 0;
			flushed = reconcile() > 0 || flushed;
			if (flushed)
				CHECK(ref_->cached().empty(),
				      "alloc_fast flushed but %zu ranges still cached",
				      ref_->cached().size());
			std::optional<uint64_t> want = want_before ? want_before : want_flushed;
			CHECK(want && *want == pfn,
			      "alloc_fast(cache=%u, n=%" PRIu64 ", limit=%" PRIu64
			      ") from the tree gave %" PRIu64 ", highest aligned fit is %" PRIu64
			      " (flushed=%d)",
			      cache, n, limit, pfn, want ? *want : 0, flushed);
			CHECK(flushed == (!want_before && had_cached),
			      "flushed=%d: a flush without need, or none when needed", flushed);
			take_from_tree(pfn, size, "alloc_fast");
		}
		CHECK(fast_owned_.emplace(pfn, n).second, "range %" PRIu64 " handed out twice",
		      pfn);
	}

	// Bad arguments (NULL out, npages 0, a limit below start, a bad cache id):
	// -EINVAL; npages past 2^63: -ENOMEM.
	void check_alloc_fast_refused(int rc, uint32_t cache, uint64_t n, uint64_t limit,
	                              bool null_out)
	{
		if (null_out || n == 0 || limit < start_ || !cache_ok(cache)) {
			CHECK(rc == -EINVAL,
			      "alloc_fast(cache=%u, n=%" PRIu64 ", limit=%" PRIu64
			      ", null=%d) rc=%d want -EINVAL",
			      cache, n, limit, null_out, rc);
			return;
		}
		CHECK(rc == -ENOMEM, "alloc_fast(n=%" PRIu64 ") rc=%d want -ENOMEM", n, rc);
	}

	// A fast allocation of count ranges (1, or a bulk's) that failed: nothing
	// allocated, ranges may have left the caches (popped then given back,
	// flushed). -ENOMEM only when, every cache flushed, fewer than count
	// aligned slots are left; -EAGAIN only while node failures are injected.
	void check_alloc_fast_failed(int rc, uint32_t cache, uint64_t n, uint64_t limit,
	                             uint32_t count)
	{
		reconcile();
		const uint64_t slots = ref_->aligned_slots(fast_size_pages(n), limit);
		if (rc == -EAGAIN) {
			CHECK(fail_on_, "alloc_fast -EAGAIN without injection");
			CHECK(slots > 0, "alloc_fast -EAGAIN but nothing fits (n=%" PRIu64 ")", n);
			return;
		}
		CHECK(ref_->cached().empty(), "alloc_fast -ENOMEM with %zu ranges still cached",
		      ref_->cached().size());
		CHECK(slots < count,
		      "alloc_fast(cache=%u, n=%" PRIu64 ", limit=%" PRIu64
		      ", count=%u) -ENOMEM but %" PRIu64 " fit",
		      cache, n, limit, count, slots);
	}

	// A range the fast path handed out: aligned to n's class, inside the
	// window and the limit, and exactly one range of the tree.
	void check_fast_range(uint64_t pfn, uint64_t n, uint64_t limit, const char *what)
	{
		const uint64_t size = fast_size_pages(n), hi_limit = std::min(limit, end_);
		CHECK(pfn % std::bit_ceil(n) == 0 && pfn >= start_ && pfn <= hi_limit &&
		              size - 1 <= hi_limit - pfn,
		      "%s(n=%" PRIu64 ", limit=%" PRIu64 ") gave %" PRIu64 ": outside [%" PRIu64
		      ",%" PRIu64 "] or misaligned",
		      what, n, limit, pfn, start_, hi_limit);
		uint64_t lo = 0, hi = 0;
		CHECK(iovam_find(d_, pfn, &lo, &hi) == 0 && lo == pfn && hi == pfn + size - 1,
		      "%s gave %" PRIu64 "+%" PRIu64 " but find says [%" PRIu64 ",%" PRIu64 "]",
		      what, pfn, size, lo, hi);
	}

	// A range carved from the tree: it was free space in the reference.
	void take_from_tree(uint64_t pfn, uint64_t size, const char *what)
	{
		auto c = ref_->containing(pfn);
		auto next = ref_->ranges().lower_bound(pfn);
		CHECK(c == ref_->ranges().end() &&
		              (next == ref_->ranges().end() || next->first > pfn + size - 1),
		      "%s handed out an occupied range %" PRIu64 "+%" PRIu64, what, pfn, size);
		ref_->insert(pfn, pfn + size - 1, RefTag::kAllocated);
	}

	void op_free_fast()
	{
		if (fast_owned_.empty()) {
			in_.u8();
			in_.u8();
			return;
		}
		auto it = fast_owned_.begin();
		std::advance(it, in_.u16() % fast_owned_.size());
		uint8_t f = in_.u8();
		uint32_t cache = pick_cache(false);
		do_free_fast(it, cache, f);
	}

	void do_free_fast(std::map<uint64_t, uint64_t>::iterator it, uint32_t cache, uint8_t f)
	{
		uint64_t pfn = it->first, n = it->second;
		// Another npages of the same rounded size is the same range.
		if (n <= IOVAM_CACHE_MAX_PAGES && (f & 1)) {
			uint64_t alt = std::bit_ceil(n) - (f >> 1) % std::bit_ceil(n);
			if (std::bit_ceil(alt) == std::bit_ceil(n)) n = alt;
		}
		int rc = iovam_free_fast(d_, cache, pfn, n);
		CHECK(rc == 0,
		      "free_fast(cache=%u, %" PRIu64 ", n=%" PRIu64 ") of an owned range rc=%d",
		      cache, pfn, n, rc);
		forget_fast_freed(pfn, cache, n);
		reconcile(); // a full magazine may have gone back to the tree
	}

	void op_free_fast_bad()
	{
		uint8_t v = in_.u8();
		uint32_t cache;
		uint64_t pfn, n;
		int want;
		switch (v % 4) {
		case 0: // npages == 0
			cache = pick_cache(true);
			pfn = pick_pfn();
			n = 0;
			want = -EINVAL;
			break;
		case 1: { // bad cache id
			const uint32_t bad[] = {conf_.n_caches, conf_.n_caches + 1, UINT32_MAX - 1};
			cache = bad[(v >> 2) % 3];
			pfn = pick_pfn();
			n = pick_npages();
			want = -EINVAL;
			break;
		}
		case 2: { // the trusting cache path: only what its O(1) checks must refuse
			if (conf_.n_caches == 0) return;
			cache = in_.u8() % conf_.n_caches;
			n = 1 + in_.u8() % IOVAM_CACHE_MAX_PAGES;
			const uint64_t size = fast_size_pages(n);
			switch ((v >> 2) % 4) {
			case 0: pfn = pick_pfn(); break;
			case 1:
				pfn = (end_ + 1 + in_.u8() * size) & ~(size - 1);
				break; // aligned, past the end
			case 2:
				pfn = (end_ & ~(size - 1)) + in_.u8() % size;
				break; // at the end, maybe misaligned
			default: pfn = in_.u8() % (start_ + 1); break; // at or below start
			}
			// It trusts us unless checks are on: only give it garbage it must see.
			if (!checks_on_ && ref_->fast_free_in_bounds(pfn, n)) return;
			want = ref_->fast_free_expect_checked(
			        pfn, n); // a range a cache holds: a double free
			break;
		}
		default: // the checked path (shared cache, > 32 pages, or checks on): anything
			cache = pick_cache(false);
			pfn = pick_pfn();
			n = pick_npages();
			if (!checks_on_ && cache != IOVAM_CACHE_NONE && n != 0 &&
			    n <= IOVAM_CACHE_MAX_PAGES && ref_->fast_free_in_bounds(pfn, n))
				return;
			if (!checks_on_ && ref_->fast_free_expect(pfn, n) == 0 &&
			    ref_->is_cached(pfn))
				return; // a second owner
			want = ref_->fast_free_expect_checked(
			        pfn, n); // checked: a double free is refused
			break;
		}
		// (A call that hits an open lib bug is skipped here until it is fixed.)
		int rc = iovam_free_fast(d_, cache, pfn, n);
		CHECK(rc == want,
		      "free_fast(cache=%u, pfn=%" PRIu64 ", n=%" PRIu64
		      ", checks=%d) variant %d rc=%d want %d",
		      cache, pfn, n, checks_on_, v % 4, rc, want);
		if (rc != 0) return;
		forget_fast_freed(pfn, cache, n);
		reconcile();
	}

	// Many calls of one kind in one op, each checked as a single op is: fills
	// magazines past their 127 ranges, the depots, and trees of several levels.
	uint32_t batch_count()
	{
		uint8_t m = in_.u8();
		return m < 192 ? 1 + m % 64
		               : 64 + (m - 192) * 4; // up to 316: two magazines and more
	}

	template <class Fn>
	void batch(uint32_t count, Fn &&fn)
	{
		for (uint32_t i = 0; i < count && calls_ < kMaxCalls; ++i) {
			fn();
			++calls_;
			// Every result is checked exactly as it comes; the O(n) verify() and
			// stats after the first calls, then every 16th, or every 64th once
			// there are many ranges (and after the batch).
			const uint32_t every = ref_->ranges().size() < 512 ? 16 : 64;
			if (i + 1 < count && (i < 4 || i % every == every - 1)) check_all();
		}
	}

	void op_alloc_fast_batch()
	{
		uint32_t count = batch_count(), cache = pick_cache(false);
		uint64_t n = pick_npages(), limit = pick_limit();
		batch(count, [&] { do_alloc_fast(cache, n, limit, false); });
	}

	void op_free_fast_batch()
	{
		uint32_t count = batch_count(), cache = pick_cache(false);
		uint8_t f = in_.u8();
		batch(count, [&] {
			if (fast_owned_.empty()) return;
			// From the top, the bottom, or the middle of what we own.
			auto it = f % 3 == 0 ? fast_owned_.begin()
			          : f % 3 == 1
			                  ? std::prev(fast_owned_.end())
			                  : std::next(fast_owned_.begin(), fast_owned_.size() / 2);
			do_free_fast(it, cache, 0);
		});
	}

	// f & 2: the limit climbs by n per call (from where the last climbing
	// batch stopped), so the top-down allocator carves upwards: leaves and
	// inner nodes split at their high edge (30 | 2, 10 | 1), and freeing the
	// top ranges then empties a leaf under a one-child node, shapes a fixed
	// limit never builds.
	void op_alloc_batch()
	{
		uint32_t count = batch_count();
		uint8_t f = in_.u8();
		uint64_t n = pick_npages(), limit = pick_limit();
		batch(count, [&] {
			if (f & 2) {
				if (climb_limit_ < start_ - 1 || climb_limit_ >= end_)
					climb_limit_ = start_ - 1;
				climb_limit_ = n < end_ - climb_limit_ ? climb_limit_ + n : end_;
				limit = climb_limit_;
			}
			do_alloc(n, limit, f & 1, false);
		});
	}

	void op_free_batch()
	{
		uint32_t count = batch_count();
		uint8_t f = in_.u8();
		const bool deferred = f & 4;
		batch(count, [&] {
			// Every other ALLOCATED range we may free (not a cache's):
			// fragments the tree.
			auto &rs = ref_->ranges();
			uint32_t skip = f % 4;
			for (auto it = f & 8 ? rs.begin()
			                     : rs.lower_bound(
			                               start_ +
			                               (rs.size() > 0 ? (end_ - start_) / 2 : 0));
			     it != rs.end(); ++it) {
				if (it->second.tag != RefTag::kAllocated ||
				    ref_->is_cached(it->first))
					continue;
				if (skip-- > 0) continue;
				uint64_t pfn = it->first;
				int rc = deferred ? iovam_free_deferred(d_, pfn)
				                  : iovam_free(d_, pfn);
				CHECK(rc == 0, "%s(%" PRIu64 ") of a live range rc=%d",
				      deferred ? "free_deferred" : "free", pfn, rc);
				fast_owned_.erase(pfn);
				if (deferred)
					it->second.tag = RefTag::kDeferred;
				else
					rs.erase(it);
				return;
			}
		});
	}

	// Single pages reserved `stride` apart (a FREE gap between each), from a
	// cursor that later batches continue: two segments per call, so a few
	// thousand calls grow the tree past the pool's high water. f & 16: then one
	// reserve from the window's start to the cursor, which folds them all into
	// one segment (if nothing ALLOCATED lies between) and frees those nodes for
	// the next maintain() to trim.
	void op_reserve_batch()
	{
		uint32_t count = batch_count();
		uint8_t f = in_.u8();
		const uint64_t stride = 2 + f % 8;
		batch(count, [&] {
			if (reserve_cursor_ < start_ || reserve_cursor_ > end_)
				reserve_cursor_ = start_;
			const uint64_t pfn = reserve_cursor_;
			reserve_cursor_ = stride <= end_ - pfn ? pfn + stride : start_;
			ref_->reserve_flushes_caches(pfn, pfn, checks_on_);
			auto it = ref_->containing(pfn);
			const int want =
			        it == ref_->ranges().end() || it->second.tag == RefTag::kReserved
			                ? 0
			                : -EBUSY;
			int rc = iovam_reserve(d_, pfn, pfn);
			if (rc == -EAGAIN && want == 0) {
				CHECK(fail_on_, "reserve -EAGAIN without injection");
				return;
			}
			CHECK(rc == want, "reserve(%" PRIu64 ") rc=%d want %d", pfn, rc, want);
			if (rc == 0)
				CHECK(ref_->reserve(pfn, pfn) == 0, "model reserve(%" PRIu64 ")",
				      pfn);
		});
		if (!(f & 16) || calls_ >= kMaxCalls) return;
		++calls_;
		const uint64_t lo = start_, hi = reserve_cursor_;
		ref_->reserve_flushes_caches(lo, hi, checks_on_);
		int rc = iovam_reserve(d_, lo, hi);
		if (rc == -EAGAIN) {
			CHECK(fail_on_, "reserve -EAGAIN without injection");
			ReferenceModel probe = *ref_;
			CHECK(probe.reserve(lo, hi) == 0,
			      "reserve(%" PRIu64 ", %" PRIu64 ") -EAGAIN but it cannot succeed", lo,
			      hi);
			return;
		}
		const int want = ref_->reserve(lo, hi); // changes the model only on success
		CHECK(rc == want, "reserve(%" PRIu64 ", %" PRIu64 ") rc=%d want %d", lo, hi, rc,
		      want);
	}

	// ---------------------------------------------------------------- bulk

	// A bulk's length: 0 sometimes, else as a batch's (up to 316: past two
	// magazines); its calls count against kMaxCalls.
	uint32_t bulk_count(uint8_t f)
	{
		uint32_t count = f % 16 == 14 ? 0 : batch_count();
		count = static_cast<uint32_t>(
		        std::min<uint64_t>(count, kMaxCalls - std::min(calls_, kMaxCalls)));
		calls_ += count;
		return count;
	}

	void op_alloc_fast_bulk()
	{
		uint8_t f = in_.u8();
		const bool null_out = f % 16 == 15;
		const uint32_t count = bulk_count(f);
		const uint32_t cache = pick_cache(true);
		const uint64_t n = pick_npages(), limit = pick_limit();
		std::vector<uint64_t> out(count + 1, 0xdeadbeef);
		int rc = iovam_alloc_fast_bulk(d_, cache, n, limit, null_out ? nullptr : out.data(),
		                               count);
		auto untouched = [&] {
			for (uint64_t p : out)
				if (p != 0xdeadbeef) return false;
			return true;
		};
		if (count == 0) {
			CHECK(rc == 0 && untouched(), "alloc_fast_bulk(n 0) rc=%d", rc);
			return;
		}
		if (null_out || n == 0 || limit < start_ || !cache_ok(cache) || n > k2p63) {
			CHECK(untouched(), "alloc_fast_bulk refused with rc=%d but wrote the array",
			      rc);
			check_alloc_fast_refused(rc, cache, n, limit, null_out);
			return;
		}
		if (rc == -ENOMEM || rc == -EAGAIN) {
			check_alloc_fast_failed(rc, cache, n, limit, count);
			return;
		}
		CHECK(rc == 0,
		      "alloc_fast_bulk(cache=%u, n=%" PRIu64 ", limit=%" PRIu64 ", count=%u) rc=%d",
		      cache, n, limit, count, rc);
		accept_fast_bulk(out.data(), count, cache, n, limit);
	}

	// In call order: cache pops first (exact cached ranges), then tree
	// allocations, each the highest aligned fit then, or after one flush of
	// every cache once nothing fitted.
	void accept_fast_bulk(const uint64_t *out, uint32_t count, uint32_t cache, uint64_t n,
	                      uint64_t limit)
	{
		const uint64_t size = fast_size_pages(n);
		bool flushed = false;
		for (uint32_t i = 0; i < count; ++i) {
			const uint64_t pfn = out[i];
			check_fast_range(pfn, n, limit, "alloc_fast_bulk");
			CHECK(fast_owned_.emplace(pfn, n).second,
			      "range %" PRIu64 " handed out twice (entry %u)", pfn, i);
			if (ref_->is_cached(pfn) && ref_->ranges().at(pfn).hi == pfn + size - 1) {
				ref_->uncache(pfn);
				continue;
			}
			std::optional<uint64_t> want = ref_->fit(size, limit, true);
			if (!flushed && (!want || *want != pfn)) {
				ref_->flush_caches();
				flushed = true;
				want = ref_->fit(size, limit, true);
			}
			CHECK(want && *want == pfn,
			      "alloc_fast_bulk(cache=%u, n=%" PRIu64 ", limit=%" PRIu64
			      ") entry %u from the tree gave %" PRIu64
			      ", highest aligned fit is %" PRIu64 " (flushed=%d)",
			      cache, n, limit, i, pfn, want ? *want : 0, flushed);
			ref_->insert(pfn, pfn + size - 1, RefTag::kAllocated);
		}
		reconcile();
	}

	// NULL array: -EINVAL, or 0 with count 0. npages 0 or a bad cache id,
	// entries that would be fine: -EINVAL, or 0 with none. Returns false for
	// the other variants.
	bool free_fast_bulk_bad_args(uint8_t g, uint32_t count, uint32_t cache)
	{
		if (g % 8 == 0) {
			int rc = iovam_free_fast_bulk(d_, cache, nullptr, count, pick_npages());
			CHECK(rc == (count == 0 ? 0 : -EINVAL), "free_fast_bulk(NULL, %u) rc=%d",
			      count, rc);
			return true;
		}
		if (g % 8 != 1) return false;
		const uint32_t bad_cache = (g & 8) ? conf_.n_caches + (g >> 4) : cache;
		std::vector<uint64_t> pfns;
		for (auto &[pfn, npages] : fast_owned_) {
			if (pfns.size() == count) break;
			pfns.push_back(pfn);
		}
		const uint64_t npages = (g & 8) ? 1 : 0;
		int rc = iovam_free_fast_bulk(d_, bad_cache, pfns.data(),
		                              static_cast<unsigned>(pfns.size()), npages);
		CHECK(rc == (pfns.empty() ? 0 : -EINVAL),
		      "free_fast_bulk(cache=%u, npages=%" PRIu64 ", count=%zu) rc=%d", bad_cache,
		      npages, pfns.size(), rc);
		return true;
	}

	// One bad entry for a bulk free of n pages each: the trusting cache path
	// (checked false) is only given what its O(1) checks must refuse.
	uint64_t pick_bad_bulk_entry(const std::vector<uint64_t> &pfns, uint64_t n, bool checked)
	{
		uint8_t b = in_.u8();
		switch (b % (checked ? 5 : 3)) {
		case 0:
			return pfns.empty() ? end_ + 1
			                    : pfns[0] + std::bit_ceil(n) / 2; // misaligned (n > 1)
		case 1:
			return (end_ + 1 + in_.u8() * fast_size_pages(n)) &
			       ~(std::bit_ceil(n) - 1); // aligned, past the end
		case 2: return in_.u8() % (start_ + 1); // at or below start
		case 3: return pfns.empty() ? start_ : pfns[in_.u8() % pfns.size()]; // repeated
		default: return pick_pfn();                                          // anything
		}
	}

	void op_free_fast_bulk()
	{
		uint8_t f = in_.u8();
		const uint32_t count = bulk_count(f);
		const uint32_t cache = pick_cache(true);
		uint8_t g = in_.u8();
		if (free_fast_bulk_bad_args(g, count, cache)) return;
		if (!cache_ok(cache) || fast_owned_.empty()) return;
		// Owned ranges of one rounded size from a point on, sometimes with
		// another npages of that size.
		auto first = fast_owned_.begin();
		std::advance(first, in_.u16() % fast_owned_.size());
		uint64_t n = first->second;
		const uint64_t size = fast_size_pages(n);
		std::vector<uint64_t> pfns =
		        iovam::test::same_size_fast_ranges(fast_owned_, first, count);
		if (n <= IOVAM_CACHE_MAX_PAGES && (g & 8)) {
			uint64_t alt = size - (g >> 4) % size;
			if (std::bit_ceil(alt) == size) n = alt;
		}
		const bool to_cache = cache != IOVAM_CACHE_NONE && n <= IOVAM_CACHE_MAX_PAGES;
		const bool checked = !to_cache || checks_on_;
		if (g & 4) {
			const uint64_t bad = pick_bad_bulk_entry(pfns, n, checked);
			pfns.insert(pfns.begin() + in_.u16() % (pfns.size() + 1), bad);
		}
		const std::optional<int> want = ref_->fast_free_bulk_expect(
		        pfns, n, checked, checks_on_, fast_owned_, [](uint64_t) { return true; });
		if (want) free_fast_bulk_checked(pfns, cache, n, *want, checked);
	}

	// The bulk free and its result: on an error nothing changed, the cache's
	// counters included.
	void free_fast_bulk_checked(const std::vector<uint64_t> &pfns, uint32_t cache, uint64_t n,
	                            int want, bool checked)
	{
		iovam_cache_stats cs0{}, cs1{};
		CHECK(iovam_cache_stats_get(d_, cache, &cs0) == 0, "cache_stats_get(%u)", cache);
		int rc = iovam_free_fast_bulk(d_, cache, pfns.data(),
		                              static_cast<unsigned>(pfns.size()), n);
		CHECK(rc == want,
		      "free_fast_bulk(cache=%u, n=%" PRIu64
		      ", count=%zu, checked=%d) rc=%d want %d",
		      cache, n, pfns.size(), checked, rc, want);
		if (rc != 0) {
			CHECK(iovam_cache_stats_get(d_, cache, &cs1) == 0 &&
			              cs1.alloc_hits == cs0.alloc_hits &&
			              cs1.alloc_misses == cs0.alloc_misses &&
			              cs1.free_hits == cs0.free_hits &&
			              cs1.free_misses == cs0.free_misses &&
			              cs1.cached_ranges == cs0.cached_ranges,
			      "free_fast_bulk failed with %d but cache %u's counters changed", rc,
			      cache);
			return; // check_all() after the op: nothing else changed either
		}
		for (uint64_t pfn : pfns) forget_fast_freed(pfn, cache, n);
		reconcile(); // full magazines may have gone back to the tree
	}

	// A fast range freed: into the cache (still ALLOCATED), or to the tree.
	void forget_fast_freed(uint64_t pfn, uint32_t cache, uint64_t n)
	{
		fast_owned_.erase(pfn);
		if (cache != IOVAM_CACHE_NONE && n <= IOVAM_CACHE_MAX_PAGES)
			ref_->cache(pfn);
		else
			ref_->ranges().erase(pfn);
	}

	void op_flush()
	{
		uint32_t cache = pick_cache(true);
		size_t before = ref_->cached().size();
		int rc = iovam_cache_flush(d_, cache);
		if (!cache_ok(cache)) {
			CHECK(rc == -EINVAL, "cache_flush(%u) rc=%d want -EINVAL", cache, rc);
			return;
		}
		CHECK(rc >= 0, "cache_flush(%u) rc=%d", cache, rc);
		uint64_t gone = reconcile();
		CHECK(static_cast<uint64_t>(rc) == gone,
		      "cache_flush(%u) returned %d, %" PRIu64 " ranges left the caches", cache, rc,
		      gone);
		if (cache == IOVAM_CACHE_NONE)
			CHECK(ref_->cached().empty() && gone == before, "flush all left %zu cached",
			      ref_->cached().size());
	}

	void op_maintain()
	{
		uint64_t deferred = ref_->count(RefTag::kDeferred);
		int rc = iovam_maintain(d_);
		CHECK(rc >= 0 && static_cast<uint64_t>(rc) == deferred,
		      "maintain rc=%d want %" PRIu64, rc, deferred);
		for (auto it = ref_->ranges().begin(); it != ref_->ranges().end();)
			it = it->second.tag == RefTag::kDeferred ? ref_->ranges().erase(it)
			                                         : std::next(it);
		reconcile();
	}

	void op_stats()
	{
		uint8_t f = in_.u8();
		if (f % 8 == 0) CHECK(iovam_stats_get(d_, nullptr) == -EINVAL, "stats_get(NULL)");
		if (f % 8 == 1) {
			uint32_t c = pick_cache(true);
			CHECK(iovam_cache_stats_get(d_, c, nullptr) == -EINVAL,
			      "cache_stats_get(%u, NULL)", c);
		}
		for (uint32_t bad : {conf_.n_caches, UINT32_MAX - 1}) {
			iovam_cache_stats cs{};
			CHECK(iovam_cache_stats_get(d_, bad, &cs) == -EINVAL,
			      "cache_stats_get(bad %u)", bad);
		}
		// Per-cache counters: the caches' and the depots' ranges add up;
		// counters never go down.
		uint64_t sum = 0;
		if (last_cs_.size() != conf_.n_caches + 1)
			last_cs_.assign(conf_.n_caches + 1, iovam_cache_stats{});
		for (uint32_t i = 0; i <= conf_.n_caches; ++i) {
			uint32_t c = i == conf_.n_caches ? IOVAM_CACHE_NONE : i;
			iovam_cache_stats cs{};
			CHECK(iovam_cache_stats_get(d_, c, &cs) == 0, "cache_stats_get(%u)", c);
			sum += cs.cached_ranges;
			iovam_cache_stats &l = last_cs_[i];
			CHECK(cs.alloc_hits >= l.alloc_hits && cs.alloc_misses >= l.alloc_misses &&
			              cs.free_hits >= l.free_hits &&
			              cs.free_misses >= l.free_misses,
			      "cache %u counters went down", c);
			l = cs;
		}
		CHECK(sum == ref_->cached().size(),
		      "cache_stats cached_ranges add up to %" PRIu64 ", want %zu", sum,
		      ref_->cached().size());
		iovam_domain_conf got{};
		CHECK(iovam_domain_conf_get(d_, &got) == 0 && got.granule == conf_.granule &&
		              got.start_pfn == start_ && got.end_pfn == end_ &&
		              got.n_caches == conf_.n_caches,
		      "conf_get");
		CHECK(iovam_domain_conf_get(d_, nullptr) == -EINVAL, "conf_get(NULL)");
	}

	void op_fail()
	{
		uint8_t m = in_.u8();
		uint32_t one_in = m % 4 == 0 ? 0 : m % 4 == 1 ? 1 : 2 + (m >> 2) % 40;
		uint64_t seed = in_.u32();
		iovam_test_fail_node_alloc(d_, one_in, seed);
		iovam_test_fail_node_alloc(nullptr, 1, seed); // a no-op
		fail_on_ = one_in != 0;
	}

	void op_set_checks()
	{
		uint8_t m = in_.u8();
		const uint32_t flags[] = {0, IOVAM_CHECK_FAST_FREE, 2, 0x80000001u};
		uint32_t fl = flags[m % 4];
		int rc = iovam_domain_set_checks(d_, fl);
		if (fl & ~IOVAM_CHECK_FAST_FREE) {
			CHECK(rc == -EINVAL, "set_checks(%#x) rc=%d", fl, rc);
			return;
		}
		// The mode changes only on a domain with nothing allocated.
		iovam_stats st{};
		CHECK(iovam_stats_get(d_, &st) == 0, "stats_get");
		const bool busy =
		        (fl != 0) != checks_on_ && (st.live_ranges != 0 || st.deferred_ranges != 0);
		CHECK(rc == (busy ? -EBUSY : 0), "set_checks(%#x) rc=%d busy=%d", fl, rc, busy);
		if (rc == 0) checks_on_ = fl != 0;
	}

	void op_null()
	{
		uint64_t p = 0, q = 0;
		iovam_stats st;
		iovam_cache_stats cs;
		iovam_domain_conf c = conf_;
		CHECK(iovam_alloc(nullptr, 1, UINT64_MAX, false, &p) == -EINVAL, "NULL d alloc");
		CHECK(iovam_free(nullptr, start_) == -EINVAL, "NULL d free");
		CHECK(iovam_free_deferred(nullptr, start_) == -EINVAL, "NULL d free_deferred");
		CHECK(iovam_reserve(nullptr, start_, start_) == -EINVAL, "NULL d reserve");
		CHECK(iovam_find(nullptr, start_, &p, &q) == -EINVAL, "NULL d find");
		CHECK(iovam_alloc_fast(nullptr, IOVAM_CACHE_NONE, 1, UINT64_MAX, &p) == -EINVAL,
		      "NULL d alloc_fast");
		CHECK(iovam_free_fast(nullptr, IOVAM_CACHE_NONE, start_, 1) == -EINVAL,
		      "NULL d free_fast");
		CHECK(iovam_cache_flush(nullptr, IOVAM_CACHE_NONE) == -EINVAL,
		      "NULL d cache_flush");
		CHECK(iovam_maintain(nullptr) == -EINVAL, "NULL d maintain");
		CHECK(iovam_stats_get(nullptr, &st) == -EINVAL, "NULL d stats_get");
		CHECK(iovam_cache_stats_get(nullptr, IOVAM_CACHE_NONE, &cs) == -EINVAL,
		      "NULL d cache_stats_get");
		CHECK(iovam_domain_conf_get(nullptr, &c) == -EINVAL, "NULL d conf_get");
		CHECK(iovam_domain_set_checks(nullptr, 0) == -EINVAL, "NULL d set_checks");
		CHECK(iovam_verify(nullptr) == -EINVAL, "NULL d verify");
		CHECK(iovam_verify_error(nullptr) != nullptr, "NULL d verify_error");
		iovam_domain_destroy(nullptr);
		// Bad confs: NULL, errno EINVAL.
		uint8_t m = in_.u8();
		iovam_domain_conf bad = conf_;
		switch (m % 7) {
		case 0:
			bad.granule = 4096 + 4096;
			bad.granule |= 1;
			break;
		case 1: bad.granule = 2048; break;
		case 2: bad.start_pfn = 0; break;
		case 3: bad.end_pfn = bad.start_pfn - 1; break;
		case 4: bad.end_pfn = k2p63; break;
		case 5: bad.n_caches = UINT32_MAX; break;
		default: bad.granule = 0; break;
		}
		errno = 0;
		iovam_domain *x = iovam_domain_create(m % 8 == 7 ? nullptr : &bad);
		CHECK(x == nullptr && errno == EINVAL, "create(bad conf %d) gave %p errno=%d",
		      m % 8, static_cast<void *>(x), errno);
	}

	// ---------------------------------------------------------------- teardown

	void drain_to_empty()
	{
		g_op = "drain";
		iovam_test_fail_node_alloc(d_, 0, 0);
		fail_on_ = false;
		for (auto &[pfn, n] : fast_owned_) {
			int rc = iovam_free_fast(d_, IOVAM_CACHE_NONE, pfn, n);
			CHECK(rc == 0, "drain free_fast(%" PRIu64 ", %" PRIu64 ") rc=%d", pfn, n,
			      rc);
			ref_->ranges().erase(pfn);
		}
		fast_owned_.clear();
		check_verify();
		int rc = iovam_cache_flush(d_, IOVAM_CACHE_NONE);
		CHECK(rc >= 0, "drain flush rc=%d", rc);
		reconcile();
		CHECK(ref_->cached().empty(), "cached after flush all");
		for (auto it = ref_->ranges().begin(); it != ref_->ranges().end();) {
			if (it->second.tag == RefTag::kAllocated) {
				rc = iovam_free(d_, it->first);
				CHECK(rc == 0, "drain free(%" PRIu64 ") rc=%d", it->first, rc);
				it = ref_->ranges().erase(it);
			} else {
				++it;
			}
		}
		op_maintain();
		check_all();
		iovam_stats st{};
		CHECK(iovam_stats_get(d_, &st) == 0, "stats_get");
		CHECK(st.live_ranges == 0 && st.live_pages == 0 && st.deferred_ranges == 0 &&
		              st.cached_ranges == 0,
		      "not empty after drain");
		full_scan();
		// Everything outside the RESERVED ranges is one hole again: the lowest
		// and highest fits are where the model says.
		uint64_t pfn = 0;
		auto want = ref_->fit(1, UINT64_MAX, false);
		rc = iovam_alloc(d_, 1, UINT64_MAX, false, &pfn);
		CHECK(want ? rc == 0 && pfn == *want : rc == -ENOMEM, "alloc after drain rc=%d",
		      rc);
	}

	Reader in_;
	iovam_domain_conf conf_{};
	uint64_t start_ = 0, end_ = 0, dma32_last_ = 0;
	std::optional<ReferenceModel> ref_;
	iovam_domain *d_ = nullptr;
	std::map<uint64_t, uint64_t> fast_owned_; // pfn -> npages given to alloc_fast
	std::vector<iovam_cache_stats> last_cs_;
	uint64_t last_failures_ = 0;
	uint64_t calls_ = 0;
	uint64_t reserve_cursor_ = 0; // op_reserve_batch's next pfn
	uint64_t climb_limit_ = 0;    // op_alloc_batch's climbing limit
	bool destroy_full_ = false;
	uint32_t num_ops_ = kNumOps;
	bool fail_on_ = false;
	bool checks_on_ = true; // IOVAM_CHECK_FAST_FREE is the default
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) return 0;
	Fuzz f(data, size);
	f.run();
	return 0;
}
