/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: bad input gets its documented -errno and loses nothing;
 * exact runs, merged protections, and a free while writers fault.
 */
#include "track-common.h"

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

void track_input_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "bad-input",
		  60,
		  { bad_ranges, callback_error_loses_nothing, exact_runs,
		    free_while_writers_fault, batch_merges_runs } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
