/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: dirty tracking, held to oracles on every backend this kernel
 * has (DESIGN.md section 7).
 *
 * Pre-copy convergence: writer threads write while the main thread collects
 * epoch after epoch, copying every reported run into a shadow; after the
 * writers stop and a final collect, shadow and memory must be byte-equal.
 * A write that a collect missed leaves the shadow stale: that is the lost
 * write this library exists to prevent. Writers also zap pages with
 * MADV_DONTNEED (their contents become zeros, which must be reported too).
 *
 * Transact (after the kernel selftest transact_test): writers increment
 * per-page counters and count their increments privately; the shadow's
 * counters must add up to exactly the increments made.
 *
 * Broken protocol: with a test hook that lets the sync handler resolve
 * faults during a collect's take-and-re-protect, the same oracle must fail:
 * proof that it can.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "testhooks.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static size_t ps;
static struct uffdwp_caps caps;

enum pattern { RANDOM, SEQUENTIAL, HOTSPOT, COUNTERS };

struct oracle {
	struct uffdwp_ctx *ctx;
	int backend;
	char *mem, *shadow;
	size_t npages;
	enum pattern pattern;
	bool zap;
	bool quiesce; /* soft_dirty: writers pause around each collect */
	unsigned int nwriters;
	atomic_int stop, pause, paused;
	uint64_t *incs; /* COUNTERS: increments per writer per page */
	size_t reported;
};

struct writer {
	struct oracle *o;
	unsigned int id;
	pthread_t tid;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct oracle *o = w->o;
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (w->id + 1), n = 0, v;
	size_t page = w->id, off;

	while (!atomic_load(&o->stop)) {
		if (atomic_load(&o->pause)) {
			atomic_fetch_add(&o->paused, 1);
			while (atomic_load(&o->pause))
				sched_yield();
			atomic_fetch_sub(&o->paused, 1);
			continue;
		}
		v = rnd(&seed);
		switch (o->pattern) {
		case RANDOM:
		case COUNTERS:
			page = v % o->npages;
			break;
		case SEQUENTIAL:
			page = (page + 1) % o->npages;
			break;
		case HOTSPOT:
			page = (v & 7) ? v % 8 : v % o->npages;
			break;
		}
		if (o->pattern == COUNTERS) {
			/* Each writer owns one counter slot in every page. */
			uint64_t *c = (uint64_t *)(o->mem + page * ps) + w->id;

			__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
			o->incs[w->id * o->npages + page]++;
			continue;
		}
		off = (v >> 32) % (ps / 8) * 8;
		*(volatile uint64_t *)(o->mem + page * ps + off) = v | 1;
		if (o->zap && ++n % 97 == 0)
			madvise(o->mem + (v >> 20) % o->npages * ps, ps,
				MADV_DONTNEED);
	}
	return NULL;
}

static int copy_run(void *arg, void *addr, size_t len)
{
	struct oracle *o = arg;
	size_t off = (size_t)((char *)addr - o->mem);

	ck_assert_uint_eq((uintptr_t)addr % ps, 0);
	ck_assert_uint_le(off + len, o->npages * ps);
	memcpy(o->shadow + off, addr, len);
	o->reported += len / ps;
	return 0;
}

static long collect(struct oracle *o)
{
	int tries;
	long n;

	if (o->quiesce) {
		atomic_store(&o->pause, 1);
		while (atomic_load(&o->paused) < (int)o->nwriters)
			sched_yield();
	}
	n = uffdwp_collect(o->ctx, copy_run, o);
	for (tries = 0; n == -EAGAIN && tries < 3; tries++) {
		/* Address-space events kept the kernel from re-arming
		 * (writers zapping without pause, under emulation): as a
		 * program would, let the writers pause and call again.
		 * Nothing may have been lost meanwhile: the oracle says. */
		printf("collect: -EAGAIN, pausing writers and retrying\n");
		atomic_store(&o->pause, 1);
		while (atomic_load(&o->paused) < (int)o->nwriters &&
		       !atomic_load(&o->stop))
			sched_yield();
		n = uffdwp_collect(o->ctx, copy_run, o);
		if (!o->quiesce)
			atomic_store(&o->pause, 0);
	}
	if (o->quiesce)
		atomic_store(&o->pause, 0);
	return n;
}

static void oracle_setup(struct oracle *o, int backend, size_t npages)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backend };

	memset(o, 0, sizeof(*o));
	o->backend = backend;
	o->npages = npages;
	o->nwriters = 4;
	o->quiesce = backend == UFFDWP_BACKEND_SOFT_DIRTY;
	o->mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	o->shadow = malloc(npages * ps);
	ck_assert_ptr_ne(o->mem, MAP_FAILED);
	ck_assert_ptr_nonnull(o->shadow);
	/* Some pages populated, some never touched before tracking. */
	memset(o->mem, 0x5a, npages / 2 * ps);
	memcpy(o->shadow, o->mem, npages * ps);
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &o->ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(o->ctx), backend);
	ck_assert_int_eq(uffdwp_track(o->ctx, o->mem, npages * ps, 0), 0);
}

static void oracle_teardown(struct oracle *o)
{
	o->ctx = uffdwp_ctx_free(o->ctx);
	munmap(o->mem, o->npages * ps);
	free(o->shadow);
	free(o->incs);
}

/* Returns the number of pages whose shadow differs from memory. */
static size_t oracle_run(struct oracle *o, unsigned int epochs)
{
	struct writer w[8];
	size_t bad = 0, i;
	unsigned int e;

	if (o->pattern == COUNTERS)
		o->incs = calloc(o->nwriters * o->npages, sizeof(uint64_t));
	for (i = 0; i < o->nwriters; i++) {
		w[i] = (struct writer){ o, (unsigned int)i, 0 };
		ck_assert_int_eq(
			pthread_create(&w[i].tid, NULL, writer_main, &w[i]), 0);
	}
	for (e = 0; e < epochs; e++) {
		ck_assert_int_ge(collect(o), 0);
		if (e % 16 == 0)
			usleep(200);
	}
	atomic_store(&o->stop, 1);
	for (i = 0; i < o->nwriters; i++)
		pthread_join(w[i].tid, NULL);
	o->quiesce = false;
	ck_assert_int_ge(collect(o), 0);
	for (i = 0; i < o->npages; i++)
		bad += memcmp(o->shadow + i * ps, o->mem + i * ps, ps) != 0;
	if (o->pattern == COUNTERS) {
		for (i = 0; i < o->npages * o->nwriters; i++) {
			size_t page = i % o->npages, id = i / o->npages;
			uint64_t got =
				((uint64_t *)(o->shadow + page * ps))[id];
			uint64_t base = 0x5a5a5a5a5a5a5a5aULL;

			if (page >= o->npages / 2)
				base = 0;
			ck_assert_msg(
				got == base + o->incs[i] || bad,
				"page %zu writer %zu: %llu increments seen, %llu made",
				page, id, (unsigned long long)(got - base),
				(unsigned long long)o->incs[i]);
		}
	}
	return bad;
}

static const int backends[] = { UFFDWP_BACKEND_UFFD_ASYNC,
				UFFDWP_BACKEND_UFFD_SYNC,
				UFFDWP_BACKEND_SOFT_DIRTY,
				UFFDWP_BACKEND_MPROTECT };

/*
 * _i of a loop test indexes backends[]; each backend's cases sit in test
 * cases tagged with its name, and main() excludes (and names) the tags of
 * backends this kernel lacks. Reaching one anyway is a harness bug.
 */
#define NEED_BACKEND(b)                                                   \
	ck_assert_msg(caps.backend[b].usable, "%s ran but is not usable", \
		      uffdwp_backend_name(b))

static void converge(int backend, enum pattern pattern, bool zap)
{
	struct oracle o;
	struct uffdwp_stats st = { .sz = sizeof(st) };
	size_t bad;

	NEED_BACKEND(backend);
	oracle_setup(&o, backend, test_scaled(2048, 256));
	o.pattern = pattern;
	o.zap = zap;
	bad = oracle_run(&o, (unsigned int)test_scaled(400, 200));
	ck_assert_int_eq(uffdwp_ctx_stats(o.ctx, &st), 0);
	printf("%s pattern %d zap %d: %zu pages reported, %llu collects, %llu wp calls, %llu faults, %zu stale\n",
	       uffdwp_backend_name(backend), pattern, zap, o.reported,
	       (unsigned long long)st.collects, (unsigned long long)st.wp_calls,
	       (unsigned long long)st.faults, bad);
	ck_assert_msg(bad == 0, "%s: %zu pages lost writes",
		      uffdwp_backend_name(backend), bad);
	ck_assert_uint_gt(o.reported, 0);
	oracle_teardown(&o);
}

START_TEST(converge_random)
{
	converge(backends[_i], RANDOM, false);
}
END_TEST

START_TEST(converge_sequential)
{
	converge(backends[_i], SEQUENTIAL, false);
}
END_TEST

START_TEST(converge_hotspot_zap)
{
	converge(backends[_i], HOTSPOT, true);
}
END_TEST

START_TEST(converge_random_zap)
{
	converge(backends[_i], RANDOM, true);
}
END_TEST

START_TEST(transact_counters)
{
	converge(backends[_i], COUNTERS, false);
}
END_TEST

/*
 * The sync collect protocol broken on purpose: the oracle must see lost
 * writes. Several tries, since a race needs luck to show; one is enough.
 */
START_TEST(broken_sync_protocol_is_caught)
{
	struct oracle o;
	size_t bad = 0;
	int tries;

	NEED_BACKEND(UFFDWP_BACKEND_UFFD_SYNC);
	uffdwp_test_hooks.break_sync_collect = 1;
	for (tries = 0; tries < 10 && !bad; tries++) {
		oracle_setup(&o, UFFDWP_BACKEND_UFFD_SYNC,
			     test_scaled(256, 64));
		o.pattern = HOTSPOT;
		bad = oracle_run(&o, (unsigned int)test_scaled(400, 200));
		oracle_teardown(&o);
	}
	uffdwp_test_hooks.break_sync_collect = 0;
	printf("broken protocol: %zu stale pages after %d tries\n", bad, tries);
	ck_assert_msg(bad > 0, "the oracle did not catch a broken protocol");
}
END_TEST

/*
 * uffd_async as it runs on kernels whose PAGEMAP_SCAN reports zapped pages
 * clean (none in the matrix): it finds zaps through pagemap presence.
 */
START_TEST(async_zap_check)
{
	uffdwp_test_hooks.async_check_zaps = 1;
	converge(UFFDWP_BACKEND_UFFD_ASYNC, RANDOM, true);
	converge(UFFDWP_BACKEND_UFFD_ASYNC, HOTSPOT, true);
	uffdwp_test_hooks.async_check_zaps = 0;
}
END_TEST

/* --- bad input ---------------------------------------------------------- */

static struct uffdwp_ctx *new_ctx(int backend)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backend };
	struct uffdwp_ctx *ctx = NULL;

	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
	return ctx;
}

static char *map(size_t pages, int prot)
{
	char *p = mmap(NULL, pages * ps, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static int count_run(void *arg, void *addr, size_t len)
{
	*(size_t *)arg += len / ps;
	return 0;
}

START_TEST(bad_ranges)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx, *other;
	char *p, *hole, *none;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(8, PROT_READ | PROT_WRITE);
	ck_assert_int_eq(uffdwp_track(NULL, p, ps, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, p + 1, ps, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, p, ps + 1, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, p, 0, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, (void *)-ps, 2 * ps, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, p, ps, 0x80), -EINVAL);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	/* Overlap, in this context and in another. */
	ck_assert_int_eq(uffdwp_track(ctx, p + 3 * ps, 2 * ps, 0), -EEXIST);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), -EEXIST);
	other = new_ctx(b);
	ck_assert_int_eq(uffdwp_track(other, p + ps, ps, 0), -EEXIST);
	ck_assert_int_eq(uffdwp_track(other, p + 4 * ps, 4 * ps, 0), 0);
	uffdwp_ctx_free(other);
	/* Untrack: exact ranges only, once. */
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 2 * ps), -ENOENT);
	ck_assert_int_eq(uffdwp_untrack(ctx, p + 1, ps), -EINVAL);
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 4 * ps), 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 4 * ps), -ENOENT);
	/* A hole, and memory that cannot be written. */
	hole = map(3, PROT_READ | PROT_WRITE);
	munmap(hole + ps, ps);
	ck_assert_int_eq(uffdwp_track(ctx, hole, 3 * ps, 0), -EFAULT);
	none = map(2, PROT_NONE);
	ck_assert_int_eq(uffdwp_track(ctx, none, 2 * ps, 0), -EACCES);
	ck_assert_int_eq(uffdwp_collect(ctx, NULL, NULL), -EINVAL);
	uffdwp_ctx_free(ctx);
	munmap(p, 8 * ps);
	munmap(hole, ps);
	munmap(hole + 2 * ps, ps);
	munmap(none, 2 * ps);
}
END_TEST

struct failing {
	int calls, fail_at;
	size_t pages;
};

static int fail_run(void *arg, void *addr, size_t len)
{
	struct failing *f = arg;

	if (f->calls++ == f->fail_at)
		return -EIO;
	f->pages += len / ps;
	return 0;
}

/* A callback error stops the collect; the rest comes next time. */
START_TEST(callback_error_loses_nothing)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	struct failing f = { 0, 2, 0 };
	size_t i, more = 0;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(64, PROT_READ | PROT_WRITE);
	memset(p, 1, 64 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	for (i = 0; i < 64; i += 4) /* 16 runs of one page */
		p[i * ps] = 2;
	ck_assert_int_eq(uffdwp_collect(ctx, fail_run, &f), -EIO);
	ck_assert_int_eq(f.pages, 2);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &more), 14);
	ck_assert_int_eq(more, 14);
	more = 0;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &more), 0);
	uffdwp_ctx_free(ctx);
	munmap(p, 64 * ps);
}
END_TEST

/* Exactly the written pages, as runs, and re-armed. */
START_TEST(exact_runs)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(32, PROT_READ | PROT_WRITE);
	memset(p, 1, 32 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 32 * ps, 0), 0);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	memset(p + 3 * ps, 2, 5 * ps);
	p[20 * ps] = 3;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 6);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	p[31 * ps + ps - 1] = 4;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 32 * ps);
}
END_TEST

/* The wp batch's stats show re-protects merged across clean gaps. */
START_TEST(batch_merges_runs)
{
	int b = backends[_i];
	struct uffdwp_stats st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx;
	size_t i, n = 0;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(64, PROT_READ | PROT_WRITE);
	memset(p, 1, 64 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	for (i = 0; i < 64; i += 2)
		p[i * ps] = 2;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 32);
	ck_assert_int_eq(uffdwp_ctx_stats(ctx, &st), 0);
	if (b == UFFDWP_BACKEND_UFFD_SYNC || b == UFFDWP_BACKEND_MPROTECT) {
		/* 32 one-page runs, one page apart: one call re-arms all. */
		ck_assert_uint_ge(st.wp_merged, 31);
		ck_assert_uint_ge(st.pages_rearmed, 32);
	}
	printf("%s: %llu queued, %llu merged, %llu calls, %llu re-armed\n",
	       uffdwp_backend_name(b), (unsigned long long)st.wp_queued,
	       (unsigned long long)st.wp_merged,
	       (unsigned long long)st.wp_calls,
	       (unsigned long long)st.pages_rearmed);
	/* And still exact: the merged gaps were clean, and stay tracked. */
	p[ps] = 3;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 64 * ps);
}
END_TEST

/* anon-read-maps-fresh-page present, on a backend that sees zaps by absence. */
static bool zap_read_hidden(int b)
{
	return (b == UFFDWP_BACKEND_MPROTECT ||
		b == UFFDWP_BACKEND_SOFT_DIRTY) &&
	       test_defect_status("anon-read-maps-fresh-page") ==
		       UFFDWP_DEFECT_PRESENT;
}

/* MADV_DONTNEED made the page zeros: it counts as written. */
START_TEST(dontneed_counts_as_dirty)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0, i;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(8, PROT_READ | PROT_WRITE);
	memset(p, 1, 8 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
	ck_assert_int_eq(madvise(p + 2 * ps, 2 * ps, MADV_DONTNEED), 0);
	/*
	 * Read after the zap: the zero page, still new contents. Where a
	 * read maps a fresh page instead, backends that see zaps by absence
	 * cannot tell, and the probe says so (test-probe proves the report).
	 */
	if (!zap_read_hidden(b))
		ck_assert_int_eq(*(volatile char *)(p + 3 * ps), 0);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 2);
	/* Re-armed: a later write is seen, a quiet page is not. */
	p[2 * ps] = 5;
	if (b != UFFDWP_BACKEND_UFFD_SYNC) {
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	} else {
		/* sync watches zapped pages for a while (a superset), then
		 * settles. */
		ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 1);
		for (i = 0; i < 10 && uffdwp_collect(ctx, count_run, &n); i++)
			usleep(100000);
		ck_assert_int_lt(i, 10);
	}
	uffdwp_ctx_free(ctx);
	munmap(p, 8 * ps);
}
END_TEST

/* mprotect read-only then read-write must not lose tracking. */
START_TEST(mprotect_roundtrip_keeps_tracking)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	NEED_BACKEND(b);
	if (b == UFFDWP_BACKEND_MPROTECT) {
		printf("mprotect: the program must not change protection of tracked ranges (documented)\n");
		return;
	}
	ctx = new_ctx(b);
	p = map(4, PROT_READ | PROT_WRITE);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	ck_assert_int_eq(mprotect(p, 4 * ps, PROT_READ), 0);
	ck_assert_int_eq(mprotect(p, 4 * ps, PROT_READ | PROT_WRITE), 0);
	p[ps] = 7;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
}
END_TEST

/* munmap and mremap of a tracked range: no crash, nothing reported from
 * the old addresses, untrack still allowed. */
START_TEST(unmap_and_mremap)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p, *q, *dst;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(8, PROT_READ | PROT_WRITE);
	q = map(8, PROT_READ | PROT_WRITE);
	dst = map(8, PROT_READ | PROT_WRITE);
	if (b == UFFDWP_BACKEND_MPROTECT) {
		/* Documented: moved pages keep PROT_READ, and the handler
		 * cannot tell them from the program's own read-only pages,
		 * so mprotect ranges must be untracked before mremap. */
		ck_assert_int_eq(uffdwp_track(ctx, q, 8 * ps, 0), 0);
		ck_assert_int_eq(uffdwp_untrack(ctx, q, 8 * ps), 0);
	}
	memset(p, 1, 8 * ps);
	memset(q, 1, 8 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
	if (b != UFFDWP_BACKEND_MPROTECT)
		ck_assert_int_eq(uffdwp_track(ctx, q, 8 * ps, 0), 0);
	ck_assert_int_eq(munmap(p + 4 * ps, 4 * ps), 0);
	ck_assert_ptr_eq(mremap(q, 8 * ps, 8 * ps,
				MREMAP_MAYMOVE | MREMAP_FIXED, dst),
			 dst);
	/* The moved memory is writable without faults to the library. */
	memset(dst, 9, 8 * ps);
	p[0] = 3;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, q, 8 * ps),
			 b == UFFDWP_BACKEND_MPROTECT ? -ENOENT : 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 8 * ps), 0);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(dst, 8 * ps);
}
END_TEST

/* A mapping the program puts inside a tracked range is not tracked, and
 * must not cost the pages around it their tracking. */
START_TEST(foreign_mapping_inside_range)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p, *q;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(64, PROT_READ | PROT_WRITE);
	memset(p, 1, 64 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	q = mmap(p + 32 * ps, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(q, p + 32 * ps);
	q[0] = 5; /* the foreign page itself */
	p[30 * ps] = 2;
	p[34 * ps] = 2;
	p[40 * ps] = 2;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 3);
	/* Re-armed around the hole: the next writes are seen again. */
	p[0] = 3;
	p[63 * ps] = 3;
	n = 0;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 2);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	uffdwp_ctx_free(ctx);
	munmap(p, 64 * ps);
}
END_TEST

/* After fork the child gets -ECHILD and may free; the parent goes on. */
START_TEST(fork_child_gets_echild)
{
	int b = backends[_i], status;
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	pid_t pid;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(4, PROT_READ | PROT_WRITE);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffdwp_stats st = { .sz = sizeof(st) };
		int ok = uffdwp_collect(ctx, count_run, &n) == -ECHILD &&
			 uffdwp_track(ctx, p, ps, 0) == -ECHILD &&
			 uffdwp_untrack(ctx, p, 4 * ps) == -ECHILD &&
			 uffdwp_ctx_backend(ctx) == -ECHILD &&
			 uffdwp_ctx_stats(ctx, &st) == -ECHILD;

		/* The child's copy is not tracked: writing it just works,
		 * before and after freeing the parent's context. */
		p[ps] = 8;
		uffdwp_ctx_free(ctx);
		*(volatile char *)(p + 3 * ps) = 8;
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %#x", status);
	p[2 * ps] = 9;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
}
END_TEST

/*
 * After fork the child frees the parent's context, makes its own and
 * tracks the same range again: the convergence oracle must hold in the
 * child, and still in the parent afterwards.
 */
START_TEST(fork_child_tracks_again)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backends[_i] };
	size_t npages = test_scaled(512, 128);
	struct oracle o;
	int status;
	pid_t pid;

	NEED_BACKEND(backends[_i]);
	oracle_setup(&o, backends[_i], npages);
	o.pattern = RANDOM;
	ck_assert_uint_eq(oracle_run(&o, 20), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t bad;

		alarm(120); /* a hang is a failure, not a stuck suite */
		o.ctx = uffdwp_ctx_free(o.ctx);
		if (uffdwp_ctx_new(&opts, &o.ctx))
			_exit(2);
		/* The child's copy may still be read-only (mprotect):
		 * the library gives pages back until it is tracked. */
		o.mem[0] ^= 1;
		if (uffdwp_track(o.ctx, o.mem, npages * ps, 0))
			_exit(3);
		memcpy(o.shadow, o.mem, npages * ps);
		atomic_store(&o.stop, 0);
		/* oracle_run() ends quiescing: soft_dirty needs it again. */
		o.quiesce = backends[_i] == UFFDWP_BACKEND_SOFT_DIRTY;
		bad = oracle_run(&o, (unsigned int)test_scaled(200, 50));
		printf("child: %zu pages reported, %zu stale\n", o.reported,
		       bad);
		o.ctx = uffdwp_ctx_free(o.ctx);
		_exit(bad ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status %#x (exit 2: ctx_new, 3: track failed)",
		      status);
	atomic_store(&o.stop, 0);
	o.quiesce = backends[_i] == UFFDWP_BACKEND_SOFT_DIRTY;
	ck_assert_uint_eq(oracle_run(&o, 20), 0);
	oracle_teardown(&o);
}
END_TEST

/* What a collector's fork child handler does: its own context, its heap
 * tracked again. */
static struct {
	struct uffdwp_ctx *ctx;
	char *mem;
	size_t len;
	int backend;
	int ret;
} child_hook;

static void child_hook_run(void)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = child_hook.backend };

	if (!child_hook.ctx)
		return; /* another test's fork, in this process */
	alarm(30); /* a hang here is the failure */
	child_hook.ctx = uffdwp_ctx_free(child_hook.ctx);
	child_hook.ret = uffdwp_ctx_new(&opts, &child_hook.ctx);
	if (!child_hook.ret)
		child_hook.ret = uffdwp_track(child_hook.ctx, child_hook.mem,
					      child_hook.len, 0);
}

/*
 * A fork handler the program registered before its first context (as
 * bdwgc does in GC_init) makes a context and tracks in the child. The
 * library's own handlers must have run by then: registered at its first
 * context, they ran after the program's child handler, which hung on a
 * claim lock still held.
 */
START_TEST(fork_handler_calls_library_in_child)
{
	int status;
	pid_t pid;

	NEED_BACKEND(backends[_i]);
	ck_assert_int_eq(pthread_atfork(NULL, NULL, child_hook_run), 0);
	child_hook.backend = backends[_i];
	child_hook.len = 8 * ps;
	child_hook.mem = map(8, PROT_READ | PROT_WRITE);
	memset(child_hook.mem, 1, child_hook.len);
	child_hook.ctx = new_ctx(backends[_i]);
	ck_assert_int_eq(uffdwp_track(child_hook.ctx, child_hook.mem,
				      child_hook.len, 0),
			 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t n = 0;
		long got = -1;

		if (!child_hook.ret) {
			child_hook.mem[2 * ps] = 5;
			got = uffdwp_collect(child_hook.ctx, count_run, &n);
		}
		_exit(child_hook.ret ? 2 : got == 1 ? 0 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(
		WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"child: status %#x (exit 2: the handler's track failed, 3: its collect; signal 14: the handler hung)",
		status);
	child_hook.ctx = uffdwp_ctx_free(child_hook.ctx);
	munmap(child_hook.mem, child_hook.len);
}
END_TEST

/*
 * ASan's allocator (GCC 12's libsanitizer, LLVM before 17) does not lock
 * itself across fork(): a child forked while another thread is inside
 * malloc() hangs at its own first malloc(), whatever the library does.
 * Under ASan the churning thread therefore lets the parent fork only
 * between its rounds; the plain build and the kernel matrix fork at any
 * moment, with the library's own locks held.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_ANYWHERE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_ANYWHERE 0
#endif
#endif
#ifndef FORK_ANYWHERE
#define FORK_ANYWHERE 1
#endif

struct churn {
	int backend;
	atomic_int stop;
	unsigned long rounds;
	/* !FORK_ANYWHERE: the churning thread holds @between except
	 * between rounds, where it waits while the parent is @forking. */
	pthread_mutex_t between;
	atomic_int forking;
	atomic_int running; /* past its thread's start-up */
};

static void churn_hold(struct churn *c)
{
	if (!FORK_ANYWHERE)
		pthread_mutex_lock(&c->between);
}

static void churn_release(struct churn *c)
{
	if (!FORK_ANYWHERE)
		pthread_mutex_unlock(&c->between);
}

/* The churning thread, between two rounds. */
static void churn_between(struct churn *c)
{
	churn_release(c);
	while (!FORK_ANYWHERE && atomic_load(&c->forking))
		sched_yield();
	churn_hold(c);
}

/* The parent, around a fork(). */
static void churn_pause(struct churn *c)
{
	atomic_store(&c->forking, 1);
	churn_hold(c);
}

static void churn_resume(struct churn *c)
{
	churn_release(c);
	atomic_store(&c->forking, 0);
}

/* Track, write, collect and untrack a range of its own, over and over:
 * some of the library's locks are held at any moment. */
static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = c->backend };
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	churn_hold(c);
	atomic_store(&c->running, 1);
	p = map(8, PROT_READ | PROT_WRITE);
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
	while (!atomic_load(&c->stop)) {
		ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
		p[(c->rounds % 8) * ps] = 1;
		ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
		ck_assert_int_eq(uffdwp_untrack(ctx, p, 8 * ps), 0);
		c->rounds++;
		churn_between(c);
	}
	uffdwp_ctx_free(ctx);
	munmap(p, 8 * ps);
	churn_release(c);
	return NULL;
}

/*
 * Forks while another thread tracks, collects and untracks: every child
 * tracks the parent's range again, writes and collects. A lock the
 * parent's thread held at fork would hang the child (then its alarm
 * kills it); a claim it kept would give -EEXIST.
 */
START_TEST(fork_while_tracking_elsewhere)
{
	struct churn c = { .backend = backends[_i],
			   .between = PTHREAD_MUTEX_INITIALIZER };
	struct uffdwp_ctx *ctx;
	int i, status, forks = (int)test_scaled(40, 8);
	pthread_t tid;
	pid_t pid;
	char *p;

	NEED_BACKEND(backends[_i]);
	ctx = new_ctx(c.backend);
	p = map(16, PROT_READ | PROT_WRITE);
	memset(p, 1, 16 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 16 * ps, 0), 0);
	ck_assert_int_eq(pthread_create(&tid, NULL, churn_main, &c), 0);
	/* A thread still starting may be inside the allocator. */
	while (!atomic_load(&c.running))
		sched_yield();
	for (i = 0; i < forks; i++) {
		churn_pause(&c);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct uffdwp_ctx *mine = NULL;
			size_t n = 0;
			long got;

			alarm(30);
			uffdwp_ctx_free(ctx);
			if (uffdwp_ctx_new(
				    &(struct uffdwp_ctx_opts){
					    .sz = sizeof(struct uffdwp_ctx_opts),
					    .backend = c.backend },
				    &mine))
				_exit(2);
			if (uffdwp_track(mine, p, 16 * ps, 0))
				_exit(3);
			p[3 * ps] = 2;
			p[9 * ps] = 2;
			got = uffdwp_collect(mine, count_run, &n);
			uffdwp_ctx_free(mine);
			_exit(got == 2 && n == 2 ? 0 : 4);
		}
		churn_resume(&c);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(
			WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"fork %d: child status %#x (exit 2: ctx_new, 3: track, 4: collect; signal 14: hung)",
			i, status);
	}
	atomic_store(&c.stop, 1);
	pthread_join(tid, NULL);
	printf("%s: %d forks while the other thread ran %lu rounds\n",
	       uffdwp_backend_name(c.backend), forks, c.rounds);
	/* The parent's own tracking went on. */
	p[5 * ps] = 3;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &(size_t){ 0 }), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 16 * ps);
}
END_TEST

struct blocked_writer {
	char *p;
	size_t pages;
	atomic_int done;
};

static void *hammer(void *arg)
{
	struct blocked_writer *w = arg;
	size_t i;

	for (i = 0; i < w->pages; i++)
		w->p[i * ps] = 1;
	atomic_store(&w->done, 1);
	return NULL;
}

/* Freeing a context while writers fault releases them. */
START_TEST(free_while_writers_fault)
{
	int b = backends[_i];
	struct blocked_writer w = { 0 };
	struct uffdwp_ctx *ctx;
	pthread_t t[4];
	int i;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	w.pages = 4096;
	w.p = map(w.pages, PROT_READ | PROT_WRITE);
	ck_assert_int_eq(uffdwp_track(ctx, w.p, w.pages * ps, 0), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &w), 0);
	uffdwp_ctx_free(ctx);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&w.done), 1);
	munmap(w.p, w.pages * ps);
}
END_TEST

/* --- memory kinds ------------------------------------------------------- */

static int track_kind(int b, char *p, size_t len)
{
	struct uffdwp_ctx *ctx = new_ctx(b);
	size_t n = 0;
	int ret = uffdwp_track(ctx, p, len, 0);

	if (!ret) {
		p[0] = 1;
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
		p[len - 1] = 1;
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	}
	uffdwp_ctx_free(ctx);
	return ret;
}

START_TEST(memfd_shmem)
{
	int b = backends[_i], fd, ret;
	char *p;

	NEED_BACKEND(b);
	fd = memfd_create("uffdwp-test", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 16 * ps), 0);
	p = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ret = track_kind(b, p, 16 * ps);
	if (b == UFFDWP_BACKEND_SOFT_DIRTY)
		ck_assert_int_eq(ret, -EOPNOTSUPP);
	else if (b == UFFDWP_BACKEND_UFFD_SYNC &&
		 !(caps.uffd_features & (1ULL << 12)))
		ck_assert_int_eq(ret, -EOPNOTSUPP);
	else
		ck_assert_int_eq(ret, 0);
	munmap(p, 16 * ps);
	close(fd);
}
END_TEST

START_TEST(file_shared)
{
	int b = backends[_i], fd, ret;
	char path[] = "/tmp/uffdwp-test-XXXXXX", *p;

	NEED_BACKEND(b);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, 8 * ps), 0);
	p = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ret = track_kind(b, p, 8 * ps);
	ck_assert_int_eq(ret, b == UFFDWP_BACKEND_UFFD_ASYNC ? 0 : -EOPNOTSUPP);
	munmap(p, 8 * ps);
	close(fd);
}
END_TEST

START_TEST(thp_policy)
{
	int b = backends[_i];
	struct uffdwp_stats st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx;
	size_t len = 4UL << 20, n = 0;
	char *raw, *p;

	NEED_BACKEND(b);
	raw = map(len / ps * 2, PROT_READ | PROT_WRITE);
	p = (char *)(((uintptr_t)raw + len / 2 - 1) & ~(len / 2 - 1));
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	ctx = new_ctx(b);
	ck_assert_int_eq(uffdwp_track(ctx, p, len, UFFDWP_TRACK_HUGE), 0);
	p[5 * ps] = 2;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 1);
	ck_assert_int_eq(uffdwp_ctx_stats(ctx, &st), 0);
	/* Whatever the granularity, it is what was reported. */
	ck_assert_uint_ge(n * ps, st.granularity);
	printf("%s: THP kept, one write reported %zu pages, granularity %llu\n",
	       uffdwp_backend_name(b), n, (unsigned long long)st.granularity);
	uffdwp_ctx_free(ctx);
	munmap(raw, len * 2);
}
END_TEST

/* --- contexts ----------------------------------------------------------- */

START_TEST(ctx_args_and_env)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts) };
	struct uffdwp_ctx *ctx = NULL;
	struct {
		struct uffdwp_ctx_opts o;
		uint64_t future;
	} big = { { .sz = sizeof(big) }, 1 };
	size_t i;

	ck_assert_int_eq(uffdwp_ctx_new(NULL, NULL), -EINVAL);
	opts.flags = 1;
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EINVAL);
	ck_assert_ptr_null(ctx);
	ck_assert_int_eq(uffdwp_ctx_new(&big.o, &ctx), -E2BIG);
	opts.flags = 0;
	opts.backend = 99;
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EINVAL);
	ck_assert_ptr_null(uffdwp_ctx_free(NULL));
	ck_assert_int_eq(uffdwp_ctx_backend(NULL), -EINVAL);
	/* AUTO takes the probe's choice, and says why. */
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(ctx), caps.auto_backend);
	ck_assert_ptr_nonnull(strstr(uffdwp_ctx_backend_reason(ctx), "auto"));
	ctx = uffdwp_ctx_free(ctx);
	/* UFFDWP_BACKEND forces one; a forced unusable one is an error. */
	for (i = 0; i < 4; i++) {
		setenv("UFFDWP_BACKEND", uffdwp_backend_name(backends[i]), 1);
		if (caps.backend[backends[i]].usable) {
			ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), 0);
			ck_assert_int_eq(uffdwp_ctx_backend(ctx), backends[i]);
			ck_assert_ptr_nonnull(strstr(
				uffdwp_ctx_backend_reason(ctx), "forced"));
			ctx = uffdwp_ctx_free(ctx);
		} else {
			ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx),
					 -EOPNOTSUPP);
		}
	}
	setenv("UFFDWP_BACKEND", "soft-dirty", 1);
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx),
			 caps.soft_dirty ? 0 : -EOPNOTSUPP);
	ctx = uffdwp_ctx_free(ctx);
	setenv("UFFDWP_BACKEND", "bogus", 1);
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), -EINVAL);
	unsetenv("UFFDWP_BACKEND");
}
END_TEST

/* --- mprotect: SIGSEGV chaining ---------------------------------------- */

static volatile sig_atomic_t app_faults, app_usr1_blocked, app_usr2_blocked;
static char *app_page;
static struct sigaction lib_action;

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	sigset_t now;

	if ((char *)si->si_addr >= app_page &&
	    (char *)si->si_addr < app_page + ps) {
		/* Run under the mask it asked for, however it was reached:
		 * its sa_mask (SIGUSR1) blocked, nothing else added. */
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		app_usr1_blocked = sigismember(&now, SIGUSR1);
		app_usr2_blocked = sigismember(&now, SIGUSR2);
		app_faults++;
		mprotect(app_page, ps, PROT_READ | PROT_WRITE);
		return;
	}
	/* Not ours: pass it on, as a well-behaved handler does. */
	if (lib_action.sa_flags & SA_SIGINFO)
		lib_action.sa_sigaction(sig, si, uc);
}

static void chain_case(bool app_first)
{
	struct sigaction sa = { .sa_sigaction = app_handler,
				.sa_flags = SA_SIGINFO },
			 old;
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	app_faults = 0;
	app_page = map(1, PROT_READ);
	p = map(4, PROT_READ | PROT_WRITE);
	if (app_first)
		sigaction(SIGSEGV, &sa, &old);
	ctx = new_ctx(UFFDWP_BACKEND_MPROTECT);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	if (!app_first) {
		sigaction(SIGSEGV, NULL, &lib_action);
		sigaction(SIGSEGV, &sa, &old);
	}
	/* volatile: the stores must happen before app_faults is read. */
	*(volatile char *)(p + ps) = 1; /* the library's fault */
	*(volatile char *)app_page = 1; /* the program's own fault */
	ck_assert_int_eq(app_faults, 1);
	ck_assert_int_eq(app_usr1_blocked, 1);
	ck_assert_int_eq(app_usr2_blocked, 0);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	if (!app_first)
		sigaction(SIGSEGV, &old, NULL);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(app_page, ps);
}

START_TEST(mprotect_chains_handler_installed_before)
{
	NEED_BACKEND(UFFDWP_BACKEND_MPROTECT);
	chain_case(true);
}
END_TEST

START_TEST(mprotect_chains_handler_installed_after)
{
	NEED_BACKEND(UFFDWP_BACKEND_MPROTECT);
	chain_case(false);
}
END_TEST

static void add_backend_cases(Suite *s, int i)
{
	const char *name = uffdwp_backend_name(backends[i]);
	const struct test_group groups[] = {
		{ "oracle",
		  120,
		  { converge_random, converge_sequential, converge_hotspot_zap,
		    converge_random_zap, transact_counters } },
		{ "bad-input",
		  60,
		  { bad_ranges, callback_error_loses_nothing, exact_runs,
		    free_while_writers_fault, batch_merges_runs } },
		{ "events",
		  60,
		  { dontneed_counts_as_dirty, mprotect_roundtrip_keeps_tracking,
		    unmap_and_mremap, fork_child_gets_echild,
		    foreign_mapping_inside_range } },
		{ "fork",
		  180,
		  { fork_child_tracks_again, fork_while_tracking_elsewhere,
		    fork_handler_calls_library_in_child } },
		{ "kinds", 60, { memfd_shmem, file_shared, thp_policy } },
	};
	test_add_groups(s, name, i, groups, ARRAY_LEN(groups));
}

static Suite *track_suite(void)
{
	Suite *s = suite_create("track");
	TCase *ctx = tcase_create("ctx");
	TCase *chain = tcase_create("sigsegv-chain");
	TCase *hook = tcase_create("broken-protocol");
	TCase *zaps = tcase_create("async-zap-check");
	size_t i;

	for (i = 0; i < ARRAY_LEN(backends); i++)
		add_backend_cases(s, (int)i);

	tcase_set_timeout(ctx, 60);
	tcase_add_test(ctx, ctx_args_and_env);
	suite_add_tcase(s, ctx);

	tcase_set_tags(chain, "mprotect");
	tcase_add_test(chain, mprotect_chains_handler_installed_before);
	tcase_add_test(chain, mprotect_chains_handler_installed_after);
	suite_add_tcase(s, chain);

	tcase_set_tags(hook, "uffd_sync");
	tcase_set_timeout(hook, 300);
	tcase_add_test(hook, broken_sync_protocol_is_caught);
	suite_add_tcase(s, hook);

	tcase_set_tags(zaps, "uffd_async");
	tcase_set_timeout(zaps, 120);
	tcase_add_test(zaps, async_zap_check);
	suite_add_tcase(s, zaps);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	int b, any = 0;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	/* The probe runs here, before check forks: it opens no fd that
	 * stays open and leaves no thread behind. */
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++) {
		if (caps.backend[b].usable)
			any = 1;
		else
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
	}
	if (!any)
		test_skip("no backend is usable on this kernel");
	unsetenv("UFFDWP_BACKEND");
	return test_run(track_suite(), &ex);
}
