/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Plugin mode: loaded into an unmodified application with EAL's -d option
// (a bare name, libiovam_dpdk.so, found on LD_LIBRARY_PATH: EAL refuses -d
// paths under world-writable directories).
//
// EAL loads -d libraries in rte_eal_init() after parsing its arguments and
// before memory init, so the constructors (log type, mempool ops, telemetry
// commands: see their files) can run then, but the memory hook cannot: there
// is no memory yet. The glue therefore initialises itself on first use, from
// the environment (iovam_dpdk_conf_from_env()): when the application creates
// a pool with the "iovam" ops (EAL --mbuf-pool-ops-name iovam), which happens
// after rte_eal_init() returned. IOVAM_DISABLE=1 keeps it from doing that.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "glue.h"
#include "log.h"

namespace iovam::glue {

namespace {

// Parse a decimal or 0x-hex unsigned variable; unset leaves *out alone.
bool env_u64(const char *name, uint64_t *out)
{
	const char *s = getenv(name);
	if (s == nullptr || *s == '\0')
		return true;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || *s == '-')
		return false;
	*out = v;
	return true;
}

bool env_flag(const char *name, uint32_t bit, uint32_t *flags)
{
	uint64_t v = 0;
	if (!env_u64(name, &v) || v > 1)
		return false;
	if (v)
		*flags |= bit;
	return true;
}

}  // namespace

Glue *ensure_init()
{
	Glue *g = glue();
	if (g != nullptr)
		return g;
	const char *off = getenv("IOVAM_DISABLE");
	if (off != nullptr && strcmp(off, "1") == 0)
		return nullptr;
	iovam_dpdk_conf conf{};
	int rc = iovam_dpdk_conf_from_env(&conf);
	if (rc == 0) {
		rc = iovam_dpdk_init(&conf);
		if (rc == -EALREADY)
			rc = 0; // another thread won the race
	}
	if (rc != 0)
		IOVAM_LOG(ERR, "self-initialisation from the environment failed: %d", rc);
	return glue();
}

}  // namespace iovam::glue

extern "C" int iovam_dpdk_conf_from_env(struct iovam_dpdk_conf *conf)
{
	using iovam::glue::env_flag;
	using iovam::glue::env_u64;
	if (conf == nullptr)
		return -EINVAL;
	uint64_t bits = conf->dma_bits, qsize = conf->unmap_queue_size;
	uint64_t max_dyn = conf->max_dyn_mappings;
	if (!env_u64("IOVAM_DMA_BITS", &bits) || bits > UINT32_MAX ||
	    !env_u64("IOVAM_GRANULE", &conf->granule) ||
	    !env_u64("IOVAM_IOVA_BASE", &conf->iova_base) ||
	    !env_u64("IOVAM_IOVA_END", &conf->iova_end) ||
	    !env_u64("IOVAM_UNMAP_QUEUE", &qsize) || qsize > UINT32_MAX ||
	    !env_u64("IOVAM_MAX_DYN_MAPPINGS", &max_dyn) || max_dyn > UINT32_MAX ||
	    !env_flag("IOVAM_NO_IOMMU", IOVAM_DPDK_F_NO_IOMMU, &conf->flags) ||
	    !env_flag("IOVAM_NO_SERVICE", IOVAM_DPDK_F_NO_SERVICE, &conf->flags) ||
	    !env_flag("IOVAM_DYN_VIA_DPDK", IOVAM_DPDK_F_DYN_VIA_DPDK, &conf->flags) ||
	    !env_flag("IOVAM_STRICT_UNMAP", IOVAM_DPDK_F_STRICT_UNMAP, &conf->flags))
		return -EINVAL;
	conf->dma_bits = static_cast<uint32_t>(bits);
	conf->unmap_queue_size = static_cast<uint32_t>(qsize);
	conf->max_dyn_mappings = static_cast<uint32_t>(max_dyn);
	return 0;
}
