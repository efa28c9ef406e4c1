/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Service: the housekeeping the fast paths leave undone.
//
// One iteration: complete the queued dynamic unmaps (batched VFIO unmaps,
// then the IOVAs go back), retry unmaps that failed (dynamic ones and those
// of freed DPDK memory), map memory that waited for a VFIO device (at
// most once a second), and
// iovam_maintain() (erase DEFERRED markers, refill the node pool, trim the
// depots) at most every kMaintainUs.
//
// Where it runs, in order of preference:
//  - a service lcore (EAL -s): mapped to the first one. EAL has already
//    started service lcores in rte_eal_init() (rte_service_start_with_defaults),
//    so mapping it is enough. On 2 cores: -l 0-1 -s 0x2.
//  - an application lcore: IOVAM_DPDK_F_NO_SERVICE, and the app calls
//    rte_service_run_iter_on_app_lcore(id, 1) (that function indexes per-lcore
//    state by rte_lcore_id(), so it must be called from an lcore).
//  - otherwise an EAL alarm every kAlarmUs, which runs on EAL's interrupt
//    thread (not an lcore, so it calls the iteration directly). That is what
//    unmodified testpmd gets.
// The rte_service is registered without RTE_SERVICE_CAP_MT_SAFE; the
// iteration also takes a try-lock, so iovam_dpdk_service_run() from any
// thread and the service never overlap.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>

#include <rte_alarm.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_memory.h>
#include <rte_pause.h>
#include <rte_service.h>
#include <rte_service_component.h>

#include "dyn_state.h"
#include "glue.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

constexpr uint64_t kMaintainUs = 1000;
constexpr uint64_t kAlarmUs = 10000;
constexpr uint64_t kReplayUs = 1000000;
// A service lcore's drain period (a half-full queue asks for one sooner):
// the alarm's, and the kernel's lazy IOMMU flush queue's (IOVA_FQ_TIMEOUT).
constexpr uint64_t kServiceDrainUs = 10000;

} // namespace

struct ServiceState {
	uint32_t id = 0;
	bool registered = false;
	uint32_t mapped_lcore = RTE_MAX_LCORE; // RTE_MAX_LCORE: none
	std::atomic<bool> alarm_on{false};
	std::mutex run_lock;
	uint64_t next_maintain_tsc = 0;
	uint64_t next_drain_tsc = 0; // service lcore only (service_cb)
	uint64_t next_replay_tsc = 0;
};

namespace
{

// The glue as the service lcore and the alarm thread see it, and how many of
// them are inside a callback. rte_service's run-state handshake and the alarm
// list already order init and fini against the callbacks, but through DPDK's
// own atomics, which ThreadSanitizer cannot see; these two make the order
// explicit (sequentially consistent: stop stores nullptr, then waits for
// in_flight == 0; a callback increments, then loads). Process-wide statics,
// zero before any thread exists; there is one glue at a time.
std::atomic<Glue *> g_callback_glue{nullptr};
std::atomic<uint32_t> g_in_flight{0};

// A service lcore calls this in a tight loop. Draining at every call would
// read each producer's queue head right after the producer wrote it: the
// line would leave the mapping lcore at every unmap, and the next map and
// unmap wait for it (perf/run: the map+unmap pair at 136 ns with a service
// lcore against 47 with the 10 ms alarm, at 50K pairs/s). So the service
// drains every kServiceDrainUs, or at once when a producer found its queue
// half full (drain_wanted); in between a call reads the clock and one line
// producers rarely write. Each pass still costs a mapping lcore the lines
// it shares with the drain (its queue's head, which the pass reads, and the
// completed position, which it writes): with the two cores 240 ns apart
// (a cache-line round trip of 475 ns on the 2-vCPU test machine) a pass every
// millisecond put them before nearly every burst of an lcore mapping 50K
// pairs/s, and the pair took 58-60 ns against 39-40 with a pass every 10 ms
// (bench_dyn_map --drain=service --rate=50000, same minute). A lazy unmap
// completes within about 10 ms, as with the alarm (and the kernel's lazy
// mode); iovam_dpdk_unmap_wait() and strict unmaps drain at once.
bool service_due(Glue &g)
{
	ServiceState &s = *g.svc;
	const uint64_t now = rte_get_tsc_cycles();
	const bool wanted = g.dyn->drain_wanted.load(std::memory_order_relaxed);
	if (now < s.next_drain_tsc && !wanted) return false;
	if (wanted) g.dyn->drain_wanted.store(false, std::memory_order_relaxed);
	s.next_drain_tsc = now + rte_get_tsc_hz() / 1000000 * kServiceDrainUs;
	return true;
}

int32_t service_cb(void *)
{
	g_in_flight.fetch_add(1);
	Glue *g = g_callback_glue.load();
	int rc = 0;
	if (g != nullptr && service_due(*g)) {
		// A producer draining its own full queue holds the drain lock:
		// poll again (drain_wanted) rather than sleep on the lock, which
		// would cost that producer a futex wake and this lcore a wake-up
		// latency, while its queue and the others fill.
		bool skipped = false;
		rc = service_run(*g, false, &skipped);
		if (skipped) g->dyn->drain_wanted.store(true, std::memory_order_relaxed);
	}
	g_in_flight.fetch_sub(1);
	// A service returning -EAGAIN did no work (DPDK counts it as idle).
	return rc > 0 ? 0 : -EAGAIN;
}

void alarm_cb(void *)
{
	g_in_flight.fetch_add(1);
	Glue *g = g_callback_glue.load();
	if (g != nullptr && g->svc->alarm_on.load()) {
		(void)service_run(*g, true);
		(void)rte_eal_alarm_set(kAlarmUs, alarm_cb, nullptr);
	}
	g_in_flight.fetch_sub(1);
}

} // namespace

int service_run(Glue &g, bool until_empty, bool *drain_skipped)
{
	ServiceState &s = *g.svc;
	std::unique_lock lk(s.run_lock, std::try_to_lock);
	if (!lk.owns_lock()) return -EBUSY;
	g.ctr.service_runs.fetch_add(1, std::memory_order_relaxed);
	int returned;
	if (drain_skipped == nullptr) {
		returned = dyn_drain(g, until_empty);
	} else if ((returned = dyn_drain_unless_busy(g)) == -EBUSY) {
		*drain_skipped = true;
		returned = 0;
	}
	(void)mem_retry_failed_unmaps(g);
	uint64_t now = rte_get_tsc_cycles();
	// Memory waiting for a VFIO device: each try is a failing VFIO call
	// that EAL logs, so at most once a second (a new ethdev replays at
	// once, from its NEW event; so does iovam_dpdk_dma_replay()).
	if (g.ctr.dma_queued.load(std::memory_order_relaxed) != 0 && now >= s.next_replay_tsc) {
		(void)mem_replay(g);
		s.next_replay_tsc = now + rte_get_tsc_hz() / 1000000 * kReplayUs;
	}
	if (now >= s.next_maintain_tsc) {
		(void)iovam_maintain(g.dom);
		s.next_maintain_tsc = now + rte_get_tsc_hz() / 1000000 * kMaintainUs;
	}
	return returned;
}

int service_start(Glue &g)
{
	auto *s = new (std::nothrow) ServiceState;
	if (s == nullptr) return -ENOMEM;
	g.svc = s;

	rte_service_spec spec;
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.name, sizeof(spec.name), "%s", IOVAM_DPDK_SERVICE_NAME);
	spec.callback = service_cb;
	spec.callback_userdata = &g;
	spec.socket_id = SOCKET_ID_ANY;
	int rc = rte_service_component_register(&spec, &s->id);
	if (rc != 0) {
		IOVAM_LOG(ERR, "service register: %d", rc);
		g.svc = nullptr;
		delete s;
		return rc;
	}
	s->registered = true;
	// Both run states must be "running" even for run_iter_on_app_lcore.
	rte_service_component_runstate_set(s->id, 1);
	rte_service_runstate_set(s->id, 1);

	g_callback_glue.store(&g); // everything the callbacks read is built
	if (g.conf.flags & IOVAM_DPDK_F_NO_SERVICE) return 0;
	uint32_t lcores[RTE_MAX_LCORE];
	int n = rte_service_lcore_list(lcores, RTE_MAX_LCORE);
	if (n > 0 && rte_service_map_lcore_set(s->id, lcores[0], 1) == 0) {
		s->mapped_lcore = lcores[0];
		IOVAM_LOG(INFO, "service %u on service lcore %u", s->id, lcores[0]);
		return 0;
	}
	s->alarm_on.store(true, std::memory_order_release);
	if (rte_eal_alarm_set(kAlarmUs, alarm_cb, nullptr) != 0) {
		s->alarm_on.store(false, std::memory_order_release);
		IOVAM_LOG(WARNING, "no service lcore and no alarm: call iovam_dpdk_service_run()");
	} else {
		IOVAM_LOG(INFO, "service %u runs from an EAL alarm every %u ms", s->id,
		          static_cast<unsigned>(kAlarmUs / 1000));
	}
	return 0;
}

void service_stop(Glue &g)
{
	ServiceState *s = g.svc;
	if (s == nullptr) return;
	if (s->alarm_on.exchange(false)) {
		// Waits for a callback in progress (we are not on the alarm thread).
		rte_eal_alarm_cancel(alarm_cb, reinterpret_cast<void *>(-1));
	}
	if (s->registered) {
		rte_service_runstate_set(s->id, 0);
		rte_service_component_runstate_set(s->id, 0);
		// A service lcore may be inside the callback right now. Wait
		// before unmapping the lcore: the lcore clears its "active" flag
		// only for services still mapped to it, so unmapping first would
		// leave the flag set and this loop spinning forever.
		while (rte_service_may_be_active(s->id) == 1) rte_pause();
		if (s->mapped_lcore != RTE_MAX_LCORE)
			rte_service_map_lcore_set(s->id, s->mapped_lcore, 0);
		rte_service_component_unregister(s->id);
	}
	g_callback_glue.store(nullptr);
	while (g_in_flight.load() != 0) rte_pause();
	g.svc = nullptr;
	delete s;
}

int service_id(Glue &g, uint32_t *id)
{
	*id = g.svc->id;
	return 0;
}

} // namespace iovam::glue
