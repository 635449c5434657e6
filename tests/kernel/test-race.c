/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: the stale-TLB race probes. The correct probes must pass
 * (or say why they cannot tell) on every mechanism this kernel has, and
 * each deliberately broken variant must fail within its time budget in at
 * least 19 of 20 runs: proof that a pass would have been a fail if the
 * loss were there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "race-probe.h"

static struct uffdwp_caps caps;
static unsigned int cpus;

static const char *show(const struct uffdwp_race_result *r)
{
	static char buf[400];

	snprintf(
		buf, sizeof(buf),
		"%s on %s: %s, %llu cycles, %llu faults, %llu copies, %llu checked, %llu lost: %s",
		uffdwp_race_probe_name(r->probe),
		uffdwp_race_mechanism_name(r->mechanism),
		uffdwp_race_verdict_name(r->verdict),
		(unsigned long long)r->cycles, (unsigned long long)r->faults,
		(unsigned long long)r->copy_events,
		(unsigned long long)r->checked, (unsigned long long)r->lost,
		r->why);
	return buf;
}

static struct uffdwp_race_result run_one(int probe, int mechanism, int variant,
					 double seconds)
{
	struct uffdwp_race_result out;
	struct race_run run = {
		.mechanism = mechanism,
		.variant = variant,
		.seconds = seconds,
		.cpus = cpus,
		.out = &out,
	};

	ck_assert_int_eq(race_run(probe, &run), 0);
	return out;
}

static bool mech_usable(int m)
{
	switch (m) {
	case UFFDWP_RACE_UFFD_SYNC:
		return caps.uffd_wp;
	case UFFDWP_RACE_UFFD_ASYNC:
		return caps.backend[UFFDWP_BACKEND_UFFD_ASYNC].usable;
	default:
		return caps.soft_dirty;
	}
}

/* _i: the mechanism. A pass, or an honest "cannot tell"; never a fail. */
START_TEST(correct_probes_pass)
{
	static const int probes[] = { UFFDWP_RACE_PROBE_A,
				      UFFDWP_RACE_PROBE_B };
	struct uffdwp_race_result r;
	size_t i;

	ck_assert_msg(mech_usable(_i), "excluded by tag, yet run");
	for (i = 0; i < 2; i++) {
		r = run_one(probes[i], _i, RACE_CORRECT, 2.0);
		printf("%s\n", show(&r));
		ck_assert_msg(r.verdict != UFFDWP_RACE_FAIL, "%s", show(&r));
		ck_assert_uint_eq(r.cpus, cpus);
		if (r.verdict == UFFDWP_RACE_PASS_WEAK && cpus < 3)
			ck_assert_msg(strstr(r.why, "CPU"),
				      "weak without naming the CPUs: %s",
				      r.why);
		/* B always has something to compare. */
		if (probes[i] == UFFDWP_RACE_PROBE_B)
			ck_assert_msg(r.verdict == UFFDWP_RACE_PASS_WEAK ||
					      r.verdict ==
						      UFFDWP_RACE_PASS_STRONG,
				      "%s", show(&r));
	}
}
END_TEST

START_TEST(snapshot_probe_passes)
{
	struct uffdwp_race_result r;

	r = run_one(UFFDWP_RACE_PROBE_C, UFFDWP_RACE_UFFD_SYNC, RACE_CORRECT,
		    2.0);
	printf("%s\n", show(&r));
	ck_assert_msg(r.verdict == UFFDWP_RACE_PASS_WEAK ||
			      r.verdict == UFFDWP_RACE_PASS_STRONG,
		      "%s", show(&r));
}
END_TEST

START_TEST(software_model_passes)
{
	struct uffdwp_race_result r;
	int i;

	for (i = 0; i < 20; i++) {
		r = run_one(UFFDWP_RACE_PROBE_A, UFFDWP_RACE_UFFD_SYNC,
			    RACE_MODEL, 0.3);
		ck_assert_msg(r.verdict != UFFDWP_RACE_FAIL, "%s", show(&r));
	}
	printf("%s\n", show(&r));
}
END_TEST

struct broken {
	const char *name;
	int probe, mechanism, variant;
	double seconds;
};

static const struct broken broken[] = {
	{ "software model, copy before every writer acknowledged",
	  UFFDWP_RACE_PROBE_A, UFFDWP_RACE_UFFD_SYNC, RACE_MODEL_BROKEN, 0.3 },
	{ "get then protect (non-atomic get-and-reset)", UFFDWP_RACE_PROBE_B,
	  UFFDWP_RACE_UFFD_ASYNC, RACE_GET_THEN_PROTECT, 0.5 },
	{ "writer through a second mapping", UFFDWP_RACE_PROBE_B,
	  UFFDWP_RACE_UFFD_ASYNC, RACE_ALIAS_WRITER, 0.5 },
	{ "unprotect before copy", UFFDWP_RACE_PROBE_C, UFFDWP_RACE_UFFD_SYNC,
	  RACE_UNPROTECT_BEFORE_COPY, 0.5 },
	{ "copy before the protect ioctl returned", UFFDWP_RACE_PROBE_C,
	  UFFDWP_RACE_UFFD_SYNC, RACE_COPY_BEFORE_PROTECT, 0.5 },
};

/* _i: a broken variant. Caught in at least 19 of 20 runs. */
START_TEST(broken_variant_is_caught)
{
	const struct broken *b = &broken[_i];
	struct uffdwp_race_result r, first_fail = { 0 };
	int i, fails = 0;

	for (i = 0; i < 20; i++) {
		r = run_one(b->probe, b->mechanism, b->variant, b->seconds);
		if (r.verdict == UFFDWP_RACE_FAIL && !fails++)
			first_fail = r;
	}
	printf("%s: caught %d of 20; first: %s\n", b->name, fails,
	       fails ? show(&first_fail) : "-");
	ck_assert_msg(fails >= 19, "%s: caught only %d of 20 (last: %s)",
		      b->name, fails, show(&r));
	ck_assert_uint_gt(first_fail.lost, 0);
}
END_TEST

/* The public entry: report, verdict, and the defect table updated. */
START_TEST(public_probe_and_defects)
{
	struct uffdwp_race_opts o = { .sz = sizeof(o), .seconds = 3 };
	struct uffdwp_race_report rep = { .sz = sizeof(rep) };
	struct uffdwp_defect d = { .sz = sizeof(d) };
	size_t i;
	bool seen = false;

	ck_assert_int_eq(uffdwp_race_probe(NULL, NULL), -EINVAL);
	o.probes = 8;
	ck_assert_int_eq(uffdwp_race_probe(&o, &rep), -EINVAL);
	o.probes = 0;
	o.seconds = -1;
	ck_assert_int_eq(uffdwp_race_probe(&o, &rep), -EINVAL);
	o.seconds = 3;
	ck_assert_int_eq(uffdwp_race_probe(&o, &rep), 0);
	ck_assert_uint_gt(rep.n, 0);
	ck_assert_int_ne(rep.verdict, UFFDWP_RACE_FAIL);
	for (i = 0; i < rep.n; i++)
		printf("%s\n", show(&rep.results[i]));
	for (i = 0; i < caps.n_defects; i++) {
		ck_assert_int_eq(uffdwp_defect_get(i, &d), 0);
		if (strcmp(d.id, "stale-tlb-cow-uffd-wp"))
			continue;
		seen = true;
		printf("defect %s: %s: %s\n", d.id,
		       uffdwp_defect_status_name(d.status), d.observed);
		if (caps.uffd_wp)
			ck_assert_ptr_nonnull(
				strstr(d.observed, "race probe A"));
	}
	ck_assert(seen);
}
END_TEST

static Suite *race_suite(void)
{
	Suite *s = suite_create("race");
	TCase *correct = tcase_create("correct");
	TCase *sens = tcase_create("sensitivity");
	size_t i;
	int m;

	for (m = UFFDWP_RACE_UFFD_SYNC; m <= UFFDWP_RACE_SOFT_DIRTY; m++) {
		TCase *tc = tcase_create(uffdwp_race_mechanism_name(m));

		tcase_set_tags(tc, uffdwp_race_mechanism_name(m));
		tcase_set_timeout(tc, 120);
		tcase_add_loop_test(tc, correct_probes_pass, m, m + 1);
		suite_add_tcase(s, tc);
	}
	tcase_set_timeout(correct, 120);
	tcase_add_test(correct, software_model_passes);
	tcase_add_test(correct, public_probe_and_defects);
	suite_add_tcase(s, correct);

	/* The model needs no kernel mechanism; the others are tagged with
	 * theirs, so a kernel without it excludes them and says so. */
	tcase_set_tags(sens, "sensitivity");
	tcase_set_timeout(sens, 120);
	tcase_add_loop_test(sens, broken_variant_is_caught, 0, 1);
	suite_add_tcase(s, sens);
	for (i = 1; i < sizeof(broken) / sizeof(broken[0]); i++) {
		static char tags[8][64];
		TCase *tc = tcase_create(broken[i].name);

		snprintf(tags[i], sizeof(tags[i]), "sensitivity %s",
			 uffdwp_race_mechanism_name(broken[i].mechanism));
		tcase_set_tags(tc, tags[i]);
		tcase_set_timeout(tc, 120);
		tcase_add_loop_test(tc, broken_variant_is_caught, (int)i,
				    (int)i + 1);
		suite_add_tcase(s, tc);
	}

	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	Suite *s;
	int m;

	test_check_sanitizer_setup();
	cpus = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	s = race_suite();
	if (caps.uffd_wp) {
		TCase *snap = tcase_create("snapshot");

		tcase_set_timeout(snap, 60);
		tcase_add_test(snap, snapshot_probe_passes);
		suite_add_tcase(s, snap);
	} else {
		printf("excluded [snapshot]: no synchronous userfaultfd write-protect\n");
	}
	for (m = UFFDWP_RACE_UFFD_SYNC; m <= UFFDWP_RACE_SOFT_DIRTY; m++)
		if (!mech_usable(m))
			test_exclude(&ex, uffdwp_race_mechanism_name(m),
				     "mechanism not usable on this kernel");
	/* 100 probe runs: on the host; the matrix runs the correct probes. */
	if (getenv("UFFDWP_IN_VM"))
		test_exclude(
			&ex, "sensitivity",
			"100 probe runs under emulation: the host run proves sensitivity");
	return test_run(s, &ex);
}
