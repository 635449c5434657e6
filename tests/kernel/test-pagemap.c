/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: the library's PAGEMAP_SCAN loop (invariant 3.5). Against an
 * oracle of which pages were written, it must report every page exactly once
 * however small the vector and however many regions (past the kernel's
 * 512-entry buffer, where walk_end goes stale), and with WP_MATCHING it must
 * re-protect what it reported, atomically: a second scan reports nothing.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common.h"
#include "internal.h"
#include "sys-pagemap.h"
#include "sys-uffd.h"

static size_t ps;

struct tally {
	uintptr_t base;
	unsigned char *seen; /* per page: times reported */
	size_t pages;
};

static int tally_fn(const struct page_region *vec, size_t n, void *arg)
{
	struct tally *t = arg;
	size_t i;
	uint64_t a;

	for (i = 0; i < n; i++) {
		ck_assert_uint_lt(vec[i].start, vec[i].end);
		for (a = vec[i].start; a < vec[i].end; a += ps) {
			t->seen[(a - t->base) / ps]++;
			t->pages++;
		}
	}
	return 0;
}

/* Write a pseudo-random half of the pages, so runs vary in length. */
static void write_pattern(char *p, size_t n, unsigned char *want, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		want[i] = (seed >> 16) & 1;
		if (want[i])
			p[i * ps] = 1;
	}
}

static void check_tally(const struct tally *t, const unsigned char *want,
			size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ck_assert_msg(t->seen[i] == want[i],
			      "page %zu reported %u times, written %u", i,
			      t->seen[i], want[i]);
}

/* Get-only over present pages: vectors from 1 to 4096 entries. */
START_TEST(scan_reports_each_region_once)
{
	static const size_t vec_lens[] = { 1, 7, 511, 512, 513, 4096 };
	size_t n = 4000, v;
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *want = calloc(n, 1);
	struct page_region *vec = calloc(4096, sizeof(*vec));
	struct tally t = { .base = (uintptr_t)p, .pages = 0 };
	int pm = pagemap_open();
	long r;

	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_ge(pm, 0);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	write_pattern(p, n, want, 42);
	t.seen = calloc(n, 1);
	for (v = 0; v < sizeof(vec_lens) / sizeof(*vec_lens); v++) {
		memset(t.seen, 0, n);
		t.pages = 0;
		r = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps, 0,
				 PAGE_IS_PRESENT, PAGE_IS_PRESENT, vec,
				 vec_lens[v], tally_fn, &t);
		ck_assert_int_gt(r, 512); /* past the kernel's buffer */
		check_tally(&t, want, n);
	}
	close(pm);
	free(t.seen);
	free(vec);
	free(want);
	munmap(p, n * ps);
}
END_TEST

static int stop_fn(const struct page_region *vec, size_t n, void *arg)
{
	(*(int *)arg)++;
	return -ECANCELED;
}

START_TEST(scan_callback_error_stops)
{
	size_t n = 64, i;
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct page_region vec[2];
	int pm = pagemap_open(), calls = 0;

	ck_assert_ptr_ne(p, MAP_FAILED);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i += 2)
		p[i * ps] = 1;
	ck_assert_int_eq(pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps,
				      0, PAGE_IS_PRESENT, PAGE_IS_PRESENT, vec,
				      2, NULL, NULL),
			 32);
	ck_assert_int_eq(pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps,
				      0, PAGE_IS_PRESENT, PAGE_IS_PRESENT, vec,
				      2, stop_fn, &calls),
			 -ECANCELED);
	ck_assert_int_eq(calls, 1);
	close(pm);
	munmap(p, n * ps);
}
END_TEST

/* WP_ASYNC: scan-and-re-protect reports written pages once, then none. */
START_TEST(wp_scan_is_get_and_reset)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };
	size_t n = 3000, round, rounds = test_scaled(50, 5);
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *want = calloc(n, 1);
	struct page_region vec[64];
	struct tally t = { .base = (uintptr_t)p };
	int pm = pagemap_open(), fd;
	long r;

	ck_assert_int_eq(uffdwp_probe(&c), 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	fd = uffd_open(c.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(uffd_api(fd, ASYNC_UFFD_FEATURES, NULL), 0);
	ck_assert_int_eq(
		uffd_register(fd, p, n * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	/* Arm everything (never-touched pages get markers). */
	ck_assert_int_ge(pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps,
				      ASYNC_SCAN_FLAGS, ASYNC_SCAN_MASK,
				      ASYNC_SCAN_MASK, vec, 64, NULL, NULL),
			 0);
	t.seen = calloc(n, 1);
	for (round = 0; round < rounds; round++) {
		write_pattern(p, n, want, 7 + (unsigned)round);
		memset(t.seen, 0, n);
		r = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps,
				 ASYNC_SCAN_FLAGS, ASYNC_SCAN_MASK,
				 ASYNC_SCAN_MASK, vec, 64, tally_fn, &t);
		ck_assert_int_gt(r, 64);
		check_tally(&t, want, n);
		memset(t.seen, 0, n);
		r = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + n * ps,
				 ASYNC_SCAN_FLAGS, ASYNC_SCAN_MASK,
				 ASYNC_SCAN_MASK, vec, 64, tally_fn, &t);
		ck_assert_int_eq(r, 0);
	}
	close(fd);
	close(pm);
	free(t.seen);
	free(want);
	munmap(p, n * ps);
}
END_TEST

static Suite *pagemap_suite(void)
{
	Suite *s = suite_create("pagemap");
	TCase *get = tcase_create("get");
	TCase *wp = tcase_create("wp");

	tcase_set_timeout(get, 60);
	tcase_add_test(get, scan_reports_each_region_once);
	tcase_add_test(get, scan_callback_error_stops);
	suite_add_tcase(s, get);

	tcase_set_tags(wp, "async");
	tcase_set_timeout(wp, 60);
	tcase_add_test(wp, wp_scan_is_get_and_reset);
	suite_add_tcase(s, wp);
	return s;
}

/* Decided with raw calls: main() must not cache a probe for the forks. */
static bool async_available(void)
{
	int modes[] = { UFFDWP_UFFD_DEV, UFFDWP_UFFD_SYSCALL,
			UFFDWP_UFFD_USER_MODE_ONLY };
	uint64_t f = 0;
	size_t i;
	int fd;

	for (i = 0; i < 3; i++) {
		fd = uffd_open(modes[i], O_CLOEXEC);
		if (fd < 0)
			continue;
		if (uffd_api(fd, 0, &f))
			f = 0;
		close(fd);
		return f & UFFD_FEATURE_WP_ASYNC;
	}
	return false;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	struct pm_scan_arg a = { .size = sizeof(a) };
	int pm;

	test_check_sanitizer_setup();
	ps = page_size();
	pm = pagemap_open();
	if (pm < 0)
		test_skip("/proc/self/pagemap cannot be opened");
	a.start = a.end = 0;
	if (pagemap_scan_once(pm, &a) == -ENOTTY)
		test_skip("no PAGEMAP_SCAN ioctl (Linux 6.7+)");
	close(pm);
	if (!async_available())
		test_exclude(&ex, "async", "no UFFD_FEATURE_WP_ASYNC");
	return test_run(pagemap_suite(), &ex);
}
