/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by the check-based test binaries: skipping (exit 77 with one line
 * saying what is missing), excluding tagged cases the kernel cannot run (and
 * saying so), the sanitizer-setup guard, and a known defect's status.
 */
#ifndef UFFDWP_TESTS_COMMON_H
#define UFFDWP_TESTS_COMMON_H

#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uffdwp/uffdwp.h>

#define EXIT_SKIP 77

static inline void __attribute__((noreturn, format(printf, 1, 2)))
test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(EXIT_SKIP);
}

/*
 * `meson test --setup asan` sets UFFDWP_REQUIRE_SANITIZER: a binary built
 * without the sanitizers must then fail loudly instead of passing unchecked.
 */
static inline void test_check_sanitizer_setup(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	if (getenv("UFFDWP_REQUIRE_SANITIZER")) {
		fprintf(stderr,
			"this build has no sanitizers: configure it with -Db_sanitize=address,undefined\n");
		exit(99);
	}
#endif
}

/*
 * Scale a test size for slow environments: the kernel matrix runs under
 * software emulation with UFFDWP_TEST_SCALE (0.1 there), where faults are
 * ~10x and bulk memory ~50x slower. Never below @min, so what a test
 * asserts keeps its meaning.
 */
static inline size_t test_scaled(size_t n, size_t min)
{
	const char *s = getenv("UFFDWP_TEST_SCALE");
	double f = s ? strtod(s, NULL) : 1.0;
	size_t v;

	if (!(f > 0) || f > 1)
		f = 1.0;
	v = (size_t)((double)n * f);
	return v < min ? min : v;
}

/* Tags excluded so far, as check's space-separated list, and why. */
struct test_exclusions {
	char tags[256];
	int count;
};

static inline void test_exclude(struct test_exclusions *ex, const char *tag,
				const char *why)
{
	size_t len = strlen(ex->tags);

	snprintf(ex->tags + len, sizeof(ex->tags) - len, "%s%s", len ? " " : "",
		 tag);
	printf("excluded [%s]: %s\n", tag, why);
	ex->count++;
}

/* True when check forks each test, so each starts from a fresh process. */
static inline bool test_forking(void)
{
	const char *f = getenv("CK_FORK");

	return !f || strcmp(f, "no");
}

/* A group of tests run on one backend: one check TCase. */
struct test_group {
	const char *group;
	int timeout;
	const TTest *tests[16]; /* NULL-terminated */
};

/*
 * Add @n groups as TCases named "<group>-<tag>" and tagged @tag (so a
 * backend the kernel lacks is excluded by its name), each test looped once
 * with _i = @i.
 */
static inline void test_add_groups(Suite *s, const char *tag, int i,
				   const struct test_group *groups, size_t n)
{
	/* check keeps the name pointers: static storage (a leak checker
	 * would count malloc'ed ones once the suite is freed). */
	static char names[64][48];
	static size_t used;
	size_t g, t;
	TCase *tc;

	for (g = 0; g < n; g++) {
		if (used == sizeof(names) / sizeof(names[0]))
			abort();
		snprintf(names[used], sizeof(names[0]), "%s-%s",
			 groups[g].group, tag);
		tc = tcase_create(names[used++]);
		tcase_set_tags(tc, tag);
		tcase_set_timeout(tc, groups[g].timeout);
		for (t = 0; groups[g].tests[t]; t++)
			tcase_add_loop_test(tc, groups[g].tests[t], i, i + 1);
		suite_add_tcase(s, tc);
	}
}

/*
 * Run @s with the exclusions applied; exit 77 if nothing was left to run.
 * Returns the process exit status.
 */
static inline int test_run(Suite *s, const struct test_exclusions *ex)
{
	SRunner *sr = srunner_create(s);
	int failed, run;

	srunner_run_tagged(sr, NULL, NULL, NULL, ex->tags[0] ? ex->tags : NULL,
			   CK_ENV);
	failed = srunner_ntests_failed(sr);
	run = srunner_ntests_run(sr);
	srunner_free(sr);
	if (run == 0)
		test_skip("every case was excluded on this kernel");
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The status the probe reports for the kernel defect @id; aborts if unknown. */
static inline int test_defect_status(const char *id)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };
	struct uffdwp_defect d = { .sz = sizeof(d) };
	size_t i;

	ck_assert_int_eq(uffdwp_probe(&c), 0);
	for (i = 0; i < c.n_defects; i++) {
		ck_assert_int_eq(uffdwp_defect_get(i, &d), 0);
		if (!strcmp(d.id, id))
			return d.status;
	}
	ck_abort_msg("no defect %s", id);
	return -1;
}

#endif /* UFFDWP_TESTS_COMMON_H */
