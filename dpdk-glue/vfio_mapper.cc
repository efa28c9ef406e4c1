/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
#include "vfio_mapper.h"

#include <dirent.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <rte_errno.h>
#include <rte_vfio.h>

#include "log.h"

namespace iovam::glue
{

namespace
{

// The lowest fd open on /dev/vfio/vfio that answers VFIO_GET_API_VERSION.
int find_default_container_fd()
{
	DIR *d = opendir("/proc/self/fd");
	if (d == nullptr) return -1;
	int best = -1;
	while (dirent *e = readdir(d)) {
		char path[64], target[64];
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d)) continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0) continue;
		target[n] = '\0';
		if (strcmp(target, "/dev/vfio/vfio") == 0 && (best < 0 || fd < best) &&
		    ioctl(fd, VFIO_GET_API_VERSION) == VFIO_API_VERSION)
			best = fd;
	}
	closedir(d);
	return best;
}

} // namespace

void VfioMapper::init(bool force_no_iommu, bool dyn_via_dpdk)
{
	// rte_vfio_is_enabled() is true only when the vfio module is loaded and
	// EAL set VFIO up (rte_eal_vfio_setup during rte_eal_init).
	no_iommu_ = force_no_iommu || rte_vfio_is_enabled("vfio") == 0;
	device_seen_.store(false, std::memory_order_relaxed);
	container_fd_ = no_iommu_ || dyn_via_dpdk ? -1 : find_default_container_fd();
	// A container with an IOMMU backend has a group, i.e. a device: maps
	// that fail from now on are failures, not "wait for the first device".
	if (container_fd_ >= 0) {
		vfio_iommu_type1_info info;
		memset(&info, 0, sizeof(info));
		info.argsz = sizeof(info);
		if (ioctl(container_fd_, VFIO_IOMMU_GET_INFO, &info) == 0)
			device_seen_.store(true, std::memory_order_relaxed);
	}
	IOVAM_LOG(INFO, "DMA mapping: %s",
	          no_iommu_ ? "no-IOMMU (calls skipped)" : "VFIO default container");
	if (!no_iommu_)
		IOVAM_LOG(INFO, "dynamic mappings: %s (fd %d)",
		          container_fd_ >= 0 ? "raw VFIO ioctls" : "DPDK user maps", container_fd_);
}

std::atomic<bool> g_vfio_test_hooks{false};

namespace
{

struct FailInjection {
	std::atomic<uint32_t> one_in{0};
	std::atomic<uint64_t> calls{0};

	// One relaxed load when disabled: cheap enough for the dynamic-map
	// fast path.
	bool now()
	{
		uint32_t n = one_in.load(std::memory_order_relaxed);
		if (n == 0) return false;
		return calls.fetch_add(1, std::memory_order_relaxed) % n == n - 1;
	}

	void set(uint32_t n)
	{
		calls.store(0, std::memory_order_relaxed);
		one_in.store(n, std::memory_order_relaxed);
	}
};

FailInjection g_fail_map;
FailInjection g_fail_unmap;

bool injected_failure()
{
	return g_fail_map.now();
}

} // namespace

namespace
{
std::atomic<bool> g_sim_no_device{false};
} // namespace

void vfio_test_simulate_no_device(bool on)
{
	g_sim_no_device.store(on, std::memory_order_relaxed);
	g_vfio_test_hooks.store(on || g_fail_map.one_in.load() != 0, std::memory_order_relaxed);
}

void vfio_test_fail_one_in(uint32_t n)
{
	g_fail_map.set(n);
	g_vfio_test_hooks.store(n != 0 || g_sim_no_device.load(), std::memory_order_relaxed);
}

void vfio_test_fail_unmap_one_in(uint32_t n)
{
	g_fail_unmap.set(n);
}

VfioMapper::Result VfioMapper::map(uint64_t va, uint64_t iova, uint64_t len)
{
	if (injected_failure()) return Result::kFailed;
	if (no_iommu_) {
		// Test hook: behave like VFIO before its first device.
		if (g_sim_no_device.load(std::memory_order_relaxed) &&
		    !device_seen_.load(std::memory_order_relaxed))
			return Result::kQueued;
		return Result::kMapped;
	}
	if (rte_vfio_container_dma_map(RTE_VFIO_DEFAULT_CONTAINER_FD, va, iova, len) == 0) {
		device_seen_.store(true, std::memory_order_relaxed);
		return Result::kMapped;
	}
	// Without a group the container has no IOMMU type and DPDK refuses the
	// map; that is not an error until a device has been seen.
	if (!device_seen_.load(std::memory_order_relaxed)) return Result::kQueued;
	IOVAM_LOG(ERR, "VFIO map va 0x%" PRIx64 " iova 0x%" PRIx64 " len 0x%" PRIx64 " failed: %s",
	          va, iova, len, rte_strerror(rte_errno));
	return Result::kFailed;
}

// When the last group leaves a container (closing a virtio port detaches its
// group; the app's fini closes the rest) the kernel releases the container's
// IOMMU backend and with it every DMA mapping: an unmap then fails, yet there
// is nothing left mapped and the IOVA is safe to reuse. A container without a
// backend answers every IOMMU ioctl with EINVAL (vfio_fops_unl_ioctl), which
// VFIO_IOMMU_GET_INFO, harmless otherwise, tells apart.
bool VfioMapper::container_torn_down() const
{
	if (container_fd_ < 0) return false;
	vfio_iommu_type1_info info;
	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	return ioctl(container_fd_, VFIO_IOMMU_GET_INFO, &info) != 0 && errno == EINVAL;
}

bool VfioMapper::valid_iova_ranges(std::vector<std::pair<uint64_t, uint64_t>> &out) const
{
	if (no_iommu_ || container_fd_ < 0) return false;
	// First call: the kernel says how big the info with its capability
	// chain is; second call: fetch it.
	vfio_iommu_type1_info head;
	memset(&head, 0, sizeof(head));
	head.argsz = sizeof(head);
	if (ioctl(container_fd_, VFIO_IOMMU_GET_INFO, &head) != 0 ||
	    !(head.flags & VFIO_IOMMU_INFO_CAPS) || head.argsz <= sizeof(head))
		return false;
	std::vector<uint8_t> buf(head.argsz);
	head.argsz = static_cast<uint32_t>(buf.size());
	memcpy(buf.data(), &head, sizeof(head));
	if (ioctl(container_fd_, VFIO_IOMMU_GET_INFO, buf.data()) != 0) return false;
	memcpy(&head, buf.data(), sizeof(head));
	for (uint64_t off = head.cap_offset; off != 0;) {
		vfio_info_cap_header cap;
		if (off + sizeof(cap) > buf.size()) return false;
		memcpy(&cap, buf.data() + off, sizeof(cap));
		if (cap.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			vfio_iommu_type1_info_cap_iova_range ranges;
			if (off + sizeof(ranges) > buf.size()) return false;
			memcpy(&ranges, buf.data() + off, sizeof(ranges));
			if (off + sizeof(ranges) +
			            uint64_t{ranges.nr_iovas} * sizeof(vfio_iova_range) >
			    buf.size())
				return false;
			for (uint32_t i = 0; i < ranges.nr_iovas; i++) {
				vfio_iova_range r;
				memcpy(&r, buf.data() + off + sizeof(ranges) + i * sizeof(r),
				       sizeof(r));
				out.emplace_back(r.start, r.end);
			}
			std::sort(out.begin(), out.end());
			return !out.empty();
		}
		off = cap.next;
	}
	return false;
}

bool VfioMapper::unmap(uint64_t va, uint64_t iova, uint64_t len)
{
	if (g_fail_unmap.now()) {
		IOVAM_LOG(DEBUG, "unmap iova 0x%" PRIx64 ": failure injected", iova);
		return false;
	}
	if (no_iommu_) return true;
	if (rte_vfio_container_dma_unmap(RTE_VFIO_DEFAULT_CONTAINER_FD, va, iova, len) == 0)
		return true;
	if (container_torn_down()) {
		IOVAM_LOG(DEBUG,
		          "unmap iova 0x%" PRIx64 ": container has no device left, "
		          "its mappings are gone",
		          iova);
		return true;
	}
	IOVAM_LOG(ERR,
	          "VFIO unmap va 0x%" PRIx64 " iova 0x%" PRIx64 " len 0x%" PRIx64 " failed: %s", va,
	          iova, len, rte_strerror(rte_errno));
	return false;
}

VfioMapper::Result VfioMapper::map_dyn_slow(uint64_t va, uint64_t iova, uint64_t len)
{
	if (no_iommu_ || container_fd_ < 0) return map(va, iova, len);
	if (injected_failure()) return Result::kFailed;
	vfio_iommu_type1_dma_map m;
	memset(&m, 0, sizeof(m));
	m.argsz = sizeof(m);
	m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	m.vaddr = va;
	m.iova = iova;
	m.size = len;
	if (ioctl(container_fd_, VFIO_IOMMU_MAP_DMA, &m) == 0) {
		device_seen_.store(true, std::memory_order_relaxed);
		return Result::kMapped;
	}
	// No group yet (no IOMMU type set) is not worth a log line per packet.
	return device_seen_.load(std::memory_order_relaxed) ? Result::kFailed : Result::kQueued;
}

bool VfioMapper::unmap_dyn(uint64_t va, uint64_t iova, uint64_t len)
{
	if (no_iommu_ || container_fd_ < 0) return unmap(va, iova, len);
	if (g_fail_unmap.now()) return false;
	vfio_iommu_type1_dma_unmap u;
	memset(&u, 0, sizeof(u));
	u.argsz = sizeof(u);
	u.iova = iova;
	u.size = len;
	// The kernel reports how much it unmapped: all of it, or it failed.
	if (ioctl(container_fd_, VFIO_IOMMU_UNMAP_DMA, &u) == 0 && u.size == len) return true;
	const int err = errno;
	if (container_torn_down()) return true;
	IOVAM_LOG(ERR, "VFIO_IOMMU_UNMAP_DMA iova 0x%" PRIx64 " len 0x%" PRIx64 " failed: %s", iova,
	          len, strerror(err));
	return false;
}

} // namespace iovam::glue
