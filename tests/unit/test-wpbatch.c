/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit suite: the wp batch (invariant 3.2) against a recording target, and
 * the page bitmaps it works with. No kernel mechanism is involved: the
 * target records the calls a flush would make.
 */
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "dirtymap.h"
#include "wpbatch.h"

#define PS 4096UL

struct call {
	char kind; /* 'P'rotect, 'U'nprotect, 'W'ake */
	uintptr_t start;
	size_t len;
};

struct recorder {
	struct call calls[256];
	size_t n;
	int fail_kind, fail_err;
};

static int rec(void *arg, char kind, uintptr_t start, size_t len)
{
	struct recorder *r = arg;

	ck_assert_uint_lt(r->n, 256);
	r->calls[r->n++] = (struct call){ kind, start, len };
	return r->fail_kind == kind ? r->fail_err : 0;
}

static int rec_protect(void *arg, uintptr_t start, size_t len)
{
	return rec(arg, 'P', start, len);
}

static int rec_unprotect(void *arg, uintptr_t start, size_t len)
{
	return rec(arg, 'U', start, len);
}

static int rec_wake(void *arg, uintptr_t start, size_t len)
{
	return rec(arg, 'W', start, len);
}

static struct recorder r;
static struct wp_counters cnt;
static const struct wp_target target = {
	.protect = rec_protect,
	.unprotect = rec_unprotect,
	.wake = rec_wake,
	.arg = &r,
};

static void setup(void)
{
	memset(&r, 0, sizeof(r));
	memset(&cnt, 0, sizeof(cnt));
}

static void expect(size_t i, char kind, uintptr_t start, size_t len)
{
	ck_assert_uint_gt(r.n, i);
	ck_assert_msg(r.calls[i].kind == kind && r.calls[i].start == start &&
			      r.calls[i].len == len,
		      "call %zu: %c %#lx+%#zx, expected %c %#lx+%#zx", i,
		      r.calls[i].kind, (unsigned long)r.calls[i].start,
		      r.calls[i].len, kind, (unsigned long)start, len);
}

START_TEST(sorts_and_merges_adjacent)
{
	struct wpbatch b;
	int owner;

	wpbatch_init(&b, 0, &cnt);
	/* Out of order, adjacent and overlapping: one run. */
	ck_assert_int_eq(wpbatch_protect(&b, 0x3000, PS, &owner), 0);
	ck_assert_int_eq(wpbatch_protect(&b, 0x1000, PS, &owner), 0);
	ck_assert_int_eq(wpbatch_protect(&b, 0x2000, 2 * PS, &owner), 0);
	ck_assert_int_eq(wpbatch_protect(&b, 0x9000, PS, &owner), 0);
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	ck_assert_uint_eq(r.n, 2);
	expect(0, 'P', 0x1000, 3 * PS);
	expect(1, 'P', 0x9000, PS);
	ck_assert_uint_eq(cnt.queued, 4);
	ck_assert_uint_eq(cnt.calls, 2);
	ck_assert_uint_eq(cnt.pages, 4);
	wpbatch_fini(&b);
}
END_TEST

START_TEST(protect_gap_merge_stays_in_owner)
{
	struct wpbatch b;
	int a, other;

	wpbatch_init(&b, 2 * PS, &cnt);
	/* Gaps of 2 pages merge within an owner, 3 do not; owners never. */
	wpbatch_protect(&b, 0x10000, PS, &a);
	wpbatch_protect(&b, 0x13000, PS, &a);
	wpbatch_protect(&b, 0x17000, PS, &a);
	wpbatch_protect(&b, 0x18000 + PS, PS, &other);
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	ck_assert_uint_eq(r.n, 3);
	expect(0, 'P', 0x10000, 4 * PS);
	expect(1, 'P', 0x17000, PS);
	expect(2, 'P', 0x19000, PS);
	wpbatch_fini(&b);
}
END_TEST

START_TEST(unprotect_never_bridges_gaps)
{
	struct wpbatch b;

	/* Unprotecting a gap would make clean pages writable unseen. */
	wpbatch_init(&b, 16 * PS, &cnt);
	wpbatch_unprotect(&b, 0x5000, PS);
	wpbatch_unprotect(&b, 0x3000, PS);
	wpbatch_unprotect(&b, 0x4000, PS);
	wpbatch_unprotect(&b, 0x7000, PS);
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	/* Unprotects without wake first, then one wake per run. */
	ck_assert_uint_eq(r.n, 4);
	expect(0, 'U', 0x3000, 3 * PS);
	expect(1, 'U', 0x7000, PS);
	expect(2, 'W', 0x3000, 3 * PS);
	expect(3, 'W', 0x7000, PS);
	wpbatch_fini(&b);
}
END_TEST

static int rec_unprotect_wake(void *arg, uintptr_t start, size_t len)
{
	return rec(arg, 'X', start, len);
}

START_TEST(single_unprotect_run_is_one_call)
{
	const struct wp_target t = {
		.protect = rec_protect,
		.unprotect = rec_unprotect,
		.wake = rec_wake,
		.unprotect_wake = rec_unprotect_wake,
		.arg = &r,
	};
	struct wpbatch b;

	wpbatch_init(&b, 0, &cnt);
	wpbatch_unprotect(&b, 0x2000, PS);
	wpbatch_unprotect(&b, 0x1000, PS);
	ck_assert_int_eq(wpbatch_flush(&b, &t), 0);
	ck_assert_uint_eq(r.n, 1);
	expect(0, 'X', 0x1000, 2 * PS);
	ck_assert_uint_eq(cnt.merged, 1);
	/* Two runs: unprotect both without waking, then wake each. */
	wpbatch_unprotect(&b, 0x1000, PS);
	wpbatch_unprotect(&b, 0x5000, PS);
	ck_assert_int_eq(wpbatch_flush(&b, &t), 0);
	expect(1, 'U', 0x1000, PS);
	expect(2, 'U', 0x5000, PS);
	expect(3, 'W', 0x1000, PS);
	expect(4, 'W', 0x5000, PS);
	wpbatch_fini(&b);
}
END_TEST

START_TEST(protects_go_before_unprotects)
{
	struct wpbatch b;
	int o;

	wpbatch_init(&b, 0, &cnt);
	wpbatch_unprotect(&b, 0x1000, PS);
	wpbatch_protect(&b, 0x8000, PS, &o);
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	expect(0, 'P', 0x8000, PS);
	expect(1, 'U', 0x1000, PS);
	expect(2, 'W', 0x1000, PS);
	wpbatch_fini(&b);
}
END_TEST

START_TEST(filter_is_the_barrier)
{
	struct wpbatch b;
	int o;

	wpbatch_init(&b, 0, &cnt);
	ck_assert(!wpbatch_may_cover(&b, 0x40000));
	wpbatch_protect(&b, 0x41000, PS, &o);
	/* The page itself, and nothing with other address bits 12-17... */
	ck_assert(wpbatch_may_cover(&b, 0x41000));
	ck_assert(wpbatch_may_cover(&b, 0x41fff));
	ck_assert(!wpbatch_may_cover(&b, 0x42000));
	/* ...but aliases 64 pages apart do (a filter, not a set). */
	ck_assert(wpbatch_may_cover(&b, 0x41000 + 64 * PS));
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	ck_assert(!wpbatch_may_cover(&b, 0x41000));
	/* A long run covers every bucket. */
	wpbatch_protect(&b, 0x100000, 64 * PS, &o);
	ck_assert(wpbatch_may_cover(&b, 0x7777000));
	wpbatch_flush(&b, &target);
	wpbatch_fini(&b);
}
END_TEST

START_TEST(failure_still_wakes)
{
	struct wpbatch b;

	wpbatch_init(&b, 0, &cnt);
	b.max_retries = 0;
	r.fail_kind = 'U';
	r.fail_err = -EAGAIN;
	wpbatch_unprotect(&b, 0x1000, PS);
	wpbatch_unprotect(&b, 0x9000, PS);
	ck_assert_int_eq(wpbatch_flush(&b, &target), -EAGAIN);
	/* The first unprotect failed: the rest is dropped, but every
	 * waiter is woken, to fault again rather than wait forever. */
	expect(0, 'U', 0x1000, PS);
	expect(1, 'W', 0x1000, PS);
	expect(2, 'W', 0x9000, PS);
	ck_assert(!wpbatch_may_cover(&b, 0x1000));
	wpbatch_fini(&b);
}
END_TEST

START_TEST(fixed_batch_reports_full)
{
	struct wp_op p[2], u[2];
	struct wpbatch b;

	wpbatch_init_fixed(&b, p, u, 2, &cnt);
	ck_assert_int_eq(wpbatch_unprotect(&b, 0x1000, PS), 0);
	ck_assert_int_eq(wpbatch_unprotect(&b, 0x3000, PS), 0);
	ck_assert_int_eq(wpbatch_unprotect(&b, 0x5000, PS), -ENOSPC);
	ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
	ck_assert_int_eq(wpbatch_unprotect(&b, 0x5000, PS), 0);
	wpbatch_fini(&b);
}
END_TEST

/* A batch merges what a sorted queue merges, whatever the queue order. */
START_TEST(merge_matches_model)
{
	unsigned int seed = 1, round;
	struct wpbatch b;
	int o;

	for (round = 0; round < 200; round++) {
		bool want[256] = { false };
		size_t i, k, n = (size_t)(rand_r(&seed) % 60) + 1, runs = 0;

		setup();
		wpbatch_init(&b, 0, &cnt);
		for (i = 0; i < n; i++) {
			size_t first = (size_t)rand_r(&seed) % 250;
			size_t len = (size_t)rand_r(&seed) % 5 + 1;

			for (k = first; k < first + len && k < 256; k++)
				want[k] = true;
			wpbatch_protect(
				&b, first * PS,
				(first + len > 256 ? 256 - first : len) * PS,
				&o);
		}
		ck_assert_int_eq(wpbatch_flush(&b, &target), 0);
		for (k = 0; k < 256; k++)
			runs += want[k] && (k == 0 || !want[k - 1]);
		ck_assert_uint_eq(r.n, runs);
		for (i = 0; i < r.n; i++)
			for (k = r.calls[i].start / PS;
			     k < (r.calls[i].start + r.calls[i].len) / PS; k++)
				ck_assert(want[k]);
		wpbatch_fini(&b);
	}
}
END_TEST

/* --- dirtymap ----------------------------------------------------------- */

START_TEST(dirtymap_runs_and_take)
{
	struct dirtymap a, b;
	size_t n = 1000;

	ck_assert_int_eq(dirtymap_init(&a, n), 0);
	ck_assert_int_eq(dirtymap_init(&b, n), 0);
	ck_assert_uint_eq(dirtymap_next_set(&a, 0), n);
	ck_assert_uint_eq(dirtymap_next_clear(&a, 0), 0);
	dirtymap_set_range(&a, 62, 70); /* crosses two word boundaries */
	dirtymap_set(&a, 999);
	ck_assert_uint_eq(dirtymap_count(&a), 71);
	ck_assert_uint_eq(dirtymap_next_set(&a, 0), 62);
	ck_assert_uint_eq(dirtymap_next_clear(&a, 62), 132);
	ck_assert_uint_eq(dirtymap_next_set(&a, 132), 999);
	ck_assert_uint_eq(dirtymap_next_clear(&a, 999), n);
	dirtymap_clear_range(&a, 64, 64);
	ck_assert_uint_eq(dirtymap_count(&a), 7);
	ck_assert(dirtymap_test(&a, 63) && !dirtymap_test(&a, 64) &&
		  dirtymap_test(&a, 128));
	dirtymap_set(&b, 5);
	ck_assert_uint_eq(dirtymap_take(&b, &a), 7);
	ck_assert_uint_eq(dirtymap_count(&a), 0);
	ck_assert_uint_eq(dirtymap_count(&b), 8);
	dirtymap_or(&a, &b);
	ck_assert_uint_eq(dirtymap_count(&a), 8);
	dirtymap_free(&a);
	dirtymap_free(&b);
}
END_TEST

START_TEST(dirtymap_matches_model)
{
	unsigned int seed = 7, round;
	struct dirtymap m;
	size_t n = 777;

	ck_assert_int_eq(dirtymap_init(&m, n), 0);
	for (round = 0; round < 500; round++) {
		bool model[777] = { false };
		size_t i, k, start, len;

		dirtymap_clear_range(&m, 0, n);
		for (i = 0; i < 20; i++) {
			start = (size_t)rand_r(&seed) % n;
			len = (size_t)rand_r(&seed) % 100;
			if (start + len > n)
				len = n - start;
			if (rand_r(&seed) % 3) {
				dirtymap_set_range(&m, start, len);
				for (k = start; k < start + len; k++)
					model[k] = true;
			} else {
				dirtymap_clear_range(&m, start, len);
				for (k = start; k < start + len; k++)
					model[k] = false;
			}
		}
		for (k = 0; k < n; k++)
			ck_assert_int_eq(dirtymap_test(&m, k), model[k]);
		/* Walking runs visits exactly the set bits. */
		for (i = dirtymap_next_set(&m, 0), k = 0; i < n;
		     i = dirtymap_next_set(&m, k)) {
			k = dirtymap_next_clear(&m, i);
			ck_assert(model[i] && (k == n || !model[k]));
		}
	}
	dirtymap_free(&m);
}
END_TEST

static Suite *wpbatch_suite(void)
{
	Suite *s = suite_create("wpbatch");
	TCase *b = tcase_create("batch");
	TCase *d = tcase_create("dirtymap");

	tcase_add_checked_fixture(b, setup, NULL);
	tcase_add_test(b, sorts_and_merges_adjacent);
	tcase_add_test(b, protect_gap_merge_stays_in_owner);
	tcase_add_test(b, unprotect_never_bridges_gaps);
	tcase_add_test(b, protects_go_before_unprotects);
	tcase_add_test(b, single_unprotect_run_is_one_call);
	tcase_add_test(b, filter_is_the_barrier);
	tcase_add_test(b, failure_still_wakes);
	tcase_add_test(b, fixed_batch_reports_full);
	tcase_add_test(b, merge_matches_model);
	suite_add_tcase(s, b);
	tcase_add_test(d, dirtymap_runs_and_take);
	tcase_add_test(d, dirtymap_matches_model);
	suite_add_tcase(s, d);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };

	test_check_sanitizer_setup();
	return test_run(wpbatch_suite(), &ex);
}
