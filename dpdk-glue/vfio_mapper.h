/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// VfioMapper: the one place that issues DMA map/unmap calls.
//
// DPDK 22.11 constraints it encodes:
//  - We map into the default VFIO container with rte_vfio_container_dma_map().
//    DPDK keeps such "user" mappings in a list (EAL_VFIO_MAX_USER_MEM_MAPS =
//    256 entries) so that it can replay them when a group is added; adjacent
//    mappings with the same length and contiguous VA/IOVA merge into one
//    entry, which is why per-page mappings of a contiguous IOVA range cost
//    one list entry, not one per page.
//  - VFIO type1 cannot unmap part of one mapping (DPDK sets partial_unmap =
//    false for it): every unmap must cover whole mappings.
//  - The kernel caps a type1 container at dma_entry_limit (65535) mappings.
//  - Before the first VFIO group joins the container there is no IOMMU type
//    and every map fails: such mappings are queued by the caller (kQueued) and
//    replayed once a device exists.
//  - Without VFIO (no vfio module, vdev-only apps) there is nothing to call:
//    no-IOMMU mode skips the calls and the callers count them.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

namespace iovam::glue
{

// Any test hook armed (fail injection, simulated missing device).
extern std::atomic<bool> g_vfio_test_hooks;

class VfioMapper
{
public:
	enum class Result { kMapped, kQueued, kFailed };

	// Decide the mode once, at init. force_no_iommu comes from the conf.
	void init(bool force_no_iommu, bool dyn_via_dpdk);
	bool no_iommu() const { return no_iommu_; }

	// Map [va, va+len) at iova. kQueued: VFIO exists but no device has been
	// attached yet (nothing mapped; retry with map() later).
	// Cost: no-IOMMU mode a relaxed load; VFIO one ioctl and DPDK's spinlock.
	Result map(uint64_t va, uint64_t iova, uint64_t len);

	// Unmap a mapping made by map() (or several adjacent ones: [iova, +len)
	// must cover whole mappings). false: the kernel refused, the IOVA must
	// not be reused.
	bool unmap(uint64_t va, uint64_t iova, uint64_t len);
	// No group is left in the container: the kernel dropped every mapping.
	bool container_torn_down() const;
	// The IOVA ranges [lo, hi] the container's IOMMU can map, ascending
	// (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE). false: unknown (no-IOMMU
	// mode, no container fd, no device attached yet, an old kernel).
	bool valid_iova_ranges(std::vector<std::pair<uint64_t, uint64_t>> &out) const;

	// Dynamic mappings (iovam_dpdk_map): with VFIO, straight VFIO_IOMMU_MAP_DMA
	// / UNMAP_DMA ioctls on the default container, bypassing DPDK's 256-entry
	// user-map list, which random dynamic IOVAs would exhaust (they never
	// merge). DPDK 22.11 has no getter for the default container's fd; EAL
	// opens it first, during rte_eal_init(), so it is the lowest-numbered fd
	// on /dev/vfio/vfio (checked with VFIO_GET_API_VERSION). Without it, the
	// DPDK API is used. DPDK does not replay these after a group hot-unplug.
	// Inline: in no-IOMMU mode without test hooks this is two loads.
	Result map_dyn(uint64_t va, uint64_t iova, uint64_t len)
	{
		if (no_iommu_ && !g_vfio_test_hooks.load(std::memory_order_relaxed))
			return Result::kMapped;
		return map_dyn_slow(va, iova, len);
	}
	bool unmap_dyn(uint64_t va, uint64_t iova, uint64_t len);

	// A device exists (first successful map, an ethdev NEW event, or replay).
	void note_device() { device_seen_.store(true, std::memory_order_relaxed); }

private:
	Result map_dyn_slow(uint64_t va, uint64_t iova, uint64_t len);

	bool no_iommu_ = true;
	int container_fd_ = -1; // default container for the raw ioctls, or -1
	std::atomic<bool> device_seen_{false};
};

// Test hook (iovam_dpdk_test_fail_dma_map): process-wide, so a test can set it
// before iovam_dpdk_init() and make the init walk fail.
void vfio_test_fail_one_in(uint32_t n);
// Test hook (iovam_dpdk_test_fail_dma_unmap): the same for unmaps.
void vfio_test_fail_unmap_one_in(uint32_t n);
// Test hook (iovam_dpdk_test_simulate_no_device): in no-IOMMU mode, answer
// kQueued like VFIO does before its first device, until note_device().
void vfio_test_simulate_no_device(bool on);

} // namespace iovam::glue
