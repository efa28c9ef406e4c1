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
// after rte_eal_init() returned. IOVAM_DISABLE=1 keeps it from doing that
// (and says so). A variable that does not parse, or a window the variables
// cannot make, stops the application with one line naming the variable, its
// value and what it accepts.
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <rte_debug.h>

#include "glue.h"
#include "log.h"

namespace iovam::glue
{

namespace
{

// Decimal, or hex after 0x/0X: nothing else (no sign, no space, no octal: a
// leading 0 is decimal, 0100 is one hundred). Overflow is an error.
bool parse_u64(const char *s, uint64_t *out)
{
	unsigned base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0') return false;
	uint64_t v = 0;
	for (; *s != '\0'; ++s) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (v > (UINT64_MAX - d) / base) return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

// One variable: where it goes and what it accepts (0 or unset: the default).
struct EnvVar {
	const char *name;
	const char *accepts;
	bool (*ok)(uint64_t v);
};

bool any(uint64_t)
{
	return true;
}
bool flag(uint64_t v)
{
	return v <= 1;
}
bool dma_bits_ok(uint64_t v)
{
	return v == 0 || (v >= 20 && v <= 64);
}
bool granule_ok(uint64_t v)
{
	return v == 0 || (v >= 4096 && std::has_single_bit(v));
}
bool queue_ok(uint64_t v)
{
	return v == 0 || (v >= 16 && v <= 65536 && std::has_single_bit(v));
}
bool dyn_ok(uint64_t v)
{
	return v <= (1u << 24);
}

enum {
	kDmaBits,
	kGranule,
	kBase,
	kEnd,
	kQueue,
	kMaxDyn,
	kNoIommu,
	kNoService,
	kDynViaDpdk,
	kStrictUnmap,
	kVars
};

const EnvVar kEnv[kVars] = {
        {"IOVAM_DMA_BITS", "20..64 (0: 32)", dma_bits_ok},
        {"IOVAM_GRANULE", "a power of two >= 4096 bytes (0: 4096)", granule_ok},
        {"IOVAM_IOVA_BASE", "an IOVA, a multiple of the granule (0: one granule)", any},
        {"IOVAM_IOVA_END", "an IOVA past the window, a multiple of the granule (0: 2^dma_bits)",
         any},
        {"IOVAM_UNMAP_QUEUE", "a power of two in 16..65536 (0: 1024)", queue_ok},
        {"IOVAM_MAX_DYN_MAPPINGS", "0..16777216 (0: 65536)", dyn_ok},
        {"IOVAM_NO_IOMMU", "0 or 1", flag},
        {"IOVAM_NO_SERVICE", "0 or 1", flag},
        {"IOVAM_DYN_VIA_DPDK", "0 or 1", flag},
        {"IOVAM_STRICT_UNMAP", "0 or 1", flag},
};

} // namespace

// Every variable parsed and checked alone before conf is written: on error
// conf is untouched and why names the variable, its value and what it
// accepts (numbers: decimal or 0x hex).
int conf_from_env(iovam_dpdk_conf *conf, char *why, size_t why_len)
{
	uint64_t v[kVars];
	const uint64_t keep[kVars] = {conf->dma_bits,
	                              conf->granule,
	                              conf->iova_base,
	                              conf->iova_end,
	                              conf->unmap_queue_size,
	                              conf->max_dyn_mappings,
	                              (conf->flags & IOVAM_DPDK_F_NO_IOMMU) != 0,
	                              (conf->flags & IOVAM_DPDK_F_NO_SERVICE) != 0,
	                              (conf->flags & IOVAM_DPDK_F_DYN_VIA_DPDK) != 0,
	                              (conf->flags & IOVAM_DPDK_F_STRICT_UNMAP) != 0};
	for (int i = 0; i < kVars; ++i) {
		const char *s = getenv(kEnv[i].name);
		v[i] = keep[i];
		if (s == nullptr || *s == '\0') continue;
		if (!parse_u64(s, &v[i]) || !kEnv[i].ok(v[i])) {
			snprintf(why, why_len,
			         "%s=\"%s\" is not valid: it accepts %s, in decimal or 0x hex",
			         kEnv[i].name, s, kEnv[i].accepts);
			return -EINVAL;
		}
	}
	conf->dma_bits = static_cast<uint32_t>(v[kDmaBits]);
	conf->granule = v[kGranule];
	conf->iova_base = v[kBase];
	conf->iova_end = v[kEnd];
	conf->unmap_queue_size = static_cast<uint32_t>(v[kQueue]);
	conf->max_dyn_mappings = static_cast<uint32_t>(v[kMaxDyn]);
	const uint32_t bits[] = {IOVAM_DPDK_F_NO_IOMMU, IOVAM_DPDK_F_NO_SERVICE,
	                         IOVAM_DPDK_F_DYN_VIA_DPDK, IOVAM_DPDK_F_STRICT_UNMAP};
	static_assert(sizeof(bits) / sizeof(bits[0]) == kVars - kNoIommu,
	              "one bit per flag variable");
	for (int i = 0; i < kVars - kNoIommu; ++i)
		conf->flags = v[kNoIommu + i] ? conf->flags | bits[i] : conf->flags & ~bits[i];
	return 0;
}

namespace
{

// The plugin has no caller to return a configuration error to: it stops
// the application with the message (as rte_exit does for EAL's own options).
[[noreturn]] void exit_with(const char *why)
{
	IOVAM_LOG(ERR, "%s", why);
	rte_exit(EXIT_FAILURE, "iovam: %s\n", why);
}

} // namespace

Glue *ensure_init()
{
	Glue *g = glue();
	if (g != nullptr) return g;
	const char *off = getenv("IOVAM_DISABLE");
	if (off != nullptr && strcmp(off, "1") == 0) {
		static std::once_flag said;
		std::call_once(said, [] {
			IOVAM_LOG(ERR,
			          "IOVAM_DISABLE=1: iovam is off; pools with the \"%s\" mempool "
			          "ops (--mbuf-pool-ops-name %s) cannot be created",
			          IOVAM_DPDK_MEMPOOL_OPS, IOVAM_DPDK_MEMPOOL_OPS);
		});
		return nullptr;
	}
	char why[256];
	if (off != nullptr && *off != '\0' && strcmp(off, "0") != 0) {
		snprintf(why, sizeof(why),
		         "IOVAM_DISABLE=\"%s\" is not valid: it accepts 1 (iovam off) or 0", off);
		exit_with(why);
	}
	iovam_dpdk_conf conf{};
	if (conf_from_env(&conf, why, sizeof(why)) != 0) exit_with(why);
	int rc = iovam_dpdk_init(&conf);
	if (rc == -EALREADY) return glue(); // another thread won the race
	if (rc == -EINVAL) {
		// Each variable was valid alone: the window they make is not.
		snprintf(why, sizeof(why),
		         "IOVAM_IOVA_BASE=%#" PRIx64 ", IOVAM_IOVA_END=%#" PRIx64
		         ", IOVAM_GRANULE=%#" PRIx64 ", IOVAM_DMA_BITS=%u make no window: it needs "
		         "base and end multiples of the granule and base < end <= 2^dma_bits",
		         conf.iova_base, conf.iova_end, conf.granule, conf.dma_bits);
		exit_with(why);
	}
	if (rc != 0)
		IOVAM_LOG(ERR, "self-initialisation from the environment failed: %s",
		          strerror(-rc));
	return glue();
}

} // namespace iovam::glue

extern "C" int iovam_dpdk_conf_from_env(struct iovam_dpdk_conf *conf)
{
	if (conf == nullptr) return -EINVAL;
	char why[256];
	int rc = iovam::glue::conf_from_env(conf, why, sizeof(why));
	if (rc != 0) IOVAM_LOG(ERR, "%s", why);
	return rc;
}
