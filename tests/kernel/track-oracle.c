/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: pre-copy convergence and transact oracles on every
 * backend, and the broken protocols they catch (track-main.c).
 */
#include "track-common.h"

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

void track_oracle_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "oracle",
		  120,
		  { converge_random, converge_sequential, converge_hotspot_zap,
		    converge_random_zap, transact_counters } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}

void track_broken_cases(Suite *s)
{
	TCase *hook = tcase_create("broken-protocol");
	TCase *zaps = tcase_create("async-zap-check");

	tcase_set_tags(hook, "uffd_sync");
	tcase_set_timeout(hook, 300);
	tcase_add_test(hook, broken_sync_protocol_is_caught);
	suite_add_tcase(s, hook);

	tcase_set_tags(zaps, "uffd_async");
	tcase_set_timeout(zaps, 120);
	tcase_add_test(zaps, async_zap_check);
	suite_add_tcase(s, zaps);
}
