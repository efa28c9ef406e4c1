// SPDX-License-Identifier: BSD-3-Clause
// Copyright (c) 2026 The iovam authors.
#ifndef IOVAM_SPIN_LOCK_H
#define IOVAM_SPIN_LOCK_H

#include <atomic>
#include <cassert>
#include <cstdint>

#include <sched.h>
#include <pthread.h>

namespace iovam::detail
{

// A test-and-test-and-set spin lock, like rte_spinlock: the domain lock is held
// for a tree descent (a few hundred ns at most), far less than a futex round
// trip, and datapath lcores must never sleep in the kernel. After a long spin
// we yield, so a preempted holder on an oversubscribed machine (2 cores, many
// threads in the stress test) still makes progress.
//
// The holder is recorded so that functions can assert they run under the lock
// (the kernel's assert_spin_locked()): in builds with assertions only, since
// pthread_self() is a call on every lock of the allocation path.
class SpinLock
{
public:
	void lock() noexcept
	{
		for (uint32_t spins = 0;; ++spins) {
			if (!locked_.exchange(true, std::memory_order_acquire)) break;
			while (locked_.load(std::memory_order_relaxed)) {
				if (++spins > kSpinsBeforeYield) {
					sched_yield();
					spins = 0;
				}
				__builtin_ia32_pause();
			}
		}
#ifndef NDEBUG
		owner_.store(pthread_self(), std::memory_order_relaxed);
#endif
	}

	void unlock() noexcept
	{
#ifndef NDEBUG
		owner_.store(pthread_t{}, std::memory_order_relaxed);
#endif
		locked_.store(false, std::memory_order_release);
	}

	// True if the calling thread holds the lock. Only meaningful as an assertion.
	bool held_by_me() const noexcept
	{
		return locked_.load(std::memory_order_relaxed) &&
		       pthread_equal(owner_.load(std::memory_order_relaxed), pthread_self());
	}

private:
	static constexpr uint32_t kSpinsBeforeYield = 1024;
	std::atomic<bool> locked_{false};
	std::atomic<pthread_t> owner_{};
};

class SpinGuard
{
public:
	explicit SpinGuard(SpinLock &l) noexcept : l_(l) { l_.lock(); }
	~SpinGuard() { l_.unlock(); }
	SpinGuard(const SpinGuard &) = delete;
	SpinGuard &operator=(const SpinGuard &) = delete;

private:
	SpinLock &l_;
};

} // namespace iovam::detail

#define IOVAM_ASSERT_HELD(lock) assert((lock).held_by_me())

#endif // IOVAM_SPIN_LOCK_H
