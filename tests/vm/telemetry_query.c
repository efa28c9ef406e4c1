/* Minimal DPDK telemetry client for the test guest (which has no Python for dpdk-telemetry.py).
 * Connects to a running DPDK process's telemetry socket, sends each command and prints each
 * JSON reply on its own line. Used to read the iovam glue's /iovam/stats and /iovam/pools from
 * inside an unmodified testpmd.
 *
 * Usage: telemetry_query <file-prefix> <command>...    e.g. telemetry_query ti /iovam/pools
 * Retries the connection for up to 10 s (the process may still be initialising).
 * Exit status: 0 when every command got a reply. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_MAX 65536

static char reply[REPLY_MAX];

static int connect_socket(const char *prefix)
{
	struct sockaddr_un addr;
	int fd, tries;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "/var/run/dpdk/%s/dpdk_telemetry.v2",
	         prefix);
	for (tries = 0; tries < 100; tries++) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* the v2 socket is message-based */
		if (fd < 0) return -1;
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) return fd;
		close(fd);
		usleep(100 * 1000);
	}
	fprintf(stderr, "telemetry_query: cannot connect to %s\n", addr.sun_path);
	return -1;
}

int main(int argc, char **argv)
{
	ssize_t n;
	int fd, i;

	if (argc < 3) {
		fprintf(stderr, "usage: %s <file-prefix> <command>...\n", argv[0]);
		return 2;
	}
	fd = connect_socket(argv[1]);
	if (fd < 0) return 1;
	/* The server greets first with its version and limits. */
	if (read(fd, reply, sizeof(reply) - 1) <= 0) return 1;
	for (i = 2; i < argc; i++) {
		if (write(fd, argv[i], strlen(argv[i])) < 0) return 1;
		n = read(fd, reply, sizeof(reply) - 1);
		if (n <= 0) return 1;
		reply[n] = '\0';
		printf("%s\n", reply);
	}
	close(fd);
	return 0;
}
