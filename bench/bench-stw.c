/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How long a stop-the-world signal waits while the library works: what a
 * garbage collector that parks every thread in a signal handler (bdwgc's
 * SIGPWR) pays in pause time.
 *
 * Writer threads write random pages of a populated range at full speed; a
 * driver thread takes a snapshot (into memory, or with --file into an image
 * file, fsync'ed) or a collect of the range,
 * then waits --gap-ms (a collector's cycle), so each instant or collect
 * re-protects what the writers dirtied meanwhile;
 * the main thread stops the world every few milliseconds: it signals each
 * writer and the driver, waits until every one has entered the handler
 * (which parks it in sigsuspend), then resumes them. Each method runs in
 * the same process one after another, "none" (no library call, the same
 * writers) first: the acknowledgement latency the machine gives anyway.
 * Prints the median, p99 and worst acknowledgement per method and RATIO
 * lines against "none".
 *
 *   bench-stw [--size MiB] [--seconds S] [--writers N] [--gap-ms MS]
 *             [--file PATH] [--only METHOD] [--quick]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#define MAX_WRITERS 16
#define STOP_SIG SIGPWR
#define RESUME_SIG SIGXCPU

enum drive { DRIVE_NONE, DRIVE_SNAPSHOT, DRIVE_COLLECT };

struct method {
	const char *name;
	int backend;
	enum drive drive;
};

static const struct method methods[] = {
	{ "none", -1, DRIVE_NONE },
	{ "uffd_sync_snapshot", UFFDWP_BACKEND_UFFD_SYNC, DRIVE_SNAPSHOT },
	{ "uffd_sync_collect", UFFDWP_BACKEND_UFFD_SYNC, DRIVE_COLLECT },
	{ "uffd_async_snapshot", UFFDWP_BACKEND_UFFD_ASYNC, DRIVE_SNAPSHOT },
	{ "mprotect_collect", UFFDWP_BACKEND_MPROTECT, DRIVE_COLLECT },
};

static size_t ps, len;
static char *mem, *sinkbuf;
static struct uffdwp_ctx *ctx;
static enum drive drive;
static atomic_int acks, quit;
static atomic_long driver_ops;
static sigset_t park_mask;
static int driver_err;
static long gap_ms = 1000;
static const char *image_path, *only;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void on_stop(int sig)
{
	int saved = errno;

	(void)sig;
	atomic_fetch_add(&acks, 1);
	sigsuspend(&park_mask); /* until RESUME_SIG */
	errno = saved;
}

static void on_resume(int sig)
{
	(void)sig;
}

static void *writer_main(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	size_t npages = len / ps;

	while (!atomic_load_explicit(&quit, memory_order_relaxed)) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		mem[(x >> 24) % npages * ps + (x & 63)] = (char)x;
	}
	return NULL;
}

static int ignore_run(void *arg, void *addr, size_t n)
{
	(void)arg;
	(void)addr;
	(void)n;
	return 0;
}

static int one_snapshot(void)
{
	struct uffdwp_snapshot *snap = NULL;
	struct uffdwp_sink *sink = NULL;
	int ret;

	ret = image_path ? uffdwp_sink_file_new(image_path, 0, &sink) :
			   uffdwp_sink_memory_new(sinkbuf, len, &sink);
	if (!ret)
		ret = uffdwp_snapshot_start(ctx, mem, len, sink, NULL, &snap);
	if (!ret)
		ret = uffdwp_snapshot_wait(snap, -1);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	return ret;
}

/* The whole gap, however often a stop signal interrupts it. */
static void sleep_gap(void)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += gap_ms / 1000;
	until.tv_nsec += gap_ms % 1000 * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) ==
		       EINTR &&
	       !atomic_load(&quit))
		;
}

static void *driver_main(void *arg)
{
	long r = 0;

	(void)arg;
	while (!atomic_load(&quit) && r >= 0) {
		if (drive == DRIVE_SNAPSHOT)
			r = one_snapshot();
		else if (drive == DRIVE_COLLECT)
			r = uffdwp_collect(ctx, ignore_run, NULL);
		atomic_fetch_add(&driver_ops, 1);
		sleep_gap();
	}
	if (r < 0)
		driver_err = (int)r;
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct result {
	double median, p99, max;
	long rounds, ops;
};

/* One method: writers, the driver, and stop-the-world rounds. */
static int run(const struct method *m, int nwriters, double seconds,
	       struct result *res)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o) };
	pthread_t tid[MAX_WRITERS + 1];
	size_t cap = 1 << 20, n = 0;
	double *lat, end, t0;
	int i, nthreads = nwriters + 1, ret = 0;

	lat = malloc(cap * sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	memset(mem, 1, len); /* every page populated and, below, clean */
	ctx = NULL;
	if (m->backend >= 0) {
		o.backend = m->backend;
		ret = uffdwp_ctx_new(&o, &ctx);
		if (!ret)
			ret = uffdwp_track(ctx, mem, len, 0);
		if (ret) {
			uffdwp_ctx_free(ctx);
			free(lat);
			return ret;
		}
	}
	drive = m->drive;
	driver_err = 0;
	atomic_store(&quit, 0);
	atomic_store(&driver_ops, 0);
	for (i = 0; i < nwriters; i++)
		pthread_create(&tid[i], NULL, writer_main,
			       (void *)(uintptr_t)(i + 1));
	pthread_create(&tid[nwriters], NULL, driver_main, NULL);
	usleep(200 * 1000);
	end = now_us() + seconds * 1e6;
	while (now_us() < end && n < cap) {
		atomic_store(&acks, 0);
		t0 = now_us();
		for (i = 0; i < nthreads; i++)
			pthread_kill(tid[i], STOP_SIG);
		while (atomic_load(&acks) < nthreads)
			usleep(20);
		lat[n++] = now_us() - t0;
		usleep(1000); /* the world stays stopped for a moment */
		for (i = 0; i < nthreads; i++)
			pthread_kill(tid[i], RESUME_SIG);
		usleep(5000);
	}
	atomic_store(&quit, 1);
	for (i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	uffdwp_ctx_free(ctx);
	qsort(lat, n, sizeof(*lat), cmp_double);
	res->rounds = (long)n;
	res->ops = atomic_load(&driver_ops);
	res->median = n ? lat[n / 2] : 0;
	res->p99 = n ? lat[n * 99 / 100] : 0;
	res->max = n ? lat[n - 1] : 0;
	free(lat);
	return driver_err;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "writers", required_argument, NULL, 'w' },
		{ "gap-ms", required_argument, NULL, 'g' },
		{ "file", required_argument, NULL, 'f' },
		{ "only", required_argument, NULL, 'o' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct result none = { 0 }, r;
	struct sigaction sa;
	double seconds = 20;
	size_t mib = 1024;
	int nwriters = 3, c, ret;
	size_t i;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			mib = strtoul(optarg, NULL, 0);
			break;
		case 't':
			seconds = strtod(optarg, NULL);
			break;
		case 'w':
			nwriters = atoi(optarg);
			break;
		case 'g':
			gap_ms = strtol(optarg, NULL, 0);
			break;
		case 'f':
			image_path = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		case 'q':
			mib = 64;
			seconds = 2;
			gap_ms = 200;
			break;
		default:
			fprintf(stderr,
				"usage: bench-stw [--size MiB] [--seconds S] [--writers N] [--gap-ms MS] [--file PATH] [--only METHOD] [--quick]\n");
			return 2;
		}
	}
	if (nwriters < 1 || nwriters > MAX_WRITERS || !mib || seconds <= 0 ||
	    gap_ms < 0) {
		fprintf(stderr, "bench-stw: bad arguments\n");
		return 2;
	}
	if (uffdwp_probe(&caps)) {
		printf("bench-stw: uffdwp_probe failed\n");
		return 77;
	}
	ps = (size_t)sysconf(_SC_PAGESIZE);
	len = mib << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sinkbuf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED || sinkbuf == MAP_FAILED) {
		perror("bench-stw: mmap");
		return 1;
	}
	sigfillset(&park_mask);
	sigdelset(&park_mask, RESUME_SIG);
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(STOP_SIG, &sa, NULL);
	sa.sa_handler = on_resume;
	sigaction(RESUME_SIG, &sa, NULL);

	printf("# %zu MiB, %d writers, an operation every %ld ms, snapshots into %s, %.0f s per method; acknowledgement of a stop signal by every thread, in ms\n",
	       mib, nwriters, gap_ms, image_path ? image_path : "memory",
	       seconds);
	printf("# %-22s %8s %8s %8s %8s %10s\n", "method", "rounds", "median",
	       "p99", "worst", "driver_ops");
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		const struct method *m = &methods[i];

		/* "none" always runs: the others are measured against it. */
		if (only && m->backend >= 0 && strcmp(only, m->name))
			continue;
		if (m->backend >= 0 && !caps.backend[m->backend].usable) {
			printf("# %-22s skipped: %s\n", m->name,
			       caps.backend[m->backend].reason);
			continue;
		}
		ret = run(m, nwriters, seconds, &r);
		if (ret) {
			printf("# %-22s failed: %s\n", m->name, strerror(-ret));
			continue;
		}
		printf("  %-22s %8ld %8.2f %8.2f %8.2f %10ld\n", m->name,
		       r.rounds, r.median / 1e3, r.p99 / 1e3, r.max / 1e3,
		       r.ops);
		if (m->backend < 0) {
			none = r;
			continue;
		}
		if (none.p99 > 0)
			printf("RATIO stw_ack_p99_%s_vs_none %.2f\nRATIO stw_ack_worst_%s_vs_none %.2f\n",
			       m->name, r.p99 / none.p99, m->name,
			       r.max / none.max);
	}
	return 0;
}
