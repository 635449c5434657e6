/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the first uffdwp_probe() costs a process, against the raw kernel
 * handshake it cannot avoid (open a userfaultfd, UFFDIO_API, close), both
 * measured in the same run. Each probe runs in a fresh forked child, since
 * the result is cached per process. Prints medians and a RATIO line.
 *
 *   bench-probe [--runs N]
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The kernel's part: one handshake on the device, as the probe's first. */
static double raw_handshake_us(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	double t0 = now_us();
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -1;
	fd = ioctl(dev, _IO(0xAA, 0x00), O_CLOEXEC);
	close(dev);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api))
		return -1;
	close(fd);
	return now_us() - t0;
}

/* The first probe of a fresh process, timed inside a forked child. */
static double child_probe_us(double *shared)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct uffdwp_caps c = { .sz = sizeof(c) };
		double t0 = now_us();

		if (uffdwp_probe(&c))
			_exit(1);
		*shared = now_us() - t0;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status)
		return -1;
	return *shared;
}

int main(int argc, char **argv)
{
	int runs = 31, i;
	double *probe, *raw, *shared, mp, mr;

	if (argc == 3 && !strcmp(argv[1], "--runs"))
		runs = atoi(argv[2]);
	if (runs < 1) {
		fprintf(stderr, "usage: bench-probe [--runs N]\n");
		return 2;
	}
	probe = calloc((size_t)runs, sizeof(*probe));
	raw = calloc((size_t)runs, sizeof(*raw));
	shared = mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!probe || !raw || shared == MAP_FAILED)
		return 1;
	for (i = 0; i < runs; i++) {
		raw[i] = raw_handshake_us();
		probe[i] = child_probe_us(shared);
		if (raw[i] < 0 || probe[i] < 0) {
			fprintf(stderr,
				"bench-probe: needs /dev/userfaultfd (run as root)\n");
			return 77;
		}
	}
	mp = median(probe, runs);
	mr = median(raw, runs);
	printf("runs                      %d\n", runs);
	printf("first uffdwp_probe        %.1f us (median)\n", mp);
	printf("raw uffd open+API+close   %.1f us (median)\n", mr);
	printf("RATIO probe_vs_raw_api %.1f\n", mp / mr);
	return 0;
}
