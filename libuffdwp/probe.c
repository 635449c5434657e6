/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffdwp_probe(): runs the functional probes once per process, chooses what
 * AUTO would use, and hands out copies of the cached result.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "probe.h"

/* The order AUTO prefers: exact and cheapest first. */
static const int auto_order[] = {
	UFFDWP_BACKEND_UFFD_ASYNC,
	UFFDWP_BACKEND_UFFD_SYNC,
	UFFDWP_BACKEND_SOFT_DIRTY,
	UFFDWP_BACKEND_MPROTECT,
};

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe_result *probed; /* published once, never freed */

/*
 * The stale-TLB defects are decided only by race probe A, too costly to run
 * implicitly: its latest verdicts live here, beside the immutable probe
 * result. Their strings stay valid until the next uffdwp_race_probe().
 */
static pthread_mutex_t race_note_lock = PTHREAD_MUTEX_INITIALIZER;
static struct defect_state race_note[2];
static bool race_noted[2];

void defects_note_race(const struct uffdwp_race_result *res)
{
	int idx = res->mechanism == UFFDWP_RACE_SOFT_DIRTY ? 1 : 0;
	int status;

	if (res->probe != UFFDWP_RACE_PROBE_A)
		return;
	if (res->verdict == UFFDWP_RACE_FAIL)
		status = UFFDWP_DEFECT_PRESENT;
	else if (res->verdict == UFFDWP_RACE_INCONCLUSIVE)
		status = UFFDWP_DEFECT_UNKNOWN;
	else
		status = UFFDWP_DEFECT_ABSENT;
	pthread_mutex_lock(&race_note_lock);
	/* Two uffd mechanisms share one entry: a failure sticks. */
	if (!(race_noted[idx] &&
	      race_note[idx].status == UFFDWP_DEFECT_PRESENT)) {
		race_note[idx].status = status;
		snprintf(race_note[idx].observed,
			 sizeof(race_note[idx].observed),
			 "race probe A on %s: %s: %s",
			 uffdwp_race_mechanism_name(res->mechanism),
			 uffdwp_race_verdict_name(res->verdict), res->why);
		race_noted[idx] = true;
	}
	pthread_mutex_unlock(&race_note_lock);
}

static void choose_auto(struct probe_result *r)
{
	struct uffdwp_caps *c = &r->caps;
	size_t i, off = 0;
	int b;

	c->auto_backend = UFFDWP_BACKEND_AUTO;
	r->auto_reason[0] = 0;
	for (i = 0; i < ARRAY_SIZE(auto_order); i++) {
		b = auto_order[i];
		if (c->backend[b].usable) {
			c->auto_backend = b;
			break;
		}
		off += (size_t)snprintf(r->auto_reason + off,
					sizeof(r->auto_reason) - off,
					"%s%s: %s", off ? "; " : "",
					uffdwp_backend_name(b), r->reason[b]);
		if (off >= sizeof(r->auto_reason))
			off = sizeof(r->auto_reason) - 1;
	}
	if (c->auto_backend == UFFDWP_BACKEND_AUTO)
		snprintf(r->auto_reason + off, sizeof(r->auto_reason) - off,
			 "%sno backend is usable", off ? "; " : "");
	else if (!off)
		snprintf(r->auto_reason, sizeof(r->auto_reason),
			 "%s is the best backend and it works here",
			 uffdwp_backend_name(c->auto_backend));
	else
		snprintf(r->auto_reason + off, sizeof(r->auto_reason) - off,
			 "; so %s", uffdwp_backend_name(c->auto_backend));
	c->auto_reason = r->auto_reason;
}

static int run_probe(struct probe_result *r)
{
	struct uffdwp_caps *c = &r->caps;
	struct utsname u;
	int ret, b;

	c->sz = sizeof(*c);
	if (uname(&u) == 0) {
		snprintf(r->release, sizeof(r->release), "%s", u.release);
		snprintf(r->machine, sizeof(r->machine), "%s", u.machine);
	}
	c->kernel_release = r->release;
	c->machine = r->machine;

	/* Memory first: the async probe needs to know PAGEMAP_SCAN. */
	ret = probe_memory(r);
	if (!ret)
		ret = probe_uffd(r);
	if (ret)
		return ret;
	c->backend[UFFDWP_BACKEND_UFFD_ASYNC].usable = r->uffd_async;
	if (c->uffd_mode == UFFDWP_UFFD_NONE) {
		textf(r->reason[UFFDWP_BACKEND_UFFD_ASYNC],
		      "no userfaultfd: %s", r->blocked);
		textf(r->reason[UFFDWP_BACKEND_UFFD_SYNC], "no userfaultfd: %s",
		      r->blocked);
	}
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++)
		c->backend[b].reason = r->reason[b];
	choose_auto(r);

	ret = probe_defects(r);
	if (ret)
		return ret;
	c->n_defects = DEFECT_COUNT;
	return 0;
}

/* The cached result, probing on first use; NULL with *err on failure. */
static const struct probe_result *probe_get(int *err)
{
	struct probe_result *r;

	r = __atomic_load_n(&probed, __ATOMIC_ACQUIRE);
	if (likely(r))
		return r;

	pthread_mutex_lock(&probe_lock);
	r = probed;
	if (!r) {
		r = calloc(1, sizeof(*r));
		*err = r ? run_probe(r) : -ENOMEM;
		if (*err) {
			free(r);
			r = NULL;
		} else {
			__atomic_store_n(&probed, r, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&probe_lock);
	return r;
}

UFFDWP_EXPORT int uffdwp_probe(struct uffdwp_caps *caps)
{
	const struct probe_result *r;
	int err;

	/* Validate before the (costly) first probe. */
	err = sz_check(caps, sizeof(*caps));
	if (err)
		return err;
	r = probe_get(&err);
	if (!r)
		return err;
	sz_copy_out(caps, &r->caps, sizeof(r->caps));
	return 0;
}

UFFDWP_EXPORT int uffdwp_defect_get(size_t idx, struct uffdwp_defect *defect)
{
	const struct probe_result *r;
	const struct defect_desc *d;
	struct uffdwp_defect out;
	int err;

	err = sz_check(defect, sizeof(*defect));
	if (err)
		return err;
	r = probe_get(&err);
	if (!r)
		return err;
	d = defect_desc(idx);
	if (!d)
		return -ENOENT;
	out = (struct uffdwp_defect){
		.sz = sizeof(out),
		.id = d->id,
		.summary = d->summary,
		.status = r->defect[idx].status,
		.detection = d->detection,
		.observed = r->defect[idx].observed,
		.action = d->action,
	};
	if ((idx == DEFECT_STALE_TLB_UFFD_WP ||
	     idx == DEFECT_STALE_TLB_SOFT_DIRTY) &&
	    out.status != UFFDWP_DEFECT_NOT_APPLICABLE) {
		int k = idx == DEFECT_STALE_TLB_SOFT_DIRTY;

		pthread_mutex_lock(&race_note_lock);
		if (race_noted[k]) {
			out.status = race_note[k].status;
			out.observed = race_note[k].observed;
		}
		pthread_mutex_unlock(&race_note_lock);
	}
	sz_copy_out(defect, &out, sizeof(out));
	return 0;
}
