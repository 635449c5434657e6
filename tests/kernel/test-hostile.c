/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: what a program may do that the library's designed paths
 * did not expect, each found by trying to break it.
 *
 * - segv-blocked: a writer thread with every signal blocked (thread pools
 *   start that way). On uffd_async a snapshot moves its range behind a
 *   gate that relies on SIGSEGV; a write there from such a thread used to
 *   kill the process (the kernel forces a blocked SIGSEGV to its default
 *   action). The snapshots must be exact and the process must live. The
 *   mprotect backend cannot avoid the signal: tracking refuses with
 *   -EDEADLK while such a thread exists, unless the caller vouches for
 *   it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"

#define NPAGES 256
#define SNAPSHOTS 20

static size_t ps;
static struct uffdwp_caps caps;

/* --- segv-blocked ------------------------------------------------------ */

/* The page write number @k goes to: spread over the range. */
static size_t page_of(uint64_t k)
{
	return (size_t)((k * 2654435761u) % NPAGES);
}

struct writer {
	pthread_t tid;
	char *mem;
	atomic_bool stop;
	atomic_bool blocked; /* set once its mask blocks everything */
	atomic_uint_fast64_t last; /* writes done */
};

/* Writes 1, 2, 3... each into page_of(k), with every signal blocked. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	sigset_t all;
	uint64_t k = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&w->blocked, true);
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		k++;
		*(volatile uint64_t *)(w->mem + page_of(k) * ps) = k;
		atomic_store_explicit(&w->last, k, memory_order_release);
	}
	return NULL;
}

static void writer_start(struct writer *w, char *mem)
{
	memset(w, 0, sizeof(*w));
	w->mem = mem;
	ck_assert_int_eq(pthread_create(&w->tid, NULL, writer_main, w), 0);
	while (!atomic_load(&w->blocked))
		usleep(100);
}

static void writer_stop(struct writer *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->tid, NULL);
}

/*
 * The point-in-time oracle for one writer: K, the largest number in the
 * image, is the last write before the instant (the writer's program
 * order), so every page must hold the last number <= K written to it.
 */
static void check_point_in_time(const char *img)
{
	static uint64_t expect[NPAGES];
	uint64_t k, max = 0, v;
	size_t p;

	for (p = 0; p < NPAGES; p++) {
		memcpy(&v, img + p * ps, sizeof(v));
		if (v > max)
			max = v;
	}
	memset(expect, 0, sizeof(expect));
	for (k = 1; k <= max; k++)
		expect[page_of(k)] = k;
	for (p = 0; p < NPAGES; p++) {
		memcpy(&v, img + p * ps, sizeof(v));
		ck_assert_msg(
			v == expect[p],
			"page %zu holds write %llu, not %llu (instant at write %llu)",
			p, (unsigned long long)v, (unsigned long long)expect[p],
			(unsigned long long)max);
	}
}

/* A collect that only resets what is reported. */
static int mark_run(void *arg, void *addr, size_t len)
{
	(void)arg;
	(void)addr;
	(void)len;
	return 0;
}

struct seen {
	char *base;
	unsigned char page[NPAGES];
};

static int note_run(void *arg, void *addr, size_t len)
{
	struct seen *s = arg;
	size_t p = (size_t)((char *)addr - s->base) / ps, n = len / ps;

	while (n--)
		s->page[p++] = 1;
	return 0;
}

START_TEST(segv_blocked_writer_survives_snapshots)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_UFFD_ASYNC };
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	struct uffdwp_ctx *ctx;
	struct writer w;
	struct seen seen;
	uint64_t from, to, k;
	char *mem, *img;
	int i;

	mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	img = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_ptr_ne(img, MAP_FAILED);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	writer_start(&w, mem);
	for (i = 0; i < SNAPSHOTS; i++) {
		ck_assert_int_eq(
			uffdwp_sink_memory_new(img, NPAGES * ps, &sink), 0);
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, NPAGES * ps,
						       sink, NULL, &snap),
				 0);
		ck_assert_int_eq(uffdwp_snapshot_wait(snap, 30000), 0);
		ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
		ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
		uffdwp_snapshot_free(snap);
		uffdwp_sink_free(sink);
		check_point_in_time(img);
		ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 0);
	}
	/* Nothing written since a collect goes unreported, moves or not. */
	ck_assert_int_ge(uffdwp_collect(ctx, mark_run, NULL), 0);
	from = atomic_load(&w.last);
	usleep(20000);
	to = atomic_load(&w.last);
	writer_stop(&w);
	memset(&seen, 0, sizeof(seen));
	seen.base = mem;
	ck_assert_int_ge(uffdwp_collect(ctx, note_run, &seen), 0);
	for (k = from + 1; k <= to && k <= from + 4 * NPAGES; k++)
		ck_assert_msg(seen.page[page_of(k)],
			      "page %zu written (write %llu) not reported",
			      page_of(k), (unsigned long long)k);
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
	munmap(img, NPAGES * ps);
}
END_TEST

START_TEST(mprotect_refuses_while_a_thread_blocks_segv)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = UFFDWP_BACKEND_MPROTECT };
	struct uffdwp_ctx *ctx;
	struct writer w;
	char *mem, *other;

	mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	other = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_ptr_ne(other, MAP_FAILED);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	/* The writer writes @other, not the range: refused all the same,
	 * since nothing tells which memory a thread will write. */
	writer_start(&w, other);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), -EDEADLK);
	/* Unless the caller vouches for that thread. */
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps,
				      UFFDWP_TRACK_SIGSEGV_BLOCKERS),
			 0);
	mem[2 * ps] = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	ck_assert_int_eq(uffdwp_untrack(ctx, mem, NPAGES * ps), 0);
	writer_stop(&w);
	/* Refused cleanly: nothing protected, and it tracks once the
	 * thread is gone. */
	mem[0] = 1;
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	mem[ps] = 1;
	ck_assert_int_eq(uffdwp_collect(ctx, mark_run, NULL), 1);
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
	munmap(other, NPAGES * ps);
}
END_TEST

static Suite *hostile_suite(void)
{
	const struct test_group async_groups[] = {
		{ "segv-blocked",
		  120,
		  { segv_blocked_writer_survives_snapshots, NULL } },
	};
	const struct test_group mp_groups[] = {
		{ "segv-blocked",
		  60,
		  { mprotect_refuses_while_a_thread_blocks_segv, NULL } },
	};
	Suite *s = suite_create("hostile");

	test_add_groups(s, "uffd_async", 0, async_groups, 1);
	test_add_groups(s, "mprotect", 0, mp_groups, 1);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	int b;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++)
		if (!caps.backend[b].usable)
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
	unsetenv("UFFDWP_BACKEND");
	if (!test_forking())
		test_skip("each case needs its own process (CK_FORK=no)");
	return test_run(hostile_suite(), &ex);
}
