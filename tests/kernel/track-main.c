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
 *
 * Sources: track-oracle.c (the oracles and what they catch),
 * track-input.c (bad input), track-events.c (address-space events),
 * track-fork.c (fork), track-kinds.c (memory kinds), track-ctx.c (context
 * arguments, SIGSEGV chaining), track-common.c, and this suite; main() is
 * tests/lib/test-main.c.
 */
#include "track-common.h"

const struct test_needs test_needs = {
	~0u,
	"no backend is usable on this kernel",
};

Suite *test_suite(void)
{
	Suite *s = suite_create("track");
	const char *name;
	size_t i;

	for (i = 0; i < ARRAY_LEN(backends); i++) {
		name = uffdwp_backend_name(backends[i]);
		track_oracle_cases(s, name, (int)i);
		track_input_cases(s, name, (int)i);
		track_events_cases(s, name, (int)i);
		track_fork_cases(s, name, (int)i);
		track_kinds_cases(s, name, (int)i);
	}
	track_ctx_cases(s);
	track_broken_cases(s);
	return s;
}
