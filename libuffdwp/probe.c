/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffdwp_probe(): runs the functional probes once per process, chooses what
 * AUTO would use, and hands out copies of the cached result; and the
 * defect table's face over that result (uffdwp_defect_get(), and
 * defect_status() for the library's own decisions).
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
	if (!ret)
		ret = probe_sigbus(r);
	if (ret)
		return ret;
	c->uffd_sigbus_reason = r->sigbus_reason;
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

/* @r's status of defect @idx, with the race probe's latest verdict. */
static int status_of(const struct probe_result *r, size_t idx,
		     const char **observed)
{
	int status = r->defect[idx].status;

	*observed = r->defect[idx].observed;
	defect_race_overlay(idx, &status, observed);
	return status;
}

int defect_status(enum defect_id id)
{
	const struct probe_result *r;
	const char *observed;
	int err;

	r = probe_get(&err);
	if (!r || (size_t)id >= DEFECT_COUNT)
		return UFFDWP_DEFECT_UNKNOWN;
	return status_of(r, id, &observed);
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
		.detection = d->detection,
		.action = d->action,
	};
	out.status = status_of(r, idx, &out.observed);
	sz_copy_out(defect, &out, sizeof(out));
	return 0;
}
