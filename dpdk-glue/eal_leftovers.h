/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// The EAL lifetime of a DPDK program of ours: eal_start() at the start (and
// eal_app_arg_u64() for its arguments), eal_exit() at every exit after it
// (examples/zero_copy_tx and mp_primary, bench_dyn_map; the glue tests call
// eal_leftovers_remove() themselves).
//
// eal_leftovers_remove(): what a single-process program deletes after
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

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>

// rte_eal_init(): the number of arguments EAL took, or -1 after a message
// naming prog (EAL did not start: nothing to clean up).
inline int eal_start(int argc, char **argv, const char *prog)
{
	int n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "%s: rte_eal_init: %s\n", prog, rte_strerror(rte_errno));
		return -1;
	}
	return n;
}

// The application's i-th argument (i >= 1) as a number, dflt if absent. n:
// what eal_start() returned (rte_eal_init() leaves the program name at
// argv[n], the application's arguments after it).
inline uint64_t eal_app_arg_u64(int argc, char **argv, int n, int i, uint64_t dflt)
{
	return argc - n > i ? strtoull(argv[n + i], nullptr, 0) : dflt;
}

// runtime_dir: rte_eal_get_runtime_dir(), read before rte_eal_cleanup(). Its
// last component is the file prefix. Errors are ignored: nothing to undo.
inline void eal_leftovers_remove(const std::string &runtime_dir)
{
	namespace fs = std::filesystem;
	std::error_code ec;
	const std::string prefix = fs::path(runtime_dir).filename().string();
	fs::remove_all(runtime_dir, ec);
	if (prefix.empty()) return;
	const std::string file_start = prefix + "map_";
	// Every hugetlbfs mount (--huge-dir picks one of them): "dev dir type ...".
	std::ifstream mounts("/proc/mounts");
	std::string dev, dir, type, rest;
	while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
		if (type != "hugetlbfs") continue;
		std::vector<fs::path> ours; // collected first: no removal while iterating
		for (const fs::directory_entry &e : fs::directory_iterator(dir, ec))
			if (e.path().filename().string().starts_with(file_start))
				ours.push_back(e.path());
		for (const fs::path &p : ours) fs::remove(p, ec);
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
