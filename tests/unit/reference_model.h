// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_TESTS_REFERENCE_MODEL_H
#define IOVAM_TESTS_REFERENCE_MODEL_H

// The simplest correct IOVA allocator: occupied ranges in a std::map, free
// space found by a linear walk. Tests mirror every domain operation on it.

#include <bit>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>

namespace iovam::test {

enum class RefTag { kAllocated, kReserved, kDeferred };

struct RefRange {
  uint64_t hi;
  RefTag tag;
};

class ReferenceModel {
 public:
  ReferenceModel(uint64_t start_pfn, uint64_t end_pfn) : start_(start_pfn), end_(end_pfn) {}

  std::map<uint64_t, RefRange>& ranges() { return ranges_; }
  const std::map<uint64_t, RefRange>& ranges() const { return ranges_; }

  // The range containing pfn, if any.
  std::map<uint64_t, RefRange>::iterator containing(uint64_t pfn) {
    auto it = ranges_.upper_bound(pfn);
    if (it == ranges_.begin()) return ranges_.end();
    --it;
    return it->second.hi >= pfn ? it : ranges_.end();
  }

  // Highest fitting p (the domain's contract), by a walk down the holes.
  std::optional<uint64_t> fit(uint64_t npages, uint64_t limit_pfn, bool aligned) const {
    const uint64_t align = aligned ? std::bit_ceil(npages) : 1;
    uint64_t hole_hi = std::min(limit_pfn, end_);
    auto it = ranges_.upper_bound(hole_hi);  // first range above the hole
    while (hole_hi >= start_) {
      uint64_t hole_lo = start_;
      uint64_t next_hi = 0;
      bool more = false;
      if (it != ranges_.begin()) {
        auto prev = std::prev(it);
        more = prev->first > start_;
        next_hi = more ? prev->first - 1 : 0;
        hole_lo = std::max(start_, prev->second.hi + 1);
        it = prev;
      }
      if (hole_lo <= hole_hi && hole_hi - hole_lo + 1 >= npages) {
        uint64_t p = (hole_hi - npages + 1) & ~(align - 1);
        if (p >= hole_lo) return p;
      }
      if (!more) break;
      hole_hi = std::min(hole_hi, next_hi);
    }
    return std::nullopt;
  }

  void insert(uint64_t lo, uint64_t hi, RefTag tag) { ranges_[lo] = RefRange{hi, tag}; }

  // The domain's reserve contract; returns the expected errno (0 on success).
  int reserve(uint64_t lo, uint64_t hi) {
    if (lo > hi || hi > end_) return -EINVAL;
    uint64_t new_lo = lo, new_hi = hi;
    auto it = containing(lo);
    if (it == ranges_.end()) it = ranges_.lower_bound(lo);
    auto first = it;
    for (; it != ranges_.end() && it->first <= hi; ++it) {
      if (it->second.tag != RefTag::kReserved) return -EBUSY;
    }
    for (it = first; it != ranges_.end() && it->first <= hi;) {
      new_lo = std::min(new_lo, it->first);
      new_hi = std::max(new_hi, it->second.hi);
      it = ranges_.erase(it);
    }
    insert(new_lo, new_hi, RefTag::kReserved);
    return 0;
  }

  uint64_t count(RefTag tag) const {
    uint64_t n = 0;
    for (auto& [lo, r] : ranges_) n += r.tag == tag;
    return n;
  }

 private:
  uint64_t start_, end_;
  std::map<uint64_t, RefRange> ranges_;
};

}  // namespace iovam::test

#endif  // IOVAM_TESTS_REFERENCE_MODEL_H
