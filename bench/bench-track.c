/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-track: what the library's dirty tracking costs on top of the kernel
 * mechanism it drives, measured side by side in one run.
 *
 * Absolute times on a shared VM drift by tens of percent between runs, so
 * every comparison is made inside one repetition (the raw mechanism and the
 * library on twin regions, in alternating order) and the median of those
 * per-repetition ratios is reported. Each "raw" side is written here against
 * the kernel ABI alone, doing exactly what the library's backend is meant to
 * do, so a ratio above 1 is the library's own overhead:
 *
 *   - first write to an armed page, uffd_async (the cost every tracked
 *     program pays per dirty page and epoch);
 *   - uffdwp_collect() against a bare PAGEMAP_SCAN loop, 0.1 % to 100 % dirty;
 *   - write-fault latency under uffd_sync against a minimal handler thread;
 *   - re-arming a sync-tracked region: batched collect against one
 *     UFFDIO_WRITEPROTECT per page;
 *   - mprotect against uffd_async first-write cost (why mprotect is only the
 *     fallback);
 *   - collect on a sparse range (16x the populated size) against a dense one;
 *   - the library's own memory per GiB tracked;
 *   - live snapshots: idle throughput against memcpy, a writer's fault
 *     latency during one against the raw sync round trip, and a snapshot's
 *     time with writers busy against an idle one's.
 *
 * It prints a human table, `RATIO name value` and `RESULT name value` lines,
 * and exits 0 whatever the numbers are: it is a benchmark, not a test.
 *
 *   bench-track [--size BYTES|NNNk|NNNm|NNNg] [--quick] [--plot FILE.png]
 *               [--only SECTION[,SECTION...]]
 *
 * SECTION: memory, async, mprotect, sync, snapshot, sparse, curve; --only
 * runs just those (e.g. `--only snapshot` while working on snapshots).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "uapi-compat.h"

#define KiB (1024UL)
#define MiB (1024UL * KiB)
#define GiB (1024UL * MiB)

/* The library's async backend scans with a vector of this many regions. */
#define VEC_LEN 1024

#define ASYNC_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)
#define SCAN_FLAGS (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)

static size_t page_sz;
static int pmfd = -1;
static bool quick;
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t *scratch; /* page-index permutation for pattern picking */
static size_t scratch_n;

static __attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt,
								...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench-track: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts @v in place. */
static double median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rnd(void)
{
	/* xorshift64*: a fixed seed keeps runs comparable with each other. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (!p)
		die("out of memory");
	return p;
}

/* ---- memory regions ------------------------------------------------- */

/*
 * 2 MiB aligned so a sparse layout's chunks fill whole page tables, and
 * MADV_NOHUGEPAGE before the first touch so raw and library sides account
 * in the same 4 KiB pages (the library asks for it on track too).
 */
static char *region_map(size_t len, int extra_flags)
{
	size_t align = 2 * MiB;
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		die("mmap %zu bytes: %s", len, strerror(errno));
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + len < p + len + align)
		munmap(a + len, (size_t)(p + len + align - (a + len)));
	madvise(a, len, MADV_NOHUGEPAGE);
	return a;
}

static void write_seq(char *p, size_t len, char v)
{
	for (size_t off = 0; off < len; off += page_sz)
		((volatile char *)p)[off] = v;
}

/*
 * Where page index i of a pattern lives: chunks of @chunk pages placed every
 * @stride pages, so one pattern can dirty the same pages of a dense and a
 * sparse region. Dense is chunk == stride.
 */
struct layout {
	size_t chunk;
	size_t stride;
};

static const struct layout dense = { 1, 1 };

static char *page_addr(char *base, const struct layout *l, uint32_t i)
{
	size_t pg = i / l->chunk * l->stride + i % l->chunk;

	return base + pg * page_sz;
}

static void write_idx(char *base, const struct layout *l, const uint32_t *idx,
		      size_t n, char v)
{
	for (size_t i = 0; i < n; i++)
		*(volatile char *)page_addr(base, l, idx[i]) = v;
}

/* ---- dirty patterns ------------------------------------------------- */

static void scratch_fill(size_t n)
{
	if (n > scratch_n) {
		free(scratch);
		scratch = xcalloc(n, sizeof(*scratch));
		scratch_n = n;
	}
	for (size_t i = 0; i < n; i++)
		scratch[i] = (uint32_t)i;
}

/* @k distinct random pages of @n, in random order (partial Fisher-Yates). */
static size_t pick_random(uint32_t *out, size_t n, size_t k)
{
	scratch_fill(n);
	for (size_t i = 0; i < k; i++) {
		size_t j = i + rnd() % (n - i);
		uint32_t t = scratch[i];

		scratch[i] = scratch[j];
		scratch[j] = t;
		out[i] = scratch[i];
	}
	return k;
}

/*
 * About @k pages as runs of 16 consecutive pages at random positions, as
 * objects spanning several pages get written. Each run starts at a random
 * offset 0..14 of its own 32-page block, so two runs never touch and a
 * batching re-arm cannot gain from merging neighbours.
 */
static size_t pick_runs16(uint32_t *out, size_t n, size_t k)
{
	size_t blocks = n / 32, runs = k / 16;

	if (!runs)
		runs = 1;
	if (runs > blocks)
		runs = blocks;
	pick_random(out, blocks, runs);
	/* pick_random wrote block numbers to out[0..runs); expand in place
	 * from the back so no block number is overwritten before use. */
	for (size_t r = runs; r-- > 0;) {
		uint32_t first = out[r] * 32 + (uint32_t)(rnd() % 15);

		for (uint32_t j = 16; j-- > 0;)
			out[r * 16 + j] = first + j;
	}
	return runs * 16;
}

static size_t frac_pages(size_t n, double pct)
{
	size_t k = (size_t)((double)n * pct / 100.0 + 0.5);

	return k ? k : 1;
}

/* ---- raw kernel mechanism ------------------------------------------- */

/* The fd the library would open too: the device first, then the syscall. */
static int raw_uffd(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd = -1;

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) ||
	    (api.features & features) != features) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

static int raw_register_wp(int fd, char *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

static int raw_wp(int fd, char *p, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/*
 * Report and re-protect the written pages of [p, p + len), with the flags
 * and masks of the library's async backend. A short vector ends the walk:
 * 6.18 can return a stale walk_end once a result outgrows the kernel's
 * internal buffer, so a full vector resumes past whichever of walk_end and
 * the last region reaches further.
 */
static int raw_scan(char *p, size_t len, size_t *pages)
{
	static struct page_region vec[VEC_LEN];
	uint64_t start = (uintptr_t)p, end = start + len;
	size_t total = 0;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = SCAN_FLAGS,
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = VEC_LEN,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(pmfd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			total += (vec[i].end - vec[i].start) / page_sz;
		if ((size_t)n < VEC_LEN)
			break;
		start = a.walk_end;
		if (vec[n - 1].end > start)
			start = vec[n - 1].end;
	}
	*pages = total;
	return 0;
}

/* WP_ASYNC registration, armed by the same get-and-protect scan a collect
 * runs, so raw pages start in the state the library's do. */
static int raw_async_setup(char *p, size_t len)
{
	size_t pages;
	int fd = raw_uffd(ASYNC_FEATURES), err;

	if (fd < 0)
		return fd;
	err = raw_register_wp(fd, p, len);
	if (!err)
		err = raw_scan(p, len, &pages);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/*
 * The least a synchronous handler can do: one blocking read() per message
 * and an unprotect of that page, which also wakes the writer.
 */
struct raw_handler {
	int uffd;
	pthread_t tid;
	bool running;
};

static void *raw_handler_main(void *arg)
{
	struct raw_handler *h = arg;
	struct uffd_msg msg;

	for (;;) {
		ssize_t n = read(h->uffd, &msg, sizeof(msg));
		uintptr_t a;

		if (n != (ssize_t)sizeof(msg)) {
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				die("read(uffd): %s", strerror(errno));
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		a = (uintptr_t)msg.arg.pagefault.address & ~(page_sz - 1);
		if (raw_wp(h->uffd, (char *)a, page_sz, 0))
			die("unprotect: %s", strerror(errno));
	}
	return NULL;
}

static void raw_handler_start(struct raw_handler *h)
{
	if (pthread_create(&h->tid, NULL, raw_handler_main, h))
		die("pthread_create");
	h->running = true;
}

static void raw_handler_stop(struct raw_handler *h)
{
	if (!h->running)
		return;
	/* It sits in read(), a cancellation point; no fault is pending. */
	pthread_cancel(h->tid);
	pthread_join(h->tid, NULL);
	h->running = false;
}

/* ---- library side --------------------------------------------------- */

static struct uffdwp_caps caps = { .sz = sizeof(caps) };

static bool usable(int backend)
{
	return caps.backend[backend].usable;
}

static const char *bname(int backend)
{
	return uffdwp_backend_name(backend);
}

static struct uffdwp_ctx *lib_new(int backend, const char *section)
{
	struct uffdwp_ctx_opts o = {
		.sz = sizeof(o),
		.backend = backend,
		.handler_threads = 1,
	};
	struct uffdwp_ctx *ctx = NULL;
	int err = uffdwp_ctx_new(&o, &ctx);

	if (err < 0) {
		printf("  skipped %s: uffdwp_ctx_new(%s): %s\n", section,
		       bname(backend), strerror(-err));
		return NULL;
	}
	return ctx;
}

static bool lib_track(struct uffdwp_ctx *ctx, char *p, size_t len,
		      const char *section)
{
	int err = uffdwp_track(ctx, p, len, 0);

	if (err < 0) {
		printf("  skipped %s: uffdwp_track(%s, %zu MiB): %s\n", section,
		       bname(uffdwp_ctx_backend(ctx)), len / MiB,
		       strerror(-err));
		return false;
	}
	return true;
}

/* The cheapest consumer there is, so a collect's time is the library's. */
static int count_run(void *arg, void *addr, size_t len)
{
	*(size_t *)arg += len / page_sz;
	return 0;
}

static size_t lib_collect(struct uffdwp_ctx *ctx)
{
	size_t pages = 0;
	long n = uffdwp_collect(ctx, count_run, &pages);

	if (n < 0)
		die("uffdwp_collect: %s", strerror((int)-n));
	if ((size_t)n != pages)
		printf("  ! collect returned %ld but its runs held %zu pages\n",
		       n, pages);
	return pages;
}

static void check_pages(const char *who, size_t got, size_t want)
{
	if (got != want)
		printf("  ! %s reported %zu dirty pages, %zu were written\n",
		       who, got, want);
}

static void print_stats(const char *who, const struct uffdwp_ctx *ctx)
{
	struct uffdwp_stats s = { .sz = sizeof(s) };

	if (uffdwp_ctx_stats(ctx, &s) < 0)
		return;
	printf("  %s stats: collects %" PRIu64
	       " (%.3f ms avg), wp_calls %" PRIu64 ", queued %" PRIu64
	       ", merged %" PRIu64 ", rearmed %" PRIu64 ", reported %" PRIu64
	       ", faults %" PRIu64 ", retries %" PRIu64 "\n",
	       who, s.collects,
	       s.collects ? (double)s.collect_ns / (double)s.collects / 1e6 : 0,
	       s.wp_calls, s.wp_queued, s.wp_merged, s.pages_rearmed,
	       s.pages_reported, s.faults, s.retries);
}

/* ---- results -------------------------------------------------------- */

struct ratio {
	char name[64];
	double value;
	double target; /* 0: no target */
	bool at_least; /* target is a lower bound */
};

static struct ratio ratios[32];
static size_t n_ratios;

static void print_ratio(const char *name, double v, double target,
			bool at_least)
{
	printf("RATIO %s %.3f\n", name, v);
	fflush(stdout);
	if (n_ratios < sizeof(ratios) / sizeof(ratios[0])) {
		ratios[n_ratios] = (struct ratio){ .value = v,
						   .target = target,
						   .at_least = at_least };
		/* Copied: callers may build names in a buffer. */
		snprintf(ratios[n_ratios].name, sizeof(ratios[0].name), "%s",
			 name);
		n_ratios++;
	}
}

/* Ratio of paired samples a[r] / b[r], median over repetitions. */
static double paired(const double *a, const double *b, size_t reps)
{
	double *r = xcalloc(reps, sizeof(*r)), m;

	for (size_t i = 0; i < reps; i++)
		r[i] = b[i] > 0 ? a[i] / b[i] : 0;
	m = median(r, reps);
	free(r);
	return m;
}

/* Medians of copies, so the paired arrays keep their order. */
static double med(const double *v, size_t n)
{
	double *c = xcalloc(n, sizeof(*c)), m;

	memcpy(c, v, n * sizeof(*c));
	m = median(c, n);
	free(c);
	return m;
}

/* ---- section: library memory --------------------------------------- */

struct memsnap {
	long anon_kb; /* smaps_rollup Anonymous: exact page-table walk */
	long pte_kb; /* status VmPTE: kernel page tables, for context */
	size_t heap; /* mallinfo2 in-use plus mmapped chunks */
};

static long proc_field_kb(const char *path, const char *field)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	char *s;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	s = strstr(buf, field);
	return s ? strtol(s + strlen(field), NULL, 10) : -1;
}

/*
 * Read with open()/read() into a static buffer: stdio would malloc, and
 * the heap is part of what is measured.
 */
static void mem_snap(struct memsnap *m)
{
	struct mallinfo2 mi = mallinfo2();

	m->anon_kb = proc_field_kb("/proc/self/smaps_rollup", "Anonymous:");
	m->pte_kb = proc_field_kb("/proc/self/status", "VmPTE:");
	m->heap = mi.uordblks + mi.hblkhd;
}

/*
 * The library's memory is measured as the growth of the process's
 * anonymous resident memory (smaps_rollup "Anonymous", which walks the page
 * tables and is exact, unlike status' per-CPU-batched RssAnon) across
 * ctx_new + track of an already fully populated range: the tracked pages
 * are resident in both readings, so only what the library allocated and
 * touched (heap, its own mmaps, handler-thread stacks) shows. It runs
 * before any other section so no freed heap is there to be reused. malloc
 * statistics and page-table growth are printed beside it as a cross-check.
 */
static void sec_memory(size_t len)
{
	static const int order[] = {
		UFFDWP_BACKEND_UFFD_ASYNC,
		UFFDWP_BACKEND_UFFD_SYNC,
		UFFDWP_BACKEND_SOFT_DIRTY,
		UFFDWP_BACKEND_MPROTECT,
	};
	double gib = (double)len / GiB;
	bool reported = false;
	char *p;

	printf("\n== library memory per GiB tracked (%zu MiB fully populated)\n",
	       len / MiB);
	p = region_map(len, 0);
	memset(p, 1, len);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		struct memsnap a, b, c, d;
		struct uffdwp_ctx *ctx;
		int be = order[i];
		double kib;

		if (!usable(be)) {
			printf("  skipped %s: %s\n", bname(be),
			       caps.backend[be].reason);
			continue;
		}
		mem_snap(&a);
		ctx = lib_new(be, "memory");
		if (!ctx)
			continue;
		if (!lib_track(ctx, p, len, "memory")) {
			uffdwp_ctx_free(ctx);
			continue;
		}
		mem_snap(&b);
		lib_collect(ctx);
		mem_snap(&c);
		/* Page bitmaps may be faulted in lazily: one dirty page in
		 * every 64 touches every word of them, the steady state of a
		 * program that writes all over its range. */
		for (size_t off = 0; off < len; off += 64 * page_sz)
			((volatile char *)p)[off] = 2;
		lib_collect(ctx);
		mem_snap(&d);
		uffdwp_ctx_free(ctx);
		kib = (double)(b.anon_kb - a.anon_kb);
		printf("  %-10s anon +%ld KiB (%.1f KiB/GiB); after a clean "
		       "collect +%ld KiB, after a 1/64-dirty collect +%ld KiB "
		       "(%.1f KiB/GiB); malloc +%.1f KiB; page tables +%ld "
		       "KiB\n",
		       bname(be), b.anon_kb - a.anon_kb, kib / gib,
		       c.anon_kb - a.anon_kb, d.anon_kb - a.anon_kb,
		       (double)(d.anon_kb - a.anon_kb) / gib,
		       ((double)b.heap - (double)a.heap) / KiB,
		       b.pte_kb - a.pte_kb);
		/* The first usable backend is the one AUTO prefers. */
		if (!reported) {
			printf("RESULT lib_kib_per_gib %.1f\n", kib / gib);
			reported = true;
		}
	}
	if (!reported)
		printf("  skipped: no backend could track here\n");
	if (len < GiB)
		printf("  (a small --size scales fixed per-context costs up)\n");
	munmap(p, len);
}

/* ---- section: uffd_async write and collect -------------------------- */

static void sec_async(size_t len, int reps_w, int reps_c)
{
	static const double pct[] = { 0.1, 1, 10, 100 };
	static const char *const names[] = {
		"async_collect_vs_raw_0.1",
		"async_collect_vs_raw_1",
		"async_collect_vs_raw_10",
		"async_collect_vs_raw_100",
	};
	size_t npages = len / page_sz;
	double *rt = xcalloc((size_t)reps_c, sizeof(double));
	double *lt = xcalloc((size_t)reps_c, sizeof(double));
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	struct uffdwp_ctx *ctx = NULL;
	char *rp, *lp;
	int uffd;

	printf("\n== uffd_async vs raw WP_ASYNC + PAGEMAP_SCAN (%zu MiB, %zu "
	       "pages)\n",
	       len / MiB, npages);
	if (!usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: uffd_async: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		goto out_free;
	}
	rp = region_map(len, 0);
	lp = region_map(len, 0);
	memset(rp, 1, len);
	memset(lp, 1, len);
	uffd = raw_async_setup(rp, len);
	if (uffd < 0) {
		printf("  skipped: raw WP_ASYNC setup: %s\n", strerror(-uffd));
		goto out_unmap;
	}
	ctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "uffd_async");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_async"))
		goto out_close;

	/* Each side re-arms after its pass (untimed), so every timed pass
	 * writes pages that are all armed, as in a steady epoch loop. */
	for (int r = 0; r < reps_w; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;
			uint64_t t0 = now_ns();
			size_t got;

			write_seq(lib ? lp : rp, len, (char)(r + 2));
			(lib ? lt : rt)[r] = (double)(now_ns() - t0) / npages;
			if (lib) {
				got = lib_collect(ctx);
			} else if (raw_scan(rp, len, &got)) {
				die("PAGEMAP_SCAN: %s", strerror(errno));
			}
			check_pages(lib ? "library" : "raw scan", got, npages);
		}
	}
	printf("  first write per armed page: raw %.0f ns, library %.0f ns "
	       "(median of %d)\n",
	       med(rt, (size_t)reps_w), med(lt, (size_t)reps_w), reps_w);
	print_ratio("async_write_vs_raw", paired(lt, rt, (size_t)reps_w), 1.05,
		    false);

	printf("  collect of random dirty pages (raw PAGEMAP_SCAN loop vs "
	       "uffdwp_collect):\n");
	for (size_t f = 0; f < sizeof(pct) / sizeof(pct[0]); f++) {
		size_t k = frac_pages(npages, pct[f]);
		int reps = pct[f] >= 100 ? (reps_c + 1) / 2 : reps_c;

		for (int r = 0; r < reps; r++) {
			pick_random(idx, npages, k);
			write_idx(rp, &dense, idx, k, (char)r);
			write_idx(lp, &dense, idx, k, (char)r);
			for (int turn = 0; turn < 2; turn++) {
				bool lib = (turn ^ r) & 1;
				uint64_t t0 = now_ns();
				size_t got;

				if (lib) {
					got = lib_collect(ctx);
				} else if (raw_scan(rp, len, &got)) {
					die("PAGEMAP_SCAN: %s",
					    strerror(errno));
				}
				(lib ? lt : rt)[r] = (double)(now_ns() - t0);
				check_pages(lib ? "library" : "raw scan", got,
					    k);
			}
		}
		printf("    %5.1f %% (%7zu pages): raw %8.3f ms, library %8.3f "
		       "ms (median of %d)\n",
		       pct[f], k, med(rt, (size_t)reps) / 1e6,
		       med(lt, (size_t)reps) / 1e6, reps);
		print_ratio(names[f], paired(lt, rt, (size_t)reps), 1.15,
			    false);
	}
	print_stats("uffd_async", ctx);

out_close:
	uffdwp_ctx_free(ctx);
	close(uffd);
out_unmap:
	munmap(rp, len);
	munmap(lp, len);
out_free:
	free(rt);
	free(lt);
	free(idx);
}

/* ---- section: mprotect vs async first write ------------------------- */

static void sec_mprotect(size_t len, int reps)
{
	size_t npages = len / page_sz;
	double *mt = xcalloc((size_t)reps, sizeof(double));
	double *at = xcalloc((size_t)reps, sizeof(double));
	struct uffdwp_ctx *mc = NULL, *ac = NULL;
	char *mp, *ap;

	printf("\n== mprotect vs uffd_async, first write per page (%zu MiB, "
	       "sequential)\n",
	       len / MiB);
	if (!usable(UFFDWP_BACKEND_MPROTECT) ||
	    !usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: needs mprotect and uffd_async (%s; %s)\n",
		       caps.backend[UFFDWP_BACKEND_MPROTECT].reason,
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		goto out_free;
	}
	mp = region_map(len, 0);
	ap = region_map(len, 0);
	memset(mp, 1, len);
	memset(ap, 1, len);
	mc = lib_new(UFFDWP_BACKEND_MPROTECT, "mprotect");
	ac = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "mprotect");
	if (!mc || !ac || !lib_track(mc, mp, len, "mprotect") ||
	    !lib_track(ac, ap, len, "mprotect"))
		goto out;
	/* Sequential writes let mprotect's VMAs merge back behind the
	 * writer: its best case, so the ratio is a lower bound. */
	for (int r = 0; r < reps; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool m = (turn ^ r) & 1;
			uint64_t t0 = now_ns();

			write_seq(m ? mp : ap, len, (char)(r + 2));
			(m ? mt : at)[r] = (double)(now_ns() - t0) / npages;
			check_pages(m ? "mprotect" : "uffd_async",
				    lib_collect(m ? mc : ac), npages);
		}
	}
	printf("  first write per page: mprotect %.0f ns, uffd_async %.0f ns "
	       "(median of %d)\n",
	       med(mt, (size_t)reps), med(at, (size_t)reps), reps);
	print_ratio("mprotect_vs_async_write", paired(mt, at, (size_t)reps), 5,
		    true);
	print_stats("mprotect", mc);
out:
	uffdwp_ctx_free(mc);
	uffdwp_ctx_free(ac);
	munmap(mp, len);
	munmap(ap, len);
out_free:
	free(mt);
	free(at);
}

/* ---- section: uffd_sync --------------------------------------------- */

static cpu_set_t saved_cpus;

/*
 * A fault round trip costs ~6 us with the handler on the writer's CPU and
 * 20-50 us across vCPUs on this VM, depending on where the scheduler puts
 * the handler: pinning the writer, and with it every thread it creates, to
 * one CPU makes raw and library meet the same placement.
 */
static void pin_cpu0(void)
{
	cpu_set_t one;

	sched_getaffinity(0, sizeof(saved_cpus), &saved_cpus);
	CPU_ZERO(&one);
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &saved_cpus)) {
			CPU_SET(c, &one);
			break;
		}
	}
	sched_setaffinity(0, sizeof(one), &one);
}

static void unpin(void)
{
	sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
}

/* Median latency of single-byte writes, each its own fault. */
static double fault_latency(char *p, const uint32_t *idx, size_t n, char v,
			    double *tmp)
{
	for (size_t i = 0; i < n; i++) {
		volatile char *a = p + (size_t)idx[i] * page_sz;
		uint64_t t0 = now_ns();

		*a = v;
		tmp[i] = (double)(now_ns() - t0);
	}
	return median(tmp, n);
}

static void latency_pass(char *rp, int uffd, struct uffdwp_ctx *ctx, char *lp,
			 size_t len, size_t nsamp, int reps, const char *label,
			 const char *name, double target)
{
	size_t npages = len / page_sz, stride = npages / nsamp;
	uint32_t *idx = xcalloc(nsamp, sizeof(*idx));
	double *tmp = xcalloc(nsamp, sizeof(double));
	double *rt = xcalloc((size_t)reps, sizeof(double));
	double *lt = xcalloc((size_t)reps, sizeof(double));

	for (size_t i = 0; i < nsamp; i++)
		idx[i] = (uint32_t)(i * stride);
	for (int r = 0; r < reps; r++) {
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;

			if (lib) {
				lt[r] = fault_latency(lp, idx, nsamp,
						      (char)(r + 2), tmp);
				check_pages("uffd_sync", lib_collect(ctx),
					    nsamp);
			} else {
				rt[r] = fault_latency(rp, idx, nsamp,
						      (char)(r + 2), tmp);
				if (raw_wp(uffd, rp, len,
					   UFFDIO_WRITEPROTECT_MODE_WP))
					die("WP: %s", strerror(errno));
			}
		}
	}
	printf("  write-fault latency, %s: raw %.2f us, library %.2f us "
	       "(median of %zu faults, median of %d reps)\n",
	       label, med(rt, (size_t)reps) / 1e3, med(lt, (size_t)reps) / 1e3,
	       nsamp, reps);
	print_ratio(name, paired(lt, rt, (size_t)reps), target, false);
	free(idx);
	free(tmp);
	free(rt);
	free(lt);
}

static void rearm_pass(char *rp, int uffd, struct uffdwp_ctx *ctx, char *lp,
		       size_t len, int reps, bool runs, const char *name,
		       double target)
{
	size_t npages = len / page_sz, want = frac_pages(npages, 1);
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	double *rt = xcalloc((size_t)reps, sizeof(double));
	double *lt = xcalloc((size_t)reps, sizeof(double));
	size_t k = 0;

	for (int r = 0; r < reps; r++) {
		k = runs ? pick_runs16(idx, npages, want) :
			   pick_random(idx, npages, want);
		/* Both regions fault through their handlers first. */
		write_idx(rp, &dense, idx, k, (char)(r + 2));
		write_idx(lp, &dense, idx, k, (char)(r + 2));
		for (int turn = 0; turn < 2; turn++) {
			bool lib = (turn ^ r) & 1;
			uint64_t t0 = now_ns();

			if (lib) {
				size_t got = lib_collect(ctx);

				lt[r] = (double)(now_ns() - t0);
				check_pages("uffd_sync", got, k);
				continue;
			}
			for (size_t i = 0; i < k; i++) {
				if (raw_wp(uffd, rp + (size_t)idx[i] * page_sz,
					   page_sz,
					   UFFDIO_WRITEPROTECT_MODE_WP))
					die("WP: %s", strerror(errno));
			}
			rt[r] = (double)(now_ns() - t0);
		}
	}
	printf("  re-arm 1 %% dirty as %s (%zu pages): raw per-page WP %.3f "
	       "ms, library collect %.3f ms (median of %d)\n",
	       runs ? "16-page runs" : "scattered pages", k,
	       med(rt, (size_t)reps) / 1e6, med(lt, (size_t)reps) / 1e6, reps);
	print_ratio(name, paired(rt, lt, (size_t)reps), target, true);
	free(idx);
	free(rt);
	free(lt);
}

static void sec_sync(size_t len, int reps_l, int reps_r)
{
	size_t npages = len / page_sz;
	size_t cap = quick ? 2048 : 16384;
	size_t nsamp = npages < cap ? npages : cap;
	struct raw_handler h = { .uffd = -1 };
	struct uffdwp_ctx *ctx = NULL;
	char *rp, *lp;
	int err;

	printf("\n== uffd_sync vs raw handler thread (%zu MiB)\n", len / MiB);
	if (!usable(UFFDWP_BACKEND_UFFD_SYNC)) {
		printf("  skipped: uffd_sync: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_SYNC].reason);
		return;
	}
	rp = region_map(len, 0);
	lp = region_map(len, 0);
	memset(rp, 1, len);
	memset(lp, 1, len);
	h.uffd = raw_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (h.uffd < 0) {
		printf("  skipped: raw userfaultfd: %s\n", strerror(-h.uffd));
		goto out_unmap;
	}
	err = raw_register_wp(h.uffd, rp, len);
	if (!err)
		err = raw_wp(h.uffd, rp, len, UFFDIO_WRITEPROTECT_MODE_WP);
	if (err) {
		printf("  skipped: raw WP registration: %s\n", strerror(-err));
		goto out_close;
	}

	pin_cpu0();
	raw_handler_start(&h);
	ctx = lib_new(UFFDWP_BACKEND_UFFD_SYNC, "uffd_sync");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_sync")) {
		unpin();
		goto out;
	}
	latency_pass(rp, h.uffd, ctx, lp, len, nsamp, reps_l,
		     "writer and handlers on one CPU", "sync_fault_vs_raw",
		     1.15);
	rearm_pass(rp, h.uffd, ctx, lp, len, reps_r, true,
		   "sync_rearm_batched_speedup", 5);
	rearm_pass(rp, h.uffd, ctx, lp, len, reps_r, false,
		   "sync_rearm_scattered_speedup", 0);
	print_stats("uffd_sync", ctx);
	raw_handler_stop(&h);
	ctx = uffdwp_ctx_free(ctx);
	unpin();

	/* Left to the scheduler, as a program would run it: new threads now
	 * inherit the full CPU mask. Not a target: whether the handler lands
	 * on the writer's CPU or the other one moves both sides between
	 * ~6 and ~45 us here, from run to run. */
	raw_handler_start(&h);
	ctx = lib_new(UFFDWP_BACKEND_UFFD_SYNC, "uffd_sync unpinned");
	if (!ctx || !lib_track(ctx, lp, len, "uffd_sync unpinned"))
		goto out;
	latency_pass(rp, h.uffd, ctx, lp, len, nsamp / 4 ? nsamp / 4 : 1,
		     quick ? 3 : 5, "threads unpinned",
		     "sync_fault_vs_raw_unpinned", 0);
out:
	raw_handler_stop(&h);
	uffdwp_ctx_free(ctx);
out_close:
	close(h.uffd);
out_unmap:
	munmap(rp, len);
	munmap(lp, len);
}

/* ---- section: live snapshots ---------------------------------------- */

/*
 * Snapshots of a populated range (--size, 1 GiB by default) into the
 * memory sink, whose buffer is a separate pre-faulted region, on a context
 * of the backend AUTO picks and on one of the other uffd backend (RATIO
 * names take a _sync or _async suffix for it). Each comparison is made
 * within one repetition, and the median of the per-repetition ratios is
 * printed:
 *
 *   - idle: nobody writes. Throughput is bytes over the time from the
 *     uffdwp_snapshot_start() call to the return of uffdwp_snapshot_wait()
 *     (the image complete), with the default copier count (and, as INFO,
 *     with 1), against one memcpy of the same bytes into the same buffer.
 *     What closing the window takes after that (uffd_async's move back,
 *     which uffdwp_snapshot_free() waits for) is printed beside it. Every
 *     op starts from a cleared destination, and every image is compared
 *     with the source.
 *   - one writer: a thread writes one byte to each page of a fresh random
 *     permutation, at full speed, from the return of snapshot_start until
 *     the snapshot ends (the sink's end(), before uffd_async's move
 *     back: writes the move holds are not counted), each write timed: all are
 *     first writes. The same thread times first writes to random pages of
 *     a raw userfaultfd region served by the minimal handler of sec_sync,
 *     plain and with CPU-bound spinner threads standing in for the copiers
 *     (an INFO ratio). The region is the full size so a snapshot lasts long
 *     enough for thousands of samples with the default copiers (which
 *     compete with the writer as they would in a program). The RATIO is
 *     taken with every thread pinned to one CPU, as sync_fault_vs_raw is;
 *     unpinned is printed without a target.
 *   - busy: SNAP_BUSY_WRITERS threads write random pages at full speed
 *     from just before the start to the end; the snapshot's time against
 *     an idle one's.
 *
 * Every snapshot must end DONE and EXACT with all its pages delivered.
 */

/* Four writers, as the issue asks, on the 2-vCPU machines this runs on:
 * writers outnumber CPUs, so the fault path, the single handler thread
 * and the copiers all compete for them. */
#define SNAP_BUSY_WRITERS 4

struct snapsrc {
	int backend;
	const char *suffix; /* "" for AUTO's backend, "_sync"/"_async" */
	char *src;
	struct uffdwp_ctx *ctx;
};

struct snapbench {
	size_t len, npages;
	char *dst;
	struct uffdwp_sink *sink; /* the memory sink */
	struct uffdwp_sink timed; /* the same, noting when it ends */
	uint64_t end_ns;
	int nb;
	struct snapsrc b[2]; /* [0]: the backend AUTO picks */
};

struct snaprun {
	struct uffdwp_snapshot *snap;
	uint64_t t0;
	double ns; /* start call to wait return */
	double close_ns; /* then the free: the window's close (the move back) */
	struct uffdwp_snapshot_status st;
};

static void snap_fill(char *p, size_t len)
{
	memset(p, 0x5a, len);
	for (size_t i = 0; i < len / page_sz; i++)
		memcpy(p + i * page_sz, &i, sizeof(i));
}

/*
 * The memory sink with an end() that notes the time: the library calls it
 * once every page was delivered, before the window closes (uffd_async's
 * move back) and before uffdwp_snapshot_wait() can return.
 */
static int timed_begin(void *arg, const struct uffdwp_snapshot_info *info)
{
	const struct snapbench *sb = arg;

	return sb->sink->begin ? sb->sink->begin(sb->sink->arg, info) : 0;
}

static void *timed_place(void *arg, void *addr, size_t len)
{
	const struct snapbench *sb = arg;

	return sb->sink->place(sb->sink->arg, addr, len);
}

static int timed_write(void *arg, void *addr, const void *data, size_t len)
{
	const struct snapbench *sb = arg;

	return sb->sink->write(sb->sink->arg, addr, data, len);
}

static int timed_end(void *arg, int status)
{
	struct snapbench *sb = arg;

	__atomic_store_n(&sb->end_ns, now_ns(), __ATOMIC_RELEASE);
	return sb->sink->end ? sb->sink->end(sb->sink->arg, status) : 0;
}

static void timed_sink_init(struct snapbench *sb)
{
	sb->timed = (struct uffdwp_sink){
		.sz = sizeof(sb->timed),
		.arg = sb,
		.begin = timed_begin,
		.place = sb->sink->place ? timed_place : NULL,
		.write = sb->sink->write ? timed_write : NULL,
		.end = timed_end,
	};
}

static void snap_go(struct snapbench *sb, const struct snapsrc *b,
		    const struct uffdwp_sink *sink, unsigned int copiers,
		    struct snaprun *run)
{
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o), .copiers = copiers };
	int err;

	run->snap = NULL;
	run->t0 = now_ns();
	err = uffdwp_snapshot_start(b->ctx, b->src, sb->len, sink, &o,
				    &run->snap);
	if (err < 0)
		die("uffdwp_snapshot_start(%s): %s",
		    bname(uffdwp_ctx_backend(b->ctx)), strerror(-err));
}

static void snap_finish(struct snaprun *run, const char *who)
{
	int err = uffdwp_snapshot_wait(run->snap, -1);
	uint64_t t0;

	run->ns = (double)(now_ns() - run->t0);
	run->st = (struct uffdwp_snapshot_status){ .sz = sizeof(run->st) };
	uffdwp_snapshot_status(run->snap, &run->st);
	if (err || run->st.state != UFFDWP_SNAPSHOT_DONE ||
	    run->st.consistency != UFFDWP_CONSISTENCY_EXACT ||
	    run->st.pages_done != run->st.pages)
		printf("  ! %s snapshot: %s, %s, %s (cause %s), %" PRIu64
		       " of %" PRIu64 " pages\n",
		       who, strerror(-err),
		       uffdwp_snapshot_state_name(run->st.state),
		       uffdwp_consistency_name(run->st.consistency),
		       uffdwp_snapshot_cause_name(run->st.cause),
		       run->st.pages_done, run->st.pages);
	t0 = now_ns();
	run->snap = uffdwp_snapshot_free(run->snap);
	run->close_ns = (double)(now_ns() - t0);
}

static double snap_once(struct snapbench *sb, const struct snapsrc *b,
			unsigned int copiers, struct uffdwp_snapshot_status *st,
			double *close_ns)
{
	struct snaprun run;

	snap_go(sb, b, sb->sink, copiers, &run);
	snap_finish(&run, bname(uffdwp_ctx_backend(b->ctx)));
	if (st)
		*st = run.st;
	if (close_ns)
		*close_ns = run.close_ns;
	return run.ns;
}

/* Contexts of AUTO's backend and of the other uffd backend, tracking the
 * two sources; each takes one untimed snapshot (lazy setup, first touch
 * of the library's buffers). */
static bool snap_ctxs(struct snapbench *sb, const char *section)
{
	for (int k = 0; k < sb->nb; k++) {
		struct snapsrc *b = &sb->b[k];

		b->ctx = lib_new(k ? b->backend : UFFDWP_BACKEND_AUTO, section);
		if (!b->ctx || !lib_track(b->ctx, b->src, sb->len, section))
			return false;
		snap_once(sb, b, 0, NULL, NULL);
	}
	return true;
}

static void snap_ctxs_free(struct snapbench *sb)
{
	for (int k = 0; k < sb->nb; k++)
		sb->b[k].ctx = uffdwp_ctx_free(sb->b[k].ctx);
}

static void snap_check_image(struct snapbench *sb, const struct snapsrc *b)
{
	if (memcmp(sb->dst, b->src, sb->len))
		printf("  ! %s snapshot image differs from the idle source\n",
		       bname(b->backend));
}

static void snap_idle_pass(struct snapbench *sb, int reps)
{
	/* Op 0 is memcpy; then each context with default copiers and 1. */
	int nops = 1 + 2 * sb->nb;
	double *t[5] = { NULL }, *hold[5] = { NULL }, *shut[5] = { NULL };
	double gb = (double)sb->len / 1e9;
	uint64_t flt[5] = { 0 };

	for (int i = 0; i < nops; i++) {
		t[i] = xcalloc((size_t)reps, sizeof(double));
		hold[i] = xcalloc((size_t)reps, sizeof(double));
		shut[i] = xcalloc((size_t)reps, sizeof(double));
	}
	for (int r = 0; r < reps; r++) {
		for (int j = 0; j < nops; j++) {
			int op = (j + r) % nops;
			const struct snapsrc *b = &sb->b[(op - 1) / 2];
			struct uffdwp_snapshot_status st;
			uint64_t t0;

			/* The same start for every op: a cleared (and
			 * populated) destination. */
			memset(sb->dst, 0, sb->len);
			if (!op) {
				t0 = now_ns();
				memcpy(sb->dst, sb->b[0].src, sb->len);
				t[0][r] = (double)(now_ns() - t0);
				continue;
			}
			t[op][r] = snap_once(sb, b, (op - 1) % 2 ? 1 : 0, &st,
					     &shut[op][r]);
			hold[op][r] = (double)st.start_ns;
			flt[op] += st.pages_faulted;
			snap_check_image(sb, b);
		}
	}
	printf("  memcpy %.2f GB/s (median of %d)\n",
	       gb / med(t[0], (size_t)reps) * 1e9, reps);
	for (int k = 0; k < sb->nb; k++) {
		const struct snapsrc *b = &sb->b[k];
		int d = 1 + 2 * k, one = 2 + 2 * k;
		char name[64];

		printf("  %-10s idle snapshot: default copiers %.2f GB/s "
		       "(%.1f ms, of which the start held writers off %.1f "
		       "ms; closing the window after wait() took %.1f ms "
		       "more), 1 copier %.2f GB/s (%.1f ms)%s\n",
		       bname(b->backend), gb / med(t[d], (size_t)reps) * 1e9,
		       med(t[d], (size_t)reps) / 1e6,
		       med(hold[d], (size_t)reps) / 1e6,
		       med(shut[d], (size_t)reps) / 1e6,
		       gb / med(t[one], (size_t)reps) * 1e9,
		       med(t[one], (size_t)reps) / 1e6,
		       flt[d] + flt[one] ? " (faults seen: idle?)" : "");
		snprintf(name, sizeof(name), "snapshot_idle_vs_memcpy%s",
			 b->suffix);
		print_ratio(name, paired(t[0], t[d], (size_t)reps), 0.5, true);
		printf("INFO snapshot_idle_vs_memcpy_1copier%s %.3f\n",
		       b->suffix, paired(t[0], t[one], (size_t)reps));
	}
	for (int i = 0; i < nops; i++) {
		free(t[i]);
		free(hold[i]);
		free(shut[i]);
	}
}

/* ---- busy: writers at full speed all through the snapshot ---- */

struct busy_writer {
	pthread_t tid;
	char *base;
	size_t npages;
	uint64_t seed, writes;
	int *go, *stop, *ready;
};

static void *busy_writer_main(void *arg)
{
	struct busy_writer *w = arg;
	uint64_t x = w->seed, n = 0;

	__atomic_add_fetch(w->ready, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
		;
	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		((volatile char *)w->base)[(x * 0x2545f4914f6cdd1dULL >> 11) %
					   w->npages * page_sz] = (char)n;
		n++;
	}
	w->writes = n;
	return NULL;
}

static double snap_busy(struct snapbench *sb, const struct snapsrc *b, int nw,
			struct uffdwp_snapshot_status *st, uint64_t *writes)
{
	struct busy_writer w[SNAP_BUSY_WRITERS];
	int go = 0, stop = 0, ready = 0;
	struct snaprun run;

	for (int i = 0; i < nw; i++) {
		w[i] = (struct busy_writer){ .base = b->src,
					     .npages = sb->npages,
					     .seed = rnd() | 1,
					     .go = &go,
					     .stop = &stop,
					     .ready = &ready };
		if (pthread_create(&w[i].tid, NULL, busy_writer_main, &w[i]))
			die("pthread_create");
	}
	while (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) < nw)
		sched_yield();
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	snap_go(sb, b, sb->sink, 0, &run);
	snap_finish(&run, bname(b->backend));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	*writes = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(w[i].tid, NULL);
		*writes += w[i].writes;
	}
	*st = run.st;
	return run.ns;
}

static void snap_busy_pass(struct snapbench *sb, int reps)
{
	double *it = xcalloc((size_t)reps, sizeof(double));
	double *bt = xcalloc((size_t)reps, sizeof(double));
	double *wr = xcalloc((size_t)reps, sizeof(double));
	double *fl = xcalloc((size_t)reps, sizeof(double));
	double *wa = xcalloc((size_t)reps, sizeof(double));
	double *sf = xcalloc((size_t)reps, sizeof(double));

	for (int k = 0; k < sb->nb; k++) {
		const struct snapsrc *b = &sb->b[k];
		char name[64];

		for (int r = 0; r < reps; r++) {
			for (int turn = 0; turn < 2; turn++) {
				struct uffdwp_snapshot_status st;
				uint64_t writes;

				if (!((turn ^ r) & 1)) {
					it[r] = snap_once(sb, b, 0, NULL, NULL);
					continue;
				}
				bt[r] = snap_busy(sb, b, SNAP_BUSY_WRITERS, &st,
						  &writes);
				wr[r] = (double)writes;
				fl[r] = (double)st.pages_faulted;
				wa[r] = (double)st.faults_waited;
				sf[r] = (double)st.staging_full;
			}
		}
		printf("  %-10s %d writers: idle %.1f ms, busy %.1f ms; per "
		       "busy snapshot %.0f writes, %.0f pages copied on the "
		       "fault path, %.0f faults waited for a copier, %.0f "
		       "staging full (medians of %d)\n",
		       bname(b->backend), SNAP_BUSY_WRITERS,
		       med(it, (size_t)reps) / 1e6, med(bt, (size_t)reps) / 1e6,
		       med(wr, (size_t)reps), med(fl, (size_t)reps),
		       med(wa, (size_t)reps), med(sf, (size_t)reps), reps);
		snprintf(name, sizeof(name), "snapshot_busy_vs_idle_time%s",
			 b->suffix);
		print_ratio(name, paired(bt, it, (size_t)reps), 2, false);
	}
	free(it);
	free(bt);
	free(wr);
	free(fl);
	free(wa);
	free(sf);
}

/* ---- one writer: latency of each first write ---- */

enum { WCMD_NONE, WCMD_RAW, WCMD_SNAP, WCMD_QUIT };

/*
 * The thread whose writes are timed, on the raw region and during
 * snapshots alike, so both sides see the same thread in the same place.
 */
struct lat_writer {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int cmd;
	char *base;
	const uint32_t *idx;
	size_t n, got;
	uint64_t *t0; /* when each write began */
	double *lat;
	int stop; /* ends a WCMD_SNAP run */
};

static void *lat_writer_main(void *arg)
{
	struct lat_writer *w = arg;
	int cmd;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (w->cmd == WCMD_NONE)
			pthread_cond_wait(&w->cv, &w->mu);
		cmd = w->cmd;
		pthread_mutex_unlock(&w->mu);
		if (cmd == WCMD_QUIT)
			return NULL;
		for (i = 0; i < w->n; i++) {
			volatile char *a =
				w->base + (size_t)w->idx[i] * page_sz;
			uint64_t t0;

			if (cmd == WCMD_SNAP &&
			    __atomic_load_n(&w->stop, __ATOMIC_RELAXED))
				break;
			t0 = now_ns();
			*a = (char)(i + 1);
			w->lat[i] = (double)(now_ns() - t0);
			w->t0[i] = t0;
		}
		w->got = i;
		pthread_mutex_lock(&w->mu);
		w->cmd = WCMD_NONE;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
}

static void lat_writer_post(struct lat_writer *w, int cmd)
{
	pthread_mutex_lock(&w->mu);
	w->cmd = cmd;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void lat_writer_wait(struct lat_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->cmd != WCMD_NONE)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* p-quantile of @v[0..n), sorted in place. */
static double quantile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* Quantiles of one side, per repetition. */
struct lat_side {
	double *p50, *p99, *max;
};

static void lat_side_alloc(struct lat_side *s, int reps)
{
	s->p50 = xcalloc((size_t)reps, sizeof(double));
	s->p99 = xcalloc((size_t)reps, sizeof(double));
	s->max = xcalloc((size_t)reps, sizeof(double));
}

static void lat_side_free(struct lat_side *s)
{
	free(s->p50);
	free(s->p99);
	free(s->max);
}

static void lat_side_set(struct lat_side *s, int r, double *v, size_t n)
{
	s->p99[r] = quantile(v, n, 0.99); /* sorts */
	s->p50[r] = n ? v[(n - 1) / 2] : 0;
	s->max[r] = n ? v[n - 1] : 0;
}

/*
 * CPU-bound threads standing in for the copiers while a raw round trip is
 * timed: the raw handler then meets the same competition for the CPU (and
 * the vCPUs stay awake, as copiers keep them) that the library's handler
 * meets during a snapshot.
 */
struct spinners {
	unsigned int n;
	int stop;
	pthread_t tid[64];
};

static void *spinner_main(void *arg)
{
	int *stop = arg;

	while (!__atomic_load_n(stop, __ATOMIC_RELAXED))
		;
	return NULL;
}

static void spinners_start(struct spinners *s, unsigned int n)
{
	s->n = n < 64 ? n : 64;
	s->stop = 0;
	for (unsigned int i = 0; i < s->n; i++)
		if (pthread_create(&s->tid[i], NULL, spinner_main, &s->stop))
			die("pthread_create");
}

static void spinners_stop(struct spinners *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < s->n; i++)
		pthread_join(s->tid[i], NULL);
	s->n = 0;
}

/* The library's default copier count (uffdwp_snapshot_opts::copiers). */
static unsigned int default_copiers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 4 ? 4 : (unsigned int)n;
}

/* The raw round trip: @k first writes to random armed pages of @rp,
 * served by the raw handler thread, then everything re-armed. */
static void lat_raw(struct lat_writer *w, char *rp, int uffd, size_t len,
		    uint32_t *idx, size_t k, struct lat_side *s, int r)
{
	pick_random(idx, len / page_sz, k);
	w->base = rp;
	w->idx = idx;
	w->n = k;
	lat_writer_post(w, WCMD_RAW);
	lat_writer_wait(w);
	lat_side_set(s, r, w->lat, k);
	if (raw_wp(uffd, rp, len, UFFDIO_WRITEPROTECT_MODE_WP))
		die("WP: %s", strerror(errno));
}

/*
 * First writes during one snapshot with the default copiers, counted from
 * the return of uffdwp_snapshot_start() to the sink's end() (or the return
 * of uffdwp_snapshot_wait(), if sooner), before the move back.
 */
static double lat_snap(struct snapbench *sb, const struct snapsrc *b,
		       struct lat_writer *w, uint32_t *perm, struct lat_side *s,
		       int r, struct uffdwp_snapshot_status *st)
{
	struct snaprun run;
	uint64_t t_end;
	size_t n = 0;

	/* A fresh order each time; one pass over it writes every page at
	 * most once, so every timed write is a first write. */
	pick_random(perm, sb->npages, sb->npages);
	w->base = b->src;
	w->idx = perm;
	w->n = sb->npages;
	__atomic_store_n(&w->stop, 0, __ATOMIC_RELAXED);
	sb->end_ns = 0;
	snap_go(sb, b, &sb->timed, 0, &run);
	lat_writer_post(w, WCMD_SNAP);
	snap_finish(&run, bname(b->backend));
	t_end = now_ns();
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
	lat_writer_wait(w);
	/* The snapshot ended before wait() returned, and this thread may
	 * have been slow to run again (pinned, the writer competes with it):
	 * end the window when the sink was told the snapshot ended. */
	if (sb->end_ns && sb->end_ns < t_end)
		t_end = sb->end_ns;
	for (size_t i = 0; i < w->got; i++) {
		if (w->t0[i] < t_end)
			w->lat[n++] = w->lat[i];
	}
	lat_side_set(s, r, w->lat, n);
	*st = run.st;
	return (double)n;
}

#define M(v) (med((v), (size_t)reps))

static void snap_latency_pass(struct snapbench *sb, char *rp, int uffd,
			      int reps, bool pinned)
{
	const char *sfx = pinned ? "" : "_unpinned";
	size_t cap = quick ? 2048 : 16384;
	size_t k = sb->npages < cap ? sb->npages : cap;
	uint32_t *idx = xcalloc(sb->npages, sizeof(*idx));
	struct lat_writer w = { .cmd = WCMD_NONE };
	struct lat_side raw, rawl, lib;
	double *nsamp = xcalloc((size_t)reps, sizeof(double));
	double *faulted = xcalloc((size_t)reps, sizeof(double));
	double *waited = xcalloc((size_t)reps, sizeof(double));
	double *ms = xcalloc((size_t)reps, sizeof(double));
	unsigned int nspin = default_copiers();
	struct spinners sp = { 0 };

	lat_side_alloc(&raw, reps);
	lat_side_alloc(&rawl, reps);
	lat_side_alloc(&lib, reps);
	w.t0 = xcalloc(sb->npages, sizeof(*w.t0));
	w.lat = xcalloc(sb->npages, sizeof(*w.lat));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if (pthread_create(&w.tid, NULL, lat_writer_main, &w))
		die("pthread_create");

	for (int kb = 0; kb < sb->nb; kb++) {
		const struct snapsrc *b = &sb->b[kb];
		char name[64];

		for (int r = 0; r < reps; r++) {
			for (int j = 0; j < 3; j++) {
				struct uffdwp_snapshot_status st;

				switch ((j + r) % 3) {
				case 0:
					lat_raw(&w, rp, uffd, sb->len, idx, k,
						&raw, r);
					break;
				case 1:
					spinners_start(&sp, nspin);
					lat_raw(&w, rp, uffd, sb->len, idx, k,
						&rawl, r);
					spinners_stop(&sp);
					break;
				default:
					nsamp[r] = lat_snap(sb, b, &w, idx,
							    &lib, r, &st);
					faulted[r] = (double)st.pages_faulted;
					waited[r] = (double)st.faults_waited;
					ms[r] = (double)st.elapsed_ns / 1e6;
				}
			}
		}
		printf("  %-10s one writer, %s: %.0f first writes per "
		       "snapshot of %.1f ms, %.0f copied on the fault path, "
		       "%.0f waited for a copier (medians of %d)%s\n",
		       bname(b->backend),
		       pinned ? "every thread on one CPU" : "threads unpinned",
		       M(nsamp), M(ms), M(faulted), M(waited), reps,
		       M(nsamp) < 100 ? "; too few samples to compare" : "");
		printf("INFO snapshot_writer_fault_us%s%s raw p50 %.2f p99 "
		       "%.2f; raw with %u spinners p50 %.2f p99 %.2f; "
		       "library p50 %.2f p99 %.2f max %.0f\n",
		       b->suffix, sfx, M(raw.p50) / 1e3, M(raw.p99) / 1e3,
		       nspin, M(rawl.p50) / 1e3, M(rawl.p99) / 1e3,
		       M(lib.p50) / 1e3, M(lib.p99) / 1e3, M(lib.max) / 1e3);
		printf("INFO snapshot_writer_fault_vs_raw_spinners%s%s %.3f\n",
		       b->suffix, sfx, paired(lib.p50, rawl.p50, (size_t)reps));
		snprintf(name, sizeof(name),
			 "snapshot_writer_fault_vs_raw_sync%s%s", b->suffix,
			 sfx);
		print_ratio(name, paired(lib.p50, raw.p50, (size_t)reps),
			    pinned ? 1.5 : 0, false);
	}

	lat_writer_post(&w, WCMD_QUIT);
	pthread_join(w.tid, NULL);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	free(w.t0);
	free(w.lat);
	free(idx);
	free(nsamp);
	free(faulted);
	free(waited);
	free(ms);
	lat_side_free(&raw);
	lat_side_free(&rawl);
	lat_side_free(&lib);
}

/*
 * Pinned, the writer, the raw handler, the library's handler and copier
 * threads all inherit one CPU, as in sec_sync: a fault round trip costs
 * ~6 us on the writer's CPU and 20-50 us across vCPUs here, depending on
 * placement and on whether the other vCPU sleeps. Unpinned is printed for
 * reference, without a target: its raw side pays the wake of an idle vCPU,
 * which a snapshot's busy copiers spare the library's side.
 */
static void snap_latency(struct snapbench *sb, char *rp, int uffd, int reps,
			 bool pinned)
{
	struct raw_handler h = { .uffd = uffd };

	if (pinned)
		pin_cpu0();
	raw_handler_start(&h);
	if (snap_ctxs(sb, "snapshot writer"))
		snap_latency_pass(sb, rp, uffd, reps, pinned);
	raw_handler_stop(&h);
	snap_ctxs_free(sb);
	if (pinned)
		unpin();
}

#undef M

static void sec_snapshot(size_t len, int reps)
{
	struct snapbench sb = { .len = len, .npages = len / page_sz };
	int auto_be = caps.auto_backend, other, uffd, err;
	char *rp;

	printf("\n== live snapshots into the memory sink (%zu MiB populated, "
	       "default copiers %u; idle images checked)\n",
	       len / MiB, default_copiers());
	if (auto_be != UFFDWP_BACKEND_UFFD_ASYNC &&
	    auto_be != UFFDWP_BACKEND_UFFD_SYNC) {
		printf("  skipped: AUTO picks %s, which cannot snapshot\n",
		       bname(auto_be));
		return;
	}
	sb.b[0] = (struct snapsrc){ .backend = auto_be, .suffix = "" };
	sb.nb = 1;
	other = auto_be == UFFDWP_BACKEND_UFFD_ASYNC ?
			UFFDWP_BACKEND_UFFD_SYNC :
			UFFDWP_BACKEND_UFFD_ASYNC;
	if (usable(other))
		sb.b[sb.nb++] = (struct snapsrc){
			.backend = other,
			.suffix = other == UFFDWP_BACKEND_UFFD_SYNC ? "_sync" :
								      "_async",
		};
	else
		printf("  skipped %s: %s\n", bname(other),
		       caps.backend[other].reason);
	sb.dst = region_map(len, 0);
	memset(sb.dst, 0, len);
	for (int k = 0; k < sb.nb; k++) {
		sb.b[k].src = region_map(len, 0);
		snap_fill(sb.b[k].src, len);
	}
	err = uffdwp_sink_memory_new(sb.dst, len, &sb.sink);
	if (err < 0)
		die("uffdwp_sink_memory_new: %s", strerror(-err));
	timed_sink_init(&sb);

	if (snap_ctxs(&sb, "snapshot")) {
		snap_idle_pass(&sb, reps);
		snap_busy_pass(&sb, reps);
	}
	snap_ctxs_free(&sb);

	rp = region_map(len, 0);
	memset(rp, 1, len);
	uffd = raw_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (uffd < 0) {
		printf("  skipped writer latency: raw userfaultfd: %s\n",
		       strerror(-uffd));
		goto out;
	}
	err = raw_register_wp(uffd, rp, len);
	if (!err)
		err = raw_wp(uffd, rp, len, UFFDIO_WRITEPROTECT_MODE_WP);
	if (err) {
		printf("  skipped writer latency: raw WP registration: %s\n",
		       strerror(-err));
		goto out_close;
	}
	snap_latency(&sb, rp, uffd, reps, true);
	snap_latency(&sb, rp, uffd, quick ? 3 : 5, false);
out_close:
	close(uffd);
out:
	munmap(rp, len);
	uffdwp_sink_free(sb.sink);
	for (int k = 0; k < sb.nb; k++)
		munmap(sb.b[k].src, len);
	munmap(sb.dst, len);
}

/* ---- section: sparse vs dense collect ------------------------------- */

/*
 * A sparse heap: @pop bytes populated as 2 MiB chunks, one every 16
 * chunks, over a 16x larger MAP_NORESERVE range. The dense twin holds the
 * same pages back to back, and both get the same dirty pages, so the ratio
 * is what the unpopulated 15/16 of the range costs a collect.
 */
static void sec_sparse(size_t len, int reps)
{
	size_t chunk = 2 * MiB, nchunks, pop, span, npages, k;
	struct layout sparse;
	uint32_t *idx;
	double *st, *dt, *sc, *dc;

	if (len < 2 * chunk)
		chunk = len / 2 / page_sz * page_sz;
	nchunks = len / chunk;
	pop = nchunks * chunk;
	span = 16 * pop;
	npages = pop / page_sz;
	k = frac_pages(npages, 1);
	sparse.chunk = chunk / page_sz;
	sparse.stride = 16 * sparse.chunk;
	printf("\n== async collect: %zu MiB sparse range (%zu MiB populated "
	       "in %zu KiB chunks) vs %zu MiB dense, 1 %% dirty\n",
	       span / MiB, pop / MiB, chunk / KiB, pop / MiB);
	if (!usable(UFFDWP_BACKEND_UFFD_ASYNC)) {
		printf("  skipped: uffd_async: %s\n",
		       caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].reason);
		return;
	}
	idx = xcalloc(npages, sizeof(*idx));
	st = xcalloc((size_t)reps, sizeof(double));
	dt = xcalloc((size_t)reps, sizeof(double));
	sc = xcalloc((size_t)reps, sizeof(double));
	dc = xcalloc((size_t)reps, sizeof(double));

	/* Library first, then the raw mechanism on fresh regions, so at most
	 * two populated copies exist at a time. */
	for (int raw = 0; raw < 2; raw++) {
		char *sp = region_map(span, MAP_NORESERVE);
		char *dp = region_map(pop, 0);
		struct uffdwp_ctx *sctx = NULL, *dctx = NULL;
		int sfd = -1, dfd = -1;
		long pte0, pte_s, pte_d;
		double ts, td;
		uint64_t t0;

		for (size_t c = 0; c < nchunks; c++)
			memset(sp + c * 16 * chunk, 1, chunk);
		memset(dp, 1, pop);
		pte0 = proc_field_kb("/proc/self/status", "VmPTE:");
		t0 = now_ns();
		if (raw) {
			sfd = raw_async_setup(sp, span);
		} else {
			sctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "sparse");
			if (sctx && !lib_track(sctx, sp, span, "sparse"))
				sctx = uffdwp_ctx_free(sctx);
		}
		ts = (double)(now_ns() - t0);
		/* Page tables the arming allocated show what every later
		 * collect has to walk. */
		pte_s = proc_field_kb("/proc/self/status", "VmPTE:");
		t0 = now_ns();
		if (raw) {
			dfd = raw_async_setup(dp, pop);
		} else {
			dctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "sparse");
			if (dctx && !lib_track(dctx, dp, pop, "sparse"))
				dctx = uffdwp_ctx_free(dctx);
		}
		td = (double)(now_ns() - t0);
		pte_d = proc_field_kb("/proc/self/status", "VmPTE:");
		if (raw ? (sfd < 0 || dfd < 0) : (!sctx || !dctx)) {
			if (raw)
				printf("  skipped raw: WP_ASYNC setup: %s\n",
				       strerror(-(sfd < 0 ? sfd : dfd)));
			goto next;
		}
		for (int r = 0; r < reps; r++) {
			pick_random(idx, npages, k);
			write_idx(sp, &sparse, idx, k, (char)(r + 2));
			write_idx(dp, &dense, idx, k, (char)(r + 2));
			for (int turn = 0; turn < 2; turn++) {
				bool s = (turn ^ r) & 1;
				size_t got = 0;

				/* Second collect: the clean walk alone. */
				for (int pass = 0; pass < 2; pass++) {
					double *out = pass ? (s ? sc : dc) :
							     (s ? st : dt);

					t0 = now_ns();
					if (!raw)
						got = lib_collect(s ? sctx :
								      dctx);
					else if (raw_scan(s ? sp : dp,
							  s ? span : pop, &got))
						die("PAGEMAP_SCAN: %s",
						    strerror(errno));
					out[r] = (double)(now_ns() - t0);
					check_pages(s ? "sparse" : "dense", got,
						    pass ? 0 : k);
				}
			}
		}
		printf("  %s: arm sparse %.2f ms (page tables +%ld KiB) / dense "
		       "%.2f ms (+%ld KiB); collect 1 %% sparse %.3f ms / dense "
		       "%.3f ms; clean collect %.3f / %.3f ms\n",
		       raw ? "raw    " : "library", ts / 1e6, pte_s - pte0,
		       td / 1e6, pte_d - pte_s, med(st, (size_t)reps) / 1e6,
		       med(dt, (size_t)reps) / 1e6, med(sc, (size_t)reps) / 1e6,
		       med(dc, (size_t)reps) / 1e6);
		if (raw)
			printf("  raw sparse/dense: %.3f (for reference)\n",
			       paired(st, dt, (size_t)reps));
		else
			print_ratio("sparse16g_vs_dense1g_collect",
				    paired(st, dt, (size_t)reps), 1.5, false);
next:
		uffdwp_ctx_free(sctx);
		uffdwp_ctx_free(dctx);
		if (sfd >= 0)
			close(sfd);
		if (dfd >= 0)
			close(dfd);
		munmap(sp, span);
		munmap(dp, pop);
	}
	free(idx);
	free(st);
	free(dt);
	free(sc);
	free(dc);
}

/* ---- section: cost per dirty page, every backend -------------------- */

#define N_PCT 4
#define N_SERIES 5

static const double curve_pct[N_PCT] = { 0.1, 1, 10, 100 };

struct series {
	const char *name;
	int backend; /* -1: raw async */
	bool done;
	double write_ns[N_PCT]; /* per dirty page */
	double collect_ns[N_PCT];
};

static void run_series(struct series *s, size_t len, int reps)
{
	size_t npages = len / page_sz;
	uint32_t *idx = xcalloc(npages, sizeof(*idx));
	double *w = xcalloc((size_t)reps, sizeof(double));
	double *c = xcalloc((size_t)reps, sizeof(double));
	struct uffdwp_ctx *ctx = NULL;
	char *p = region_map(len, 0);
	int fd = -1;

	memset(p, 1, len);
	if (s->backend < 0) {
		fd = raw_async_setup(p, len);
		if (fd < 0) {
			printf("  skipped %s: %s\n", s->name, strerror(-fd));
			goto out;
		}
	} else {
		ctx = lib_new(s->backend, s->name);
		if (!ctx || !lib_track(ctx, p, len, s->name))
			goto out;
	}
	for (int f = 0; f < N_PCT; f++) {
		size_t k = frac_pages(npages, curve_pct[f]);

		for (int r = 0; r < reps; r++) {
			uint64_t t0, t1;
			size_t got;

			pick_random(idx, npages, k);
			t0 = now_ns();
			write_idx(p, &dense, idx, k, (char)(r + 2));
			t1 = now_ns();
			if (ctx)
				got = lib_collect(ctx);
			else if (raw_scan(p, len, &got))
				die("PAGEMAP_SCAN: %s", strerror(errno));
			w[r] = (double)(t1 - t0) / (double)k;
			c[r] = (double)(now_ns() - t1) / (double)k;
			check_pages(s->name, got, k);
		}
		s->write_ns[f] = median(w, (size_t)reps);
		s->collect_ns[f] = median(c, (size_t)reps);
	}
	s->done = true;
out:
	uffdwp_ctx_free(ctx);
	if (fd >= 0)
		close(fd);
	munmap(p, len);
	free(idx);
	free(w);
	free(c);
}

static void plot(const char *png, const struct series *ser, int n)
{
	char dat[] = "/tmp/bench-track-XXXXXX";
	FILE *d, *g;
	int fd, idx = 0;

	if (system("command -v gnuplot >/dev/null 2>&1")) {
		printf("  --plot: gnuplot is not installed, %s not drawn\n",
		       png);
		return;
	}
	fd = mkstemp(dat);
	if (fd < 0 || !(d = fdopen(fd, "w")))
		die("mkstemp: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		if (!ser[i].done)
			continue;
		fprintf(d, "# %s\n", ser[i].name);
		for (int f = 0; f < N_PCT; f++)
			fprintf(d, "%g %g\n", curve_pct[f],
				ser[i].write_ns[f] + ser[i].collect_ns[f]);
		fprintf(d, "\n\n");
	}
	fclose(d);
	g = popen("gnuplot", "w");
	if (!g)
		die("popen gnuplot: %s", strerror(errno));
	fprintf(g,
		"set terminal png size 900,600\n"
		"set output '%s'\n"
		"set logscale xy\n"
		"set grid\n"
		"set key top right\n"
		"set title 'libuffdwp: tracking cost per dirty page "
		"(first write + collect)'\n"
		"set xlabel 'dirty pages (%% of region)'\n"
		"set ylabel 'ns per dirty page'\n"
		"plot ",
		png);
	for (int i = 0; i < n; i++) {
		if (!ser[i].done)
			continue;
		fprintf(g, "%s'%s' index %d with linespoints lw 2 title '%s'",
			idx ? ", " : "", dat, idx, ser[i].name);
		idx++;
	}
	fprintf(g, "\n");
	if (pclose(g))
		printf("  --plot: gnuplot failed, %s may be incomplete\n", png);
	else
		printf("  plot written to %s\n", png);
	unlink(dat);
}

/*
 * Not a target: the whole cost of a dirty page per backend (its first
 * write plus its share of the collect), which is what a program choosing
 * a backend pays. The region is capped because mprotect splits a VMA per
 * scattered dirty page and would hit vm.max_map_count on large ones.
 */
static void sec_curve(size_t len, int reps, const char *png)
{
	struct series ser[N_SERIES] = {
		{ .name = "raw async", .backend = -1 },
		{ .name = "uffd_async", .backend = UFFDWP_BACKEND_UFFD_ASYNC },
		{ .name = "uffd_sync", .backend = UFFDWP_BACKEND_UFFD_SYNC },
		{ .name = "soft_dirty", .backend = UFFDWP_BACKEND_SOFT_DIRTY },
		{ .name = "mprotect", .backend = UFFDWP_BACKEND_MPROTECT },
	};

	printf("\n== cost per dirty page by backend (%zu MiB, random pages, "
	       "median of %d)\n",
	       len / MiB, reps);
	for (int i = 0; i < N_SERIES; i++) {
		int be = ser[i].backend < 0 ? UFFDWP_BACKEND_UFFD_ASYNC :
					      ser[i].backend;

		if (!usable(be)) {
			printf("  skipped %s: %s\n", ser[i].name,
			       caps.backend[be].reason);
			continue;
		}
		run_series(&ser[i], len, reps);
	}
	printf("  %-11s %8s %14s %14s %14s\n", "backend", "dirty %",
	       "write ns/pg", "collect ns/pg", "total ns/pg");
	for (int i = 0; i < N_SERIES; i++) {
		if (!ser[i].done)
			continue;
		for (int f = 0; f < N_PCT; f++)
			printf("  %-11s %8.1f %14.0f %14.0f %14.0f\n",
			       ser[i].name, curve_pct[f], ser[i].write_ns[f],
			       ser[i].collect_ns[f],
			       ser[i].write_ns[f] + ser[i].collect_ns[f]);
	}
	if (png)
		plot(png, ser, N_SERIES);
}

/* ---- main ----------------------------------------------------------- */

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k':
	case 'K':
		v *= KiB;
		end++;
		break;
	case 'm':
	case 'M':
		v *= MiB;
		end++;
		break;
	case 'g':
	case 'G':
		v *= GiB;
		end++;
		break;
	}
	if (end == s || *end)
		return 0;
	return (size_t)v;
}

/* ---- many ranges ------------------------------------------------------ */

/*
 * Track @n one-page ranges, each its own mapping (every other page of a
 * reservation is made writable), with @backend: the seconds it takes.
 * Garbage collectors track many heap sections; a track that re-read all
 * of /proc/self/maps made n tracks cost O(n^2).
 */
static double track_ranges(int backend, size_t n)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), i;
	struct uffdwp_ctx *ctx;
	uint64_t t0, t1;
	char *base;
	int err;

	base = mmap(NULL, 2 * n * ps, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	for (i = 0; i < n; i++)
		if (mprotect(base + 2 * i * ps, ps, PROT_READ | PROT_WRITE)) {
			munmap(base, 2 * n * ps);
			return -1;
		}
	ctx = lib_new(backend, "ranges");
	if (!ctx) {
		munmap(base, 2 * n * ps);
		return -1;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		err = uffdwp_track(ctx, base + 2 * i * ps, ps, 0);
		if (err < 0) {
			printf("  skipped ranges: uffdwp_track(%s) #%zu: %s\n",
			       bname(backend), i, strerror(-err));
			break;
		}
	}
	t1 = now_ns();
	uffdwp_ctx_free(ctx);
	munmap(base, 2 * n * ps);
	return i == n ? (double)(t1 - t0) / 1e9 : -1;
}

/* A 1 TiB MAP_NORESERVE range, almost all of it never touched. */
static void track_sparse_tib(void)
{
	size_t len = 1ULL << 40;
	struct uffdwp_ctx *ctx;
	uint64_t t0, t1;
	char *p;
	int err;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		printf("  skipped 1 TiB: mmap: %s\n", strerror(errno));
		return;
	}
	p[0] = 1;
	p[len / 2] = 1;
	ctx = lib_new(UFFDWP_BACKEND_UFFD_ASYNC, "ranges");
	if (ctx) {
		t0 = now_ns();
		err = uffdwp_track(ctx, p, len, 0);
		t1 = now_ns();
		if (err)
			printf("  skipped 1 TiB: uffdwp_track: %s\n",
			       strerror(-err));
		else
			printf("  track of a 1 TiB sparse range (uffd_async): %.3f s\n",
			       (double)(t1 - t0) / 1e9);
		uffdwp_ctx_free(ctx);
	}
	munmap(p, len);
}

static void sec_ranges(bool short_run)
{
	static const int backends[] = { UFFDWP_BACKEND_UFFD_ASYNC,
					UFFDWP_BACKEND_UFFD_SYNC,
					UFFDWP_BACKEND_MPROTECT };
	size_t small = short_run ? 200 : 1000, big = 10 * small;
	char name[64];
	double t1, t2;
	size_t b;

	printf("\n== tracking many ranges: %zu vs %zu one-page ranges\n", small,
	       big);
	for (b = 0; b < sizeof(backends) / sizeof(backends[0]); b++) {
		t1 = track_ranges(backends[b], small);
		t2 = track_ranges(backends[b], big);
		if (t1 <= 0 || t2 <= 0)
			continue;
		printf("  %-10s %zu ranges %.3f s (%.1f us each), %zu ranges %.3f s (%.1f us each)\n",
		       bname(backends[b]), small, t1, t1 * 1e6 / (double)small,
		       big, t2, t2 * 1e6 / (double)big);
		snprintf(name, sizeof(name), "track_10k_ranges_vs_1k_%s",
			 bname(backends[b]));
		print_ratio(name, t2 / t1, 12, false);
	}
	if (!short_run)
		track_sparse_tib();
}

static const char *const sections[] = {
	"memory",   "async",  "mprotect", "sync",
	"snapshot", "sparse", "curve",	  "ranges",
};

static const char *only; /* comma-separated sections, or NULL: all */

static bool want(const char *section)
{
	size_t n = strlen(section);

	for (const char *s = only; s; s = strchr(s, ',')) {
		if (*s == ',')
			s++;
		if (!strncmp(s, section, n) && (s[n] == ',' || !s[n]))
			return true;
	}
	return !only;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-track [--size BYTES|NNNk|NNNm|NNNg] "
			"[--quick] [--plot FILE.png] [--only SECTION[,...]]\n"
			"sections:");
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		fprintf(stderr, " %s", sections[i]);
	fprintf(stderr, "\n");
	exit(2);
}

/* Every name in @list must be a section. */
static bool only_valid(const char *list)
{
	for (const char *s = list; *s;) {
		size_t n = strcspn(s, ",");
		bool found = false;

		for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]);
		     i++)
			found |= strlen(sections[i]) == n &&
				 !strncmp(s, sections[i], n);
		if (!found)
			return false;
		s += n;
		if (*s)
			s++;
	}
	return true;
}

static void summary(void)
{
	printf("\n== summary (median of per-repetition ratios; targets "
	       "inform, they never fail the run)\n");
	for (size_t i = 0; i < n_ratios; i++) {
		const struct ratio *r = &ratios[i];
		char t[32] = "-";
		const char *verdict = "";

		if (r->target > 0) {
			bool ok = r->at_least ? r->value >= r->target :
						r->value <= r->target;

			snprintf(t, sizeof(t), "%s %.2f",
				 r->at_least ? ">=" : "<=", r->target);
			verdict = ok ? "met" : "MISSED";
		}
		printf("  %-48s %8.3f   %-8s %s\n", r->name, r->value, t,
		       verdict);
	}
}

int main(int argc, char **argv)
{
	size_t len = 0;
	const char *png = NULL;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			len = parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--plot") && i + 1 < argc)
			png = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
			 only_valid(argv[i + 1]))
			only = argv[++i];
		else
			usage();
	}
	page_sz = (size_t)sysconf(_SC_PAGESIZE);
	if (!len)
		len = quick ? 64 * MiB : GiB;
	len = len / page_sz * page_sz;
	if (len < 4 * MiB) {
		fprintf(stderr, "bench-track: --size must be at least 4m\n");
		usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	err = uffdwp_probe(&caps);
	if (err < 0)
		die("uffdwp_probe: %s", strerror(-err));
	pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pmfd < 0)
		die("open /proc/self/pagemap: %s", strerror(errno));
	printf("bench-track: libuffdwp %s, kernel %s, %zu MiB, %s, "
	       "%ld CPUs\n",
	       uffdwp_version(), caps.kernel_release, len / MiB,
	       quick ? "quick" : "full", sysconf(_SC_NPROCESSORS_ONLN));
	for (int b = 1; b <= UFFDWP_BACKEND_MPROTECT; b++)
		printf("  backend %-10s %s: %s\n", bname(b),
		       usable(b) ? "usable  " : "unusable",
		       caps.backend[b].reason ? caps.backend[b].reason : "");

	/* Memory first: later sections would leave freed heap behind. */
	if (want("memory"))
		sec_memory(len);
	if (want("async"))
		sec_async(len, quick ? 3 : 7, quick ? 5 : 11);
	if (want("mprotect"))
		sec_mprotect(len < 256 * MiB ? len : 256 * MiB, quick ? 3 : 5);
	if (want("sync"))
		sec_sync(len, quick ? 3 : 5, quick ? 5 : 9);
	if (want("snapshot"))
		sec_snapshot(len, quick ? 3 : 7);
	if (want("sparse"))
		sec_sparse(len, quick ? 3 : 7);
	if (want("ranges"))
		sec_ranges(quick);
	if (want("curve"))
		sec_curve(len < (quick ? 16 : 64) * MiB ?
				  len :
				  (quick ? 16 : 64) * MiB,
			  3, png);
	summary();
	close(pmfd);
	free(scratch);
	return 0;
}
