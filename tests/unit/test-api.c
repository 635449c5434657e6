/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit suite: names, version, and the size-versioned structure contract of
 * uffdwp_probe() and uffdwp_defect_get() (bad input gets its documented
 * -errno and leaves the output untouched).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"

START_TEST(backend_names_round_trip)
{
	static const int all[] = { UFFDWP_BACKEND_AUTO,
				   UFFDWP_BACKEND_UFFD_ASYNC,
				   UFFDWP_BACKEND_UFFD_SYNC,
				   UFFDWP_BACKEND_SOFT_DIRTY,
				   UFFDWP_BACKEND_MPROTECT };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(*all); i++) {
		const char *n = uffdwp_backend_name(all[i]);

		ck_assert_ptr_nonnull(n);
		ck_assert_int_eq(uffdwp_backend_from_name(n), all[i]);
	}
	ck_assert_str_eq(uffdwp_backend_name(UFFDWP_BACKEND_UFFD_ASYNC),
			 "uffd_async");
	ck_assert_str_eq(uffdwp_backend_name(UFFDWP_BACKEND_SOFT_DIRTY),
			 "soft_dirty");
	ck_assert_ptr_null(uffdwp_backend_name(-1));
	ck_assert_ptr_null(uffdwp_backend_name(UFFDWP_BACKEND_SLOTS));
}
END_TEST

START_TEST(backend_env_spellings)
{
	/* The spellings UFFDWP_BACKEND documents. */
	ck_assert_int_eq(uffdwp_backend_from_name("async"),
			 UFFDWP_BACKEND_UFFD_ASYNC);
	ck_assert_int_eq(uffdwp_backend_from_name("sync"),
			 UFFDWP_BACKEND_UFFD_SYNC);
	ck_assert_int_eq(uffdwp_backend_from_name("soft-dirty"),
			 UFFDWP_BACKEND_SOFT_DIRTY);
	ck_assert_int_eq(uffdwp_backend_from_name("uffd-async"),
			 UFFDWP_BACKEND_UFFD_ASYNC);
	ck_assert_int_eq(uffdwp_backend_from_name("mprotect"),
			 UFFDWP_BACKEND_MPROTECT);
	ck_assert_int_eq(uffdwp_backend_from_name(NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_backend_from_name(""), -EINVAL);
	ck_assert_int_eq(uffdwp_backend_from_name("asyncx"), -EINVAL);
	ck_assert_int_eq(uffdwp_backend_from_name("ASYNC"), -EINVAL);
	ck_assert_int_eq(uffdwp_backend_from_name("soft"), -EINVAL);
}
END_TEST

START_TEST(other_names)
{
	ck_assert_str_eq(uffdwp_uffd_mode_name(UFFDWP_UFFD_DEV),
			 "dev_userfaultfd");
	ck_assert_str_eq(uffdwp_uffd_mode_name(UFFDWP_UFFD_USER_MODE_ONLY),
			 "user_mode_only");
	ck_assert_ptr_null(uffdwp_uffd_mode_name(4));
	ck_assert_str_eq(uffdwp_defect_status_name(UFFDWP_DEFECT_PRESENT),
			 "present");
	ck_assert_str_eq(
		uffdwp_defect_status_name(UFFDWP_DEFECT_NOT_APPLICABLE),
		"not-applicable");
	ck_assert_ptr_null(uffdwp_defect_status_name(-1));
}
END_TEST

START_TEST(version_matches_header)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", UFFDWP_VERSION_MAJOR,
		 UFFDWP_VERSION_MINOR, UFFDWP_VERSION_MICRO);
	ck_assert_str_eq(uffdwp_version(), want);
	ck_assert_str_eq(uffdwp_version(), UFFDWP_VERSION_STRING);
}
END_TEST

START_TEST(probe_null)
{
	ck_assert_int_eq(uffdwp_probe(NULL), -EINVAL);
}
END_TEST

START_TEST(probe_sz_too_small_for_sz)
{
	struct uffdwp_caps c;

	memset(&c, 0x5a, sizeof(c));
	c.sz = sizeof(size_t) - 1;
	ck_assert_int_eq(uffdwp_probe(&c), -EINVAL);
	c.sz = 0;
	ck_assert_int_eq(uffdwp_probe(&c), -EINVAL);
	/* Nothing but sz was ever written. */
	ck_assert_int_eq(((unsigned char *)&c)[sizeof(size_t)], 0x5a);
}
END_TEST

/* A caller built against a newer header, with a longer structure. */
struct caps_newer {
	struct uffdwp_caps c;
	uint64_t future_field;
};

START_TEST(probe_larger_nonzero_tail)
{
	struct caps_newer n;

	memset(&n, 0, sizeof(n));
	n.c.sz = sizeof(n);
	n.c.thp = 12345;
	n.future_field = 1;
	ck_assert_int_eq(uffdwp_probe(&n.c), -E2BIG);
	ck_assert_int_eq(n.c.thp, 12345); /* untouched on failure */
}
END_TEST

START_TEST(probe_larger_zero_tail)
{
	struct caps_newer n;

	memset(&n, 0, sizeof(n));
	n.c.sz = sizeof(n);
	ck_assert_int_eq(uffdwp_probe(&n.c), 0);
	ck_assert_uint_eq(n.c.sz, sizeof(n)); /* the caller's sz is kept */
	ck_assert_ptr_nonnull(n.c.kernel_release);
	ck_assert_uint_eq(n.future_field, 0);
}
END_TEST

START_TEST(probe_smaller_filled_up_to_sz)
{
	struct uffdwp_caps full = { .sz = sizeof(full) }, old;
	size_t cut = offsetof(struct uffdwp_caps, uffd_mode), i;

	ck_assert_int_eq(uffdwp_probe(&full), 0);
	/* An older caller whose structure ended before uffd_mode. */
	memset(&old, 0x5a, sizeof(old));
	old.sz = cut;
	ck_assert_int_eq(uffdwp_probe(&old), 0);
	ck_assert_uint_eq(old.sz, cut);
	ck_assert_ptr_eq(old.kernel_release, full.kernel_release);
	ck_assert_ptr_eq(old.machine, full.machine);
	for (i = cut; i < sizeof(old); i++)
		ck_assert_msg(((unsigned char *)&old)[i] == 0x5a,
			      "byte %zu past sz was written", i);
}
END_TEST

START_TEST(probe_cached_and_consistent)
{
	struct uffdwp_caps a = { .sz = sizeof(a) }, b = { .sz = sizeof(b) };

	ck_assert_int_eq(uffdwp_probe(&a), 0);
	ck_assert_int_eq(uffdwp_probe(&b), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	ck_assert_ptr_nonnull(a.auto_reason);
	ck_assert_ptr_nonnull(a.uffd_mode_limits);
	ck_assert_uint_gt(a.n_defects, 0);
}
END_TEST

START_TEST(defect_args)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };
	struct uffdwp_defect d;
	size_t i;

	ck_assert_int_eq(uffdwp_defect_get(0, NULL), -EINVAL);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(uffdwp_defect_get(0, &d), -EINVAL); /* sz 0 */
	ck_assert_int_eq(uffdwp_probe(&c), 0);
	d.sz = sizeof(d);
	ck_assert_int_eq(uffdwp_defect_get(c.n_defects, &d), -ENOENT);
	ck_assert_ptr_null(d.id); /* untouched */
	for (i = 0; i < c.n_defects; i++) {
		memset(&d, 0, sizeof(d));
		d.sz = sizeof(d);
		ck_assert_int_eq(uffdwp_defect_get(i, &d), 0);
		ck_assert_ptr_nonnull(d.id);
		ck_assert_ptr_nonnull(d.summary);
		ck_assert_ptr_nonnull(d.detection);
		ck_assert_ptr_nonnull(d.action);
		ck_assert_ptr_nonnull(d.observed);
		ck_assert_ptr_nonnull(uffdwp_defect_status_name(d.status));
	}
}
END_TEST

START_TEST(defect_ids_unique_and_required)
{
	static const char *const required[] = {
		"stale-tlb-cow-uffd-wp",
		"stale-tlb-cow-soft-dirty",
		"pagemap-scan-no-soft-dirty-category",
		"pagemap-scan-stale-walk-end",
		"pagemap-scan-zapped-reported-clean",
		"mremap-stale-uffd-wp",
		"arm64-no-uffd-wp",
	};
	struct uffdwp_caps c = { .sz = sizeof(c) };
	struct uffdwp_defect d = { .sz = sizeof(d) };
	size_t i, j, found;

	ck_assert_int_eq(uffdwp_probe(&c), 0);
	for (i = 0; i < sizeof(required) / sizeof(*required); i++) {
		found = 0;
		for (j = 0; j < c.n_defects; j++) {
			ck_assert_int_eq(uffdwp_defect_get(j, &d), 0);
			found += !strcmp(d.id, required[i]);
		}
		ck_assert_msg(found == 1, "defect %s listed %zu times",
			      required[i], found);
	}
}
END_TEST

START_TEST(defect_smaller_struct)
{
	struct uffdwp_defect d;
	size_t cut = offsetof(struct uffdwp_defect, status);

	memset(&d, 0x5a, sizeof(d));
	d.sz = cut;
	ck_assert_int_eq(uffdwp_defect_get(0, &d), 0);
	ck_assert_ptr_nonnull(d.id);
	ck_assert_int_eq(((unsigned char *)&d)[cut], 0x5a);
}
END_TEST

/* UFFDWP_OPTS sets sz and zeroes what it is not given; a caller built
 * against an older, shorter structure has its missing fields read as zero,
 * whatever lies past its sz. */
START_TEST(opts_macro_and_older_caller)
{
	UFFDWP_OPTS(uffdwp_ctx_opts, o, .backend = UFFDWP_BACKEND_MPROTECT);
	UFFDWP_OPTS(uffdwp_ctx_opts, bad, .flags = 1u << 31);
	struct uffdwp_ctx_opts old;
	struct uffdwp_ctx *ctx = NULL;

	ck_assert_uint_eq(o.sz, sizeof(o));
	ck_assert_int_eq(o.backend, UFFDWP_BACKEND_MPROTECT);
	ck_assert_uint_eq(o.handler_threads, 0);
	ck_assert_uint_eq(o.flags, 0);
	ck_assert_int_eq(uffdwp_ctx_new(&bad, &ctx), -EINVAL);
	ck_assert_ptr_null(ctx);

	memset(&old, 0x5a, sizeof(old));
	old.sz = offsetof(struct uffdwp_ctx_opts, flags);
	old.backend = UFFDWP_BACKEND_MPROTECT;
	old.handler_threads = 0;
	ck_assert_int_eq(uffdwp_ctx_new(&old, &ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(ctx), UFFDWP_BACKEND_MPROTECT);
	uffdwp_ctx_free(ctx);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *names = tcase_create("names");
	TCase *structs = tcase_create("structs");

	tcase_add_test(names, backend_names_round_trip);
	tcase_add_test(names, backend_env_spellings);
	tcase_add_test(names, other_names);
	tcase_add_test(names, version_matches_header);
	suite_add_tcase(s, names);

	/* The probe runs for real here: valgrind's setup takes longer. */
	tcase_set_timeout(structs, 30);
	tcase_add_test(structs, probe_null);
	tcase_add_test(structs, probe_sz_too_small_for_sz);
	tcase_add_test(structs, probe_larger_nonzero_tail);
	tcase_add_test(structs, probe_larger_zero_tail);
	tcase_add_test(structs, probe_smaller_filled_up_to_sz);
	tcase_add_test(structs, probe_cached_and_consistent);
	tcase_add_test(structs, defect_args);
	tcase_add_test(structs, defect_ids_unique_and_required);
	tcase_add_test(structs, defect_smaller_struct);
	tcase_add_test(structs, opts_macro_and_older_caller);
	suite_add_tcase(s, structs);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };

	test_check_sanitizer_setup();
	return test_run(api_suite(), &ex);
}
