/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy-before-write snapshot engine (invariant 3.4), as its driver
 * (ctx.c), the backends and the fault loop see it. The engine knows its
 * range, the synchronous userfaultfd it is published to, and its owner
 * through struct snapshot_owner: never a context, its lock or its backend.
 */
#ifndef UFFDWP_SNAPSHOT_H
#define UFFDWP_SNAPSHOT_H

#include "region.h"
#include "syncwp.h"

/* Who drives the snapshots (the context): their list and their end. */
struct snapshot_owner {
	/*
	 * The teardown, after the sink's end(): under the owner's lock,
	 * decide the outcome (snapshot_decide()), close the window the
	 * backend opened, give the pages back if it failed
	 * (snapshot_give_back()), and forget it (snapshot_unlink()).
	 */
	void (*close)(struct snapshot_owner *o, struct uffdwp_snapshot *snap);
	/* Running snapshots, under the owner's lock. */
	struct uffdwp_snapshot *snaps;
};

/* The caller's sink and options, checked and copied in. */
struct snapshot_args {
	struct uffdwp_sink sink;
	struct uffdwp_snapshot_opts opts;
};

/* -EINVAL or -E2BIG for a sink or options uffdwp_snapshot_start()
 * refuses. */
int snapshot_args_in(const struct uffdwp_sink *sink,
		     const struct uffdwp_snapshot_opts *opts,
		     struct snapshot_args *out);

/* A snapshot of [@addr, @addr + @len), not yet begun; -ENOMEM. */
int snapshot_new(struct snapshot_owner *owner, uintptr_t addr, size_t len,
		 const struct snapshot_args *args,
		 struct uffdwp_snapshot **out);
void snapshot_destroy(struct uffdwp_snapshot *snap);

/* The tracked range it lies in (before the instant), and back. */
void snapshot_bind(struct uffdwp_snapshot *snap, struct region *r);
struct region *snapshot_region(const struct uffdwp_snapshot *snap);

/*
 * At the instant, with fault resolution paused and every page of the range
 * protected: take the range's pending pages (they are the snapshot's own
 * for an incremental one, and consumed either way) and attach @snap to the
 * range as the observer of @s's fault loop (syncwp.h).
 */
void snapshot_publish(struct uffdwp_snapshot *snap, struct sync_state *s);

/* snapshot_publish() as syncwp_harvest()'s instant, @snap its argument. */
void snapshot_publish_instant(void *snap, struct sync_state *s);

/* With fault resolution paused: detach @snap from @s's fault loop. */
void snapshot_unpublish(struct uffdwp_snapshot *snap, struct sync_state *s);

/* After the instant: begin the sink. -errno (the snapshot failed with it)
 * if the sink refused; the owner then closes the window. */
int snapshot_open(struct uffdwp_snapshot *snap);

/* Start the copiers (on the owner's offload thread); they leave one count
 * for snapshot_launched() to drop. */
int snapshot_start_copiers(void *snap);

/* The starting call is done (its lock dropped): let the copiers finish.
 * False if none runs: the snapshot is over, and the caller destroys it. */
bool snapshot_launched(struct uffdwp_snapshot *snap);

/* Fail it (first error wins) with a #uffdwp_snapshot_cause. */
void snapshot_fail(struct uffdwp_snapshot *snap, int err, int cause);

/* For the owner's close(), under its lock: the outcome is final, waiters
 * go on; returns the error, or 0. */
int snapshot_decide(struct uffdwp_snapshot *snap);
/* A failed snapshot's consumed pages are pending again. */
void snapshot_give_back(struct uffdwp_snapshot *snap);

/* The owner's list (under the owner's lock). */
void snapshot_link(struct uffdwp_snapshot *snap);
void snapshot_unlink(struct uffdwp_snapshot *snap);
/* Fail every snapshot of @owner with -ECANCELED and @cause. */
void snapshot_cancel_all(struct snapshot_owner *owner, int cause);

#endif /* UFFDWP_SNAPSHOT_H */
