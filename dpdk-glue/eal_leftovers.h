/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// eal_leftovers_remove(): what a single-process DPDK program of ours (the
// glue tests, examples/zero_copy_tx and mp_primary, bench_dyn_map) deletes after
// rte_eal_cleanup(), because DPDK 22.11 leaves it behind:
//
//   - its runtime directory, /var/run/dpdk/<file-prefix> (config, fbarrays,
//     the telemetry socket);
//   - its hugepage files, <hugetlbfs mount>/<file-prefix>map_*: each one keeps
//     a hugepage reserved until someone deletes it (the next EAL that starts
//     does, unless they are locked by a live process; until then they are
//     lost to everyone else on the machine).
//
// Not for a primary whose secondaries still run: they need both. Not
// installed: a header for this repository's programs only.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <rte_eal.h>

// runtime_dir: rte_eal_get_runtime_dir(), read before rte_eal_cleanup(). Its
// last component is the file prefix. Errors are ignored: nothing to undo.
inline void eal_leftovers_remove(const std::string &runtime_dir)
{
	namespace fs = std::filesystem;
	std::error_code ec;
	const std::string prefix = fs::path(runtime_dir).filename().string();
	fs::remove_all(runtime_dir, ec);
	if (prefix.empty())
		return;
	const std::string file_start = prefix + "map_";
	// Every hugetlbfs mount (--huge-dir picks one of them): "dev dir type ...".
	std::ifstream mounts("/proc/mounts");
	std::string dev, dir, type, rest;
	while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
		if (type != "hugetlbfs")
			continue;
		std::vector<fs::path> ours; // collected first: no removal while iterating
		for (const fs::directory_entry &e : fs::directory_iterator(dir, ec))
			if (e.path().filename().string().starts_with(file_start))
				ours.push_back(e.path());
		for (const fs::path &p : ours)
			fs::remove(p, ec);
	}
}

// Every exit of such a program after rte_eal_init(), failed runs included:
// rte_eal_cleanup(), then what it leaves behind. Returns status.
inline int eal_exit(int status)
{
	const std::string runtime_dir = rte_eal_get_runtime_dir();
	rte_eal_cleanup();
	eal_leftovers_remove(runtime_dir);
	return status;
}
