/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (c) 2026 The iovam authors.
 */
// Two processes on one EAL (hugepages, a net_null vdev): the primary runs
// iovam, creates an iovam pool and a dynamic mapping, then starts secondaries
// of this same program (fork + exec, --proc-type=secondary):
//   use   attaches (iovam_dpdk_init), takes and returns mbufs, checks each
//         buf_iova against iovam_dpdk_virt2iova, is refused map/unmap
//         (-ENOTSUP), creates a pool of its own (populated from the shared
//         table) and frees it, detaches and exits;
//   hold  attaches, takes 16 mbufs and is killed (SIGKILL) holding them.
// After each step the primary runs iovam_verify() on its domain and checks
// that nothing of iovam changed: live ranges, its dynamic mapping (still
// live: its unmap succeeds at the end), fini with nothing left.
//
//   mp_test                       the primary (what meson runs)
//   mp_test secondary PREFIX MODE (started by the primary)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "iovam.h"
#include "iovam_dpdk.h"

namespace
{

const char *g_role = "primary";
std::string g_prefix; // the primary's, for its cleanup
pid_t g_child = -1;   // a secondary still running

// The primary's exit, also after a failed CHECK: no secondary left running,
// no runtime directory, no hugepage files of this prefix.
void cleanup_at_exit()
{
	if (g_child > 0) {
		kill(g_child, SIGKILL);
		waitpid(g_child, nullptr, 0);
	}
	std::error_code ec;
	std::filesystem::remove_all("/var/run/dpdk/" + g_prefix, ec);
	for (const auto &e : std::filesystem::directory_iterator("/dev/hugepages", ec))
		if (e.path().filename().string().starts_with(g_prefix + "map_"))
			std::filesystem::remove(e.path(), ec);
}

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "FAIL [%s] %s:%d: %s\n", g_role, __FILE__, __LINE__, \
			        #cond);                                                      \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

constexpr const char *kPool = "mp13_pool";
constexpr const char *kSecPool = "mp13_sec_pool";
constexpr unsigned kPoolSize = 1023;
constexpr unsigned kHeld = 16;

int eal_init(std::vector<std::string> args)
{
	std::vector<char *> cargs;
	for (auto &s : args) cargs.push_back(s.data());
	return rte_eal_init(static_cast<int>(cargs.size()), cargs.data());
}

const char *ops_name(const rte_mempool *mp)
{
	return rte_mempool_get_ops(mp->ops_index)->name;
}

// Every object's header IOVA (hence buf_iova) is what iovam_dpdk_virt2iova
// says in this process.
void check_obj_iova(rte_mempool *, void *, void *obj, unsigned)
{
	uint64_t iova = 0;
	CHECK(iovam_dpdk_virt2iova(obj, &iova) == 0);
	CHECK(rte_mempool_virt2iova(obj) == iova);
	auto *m = static_cast<rte_mbuf *>(obj);
	CHECK(iovam_dpdk_virt2iova(m->buf_addr, &iova) == 0);
	CHECK(m->buf_iova == iova);
}

void verify()
{
	iovam_domain *d = iovam_dpdk_domain();
	CHECK(d != nullptr);
	CHECK(iovam_verify(d) == 0);
}

uint64_t live_ranges()
{
	iovam_dpdk_stats st{};
	CHECK(iovam_dpdk_stats_get(&st) == 0);
	return st.live_ranges;
}

int secondary(const std::string &prefix, const std::string &mode)
{
	g_role = mode == "use" ? "secondary use" : "secondary hold";
	if (eal_init({"mp_test", "-l", "1", "--proc-type=secondary", "--no-pci",
	              "--file-prefix=" + prefix, "--log-level=lib.iovam:info"}) < 0) {
		fprintf(stderr, "FAIL [%s]: rte_eal_init: %s\n", g_role, rte_strerror(rte_errno));
		return 1;
	}
	uint64_t iova = 0;
	int local = 0;
	CHECK(iovam_dpdk_virt2iova(&local, &iova) == -ENODEV); // not attached yet
	CHECK(iovam_dpdk_init(nullptr) == 0);
	CHECK(iovam_dpdk_init(nullptr) == -EALREADY);
	CHECK(iovam_dpdk_is_initialised() == 1);

	rte_mempool *mp = rte_mempool_lookup(kPool);
	CHECK(mp != nullptr);
	// The primary handed its iovam pool over to ring_mp_mc; this process
	// has the same ops table (same program), so it sees ring_mp_mc too.
	CHECK(strcmp(ops_name(mp), "ring_mp_mc") == 0);

	rte_mbuf *m[64];
	unsigned n = mode == "use" ? 64 : kHeld;
	CHECK(rte_pktmbuf_alloc_bulk(mp, m, n) == 0);
	for (unsigned i = 0; i < n; i++) check_obj_iova(mp, nullptr, m[i], i);
	if (mode == "hold") {
		// Tell the primary, then wait to be killed holding the mbufs.
		CHECK(write(STDOUT_FILENO, "R", 1) == 1);
		for (;;) pause();
	}
	// DPDK's own translation of the same memory is another address space's
	// (VA or PA); iovam's is below 2^32 (the primary's default window).
	CHECK(m[0]->buf_iova < (uint64_t{1} << 32));
	printf("secondary: mbuf buf_iova 0x%" PRIx64 ", rte_mem_virt2iova 0x%" PRIx64 "\n",
	       m[0]->buf_iova, rte_mem_virt2iova(m[0]->buf_addr));
	rte_pktmbuf_free_bulk(m, n);

	// Refused, changing nothing in the primary.
	static char buf[8192];
	CHECK(iovam_dpdk_map(buf, sizeof(buf), &iova) == -ENOTSUP);
	CHECK(iovam_dpdk_unmap(buf, 0x10000, sizeof(buf)) == -ENOTSUP);
	CHECK(iovam_dpdk_virt2iova(buf, &iova) == -ENOENT); // not DPDK memory
	CHECK(iovam_dpdk_virt2iova(nullptr, &iova) == -EINVAL);
	iovam_dpdk_stats st{};
	CHECK(iovam_dpdk_stats_get(&st) == -ENOTSUP);
	CHECK(iovam_dpdk_service_run() == -ENOTSUP);
	CHECK(iovam_dpdk_domain() == nullptr && rte_errno == ENOTSUP);

	// A pool of the secondary's own, populated from the shared table.
	rte_mempool *sp = iovam_dpdk_pktmbuf_pool_create(kSecPool, 511, 0, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	CHECK(sp != nullptr);
	CHECK(strcmp(ops_name(sp), "ring_mp_mc") == 0);
	CHECK(rte_mempool_obj_iter(sp, check_obj_iova, nullptr) == 511);
	// Freed here: its memory chunks' free callbacks are this process's
	// function pointers (DPDK's rule for a secondary's pools).
	rte_mempool_free(sp);

	CHECK(iovam_dpdk_fini() == 0); // detaches: nothing was its own
	CHECK(iovam_dpdk_fini() == -ENODEV);
	CHECK(iovam_dpdk_virt2iova(m[0]->buf_addr, &iova) == -ENODEV);
	rte_eal_cleanup();
	return 0;
}

// Start this program as a secondary; its stdout is a pipe, returned in *out.
pid_t spawn(const std::string &prefix, const char *mode, int *out)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execl("/proc/self/exe", "mp_test", "secondary", prefix.c_str(), mode, nullptr);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	g_child = pid;
	return pid;
}

int wait_exit(pid_t pid)
{
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	g_child = -1;
	return status;
}

int primary()
{
	std::string prefix = "iovam_mp13_t" + std::to_string(getpid());
	g_prefix = prefix;
	atexit(cleanup_at_exit);
	// A secondary maps the primary's memory at the primary's addresses. By
	// default EAL reserves it just below the shared libraries, where, under
	// ASan, a secondary's own libraries or ASan's allocator may already sit:
	// "Cannot get a virtual area at requested address" about one run in a
	// few. There, 32 TiB is far from both and above ASan's shadow (under
	// TSan that is TSan's own range: the default is kept).
	std::vector<std::string> args = {"mp_test",
	                                 "-l",
	                                 "0",
	                                 "--no-pci",
	                                 "-m",
	                                 "128",
	                                 "--file-prefix=" + prefix,
	                                 "--vdev=net_null0",
	                                 "--log-level=lib.iovam:info"};
#if defined(__SANITIZE_ADDRESS__)
	args.push_back("--base-virtaddr=0x200000000000");
#endif
	if (eal_init(args) < 0) {
		fprintf(stderr, "FAIL [primary]: rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	iovam_dpdk_conf conf{};
	conf.flags = IOVAM_DPDK_F_NO_SERVICE;
	CHECK(iovam_dpdk_init(&conf) == 0);
	verify();

	rte_mempool *mp = iovam_dpdk_pktmbuf_pool_create(kPool, kPoolSize, 32, 0,
	                                                 RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	CHECK(mp != nullptr);
	// Populated, then handed over to DPDK's ring ops: a secondary that never
	// loaded iovam uses it as a ring pool.
	CHECK(strcmp(ops_name(mp), "ring_mp_mc") == 0);
	CHECK(rte_mempool_obj_iter(mp, check_obj_iova, nullptr) == kPoolSize);
	static char buf[3 * 4096];
	uint64_t dyn_iova = 0;
	CHECK(iovam_dpdk_map(buf, sizeof(buf), &dyn_iova) == 0);
	verify();
	uint64_t live = live_ranges();

	int out;
	pid_t pid = spawn(prefix, "use", &out);
	int status = wait_exit(pid);
	char line[256];
	ssize_t got = read(out, line, sizeof(line) - 1);
	close(out);
	if (got > 0) {
		line[got] = '\0';
		printf("%s", line);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	verify();
	CHECK(live_ranges() == live);
	CHECK(rte_mempool_avail_count(mp) == kPoolSize);
	CHECK(rte_mempool_lookup(kSecPool) == nullptr); // the secondary freed its own

	pid = spawn(prefix, "hold", &out);
	char r = 0;
	CHECK(read(out, &r, 1) == 1 && r == 'R');
	close(out);
	CHECK(kill(pid, SIGKILL) == 0);
	status = wait_exit(pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	verify();
	CHECK(live_ranges() == live);
	// DPDK's rule, not iovam's: mbufs a killed process held are gone from
	// the pool; iovam held nothing for it.
	CHECK(rte_mempool_avail_count(mp) == kPoolSize - kHeld);
	printf("primary: secondary killed holding %u mbufs; avail %u of %u, live ranges %" PRIu64
	       " as before\n",
	       kHeld, rte_mempool_avail_count(mp), kPoolSize, live);

	// The primary's mapping survived the secondaries' refused unmaps.
	CHECK(iovam_dpdk_unmap(buf, dyn_iova, sizeof(buf)) == 0);
	while (iovam_dpdk_service_run() > 0) {}
	rte_mempool_free(mp);
	verify();
	CHECK(iovam_dpdk_fini() == 0);
	rte_eal_cleanup();
	printf("mp_test: PASS\n");
	return 0;
}

} // namespace

// LeakSanitizer (ASan builds): a secondary's vdev bus (DPDK's, not
// instrumented) keeps the device entries it got from the primary past
// rte_eal_cleanup(). Only that library is suppressed.
extern "C" const char *__lsan_default_suppressions()
{
	return "leak:librte_bus_vdev.so\n";
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "secondary") == 0) return secondary(argv[2], argv[3]);
	return primary();
}
