/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffdwp_race_probe(): runs probes A, B and C (race-probe-[abc].c) on the
 * mechanisms usable here, shares the time budget among them, and folds the
 * verdicts into a report and into the defect table's stale-TLB entries.
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"
#include "race-probe.h"

#define DEFAULT_SECONDS 10.0

void race_why(struct uffdwp_race_result *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

void race_pin(unsigned int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 1)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu % (unsigned int)n, &set);
	/* Best effort: a cpuset may forbid it, the probe still runs. */
	sched_setaffinity(0, sizeof(set), &set);
}

int race_run(int probe, struct race_run *run)
{
	memset(run->out, 0, sizeof(*run->out));
	run->out->probe = probe;
	run->out->mechanism = run->mechanism;
	run->out->cpus = run->cpus;
	switch (probe) {
	case UFFDWP_RACE_PROBE_A:
		return race_probe_a(run);
	case UFFDWP_RACE_PROBE_B:
		return race_probe_b(run);
	case UFFDWP_RACE_PROBE_C:
		return race_probe_c(run);
	}
	return -EINVAL;
}

static bool usable(const struct uffdwp_caps *c, int mechanism)
{
	switch (mechanism) {
	case UFFDWP_RACE_UFFD_SYNC:
		return c->uffd_wp;
	case UFFDWP_RACE_UFFD_ASYNC:
		return c->backend[UFFDWP_BACKEND_UFFD_ASYNC].usable;
	case UFFDWP_RACE_SOFT_DIRTY:
		return c->soft_dirty;
	}
	return false;
}

/* Rank for the overall verdict: higher wins. */
static int rank(int verdict)
{
	switch (verdict) {
	case UFFDWP_RACE_FAIL:
		return 3;
	case UFFDWP_RACE_PASS_WEAK:
		return 2;
	case UFFDWP_RACE_PASS_STRONG:
		return 1;
	default:
		return 0;
	}
}

static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;

UFFDWP_EXPORT int uffdwp_race_probe(const struct uffdwp_race_opts *opts,
				    struct uffdwp_race_report *report)
{
	struct uffdwp_race_opts o = { .sz = sizeof(o) };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_race_report rep = { .sz = sizeof(rep) };
	struct {
		int probe, mechanism;
	} plan[UFFDWP_RACE_MAX_RESULTS];
	static const int mechs[] = { UFFDWP_RACE_UFFD_SYNC,
				     UFFDWP_RACE_UFFD_ASYNC,
				     UFFDWP_RACE_SOFT_DIRTY };
	struct race_run run;
	unsigned int n = 0, i, m;
	int ret, best = 0;

	ret = sz_check(report, sizeof(*report));
	if (ret)
		return ret;
	if (opts) {
		ret = sz_check(opts, sizeof(*opts));
		if (ret)
			return ret;
		sz_copy_in(&o, opts, sizeof(o));
	}
	if (o.seconds < 0 || o.seconds > 3600 || o.mechanism < 0 ||
	    o.mechanism > UFFDWP_RACE_SOFT_DIRTY || (o.probes & ~7u))
		return -EINVAL;
	if (!o.seconds)
		o.seconds = DEFAULT_SECONDS;
	if (!o.probes)
		o.probes = 7;
	ret = uffdwp_probe(&caps);
	if (ret)
		return ret;

	/* A and B per mechanism; C snapshots through sync write-protect. */
	for (m = 0; m < ARRAY_SIZE(mechs); m++) {
		if (o.mechanism && o.mechanism != mechs[m])
			continue;
		if (o.probes & UFFDWP_RACE_PROBE_A)
			plan[n++] = (typeof(plan[0])){ UFFDWP_RACE_PROBE_A,
						       mechs[m] };
		if (o.probes & UFFDWP_RACE_PROBE_B)
			plan[n++] = (typeof(plan[0])){ UFFDWP_RACE_PROBE_B,
						       mechs[m] };
	}
	if ((o.probes & UFFDWP_RACE_PROBE_C) &&
	    (!o.mechanism || o.mechanism == UFFDWP_RACE_UFFD_SYNC))
		plan[n++] = (typeof(plan[0])){ UFFDWP_RACE_PROBE_C,
					       UFFDWP_RACE_UFFD_SYNC };

	pthread_mutex_lock(&race_lock);
	for (i = 0; i < n; i++) {
		struct uffdwp_race_result *out = &rep.results[rep.n++];

		memset(&run, 0, sizeof(run));
		run.mechanism = plan[i].mechanism;
		run.variant = RACE_CORRECT;
		run.cpus = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
		run.out = out;
		if (!usable(&caps, run.mechanism)) {
			memset(out, 0, sizeof(*out));
			out->probe = plan[i].probe;
			out->mechanism = run.mechanism;
			out->cpus = run.cpus;
			race_why(out, "%s is not usable here",
				 uffdwp_race_mechanism_name(run.mechanism));
			continue;
		}
		/* Probes that cannot run leave their time to the others. */
		run.seconds = o.seconds / (n - i);
		ret = race_run(plan[i].probe, &run);
		if (ret) {
			pthread_mutex_unlock(&race_lock);
			return ret;
		}
		o.seconds -= out->seconds > o.seconds ? o.seconds :
							out->seconds;
		if (rank(out->verdict) > rank(best))
			best = out->verdict;
		defects_note_race(out);
	}
	pthread_mutex_unlock(&race_lock);
	/* A pass needs at least one probe that passed and none that failed:
	 * inconclusive runs are listed, not counted. */
	rep.verdict = best;
	sz_copy_out(report, &rep, sizeof(rep));
	return 0;
}
