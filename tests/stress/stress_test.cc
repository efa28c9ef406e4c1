// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
//
// Concurrency stress (not a benchmark): threads race alloc/free/lazy free/fast
// path (single and bulk)/flush/reserve/maintain on one domain with a fixed
// seed (one TBB task per cache; std::thread under TSan), and an ownership bitmap proves that no page is ever handed to two
// owners and that nothing is lost at the end. Built and run under ThreadSanitizer in CI.
//
// IOVAM_STRESS_SECONDS=N runs each thread for N seconds instead of a fixed
// number of operations (the long soak).

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "iovam.h"
#include "iovam_test.h"

#if IOVAM_STRESS_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace {

constexpr uint64_t kStart = 1;
constexpr uint64_t kEnd = (1 << 16) - 1;
constexpr uint8_t kFreePage = 0, kReservedPage = 0xff;

struct Held {
  uint64_t pfn, npages;  // npages as owned (rounded for the fast path)
  uint64_t asked;        // what was passed to alloc_fast
  enum Kind : uint8_t { kTree, kFast } kind;
};

class Stress {
 public:
  Stress(uint32_t threads, uint32_t fail_one_in) : threads_(threads), pages_(kEnd + 1) {
    iovam_domain_conf c{4096, kStart, kEnd, threads};
    d_ = iovam_domain_create(&c);
    if (d_ != nullptr && fail_one_in) iovam_test_fail_node_alloc(d_, fail_one_in, 99);
  }
  ~Stress() { iovam_domain_destroy(d_); }

  void claim(uint64_t pfn, uint64_t n, uint8_t who) {
    for (uint64_t p = pfn; p < pfn + n; ++p) {
      uint8_t prev = pages_[p].exchange(who, std::memory_order_acq_rel);
      if (prev != kFreePage) {
        double_owner_.store(true);
        ADD_FAILURE() << "page " << p << " handed to " << int(who) << " while owned by " << int(prev);
        return;
      }
    }
  }
  void release(uint64_t pfn, uint64_t n, uint8_t who) {
    for (uint64_t p = pfn; p < pfn + n; ++p) {
      uint8_t prev = pages_[p].exchange(kFreePage, std::memory_order_acq_rel);
      if (prev != who) {
        lost_.store(true);
        ADD_FAILURE() << "page " << p << " owned by " << int(prev) << ", released by " << int(who);
        return;
      }
    }
  }

  void worker(uint32_t id, uint64_t ops, double seconds) {
    std::mt19937_64 rng(1000 + id);
    std::vector<Held> held;
    const uint8_t who = static_cast<uint8_t>(id + 1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (uint64_t i = 0; seconds > 0 ? std::chrono::steady_clock::now() < deadline : i < ops; ++i) {
      uint32_t r = rng() % 100;
      uint64_t n = 1 + (rng() % 100 < 80 ? rng() % 4 : rng() % 40);
      uint64_t limit = rng() % 4 == 0 ? kStart + rng() % (kEnd - kStart) : UINT64_MAX;
      if (r < 20 || (r < 40 && held.size() > 2000)) {
        if (held.empty()) continue;
        size_t k = rng() % held.size();
        Held h = held[k];
        if (h.kind == Held::kFast && rng() % 4 == 0) {
          // A checked free of our own range with twice its size, while the
          // others run: -EINVAL and the range stays ours (freed below).
          EXPECT_EQ(iovam_free_fast(d_, rng() % 8 ? id : IOVAM_CACHE_NONE, h.pfn, 2 * h.npages), -EINVAL);
        }
        held[k] = held.back();
        held.pop_back();
        if (h.kind == Held::kFast && rng() % 4 == 0) {
          // Freed by another thread: the drainer's return batch.
          std::lock_guard lk(handoff_lock_);
          handoff_.push_back({h, who});
          continue;
        }
        release(h.pfn, h.npages, who);
        int rc;
        if (h.kind == Held::kFast)
          rc = iovam_free_fast(d_, rng() % 8 ? id : IOVAM_CACHE_NONE, h.pfn, h.asked);
        else
          rc = rng() % 3 ? iovam_free(d_, h.pfn) : iovam_free_deferred(d_, h.pfn);
        EXPECT_EQ(rc, 0);
      } else if (r < 40) {
        uint64_t pfn;
        int rc = iovam_alloc(d_, n, limit, rng() % 2, &pfn);
        if (rc == 0) {
          claim(pfn, n, who);
          held.push_back({pfn, n, n, Held::kTree});
        } else {
          EXPECT_TRUE(rc == -ENOMEM || rc == -EAGAIN) << rc;
        }
      } else if (r < 85 && r >= 77) {
        // Bulk calls: a burst of up to 40 (past a magazine's room now and
        // then), or the frees of up to 40 held fast ranges of one size.
        const uint32_t cache = rng() % 8 ? id : IOVAM_CACHE_NONE;
        if (r < 81 || held.empty()) {
          const uint32_t count = 1 + rng() % 40;
          uint64_t pfns[40];
          int rc = iovam_alloc_fast_bulk(d_, cache, n, limit, pfns, count);
          if (rc == 0) {
            uint64_t size = n <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(n) : n;
            for (uint32_t j = 0; j < count; ++j) {
              claim(pfns[j], size, who);
              held.push_back({pfns[j], size, n, Held::kFast});
            }
          } else {
            EXPECT_TRUE(rc == -ENOMEM || rc == -EAGAIN) << rc;
          }
        } else {
          uint64_t pfns[40];
          uint32_t count = 0;
          const uint64_t size = held.back().npages, asked = held.back().asked;
          for (size_t k = held.size(); k-- > 0 && count < 40;) {
            if (held[k].kind != Held::kFast || held[k].npages != size) continue;
            release(held[k].pfn, held[k].npages, who);
            pfns[count++] = held[k].pfn;
            held[k] = held.back();
            held.pop_back();
          }
          EXPECT_EQ(iovam_free_fast_bulk(d_, cache, pfns, count, asked), 0);
        }
      } else if (r < 85) {
        uint64_t pfn;
        uint32_t cache = rng() % 8 ? id : IOVAM_CACHE_NONE;
        int rc = iovam_alloc_fast(d_, cache, n, limit, &pfn);
        if (rc == 0) {
          uint64_t size = n <= IOVAM_CACHE_MAX_PAGES ? std::bit_ceil(n) : n;
          claim(pfn, size, who);
          held.push_back({pfn, size, n, Held::kFast});
        } else {
          EXPECT_TRUE(rc == -ENOMEM || rc == -EAGAIN) << rc;
        }
      } else if (r < 90) {
        EXPECT_GE(iovam_cache_flush(d_, id), 0);
      } else if (r < 92) {
        EXPECT_GE(iovam_cache_flush(d_, IOVAM_CACHE_NONE), 0);
      } else if (r < 96) {
        EXPECT_GE(iovam_maintain(d_), 0);
      } else if (r < 97) {
        // Reserve a small range: it may race with allocations (EBUSY).
        uint64_t lo = kStart + rng() % (kEnd - kStart - 8), hi = lo + rng() % 3;
        int rc = iovam_reserve(d_, lo, hi);
        if (rc == 0) {
          for (uint64_t p = lo; p <= hi; ++p) {
            uint8_t prev = pages_[p].exchange(kReservedPage);
            if (prev != kFreePage && prev != kReservedPage) {
              double_owner_.store(true);
              ADD_FAILURE() << "reserved page " << p << " owned by " << int(prev);
            }
          }
        } else {
          EXPECT_TRUE(rc == -EBUSY || rc == -EAGAIN) << rc;
        }
      } else if (rng() % 8 == 0) {
        // verify() quiesces every lcore cache and takes the tree lock while
        // the others keep going: it must see a consistent domain.
        int rc = iovam_verify(d_);
        EXPECT_EQ(rc, 0) << iovam_verify_error(d_);
      } else {
        uint64_t lo, hi;
        int rc = iovam_find(d_, kStart + rng() % (kEnd - kStart), &lo, &hi);
        EXPECT_TRUE(rc == 0 || rc == -ENOENT);
      }
      if (double_owner_.load(std::memory_order_relaxed)) break;
    }
    for (const Held& h : held) {
      release(h.pfn, h.npages, who);
      int rc = h.kind == Held::kFast ? iovam_free_fast(d_, id, h.pfn, h.asked) : iovam_free(d_, h.pfn);
      EXPECT_EQ(rc, 0);
    }
    EXPECT_GE(iovam_cache_flush(d_, id), 0);
  }

  // The drain of a DPDK glue: frees ranges the workers allocated, through a
  // return batch (to the depot, whole magazines), flushing after each pass.
  void drainer() {
    iovam_return_batch* b = iovam_return_batch_create(d_);
    ASSERT_NE(b, nullptr);
    std::vector<std::pair<Held, uint8_t>> pass;
    for (bool last = false; !last;) {
      last = workers_left_.load() == 0;  // then one more pass takes the rest
      {
        std::lock_guard lk(handoff_lock_);
        pass.swap(handoff_);
      }
      for (auto& [h, who] : pass) {
        release(h.pfn, h.npages, who);  // before: once in the depot, anyone may take it
        EXPECT_EQ(iovam_return_batch_add(b, h.pfn, h.asked), 0);
      }
      pass.clear();
      EXPECT_GE(iovam_return_batch_flush(b), 0);
      if (!last) std::this_thread::yield();
    }
    iovam_return_batch_stats bs;
    ASSERT_EQ(iovam_return_batch_stats_get(b, &bs), 0);
    EXPECT_GT(bs.ranges_to_depot, 0u);
    iovam_return_batch_destroy(b);
  }

  void run(uint64_t ops_per_thread) {
    ASSERT_NE(d_, nullptr);
    double seconds = 0;
    if (const char* s = std::getenv("IOVAM_STRESS_SECONDS")) seconds = std::atof(s);
    // The drainer returns a share of the fast frees through a return batch
    // until every driver is done.
    workers_left_.store(threads_);
    std::thread drain([this] { drainer(); });
    run_drivers([=, this](uint32_t t) {
      worker(t, ops_per_thread, seconds);
      workers_left_.fetch_sub(1);
    });
    drain.join();
    EXPECT_FALSE(double_owner_.load()) << "a page was owned twice";
    EXPECT_FALSE(lost_.load());
    iovam_test_fail_node_alloc(d_, 0, 0);
    ASSERT_GE(iovam_cache_flush(d_, IOVAM_CACHE_NONE), 0);
    ASSERT_GE(iovam_maintain(d_), 0);
    ASSERT_EQ(iovam_verify(d_), 0) << iovam_verify_error(d_);
    iovam_stats st;
    ASSERT_EQ(iovam_stats_get(d_, &st), 0);
    EXPECT_EQ(st.live_ranges, 0u) << "ranges lost";
    EXPECT_EQ(st.deferred_ranges, 0u);
    EXPECT_EQ(st.cached_ranges, 0u);
    // Every page not reserved is allocatable again: the space came back whole.
    uint64_t free_pages = 0;
    for (uint64_t p = kStart; p <= kEnd; ++p) free_pages += pages_[p].load() == kFreePage;
    uint64_t got = 0, pfn;
    while (iovam_alloc(d_, 1, UINT64_MAX, false, &pfn) == 0) {
      ASSERT_EQ(pages_[pfn].load(), kFreePage) << "handed out a reserved page " << pfn;
      ++got;
    }
    EXPECT_EQ(got, free_pages);
  }

 private:
  // One driver per cache, cache_id = driver index, all at once. With TBB: a
  // task_group over the caches in an arena of threads_ slots, the worker
  // count raised to match (the test oversubscribes the CPUs on purpose, so
  // that owners are preempted inside critical sections). Every driver runs
  // to its end without waiting for another, so TBB running two of them one
  // after the other on one worker would still be correct, only less racy.
  template <typename Driver>
  void run_drivers(Driver driver) {
#if IOVAM_STRESS_TBB
    tbb::global_control workers(tbb::global_control::max_allowed_parallelism, threads_);
    tbb::task_arena arena(static_cast<int>(threads_));
    tbb::task_group drivers;
    arena.execute([&] {
      for (uint32_t t = 0; t < threads_; ++t) drivers.run([&driver, t] { driver(t); });
      drivers.wait();
    });
#else
    // The ThreadSanitizer build: see tests/stress/meson.build.
    std::vector<std::thread> ts;
    for (uint32_t t = 0; t < threads_; ++t) ts.emplace_back([&driver, t] { driver(t); });
    for (auto& t : ts) t.join();
#endif
  }

  uint32_t threads_;
  iovam_domain* d_ = nullptr;
  std::vector<std::atomic<uint8_t>> pages_;
  std::atomic<bool> double_owner_{false}, lost_{false};
  std::mutex handoff_lock_;
  std::vector<std::pair<Held, uint8_t>> handoff_;  // fast ranges and their owner, for the drainer
  std::atomic<uint32_t> workers_left_{0};
};

uint32_t thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return std::max(4u, 2 * n);  // oversubscribe: preemption inside critical sections
}

TEST(Stress, NoPageOwnedTwice) {
  Stress s(thread_count(), 0);
  s.run(200000);
}

TEST(Stress, NoPageOwnedTwiceWithNodeFailures) {
  Stress s(thread_count(), 7);
  s.run(100000);
}

}  // namespace
