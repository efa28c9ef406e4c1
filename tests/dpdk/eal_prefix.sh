# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the scripts that start EAL processes with a --file-prefix of
# their own (eal_run.sh, multiprocess.sh): what DPDK 22.11 leaves behind for
# a prefix, and its removal (the shell side of dpdk-glue/eal_leftovers.h).

# The runtime directories' root: /var/run/dpdk as root, else under
# XDG_RUNTIME_DIR (as EAL picks it).
eal_rundir=/var/run/dpdk
[ "$(id -u)" = 0 ] || eal_rundir=${XDG_RUNTIME_DIR:-/tmp}/dpdk

# eal_prefix_remove PREFIX: its runtime directory, and its hugepage files on
# every hugetlbfs mount (each one keeps a hugepage reserved until deleted).
eal_prefix_remove() {
	local prefix=${1:?} mnt
	rm -rf "${eal_rundir:?}/$prefix"
	for mnt in $(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts); do
		rm -f "$mnt/${prefix}map_"*
	done
}
