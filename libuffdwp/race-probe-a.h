/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race probe A's insides, shared by the kernel probe (race-probe-a.c) and
 * its software model (race-probe-a-model.c, built for tests only).
 */
#ifndef UFFDWP_RACE_PROBE_A_H
#define UFFDWP_RACE_PROBE_A_H

#include <stdbool.h>
#include <stdint.h>

#include "race-probe.h"

/* CPU indexes of the roles (race_pin() takes them modulo CPUs online). */
enum {
	CPU_STALE = 0,
	CPU_FAULT = 1,
	CPU_PROT = 2,
	CPU_COW = 3,
};

/* What a run measured, kernel or model; a_judge() turns it into a verdict. */
struct a_tally {
	uint64_t cycles, faults, copies;
	uint64_t expected; /* increments the threads counted */
	uint64_t actual; /* the counter found in the hot page */
	bool evict_bad; /* an eviction page read non-zero */
	uint64_t evict_off, evict_val;
	int err; /* first error that ended the run early, or 0 */
	const char *err_what;
	const char *label; /* "uffd_sync", "the software model", ... */
	const char *note; /* caveat appended to a pass, or NULL */
};

/*
 * The verdict, shared by the kernel probe and the model so that what the
 * broken model proves (a loss is seen and reported) holds for the kernel
 * probe too. A loss wins over every other outcome; a pass needs counters.
 */
void a_judge(struct race_run *run, const struct a_tally *t);

void a_ns_sleep(uint64_t ns);
/* Sleep until @deadline (now_ns() clock) or until *@flag is set. */
void a_wait_until(uint64_t deadline, const int *flag);

static inline bool stopping(const int *flag)
{
	return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

#ifdef UFFDWP_TESTING
/* RACE_MODEL and RACE_MODEL_BROKEN (race-probe-a-model.c). */
int a_model(struct race_run *run, uint64_t t0);
#endif

#endif /* UFFDWP_RACE_PROBE_A_H */
