/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-snapcmp: a live snapshot against its two peers, for a busy writer.
 *
 *   bench-snapcmp [--size N] [--reps R] [--quick] [--writers 1,4]
 *                 [--sinks memory,tmpfs,disk] [--methods M[,M...]]
 *                 [--tmpfs DIR] [--disk DIR]
 *
 * One workload for every method: a populated anonymous range (--size, 1 GiB
 * by default) and 1 or 4 writer threads storing 8 bytes into random pages
 * at full speed. Each method captures the range once, into a pre-faulted
 * memory buffer, a file on tmpfs or a file on the machine's disk:
 *
 *   fork        fork(); the child writes the image (Redis BGSAVE's way)
 *   frozen      the writers are stopped (asleep on a futex), one thread
 *               writes the image, the writers go on, then fsync (CRIU's)
 *   uffd_async, uffd_sync, selfservice
 *               the library: track, uffdwp_snapshot_start(), wait, free,
 *               untrack (a program that snapshots but does not otherwise
 *               track), with the library's memory or file sink
 *   *+keep      the same, but the range stays tracked afterwards (what a
 *               program that keeps tracking pays after the snapshot)
 *
 * Each sink and writer count runs in a fresh process (this program
 * re-executed with --cell) that captures with every method in turn, in a
 * new order each repetition but fork() always last (a process that forked
 * once keeps slower page faults), after warming the memory its images
 * will take (see warm_up()). --reps times (1; 3 for the README's figures,
 * ~10 min at 1 GiB); medians and their spread
 * are printed, and the RATIO lines compare the medians.
 *
 * For each capture, from the instant (the fork(), the freeze, the track)
 * to one second after it is durable (the child reaped; the frozen copy's
 * fsync; uffdwp_snapshot_wait()):
 *
 *   durable     instant to image complete (file: fsynced and renamed)
 *   stall       the longest gap between two writes of one writer
 *   lost        writes missed against each writer's rate in the 300 ms
 *               before the instant, times its time per write, per GiB
 *   rates       writes/s before, during the window, in the second after
 *   recovery    from durable until the writers' rate over 10 ms is back
 *               to 90 % of the rate before
 *   extra       the peak growth of AnonPages (/proc/meminfo) during the
 *               window: fork's copy-on-write, the library's staging
 *
 * Floors printed in the same run: memcpy and write(2) into the tmpfs file
 * of the range (one thread).
 */

#include <limits.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"
#include "report.h"

#define MAX_WRITERS 4
#define BASE_MS 300 /* the writers' own rate, before the instant */
#define WARM_MS 200
#define AFTER_MS 1000
#define BUCKETS 30000 /* ms of history per writer */
#define RECOVER_WIN 10

enum sinkkind { SINK_MEMORY, SINK_TMPFS, SINK_DISK, NSINKS };
static const char *const sink_names[NSINKS] = { "memory", "tmpfs", "disk" };

enum method {
	M_FORK,
	M_FROZEN,
	M_ASYNC,
	M_SYNC,
	M_SELF,
	M_ASYNC_KEEP,
	M_SYNC_KEEP,
	M_SELF_KEEP,
	NMETHODS
};
static const char *const method_names[NMETHODS] = {
	"fork",	       "frozen",	  "uffd_async",	    "uffd_sync",
	"selfservice", "uffd_async+keep", "uffd_sync+keep", "selfservice+keep",
};

static bool is_lib(int m)
{
	return m >= M_ASYNC;
}

static bool keeps(int m)
{
	return m >= M_ASYNC_KEEP;
}

/* ---- one capture, in its own process -------------------------------- */

struct writer {
	pthread_t tid;
	char *base;
	size_t npages;
	uint64_t seed;
	uint64_t t_base; /* bucket 0 */
	uint32_t *bucket; /* writes per ms */
	uint64_t maxgap; /* while measuring */
	uint64_t maxgap_base; /* before the instant */
};

static struct {
	int go, stop, measuring;
	int freeze, frozen; /* futex words */
} wctl;

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t x = w->seed, last, t, gap;
	uint32_t *b = w->bucket;

	while (!__atomic_load_n(&wctl.go, __ATOMIC_ACQUIRE))
		;
	last = now_ns();
	while (!__atomic_load_n(&wctl.stop, __ATOMIC_RELAXED)) {
		if (__atomic_load_n(&wctl.freeze, __ATOMIC_RELAXED)) {
			/* Asleep while frozen, as under a cgroup freezer:
			 * the CPU is the copier's. */
			__atomic_add_fetch(&wctl.frozen, 1, __ATOMIC_SEQ_CST);
			syscall(SYS_futex, &wctl.frozen, FUTEX_WAKE_PRIVATE, 1,
				NULL, NULL, 0);
			while (__atomic_load_n(&wctl.freeze, __ATOMIC_SEQ_CST))
				syscall(SYS_futex, &wctl.freeze,
					FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
		}
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*(volatile uint64_t *)(w->base +
				       (x * 0x2545f4914f6cdd1dULL >> 11) %
					       w->npages * page_sz +
				       64) = x;
		t = now_ns();
		gap = t - last;
		last = t;
		if (__atomic_load_n(&wctl.measuring, __ATOMIC_RELAXED)) {
			if (gap > w->maxgap)
				w->maxgap = gap;
		} else if (gap > w->maxgap_base) {
			w->maxgap_base = gap;
		}
		t = (t - w->t_base) / 1000000;
		if (t < BUCKETS)
			b[t]++;
	}
	return NULL;
}

/* AnonPages of /proc/meminfo, in KiB. */
static long anon_kib(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonPages: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static struct {
	int stop;
	long peak;
} sampler;

static void *sampler_main(void *arg)
{
	struct timespec ts = { 0, 5 * 1000000L };
	long v;

	(void)arg;
	while (!__atomic_load_n(&sampler.stop, __ATOMIC_ACQUIRE)) {
		v = anon_kib();
		if (v > sampler.peak)
			sampler.peak = v;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void xwrite_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len > 8 * MiB ? 8 * MiB : len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

static int open_tmp(const char *dir, char *tmp, size_t tmplen)
{
	int fd;

	snprintf(tmp, tmplen, "%s/.snapcmp.XXXXXX", dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		die("mkostemp %s: %s", tmp, strerror(errno));
	return fd;
}

/* fsync, rename over the final name, fsync the folder: as the library's
 * file sink does. */
static void publish(int fd, const char *tmp, const char *dir, const char *final)
{
	int dfd;

	if (fsync(fd) || close(fd))
		die("fsync: %s", strerror(errno));
	if (rename(tmp, final))
		die("rename: %s", strerror(errno));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		die("fsync %s: %s", dir, strerror(errno));
	close(dfd);
}

struct cell {
	int method, sink, nw;
	size_t len;
	const char *dir; /* the file sinks' folder */
};

static void fill(char *p, size_t len)
{
	for (size_t i = 0; i < len / page_sz; i++) {
		memset(p + i * page_sz, 0x5a, page_sz);
		memcpy(p + i * page_sz, &i, sizeof(i));
	}
}

/* The image holds every page at its place: the first 8 bytes (never
 * written by the writers) are the page's index. */
static bool check_mem_image(const char *img, size_t len)
{
	for (size_t i = 0; i < len / page_sz; i += 97)
		if (memcmp(img + i * page_sz, &i, sizeof(i)))
			return false;
	return true;
}

static bool check_raw_file(const char *path, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t v;
	bool ok = fd >= 0;

	for (size_t i = 0; ok && i < len / page_sz; i += 97)
		ok = pread(fd, &v, sizeof(v), (off_t)(i * page_sz)) ==
			     sizeof(v) &&
		     v == i;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool check_image_file(const char *path, size_t len)
{
	struct uffdwp_image *img = NULL;
	struct uffdwp_image_info info = { .sz = sizeof(info) };
	bool ok;

	if (uffdwp_image_open(path, &img) || uffdwp_image_info(img, &info))
		return false;
	ok = info.pages == len / page_sz;
	for (uint64_t k = 0; ok && k < info.pages; k += 97) {
		const void *data;
		uint64_t addr, i;

		ok = !uffdwp_image_page(img, k, &addr, &data);
		i = (addr - info.addr) / page_sz;
		ok = ok && !memcmp(data, &i, sizeof(i));
	}
	uffdwp_image_close(img);
	return ok;
}

/* The library's context and sink, kept through the second after. */
static struct uffdwp_ctx *lib_ctx;
static struct uffdwp_sink *lib_sink;
/* What closing the snapshot and untracking took after wait(); the
 * snapshot's start call and its counters. */
static double lib_free_ms, lib_untrack_ms, lib_start_ms;
static uint64_t lib_faulted, lib_waited, lib_full;

static void lib_capture(const struct cell *c, char *src, char *dst,
			const char *final, uint64_t *t_done, bool *ok)
{
	static const int backend[] = { UFFDWP_BACKEND_UFFD_ASYNC,
				       UFFDWP_BACKEND_UFFD_SYNC,
				       UFFDWP_BACKEND_UFFD_SYNC };
	int k = (c->method - M_ASYNC) % 3;
	struct uffdwp_ctx_opts o = {
		.sz = sizeof(o),
		.backend = backend[k],
		.flags = k == 2 ? UFFDWP_CTX_SELF_SERVICE : 0,
	};
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx = NULL;
	struct uffdwp_sink *sink = NULL;
	struct uffdwp_snapshot *snap = NULL;
	uint64_t t;
	int err;

	err = uffdwp_ctx_new(&o, &ctx);
	if (err)
		die("uffdwp_ctx_new(%s): %s", method_names[c->method],
		    strerror(-err));
	err = c->sink == SINK_MEMORY ?
		      uffdwp_sink_memory_new(dst, c->len, &sink) :
		      uffdwp_sink_file_new(final, 0, &sink);
	if (err)
		die("sink: %s", strerror(-err));
	err = uffdwp_track(ctx, src, c->len, 0);
	if (!err)
		err = uffdwp_snapshot_start(ctx, src, c->len, sink, NULL,
					    &snap);
	if (err)
		die("track/snapshot_start: %s", strerror(-err));
	err = uffdwp_snapshot_wait(snap, -1);
	*t_done = now_ns();
	uffdwp_snapshot_status(snap, &st);
	lib_start_ms = (double)st.start_ns / 1e6;
	lib_faulted = st.pages_faulted;
	lib_waited = st.faults_waited;
	lib_full = st.staging_full;
	*ok = !err && st.state == UFFDWP_SNAPSHOT_DONE &&
	      st.consistency == UFFDWP_CONSISTENCY_EXACT;
	if (!*ok)
		fprintf(stderr, "%s snapshot: %s, cause %s\n",
			method_names[c->method], strerror(-err),
			uffdwp_snapshot_cause_name(st.cause));
	t = now_ns();
	snap = uffdwp_snapshot_free(snap);
	lib_free_ms = (double)(now_ns() - t) / 1e6;
	t = now_ns();
	if (!keeps(c->method))
		uffdwp_untrack(ctx, src, c->len);
	lib_untrack_ms = (double)(now_ns() - t) / 1e6;
	lib_ctx = ctx;
	lib_sink = sink;
}

static void fork_capture(const struct cell *c, char *src, char *dst,
			 const char *final, uint64_t *t_done, bool *ok)
{
	char tmp[PATH_MAX];
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		if (c->sink == SINK_MEMORY) {
			memcpy(dst, src, c->len);
		} else {
			int fd = open_tmp(c->dir, tmp, sizeof(tmp));

			xwrite_all(fd, src, c->len);
			publish(fd, tmp, c->dir, final);
		}
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid: %s", strerror(errno));
	*t_done = now_ns();
	*ok = WIFEXITED(status) && !WEXITSTATUS(status);
}

static void frozen_capture(const struct cell *c, char *src, char *dst,
			   const char *final, uint64_t *t_done, bool *ok)
{
	char tmp[PATH_MAX];
	int fd = -1, n;

	__atomic_store_n(&wctl.frozen, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&wctl.freeze, 1, __ATOMIC_SEQ_CST);
	while ((n = __atomic_load_n(&wctl.frozen, __ATOMIC_SEQ_CST)) < c->nw)
		syscall(SYS_futex, &wctl.frozen, FUTEX_WAIT_PRIVATE, n, NULL,
			NULL, 0);
	if (c->sink == SINK_MEMORY) {
		memcpy(dst, src, c->len);
	} else {
		fd = open_tmp(c->dir, tmp, sizeof(tmp));
		xwrite_all(fd, src, c->len);
	}
	/* The pages are out of the process: let it run while they reach
	 * the disk. */
	__atomic_store_n(&wctl.freeze, 0, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &wctl.freeze, FUTEX_WAKE_PRIVATE, MAX_WRITERS, NULL,
		NULL, 0);
	if (fd >= 0)
		publish(fd, tmp, c->dir, final);
	*t_done = now_ns();
	*ok = true;
}

static uint64_t bucket_sum(struct writer *w, int nw, uint64_t from_ms,
			   uint64_t to_ms)
{
	uint64_t s = 0;

	for (int i = 0; i < nw; i++)
		for (uint64_t t = from_ms; t < to_ms && t < BUCKETS; t++)
			s += w[i].bucket[t];
	return s;
}

/* The image file of a method, or "" for the memory sink. */
static void final_name(const struct cell *c, char *final, size_t n)
{
	final[0] = '\0';
	if (c->sink != SINK_MEMORY)
		snprintf(final, n, "%s/snapcmp-%d.img", c->dir, (int)getpid());
}

static int run_method(const struct cell *c, char *src, char *dst)
{
	struct writer w[MAX_WRITERS] = { 0 };
	size_t npages = c->len / page_sz;
	char final[PATH_MAX];
	uint64_t t0, t_inst, t_done = 0, i_ms, d_ms, e_ms;
	double base_rate[MAX_WRITERS], lost = 0, base = 0, win, after;
	uint64_t maxgap = 0, maxgap_base = 0;
	long anon0, recovery = -1;
	pthread_t st;
	bool ok = false;

	final_name(c, final, sizeof(final));
	wctl.go = wctl.stop = wctl.measuring = 0;
	sampler.stop = 0;
	t0 = now_ns();
	for (int i = 0; i < c->nw; i++) {
		w[i] = (struct writer){ .base = src,
					.npages = npages,
					.seed = rnd() | 1,
					.t_base = t0 };
		w[i].bucket = xcalloc(BUCKETS, sizeof(uint32_t));
		if (pthread_create(&w[i].tid, NULL, writer_main, &w[i]))
			die("pthread_create");
	}
	__atomic_store_n(&wctl.go, 1, __ATOMIC_RELEASE);
	usleep((WARM_MS + BASE_MS) * 1000);
	anon0 = anon_kib();
	sampler.peak = anon0;
	if (pthread_create(&st, NULL, sampler_main, NULL))
		die("pthread_create");
	__atomic_store_n(&wctl.measuring, 1, __ATOMIC_SEQ_CST);
	t_inst = now_ns();
	if (c->method == M_FORK)
		fork_capture(c, src, dst, final, &t_done, &ok);
	else if (c->method == M_FROZEN)
		frozen_capture(c, src, dst, final, &t_done, &ok);
	else
		lib_capture(c, src, dst, final, &t_done, &ok);
	__atomic_store_n(&sampler.stop, 1, __ATOMIC_RELEASE);
	pthread_join(st, NULL);
	usleep(AFTER_MS * 1000 + 20000);
	__atomic_store_n(&wctl.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < c->nw; i++)
		pthread_join(w[i].tid, NULL);
	lib_ctx = uffdwp_ctx_free(lib_ctx);
	lib_sink = uffdwp_sink_free(lib_sink);

	/* Whole milliseconds: the instant's, durable's, the end's. */
	i_ms = (t_inst - t0) / 1000000;
	d_ms = (t_done - t0 + 999999) / 1000000;
	e_ms = d_ms + AFTER_MS;
	for (int i = 0; i < c->nw; i++) {
		uint64_t got = bucket_sum(&w[i], 1, i_ms, e_ms);

		base_rate[i] =
			(double)bucket_sum(&w[i], 1, i_ms - BASE_MS, i_ms) /
			BASE_MS; /* writes per ms */
		base += base_rate[i];
		lost += ((double)(e_ms - i_ms) * base_rate[i] - (double)got) /
			base_rate[i]; /* ms */
		if (w[i].maxgap > maxgap)
			maxgap = w[i].maxgap;
		if (w[i].maxgap_base > maxgap_base)
			maxgap_base = w[i].maxgap_base;
	}
	win = (double)bucket_sum(w, c->nw, i_ms, d_ms) /
	      (double)(d_ms > i_ms ? d_ms - i_ms : 1);
	after = (double)bucket_sum(w, c->nw, d_ms, e_ms) / AFTER_MS;
	for (uint64_t t = d_ms; t + RECOVER_WIN <= e_ms; t++) {
		if ((double)bucket_sum(w, c->nw, t, t + RECOVER_WIN) >=
		    0.9 * base * RECOVER_WIN) {
			recovery = (long)(t - d_ms);
			break;
		}
	}
	for (int i = 0; i < c->nw; i++)
		free(w[i].bucket);
	if (ok && c->sink == SINK_MEMORY)
		ok = check_mem_image(dst, c->len);
	else if (ok)
		ok = is_lib(c->method) ? check_image_file(final, c->len) :
					 check_raw_file(final, c->len);
	/* Freed just before the next method writes its image: its pages are
	 * the warm ones the next image gets. */
	if (final[0])
		unlink(final);
	printf("CELL %s %s %d durable_ms=%.3f stall_ms=%.3f "
	       "stall_base_ms=%.3f lost_ms_gib=%.3f rate_base=%.0f "
	       "rate_window=%.0f rate_after=%.0f recovery_ms=%ld "
	       "extra_mib=%.1f start_ms=%.1f close_ms=%.1f "
	       "untrack_ms=%.1f faulted=%" PRIu64 " waited=%" PRIu64
	       " staging_full=%" PRIu64 " ok=%d\n",
	       method_names[c->method], sink_names[c->sink], c->nw,
	       (double)(t_done - t_inst) / 1e6, (double)maxgap / 1e6,
	       (double)maxgap_base / 1e6, lost / ((double)c->len / GiB),
	       base * 1000, win * 1000, after * 1000, recovery,
	       (double)(sampler.peak - anon0) / 1024, lib_start_ms, lib_free_ms,
	       lib_untrack_ms, lib_faulted, lib_waited, lib_full, ok);
	lib_free_ms = lib_untrack_ms = lib_start_ms = 0;
	lib_faulted = lib_waited = lib_full = 0;
	return ok ? 0 : 1;
}

/*
 * This VM hands memory back to its host, and the first touch of such a
 * page costs ~2.7 s per GiB here, several times any copy: an image
 * written into fresh memory, fork's copies and the library's staging would
 * each pay it, and the figures would measure the host. So a process
 * captures with each of its methods in turn, its range warm, and first
 * writes (and frees) one image and touches (and frees) the anonymous
 * memory fork's copies will reuse: pages freed last are the ones the
 * allocator hands out next.
 */
static void warm_up(const struct cell *c, char *src)
{
	char final[PATH_MAX], tmp[PATH_MAX];
	size_t len = c->len / 2;
	char *p;
	int fd;

	final_name(c, final, sizeof(final));
	if (final[0]) {
		fd = open_tmp(c->dir, tmp, sizeof(tmp));
		xwrite_all(fd, src, c->len);
		close(fd);
		unlink(tmp);
	}
	p = region_map(len, 0);
	memset(p, 1, len);
	munmap(p, len);
}

/*
 * One process: the range, populated; one capture by each method of
 * @methods in order (fork() last: a process that forked once is slower
 * ever after), each printing its CELL line.
 */
static int run_cell(struct cell *c, const char *methods)
{
	char *src, *dst = NULL;
	int ret = 0;

	src = region_map(c->len, 0);
	fill(src, c->len);
	if (c->sink == SINK_MEMORY) {
		/* Shared for fork's child, which writes the image. */
		dst = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (dst == MAP_FAILED)
			die("mmap: %s", strerror(errno));
		memset(dst, 0, c->len);
	}
	warm_up(c, src);
	for (const char *m = methods; *m; m++) {
		c->method = *m - 'a';
		if (c->method < 0 || c->method >= NMETHODS)
			die("bad method");
		if (c->method == M_FORK)
			warm_up(c, src);
		ret |= run_method(c, src, dst);
	}
	return ret;
}

/* ---- the driver ------------------------------------------------------ */

enum field {
	F_DURABLE,
	F_STALL,
	F_LOST,
	F_BASE,
	F_WIN,
	F_AFTER,
	F_RECOVERY,
	F_EXTRA,
	NFIELDS
};
static const char *const field_keys[NFIELDS] = {
	"durable_ms=",	"stall_ms=",   "lost_ms_gib=", "rate_base=",
	"rate_window=", "rate_after=", "recovery_ms=", "extra_mib=",
};

struct result {
	int n, failed;
	double *v[NFIELDS];
};

static struct result res[NMETHODS][NSINKS][2];
static const int writer_counts[2] = { 1, MAX_WRITERS };

static bool parse_cell(const char *line, double *out)
{
	for (int f = 0; f < NFIELDS; f++) {
		const char *p = strstr(line, field_keys[f]);

		if (!p)
			return false;
		out[f] = strtod(p + strlen(field_keys[f]), NULL);
	}
	return strstr(line, "ok=1") != NULL;
}

static int method_of(const char *name)
{
	for (int m = 0; m < NMETHODS; m++)
		if (!strcmp(name, method_names[m]))
			return m;
	return -1;
}

/* One process capturing with the methods of @order (letters). */
static void spawn_cell(const char *self, const struct cell *c,
		       const char *order, int reps)
{
	char s[8], n[8], len[32], line[512];
	int pfd[2], status, wi = c->nw == 1 ? 0 : 1;
	bool seen[NMETHODS] = { false };
	FILE *f;
	pid_t pid;

	snprintf(s, sizeof(s), "%d", c->sink);
	snprintf(n, sizeof(n), "%d", c->nw);
	snprintf(len, sizeof(len), "%zu", c->len);
	if (pipe2(pfd, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		dup2(pfd[1], 1);
		execl(self, self, "--cell", s, n, len, c->dir ? c->dir : "-",
		      order, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	while (f && fgets(line, sizeof(line), f)) {
		char mname[32];
		double v[NFIELDS];
		struct result *r;
		int m;

		if (sscanf(line, "CELL %31s", mname) != 1 ||
		    (m = method_of(mname)) < 0)
			continue;
		seen[m] = true;
		r = &res[m][c->sink][wi];
		if (!r->v[0])
			for (int k = 0; k < NFIELDS; k++)
				r->v[k] = xcalloc((size_t)reps, sizeof(double));
		fputs("  ", stdout);
		fputs(line, stdout);
		if (!parse_cell(line, v) || r->n >= reps) {
			r->failed++;
			printf("  ! %s %s %d writer(s): capture failed\n",
			       mname, sink_names[c->sink], c->nw);
			continue;
		}
		for (int k = 0; k < NFIELDS; k++)
			r->v[k][r->n] = v[k];
		r->n++;
	}
	if (f)
		fclose(f);
	waitpid(pid, &status, 0);
	for (const char *o = order; *o; o++) {
		if (seen[*o - 'a'])
			continue;
		res[*o - 'a'][c->sink][wi].failed++;
		printf("  ! %s %s %d writer(s): no result (the process %s "
		       "%d)\n",
		       method_names[*o - 'a'], sink_names[c->sink], c->nw,
		       WIFSIGNALED(status) ? "died of signal" : "exited",
		       WIFSIGNALED(status) ? WTERMSIG(status) :
					     WEXITSTATUS(status));
	}
}

static double rmed(const struct result *r, int f)
{
	return r->n ? med(r->v[f], (size_t)r->n) : 0;
}

static void rspread(const struct result *r, int f, double *lo, double *hi)
{
	*lo = *hi = r->n ? r->v[f][0] : 0;
	for (int i = 1; i < r->n; i++) {
		if (r->v[f][i] < *lo)
			*lo = r->v[f][i];
		if (r->v[f][i] > *hi)
			*hi = r->v[f][i];
	}
}

static void print_table(size_t len, int wi, const bool *msel, const bool *ssel)
{
	double gb = (double)len / 1e9;

	printf("\n== %d writer(s), %zu MiB, medians (min-max)\n",
	       writer_counts[wi], len / MiB);
	printf("  %-17s %-6s %-22s %-7s %-20s %-22s %-11s %-11s %-11s %s\n",
	       "method", "sink", "durable ms", "GB/s", "longest stall ms",
	       "lost ms per GiB", "Mw/s before", "Mw/s window", "Mw/s after",
	       "recovery ms / extra MiB");
	for (int s = 0; s < NSINKS; s++) {
		for (int m = 0; m < NMETHODS; m++) {
			const struct result *r = &res[m][s][wi];
			double dl, dh, sl, sh, ll, lh;

			if (!msel[m] || !ssel[s] || !r->n)
				continue;
			rspread(r, F_DURABLE, &dl, &dh);
			rspread(r, F_STALL, &sl, &sh);
			rspread(r, F_LOST, &ll, &lh);
			printf("  %-17s %-6s %6.0f (%4.0f-%4.0f)    %5.2f   "
			       "%6.1f (%5.1f-%5.1f) %6.0f (%5.0f-%5.0f)    "
			       "%-11.2f %-11.2f %-11.2f %.0f / %.0f%s\n",
			       method_names[m], sink_names[s],
			       rmed(r, F_DURABLE), dl, dh,
			       gb / rmed(r, F_DURABLE) * 1e3, rmed(r, F_STALL),
			       sl, sh, rmed(r, F_LOST), ll, lh,
			       rmed(r, F_BASE) / 1e6, rmed(r, F_WIN) / 1e6,
			       rmed(r, F_AFTER) / 1e6, rmed(r, F_RECOVERY),
			       rmed(r, F_EXTRA),
			       r->failed ? "  (some captures failed)" : "");
		}
	}
}

/* The library's best default: the backend AUTO picks on this machine. */
static int auto_method(void)
{
	struct uffdwp_ctx *ctx = NULL;
	int b, m;

	if (uffdwp_ctx_new(NULL, &ctx))
		return -1;
	b = uffdwp_ctx_backend(ctx);
	m = b == UFFDWP_BACKEND_UFFD_ASYNC ? M_ASYNC :
	    b == UFFDWP_BACKEND_UFFD_SYNC  ? M_SYNC :
					     -1;
	if (m == M_SYNC &&
	    strstr(uffdwp_ctx_backend_reason(ctx), "self-service"))
		m = M_SELF;
	uffdwp_ctx_free(ctx);
	return m;
}

static void ratio_of(const char *name, int m, int peer, int s, int wi, int f,
		     double target)
{
	const struct result *a = &res[m][s][wi], *b = &res[peer][s][wi];

	if (a->n && b->n && rmed(b, f) > 0)
		print_ratio(name, rmed(a, f) / rmed(b, f), target, false);
}

/* The headline ratios for library method @m; @suffix names it ("" for
 * the library's best default). */
static void ratios_of(int m, const char *suffix)
{
	char name[64];

	for (int wi = 0; wi < 2; wi++) {
		int nw = writer_counts[wi];

		snprintf(name, sizeof(name), "snapshot_lost_vs_fork_file_%dw%s",
			 nw, suffix);
		ratio_of(name, m, M_FORK, SINK_TMPFS, wi, F_LOST, 0.5);
		snprintf(name, sizeof(name),
			 "snapshot_lost_vs_frozen_file_%dw%s", nw, suffix);
		ratio_of(name, m, M_FROZEN, SINK_TMPFS, wi, F_LOST, 1.0);
		snprintf(name, sizeof(name), "snapshot_stall_vs_fork_%dw%s", nw,
			 suffix);
		ratio_of(name, m, M_FORK, SINK_TMPFS, wi, F_STALL, 0.2);
		snprintf(name, sizeof(name),
			 "snapshot_durable_vs_frozen_file_%dw%s", nw, suffix);
		ratio_of(name, m, M_FROZEN, SINK_TMPFS, wi, F_DURABLE, 1.1);
	}
}

static void ratios_print(int am, const bool *msel)
{
	char name[64];

	printf("\nThe library's best default: %s (AUTO's backend); the "
	       "other methods' ratios carry their name\n",
	       method_names[am]);
	ratios_of(am, "");
	for (int m = M_ASYNC; m <= M_SELF; m++) {
		if (m == am || !msel[m])
			continue;
		snprintf(name, sizeof(name), "_%s", method_names[m]);
		ratios_of(m, name);
	}
	for (int m = M_ASYNC; m < NMETHODS; m++) {
		const struct result *r = &res[m][SINK_TMPFS][0];
		double v;

		if (!msel[m] || !r->n)
			continue;
		snprintf(name, sizeof(name), "snapshot_rate_recovery_ms_%s",
			 method_names[m]);
		/* Not recovered within the second after: counted as it. */
		v = rmed(r, F_RECOVERY) < 0 ? AFTER_MS : rmed(r, F_RECOVERY);
		print_ratio(name, v, 100, false);
	}
	{
		double peak = 0;

		for (int m = M_ASYNC; m < NMETHODS; m++)
			for (int s = 0; s < NSINKS; s++)
				for (int wi = 0; wi < 2; wi++)
					if (res[m][s][wi].n &&
					    rmed(&res[m][s][wi], F_EXTRA) >
						    peak)
						peak = rmed(&res[m][s][wi],
							    F_EXTRA);
		printf("RESULT snapshot_extra_mib %.1f\n", peak);
	}
}

/* Floors, in this process: memcpy and write(2) of the range. */
static void floors(size_t len, const char *tmpfs)
{
	char *src = region_map(len, 0), *dst = region_map(len, 0),
	     tmp[PATH_MAX];
	double mc[3], wr[3];
	uint64_t t;
	int fd;

	fill(src, len);
	memset(dst, 0, len);
	for (int r = 0; r < 3; r++) {
		t = now_ns();
		memcpy(dst, src, len);
		mc[r] = (double)(now_ns() - t);
		fd = open_tmp(tmpfs, tmp, sizeof(tmp));
		t = now_ns();
		xwrite_all(fd, src, len);
		wr[r] = (double)(now_ns() - t);
		close(fd);
		unlink(tmp);
	}
	printf("floors (one thread, %zu MiB): memcpy %.0f ms (%.2f GB/s), "
	       "write(2) into a tmpfs file %.0f ms (%.2f GB/s)\n",
	       len / MiB, median(mc, 3) / 1e6, (double)len / median(mc, 3),
	       median(wr, 3) / 1e6, (double)len / median(wr, 3));
	munmap(src, len);
	munmap(dst, len);
}

static size_t parse_size(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (*e == 'G' || *e == 'g')
		v *= GiB;
	else if (*e == 'M' || *e == 'm')
		v *= MiB;
	else if (*e == 'K' || *e == 'k')
		v *= KiB;
	return (size_t)v;
}

static bool select_list(const char *arg, const char *const *names, int n,
			bool *sel)
{
	char buf[256], *save = NULL, *tok;

	memset(sel, 0, (size_t)n * sizeof(*sel));
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n)
			return false;
		sel[i] = true;
	}
	return true;
}

static const char usage[] =
	"usage: bench-snapcmp [--size N[K|M|G]] [--reps R] [--quick] "
	"[--writers 1,4]\n"
	"       [--sinks memory,tmpfs,disk] [--methods M[,M...]] "
	"[--tmpfs DIR] [--disk DIR]\n";

int main(int argc, char **argv)
{
	size_t len = 1 * GiB;
	int reps = 1, am;
	const char *tmpfs = "/dev/shm", *disk = "/var/tmp";
	bool msel[NMETHODS], ssel[NSINKS] = { true, true, true };
	bool wsel[2] = { true, true };
	char self[PATH_MAX];
	ssize_t n;

	page_sz = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 7 && !strcmp(argv[1], "--cell")) {
		struct cell c = { .sink = atoi(argv[2]),
				  .nw = atoi(argv[3]),
				  .len = strtoul(argv[4], NULL, 10),
				  .dir = argv[5] };

		rng_state ^= (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
		if (c.sink < 0 || c.sink >= NSINKS || c.nw < 1 ||
		    c.nw > MAX_WRITERS || c.len % page_sz)
			die("bad cell");
		return run_cell(&c, argv[6]);
	}
	for (int m = 0; m < NMETHODS; m++)
		msel[m] = !keeps(m);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
			len = 64 * MiB;
			reps = 1;
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			len = parse_size(argv[++i]);
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--tmpfs") && i + 1 < argc) {
			tmpfs = argv[++i];
		} else if (!strcmp(argv[i], "--disk") && i + 1 < argc) {
			disk = argv[++i];
		} else if (!strcmp(argv[i], "--writers") && i + 1 < argc) {
			static const char *const wn[2] = { "1", "4" };

			if (!select_list(argv[++i], wn, 2, wsel))
				die("%s", usage);
		} else if (!strcmp(argv[i], "--sinks") && i + 1 < argc) {
			if (!select_list(argv[++i], sink_names, NSINKS, ssel))
				die("%s", usage);
		} else if (!strcmp(argv[i], "--methods") && i + 1 < argc) {
			if (!select_list(argv[++i], method_names, NMETHODS,
					 msel))
				die("%s", usage);
		} else {
			die("%s", usage);
		}
	}
	len &= ~(page_sz - 1);
	if (reps < 1 || reps > 99 || len < 16 * page_sz)
		die("%s", usage);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die("readlink: %s", strerror(errno));
	self[n] = '\0';
	am = auto_method();
	printf("bench-snapcmp: %zu MiB, %d repetition(s), every capture in "
	       "a fresh process; files in %s (tmpfs) and %s (disk)\n",
	       len / MiB, reps, tmpfs, disk);
	floors(len, tmpfs);
	for (int r = 0; r < reps; r++) {
		for (int wi = 0; wi < 2; wi++) {
			for (int s = 0; s < NSINKS; s++) {
				struct cell c = {
					.sink = s,
					.nw = writer_counts[wi],
					.len = len,
					.dir = s == SINK_TMPFS ? tmpfs :
					       s == SINK_DISK  ? disk :
								 NULL,
				};
				char order[NMETHODS + 1];
				int k = 0;

				if (!wsel[wi] || !ssel[s])
					continue;
				/* A new order each repetition; fork()
				 * last. */
				for (int j = 0; j < NMETHODS - 1; j++) {
					int m = M_FROZEN +
						(j + r) % (NMETHODS - 1);

					if (msel[m])
						order[k++] = (char)('a' + m);
				}
				if (msel[M_FORK])
					order[k++] = 'a' + M_FORK;
				order[k] = '\0';
				if (k)
					spawn_cell(self, &c, order, reps);
			}
		}
	}
	for (int wi = 0; wi < 2; wi++)
		if (wsel[wi])
			print_table(len, wi, msel, ssel);
	if (am >= 0)
		ratios_print(am, msel);
	summary();
	return 0;
}
