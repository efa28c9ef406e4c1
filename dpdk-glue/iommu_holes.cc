/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// IOMMU holes: IOVA ranges the IOMMU will not map, kept out of the domain.
//
// An IOMMU cannot map every IOVA. On x86 the MSI window [0xfee00000,
// 0xfeefffff] is reserved (interrupt messages go there), platforms add
// "direct" regions (RMRRs) and the hardware has an address width (39 or 48
// bits). VFIO type1 refuses a map that touches any of these with EINVAL, so a
// domain that hands such an IOVA out fails mappings at random: a 64 MiB
// region allocated top-down under 4 GiB lands on the MSI window. The kernel's
// own DMA IOVA allocator reserves these ranges up front
// (iommu_dma_get_resv_regions); so do we, from two sources:
//  - /sys/kernel/iommu_groups/*/reserved_regions, readable before any device
//    is attached: "0x00000000fee00000 0x00000000feefffff msi" per line. The
//    union over all groups is kept out (a superset for any one device).
//  - with a VFIO device attached, the container's valid IOVA ranges
//    (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE): everything between and above
//    them, which also covers the IOMMU's address width.
// IOVAM_IOMMU_GROUPS_DIR replaces the sysfs folder (tests).
#include <dirent.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "glue.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>; // [lo, hi] bytes, inclusive

// Keep [lo, hi] (bytes) out of the domain, clipped to the window. Caller
// holds the map lock (the domain is being filled by the init walk).
int reserve_bytes(Glue &g, uint64_t lo, uint64_t hi, const char *why)
{
	const IovaWindow w = g.window();
	uint64_t lo_pfn, hi_pfn;
	if (!w.clip(lo, hi, &lo_pfn, &hi_pfn)) return 0;
	uint64_t have_lo, have_hi;
	if (iovam_find(g.dom, lo_pfn, &have_lo, &have_hi) == 0 && have_hi >= hi_pfn)
		return 0; // already kept out (every group lists the MSI window)
	int rc = w.reserve(lo_pfn, hi_pfn);
	if (rc != 0) {
		IOVAM_LOG(ERR,
		          "cannot keep IOMMU hole [0x%" PRIx64 ", 0x%" PRIx64 "] (%s) out of "
		          "the window: %d",
		          lo, hi, why, rc);
		return rc;
	}
	IOVAM_LOG(INFO, "IOVA [0x%" PRIx64 ", 0x%" PRIx64 "] kept out: %s", lo, hi, why);
	return 0;
}

// Every group's reserved_regions; a line that does not parse is skipped.
void read_sysfs_holes(const std::string &dir,
                      std::vector<std::pair<Ranges::value_type, std::string>> &out)
{
	DIR *d = opendir(dir.c_str());
	if (d == nullptr) return; // no IOMMU, or no sysfs: nothing is reserved there
	while (dirent *e = readdir(d)) {
		if (e->d_name[0] == '.') continue;
		std::string path = dir + "/" + e->d_name + "/reserved_regions";
		FILE *f = fopen(path.c_str(), "r");
		if (f == nullptr) continue;
		char line[256];
		while (fgets(line, sizeof(line), f) != nullptr) {
			unsigned long long lo, hi;
			char type[64];
			line[strcspn(line, "\n")] = '\0';
			if (sscanf(line, "%llx %llx %63s", &lo, &hi, type) != 3 || lo > hi) {
				IOVAM_LOG(WARNING, "%s: cannot parse \"%s\"", path.c_str(), line);
				continue;
			}
			out.push_back({{lo, hi}, type});
		}
		fclose(f);
	}
	closedir(d);
}

} // namespace

int reserve_iommu_holes_locked(Glue &g)
{
	const char *env = getenv("IOVAM_IOMMU_GROUPS_DIR");
	std::vector<std::pair<Ranges::value_type, std::string>> holes;
	read_sysfs_holes(env != nullptr ? env : "/sys/kernel/iommu_groups", holes);
	for (const auto &[r, type] : holes) {
		std::string why = "IOMMU reserved region (" + type + ")";
		int rc = reserve_bytes(g, r.first, r.second, why.c_str());
		if (rc != 0) return rc;
	}
	Ranges valid;
	if (!g.vfio.valid_iova_ranges(valid))
		return 0;  // no device attached yet (or no VFIO): sysfs had to do
	uint64_t next = 0; // lowest IOVA not yet known to be valid or reserved
	for (const auto &[lo, hi] : valid) {
		if (lo > next) {
			int rc = reserve_bytes(g, next, lo - 1,
			                       "outside the VFIO container's IOVA ranges");
			if (rc != 0) return rc;
		}
		if (hi == UINT64_MAX) return 0;
		next = hi + 1 > next ? hi + 1 : next;
	}
	return reserve_bytes(g, next, UINT64_MAX, "above the VFIO container's IOVA ranges");
}

} // namespace iovam::glue
