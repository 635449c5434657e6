/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the sources of bench-track share: see bench.h. */
#include "bench.h"

/* The library's async backend scans with a vector of this many regions. */

size_t page_sz;
int pmfd = -1;
bool quick;
uint64_t rng_state = 0x2545f4914f6cdd1dULL;
uint32_t *scratch; /* page-index permutation for pattern picking */
size_t scratch_n;

__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...)
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

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts @v in place. */
double median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t rnd(void)
{
	/* xorshift64*: a fixed seed keeps runs comparable with each other. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

void *xcalloc(size_t n, size_t sz)
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
char *region_map(size_t len, int extra_flags)
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

double fault_latency(char *p, const uint32_t *idx, size_t n, char v,
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

void write_seq(char *p, size_t len, char v)
{
	for (size_t off = 0; off < len; off += page_sz)
		((volatile char *)p)[off] = v;
}

const struct layout dense = { 1, 1 };

char *page_addr(char *base, const struct layout *l, uint32_t i)
{
	size_t pg = i / l->chunk * l->stride + i % l->chunk;

	return base + pg * page_sz;
}

void write_idx(char *base, const struct layout *l, const uint32_t *idx,
	       size_t n, char v)
{
	for (size_t i = 0; i < n; i++)
		*(volatile char *)page_addr(base, l, idx[i]) = v;
}

/* ---- dirty patterns ------------------------------------------------- */

void scratch_fill(size_t n)
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
size_t pick_random(uint32_t *out, size_t n, size_t k)
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
size_t pick_runs16(uint32_t *out, size_t n, size_t k)
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

size_t frac_pages(size_t n, double pct)
{
	size_t k = (size_t)((double)n * pct / 100.0 + 0.5);

	return k ? k : 1;
}

/* ---- library side --------------------------------------------------- */

struct uffdwp_caps caps = { .sz = sizeof(caps) };

bool usable(int backend)
{
	return caps.backend[backend].usable;
}

const char *bname(int backend)
{
	return uffdwp_backend_name(backend);
}

struct uffdwp_ctx *lib_new(int backend, const char *section)
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

bool lib_track(struct uffdwp_ctx *ctx, char *p, size_t len, const char *section)
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
int count_run(void *arg, void *addr, size_t len)
{
	*(size_t *)arg += len / page_sz;
	return 0;
}

size_t lib_collect(struct uffdwp_ctx *ctx)
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

void check_pages(const char *who, size_t got, size_t want)
{
	if (got != want)
		printf("  ! %s reported %zu dirty pages, %zu were written\n",
		       who, got, want);
}

void print_stats(const char *who, const struct uffdwp_ctx *ctx)
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

/* ---- CPU placement --------------------------------------------------- */

cpu_set_t saved_cpus;

/*
 * A fault round trip costs ~6 us with the handler on the writer's CPU and
 * 20-50 us across vCPUs on this VM, depending on where the scheduler puts
 * the handler: pinning the writer, and with it every thread it creates, to
 * one CPU makes raw and library meet the same placement.
 */
void pin_cpu0(void)
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

void unpin(void)
{
	sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
}

void *spin_main(void *arg)
{
	struct spinner *s = arg;

	while (!s->stop)
		;
	return NULL;
}

bool on_cpu(pthread_attr_t *attr, int cpu)
{
	cpu_set_t one;

	if (cpu < 0)
		return false;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pthread_attr_init(attr);
	return !pthread_attr_setaffinity_np(attr, sizeof(one), &one);
}

int other_cpu(void)
{
	int first = -1;

	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &saved_cpus))
			continue;
		if (first >= 0)
			return c;
		first = c;
	}
	return -1;
}
