// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Model test: random operations on a domain and on a std::map reference,
// compared after every step, with node-allocation failures injected at
// several rates and seeds; verify() after every mutation.

#include <gtest/gtest.h>

#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <vector>

#include "iovam.h"
#include "iovam_test.h"
#include "reference_model.h"

using iovam::test::ReferenceModel;
using iovam::test::RefTag;

namespace {

struct ModelConf {
  uint64_t granule;
  uint64_t start_pfn, end_pfn;
  uint32_t n_caches;
  uint32_t fail_one_in;
  uint64_t seed;
  uint64_t ops;
  uint64_t max_pages;  // request sizes 1..max_pages, skewed small
};

std::string name_of(const ModelConf& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "end%" PRIu64 "_caches%u_fail%u_seed%" PRIu64, c.end_pfn, c.n_caches,
                c.fail_one_in, c.seed);
  return buf;
}

class Model {
 public:
  explicit Model(const ModelConf& c) : c_(c), ref_(c.start_pfn, c.end_pfn), rng_(c.seed) {
    iovam_domain_conf dc{c.granule, c.start_pfn, c.end_pfn, c.n_caches};
    d_ = iovam_domain_create(&dc);
    if (d_ != nullptr) iovam_test_fail_node_alloc(d_, c.fail_one_in, c.seed * 7 + 1);
    dma32_last_ = (1ULL << 32) / c.granule - 1;
  }
  ~Model() { iovam_domain_destroy(d_); }
  iovam_domain* d() { return d_; }

  uint64_t pick_pfn() {
    // Mostly inside the window; sometimes exactly at a live range's edges.
    if (!ref_.ranges().empty() && coin(2)) {
      auto it = ref_.ranges().begin();
      std::advance(it, rng_() % ref_.ranges().size());
      uint64_t span = it->second.hi - it->first;
      return it->first + (span ? rng_() % (span + 1) : 0);
    }
    return rng_() % (c_.end_pfn + 2);
  }
  uint64_t pick_npages() {
    uint64_t r = rng_() % 100;
    if (r < 60) return 1 + rng_() % 4;
    if (r < 90) return 1 + rng_() % std::min<uint64_t>(c_.max_pages, 32);
    return 1 + rng_() % c_.max_pages;
  }
  uint64_t pick_limit() {
    uint64_t r = rng_() % 10;
    if (r < 5) return UINT64_MAX;
    if (r < 7) return dma32_last_;
    return c_.start_pfn + rng_() % (c_.end_pfn - c_.start_pfn + 1);
  }
  bool coin(uint32_t one_in) { return rng_() % one_in == 0; }

  void check_verify(const char* what) {
    int rc = iovam_verify(d_);
    ASSERT_EQ(rc, 0) << what << ": " << iovam_verify_error(d_);
  }

  // Cached (fast-freed) ranges may have gone back to the tree: learn which.
  void reconcile_cached() {
    for (auto it = cached_.begin(); it != cached_.end();) {
      uint64_t lo, hi;
      int rc = iovam_find(d_, *it, &lo, &hi);
      if (rc == -ENOENT) {
        ref_.ranges().erase(*it);
        it = cached_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void check_stats() {
    iovam_stats st;
    ASSERT_EQ(iovam_stats_get(d_, &st), 0);
    EXPECT_EQ(st.live_ranges, ref_.count(RefTag::kAllocated));
    EXPECT_EQ(st.reserved_ranges, ref_.count(RefTag::kReserved));
    EXPECT_EQ(st.deferred_ranges, ref_.count(RefTag::kDeferred));
    EXPECT_EQ(st.cached_ranges, cached_.size());
  }

  void op_alloc() {
    uint64_t n = pick_npages(), limit = pick_limit();
    bool aligned = coin(2);
    reconcile_cached();
    auto want = ref_.fit(n, limit, aligned);
    uint64_t pfn = 0;
    int rc = iovam_alloc(d_, n, limit, aligned, &pfn);
    if (want) {
      if (rc == -EAGAIN) {
        ASSERT_NE(c_.fail_one_in, 0u) << "EAGAIN without injection";
        return;
      }
      ASSERT_EQ(rc, 0) << "n=" << n << " limit=" << limit << " aligned=" << aligned;
      ASSERT_EQ(pfn, *want) << "n=" << n << " limit=" << limit << " aligned=" << aligned;
      ref_.insert(pfn, pfn + n - 1, RefTag::kAllocated);
      owned_.insert(pfn);
    } else {
      ASSERT_EQ(rc, -ENOMEM) << "n=" << n << " limit=" << limit << " aligned=" << aligned;
    }
  }

  void op_free(bool deferred) {
    reconcile_cached();
    uint64_t pfn = pick_pfn();
    auto it = ref_.containing(pfn);
    int want;
    if (it == ref_.ranges().end() || it->second.tag == RefTag::kDeferred)
      want = -ENOENT;
    else if (it->second.tag == RefTag::kReserved)
      want = -EPERM;
    else if (cached_.count(it->first))
      return;  // a cached range is the cache's, not ours to free
    else
      want = 0;
    int rc = deferred ? iovam_free_deferred(d_, pfn) : iovam_free(d_, pfn);
    ASSERT_EQ(rc, want) << "pfn=" << pfn;
    if (rc == 0) {
      owned_.erase(it->first);
      fast_owned_.erase(it->first);
      if (deferred)
        it->second.tag = RefTag::kDeferred;
      else
        ref_.ranges().erase(it);
    }
  }

  void op_reserve() {
    reconcile_cached();
    uint64_t lo = pick_pfn(), len = coin(4) ? rng_() % 64 : rng_() % 4;
    uint64_t hi = lo + len;
    if (coin(20)) std::swap(lo, hi);
    ReferenceModel probe = ref_;
    int want = probe.reserve(lo, hi);
    int rc = iovam_reserve(d_, lo, hi);
    if (rc == -EAGAIN && want == 0) {
      ASSERT_NE(c_.fail_one_in, 0u);
      return;
    }
    ASSERT_EQ(rc, want) << "lo=" << lo << " hi=" << hi;
    if (rc == 0) ref_ = probe;
  }

  void op_find() {
    reconcile_cached();
    uint64_t pfn = pick_pfn(), lo = 0, hi = 0;
    int rc = iovam_find(d_, pfn, &lo, &hi);
    auto it = ref_.containing(pfn);
    if (it == ref_.ranges().end() || it->second.tag == RefTag::kDeferred) {
      ASSERT_EQ(rc, -ENOENT) << pfn;
    } else {
      ASSERT_EQ(rc, 0) << pfn;
      ASSERT_EQ(lo, it->first);
      ASSERT_EQ(hi, it->second.hi);
    }
  }

  void op_maintain() {
    uint64_t deferred = ref_.count(RefTag::kDeferred);
    int rc = iovam_maintain(d_);
    ASSERT_EQ(static_cast<uint64_t>(rc), deferred);
    for (auto it = ref_.ranges().begin(); it != ref_.ranges().end();)
      it = it->second.tag == RefTag::kDeferred ? ref_.ranges().erase(it) : std::next(it);
    reconcile_cached();
  }

  void op_alloc_fast() {
    uint32_t cache = c_.n_caches && !coin(8) ? rng_() % c_.n_caches : IOVAM_CACHE_NONE;
    uint64_t n = pick_npages(), limit = pick_limit(), pfn = 0;
    uint64_t size = n <= 32 ? std::bit_ceil(n) : n;
    reconcile_cached();
    int rc = iovam_alloc_fast(d_, cache, n, limit, &pfn);
    if (rc == -ENOMEM || rc == -EAGAIN) {
      if (rc == -EAGAIN) {
        ASSERT_NE(c_.fail_one_in, 0u);
      }
      // After the flush-all retry, the tree must really have no aligned fit.
      if (rc == -ENOMEM) {
        reconcile_cached();
        ASSERT_FALSE(ref_.fit(size, limit, true).has_value()) << "n=" << n << " limit=" << limit;
      }
      return;
    }
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(pfn % std::bit_ceil(n), 0u);
    ASSERT_LE(pfn + size - 1, std::min(limit, c_.end_pfn));
    ASSERT_GE(pfn, c_.start_pfn);
    uint64_t lo, hi;
    ASSERT_EQ(iovam_find(d_, pfn, &lo, &hi), 0);
    ASSERT_EQ(lo, pfn);
    ASSERT_EQ(hi, pfn + size - 1);
    // alloc_fast may have flushed every cache before retrying: cached ranges
    // it overlaps went back to the tree first (an exact match may have come
    // straight from a cache or through the tree: the two are the same state).
    for (auto it = cached_.begin(); it != cached_.end();) {
      uint64_t c_hi = ref_.ranges().at(*it).hi;
      bool overlaps = *it <= pfn + size - 1 && c_hi >= pfn;
      bool exact = *it == pfn && c_hi == pfn + size - 1;
      if (overlaps && !exact) {
        ref_.ranges().erase(*it);
        it = cached_.erase(it);
      } else {
        ++it;
      }
    }
    if (cached_.erase(pfn)) {
      // Came from a cache: the reference already has it ALLOCATED.
      ASSERT_EQ(ref_.ranges().at(pfn).hi, pfn + size - 1);
    } else {
      auto it = ref_.containing(pfn);
      ASSERT_TRUE(it == ref_.ranges().end()) << "handed out an occupied range " << pfn;
      auto next = ref_.ranges().lower_bound(pfn);
      ASSERT_TRUE(next == ref_.ranges().end() || next->first > pfn + size - 1);
      ref_.insert(pfn, pfn + size - 1, RefTag::kAllocated);
    }
    ASSERT_TRUE(fast_owned_.emplace(pfn, n).second) << "range handed out twice " << pfn;
    fast_cache_[pfn] = cache;
  }

  void op_free_fast() {
    if (fast_owned_.empty()) return;
    auto it = fast_owned_.begin();
    std::advance(it, rng_() % fast_owned_.size());
    uint64_t pfn = it->first, n = it->second;
    uint32_t cache = c_.n_caches && !coin(8) ? rng_() % c_.n_caches : IOVAM_CACHE_NONE;
    ASSERT_EQ(iovam_free_fast(d_, cache, pfn, n), 0);
    fast_owned_.erase(it);
    if (cache != IOVAM_CACHE_NONE && n <= 32)
      cached_.insert(pfn);
    else
      ref_.ranges().erase(pfn);
  }

  void op_flush() {
    uint32_t cache = c_.n_caches && !coin(3) ? rng_() % c_.n_caches : IOVAM_CACHE_NONE;
    int rc = iovam_cache_flush(d_, cache);
    ASSERT_GE(rc, 0);
    reconcile_cached();
    if (cache == IOVAM_CACHE_NONE) {
      ASSERT_TRUE(cached_.empty());
    }
  }

  void run() {
    ASSERT_NE(d_, nullptr);
    for (uint64_t i = 0; i < c_.ops; ++i) {
      uint32_t r = rng_() % 100;
      const char* what;
      if (r < 30) {
        what = "alloc";
        op_alloc();
      } else if (r < 45) {
        what = "free";
        op_free(false);
      } else if (r < 52) {
        what = "free_deferred";
        op_free(true);
      } else if (r < 56) {
        what = "reserve";
        op_reserve();
      } else if (r < 62) {
        what = "find";
        op_find();
        continue;
      } else if (r < 64) {
        what = "maintain";
        op_maintain();
      } else if (r < 80) {
        what = "alloc_fast";
        op_alloc_fast();
      } else if (r < 97) {
        what = "free_fast";
        op_free_fast();
      } else {
        what = "flush";
        op_flush();
      }
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "at op " << i << " (" << what << ")";
        return;
      }
      check_verify(what);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "at op " << i << " (" << what << ")";
        return;
      }
      if (i % 64 == 0) {
        reconcile_cached();
        check_stats();
      }
    }
    drain_to_empty();
  }

  // Faults stop; everything drains back to an empty domain.
  void drain_to_empty() {
    iovam_test_fail_node_alloc(d_, 0, 0);
    for (auto& [pfn, n] : fast_owned_) ASSERT_EQ(iovam_free_fast(d_, IOVAM_CACHE_NONE, pfn, n), 0);
    for (auto& [pfn, n] : fast_owned_) ref_.ranges().erase(pfn);
    fast_owned_.clear();
    ASSERT_GE(iovam_cache_flush(d_, IOVAM_CACHE_NONE), 0);
    reconcile_cached();
    ASSERT_TRUE(cached_.empty());
    for (auto it = ref_.ranges().begin(); it != ref_.ranges().end(); ++it) {
      if (it->second.tag == RefTag::kAllocated) {
        ASSERT_EQ(iovam_free(d_, it->first), 0);
      }
    }
    iovam_maintain(d_);
    check_verify("drain");
    iovam_stats st;
    ASSERT_EQ(iovam_stats_get(d_, &st), 0);
    EXPECT_EQ(st.live_ranges, 0u);
    EXPECT_EQ(st.live_pages, 0u);
    EXPECT_EQ(st.deferred_ranges, 0u);
    EXPECT_EQ(st.cached_ranges, 0u);
    EXPECT_EQ(st.reserved_ranges, ref_.count(RefTag::kReserved));
  }

 private:
  ModelConf c_;
  ReferenceModel ref_;
  std::mt19937_64 rng_;
  iovam_domain* d_ = nullptr;
  uint64_t dma32_last_ = 0;
  std::set<uint64_t> owned_;              // tree-allocated by us
  std::map<uint64_t, uint64_t> fast_owned_;  // pfn -> npages from alloc_fast
  std::map<uint64_t, uint32_t> fast_cache_;
  std::set<uint64_t> cached_;             // fast-freed into a cache
};

class ModelTest : public ::testing::TestWithParam<ModelConf> {};

// IOVAM_MODEL_OPS_SCALE scales every configuration's operation count (the
// sanitizer builds run a quarter; a soak runs more).
ModelConf scaled(ModelConf c) {
  if (const char* s = std::getenv("IOVAM_MODEL_OPS_SCALE")) c.ops = static_cast<uint64_t>(c.ops * std::atof(s));
  return c;
}

TEST_P(ModelTest, MatchesReference) {
  Model m(scaled(GetParam()));
  m.run();
}

std::vector<ModelConf> configs() {
  std::vector<ModelConf> v;
  // 1 MiB granule puts the 32-bit boundary at pfn 4095: windows straddle it.
  const uint64_t g = 1ULL << 20;
  for (uint32_t fail : {0u, 1u, 3u, 17u, 200u}) {
    for (uint64_t seed : {1ULL, 2ULL, 3ULL}) {
      v.push_back({g, 1, 8191, 4, fail, seed, 80000, 48});
    }
  }
  // Small windows: full and fragmented all the time.
  for (uint64_t seed : {11ULL, 12ULL, 13ULL, 14ULL}) v.push_back({g, 1, 300, 2, seed % 2 ? 0u : 5u, seed, 60000, 8});
  // A 4 KiB granule domain with a 48-bit window and many live ranges: deep trees.
  for (uint64_t seed : {21ULL, 22ULL}) v.push_back({4096, 1, (1ULL << 36) - 1, 3, seed == 21 ? 0u : 50u, seed, 150000, 4});
  // Start above 1 and a window inside the 32-bit space.
  v.push_back({4096, 4096, 8191, 1, 0, 31, 60000, 40});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Random, ModelTest, ::testing::ValuesIn(configs()),
                         [](const auto& info) { return name_of(info.param); });

}  // namespace
