/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_async's snapshot window (see backend-uffd-async.c and its header):
 * a snapshot needs each writer held before its first write, which
 * WP_ASYNC never does, so for the window the range moves to a synchronous
 * userfaultfd (syncwp.h) and back afterwards. Unregistering drops every
 * uffd-wp bit, so each move runs behind a gate (gate.h: the range
 * read-only, writers waiting in a SIGSEGV handler), and zaps made while no
 * userfaultfd watches are found by presence (zaps.h). The range's state
 * across the moves is enum async_watch.
 */
#include <stdlib.h>
#include <unistd.h>

#include "backend-uffd-async.h"
#include "gate.h"
#include "segv.h"
#include "snapshot.h"
#include "testhooks.h"
#include "sys-uffd.h"
#include "vma.h"

/* The one writer of a range's watch state (enum async_watch). */
static void watch_set(struct region *r, enum async_watch to)
{
	ar(r)->watch = to;
}

/*
 * A range on no userfaultfd: whatever was written since is unknown, so
 * every page counts as written, now and until it is armed again (tried at
 * each collect). Writes before the arm are in this report; those after it
 * the scans see.
 */
static int mark_mapped(void *arg, uintptr_t lo, uintptr_t hi)
{
	struct region *r = arg;

	dirtymap_set_range(&r->recorded, region_page(r, lo),
			   (hi - lo) / page_size());
	return 0;
}

static int movez_note(struct async_state *s, struct region *r, bool first)
{
	if (!s->movez_ready) {
		int ret = zaps_init(&s->movez, true);

		if (ret)
			return ret;
		s->movez_ready = true;
	}
	return zaps_note(&s->movez, r, first);
}

/* --- the range's own mappings, across moves --------------------------- */

static void own_free(struct region *r)
{
	free(ar(r)->own);
	ar(r)->own = NULL;
	ar(r)->nown = 0;
}

static int own_add(struct region *r, uintptr_t lo, uintptr_t hi)
{
	struct span *v;

	if (ar(r)->nown && ar(r)->own[ar(r)->nown - 1].hi == lo) {
		ar(r)->own[ar(r)->nown - 1].hi = hi;
		return 0;
	}
	v = reallocarray(ar(r)->own, ar(r)->nown + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	ar(r)->own = v;
	ar(r)->own[ar(r)->nown++] = (struct span){ lo, hi };
	return 0;
}

static int own_region(const struct page_region *vec, size_t n, void *arg)
{
	struct region *r = arg;
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < n; i++)
		ret = own_add(r, vec[i].start, vec[i].end);
	return ret;
}

/*
 * Before a move: the parts of @r registered with the asynchronous
 * userfaultfd (PAGE_IS_WPALLOWED, a read-only scan), which are the range's
 * own. What the program unmapped is not, nor what was mapped in its place
 * since (by the library itself, perhaps): registering, gating or
 * snapshotting that would be wrong, and gating a page the gate's closer
 * writes would hold it forever.
 */
static int own_scan(struct async_state *s, struct region *r)
{
	long n;

	own_free(r);
	n = pagemap_scan(s->pagemap, r->start, r->end, 0, PAGE_IS_WPALLOWED,
			 PAGE_IS_WPALLOWED, s->vec, SCAN_VEC, own_region, r);
	if (n < 0) {
		own_free(r);
		return (int)n;
	}
	return 0;
}

/* Less the pages unmapped while on the synchronous userfaultfd; on
 * error the spans stay as they were. */
static int own_drop_gone(struct region *r)
{
	struct span *old = ar(r)->own;
	size_t nold = ar(r)->nown, i, a, b, end, ps = page_size();
	int ret = 0;

	ar(r)->own = NULL;
	ar(r)->nown = 0;
	for (i = 0; !ret && i < nold; i++) {
		a = region_page(r, old[i].lo);
		end = region_page(r, old[i].hi);
		while (!ret && a < end) {
			b = dirtymap_next_set(&r->gone, a);
			if (b > end)
				b = end;
			if (a < b)
				ret = own_add(r, r->start + a * ps,
					      r->start + b * ps);
			a = dirtymap_next_clear(&r->gone, b);
		}
	}
	if (ret) {
		free(ar(r)->own);
		ar(r)->own = old;
		ar(r)->nown = nold;
		return ret;
	}
	free(old);
	return 0;
}

/* For gate_prepare(): never NULL (which would mean the whole range), so
 * a range with nothing of its own left gates nothing. */
static const struct span *own_spans(const struct region *r)
{
	static const struct span none;

	return ar(r)->own ? ar(r)->own : &none;
}

enum own_op { OWN_REGISTER, OWN_PROTECT, OWN_UNREGISTER };

/* @op on each of @r's own spans with @fd; the first error stops it. */
static int own_each(struct region *r, int fd, enum own_op op)
{
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < ar(r)->nown; i++) {
		void *lo = (void *)ar(r)->own[i].lo;
		size_t len = ar(r)->own[i].hi - ar(r)->own[i].lo;

		if (op == OWN_REGISTER)
			ret = uffd_register(fd, lo, len,
					    UFFDIO_REGISTER_MODE_WP, NULL);
		else if (op == OWN_PROTECT)
			ret = uffd_writeprotect(fd, lo, len,
						UFFDIO_WRITEPROTECT_MODE_WP);
		else
			uffd_unregister(fd, lo, len);
	}
	return ret;
}

static int register_own(int fd, struct region *r)
{
	if (uffdwp_test_hooks.async_arm_fails > 1)
		return -ENOMEM;
	return own_each(r, fd, OWN_REGISTER);
}

/* Off the synchronous userfaultfd; its blocked writers retry (the kernel
 * wakes only MISSING waiters on unregister). */
static void unregister_sync(struct sync_state *ss, struct region *r)
{
	own_each(r, ss->uffd, OWN_UNREGISTER);
	syncwp_unregistered(ss, r->start, r->end - r->start);
}

/* Record as written every page of @r's own spans still mapped. */
static int own_each_mapped(struct region *r)
{
	size_t i;
	int ret;

	for (i = 0; i < ar(r)->nown; i++) {
		ret = vma_each(ar(r)->own[i].lo, ar(r)->own[i].hi, mark_mapped,
			       r);
		if (ret && ret != -EFAULT)
			return ret;
	}
	return 0;
}

/* Back from the synchronous userfaultfd (or from none) to the
 * asynchronous one: the range's own spans, registered and armed. */
static int arm_async(struct backend_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);
	int ret;

	if (uffdwp_test_hooks.async_arm_fails)
		return -ENOMEM;
	ret = register_own(s->uffd, r);
	if (!ret)
		ret = async_scan_region(ctx, r, false);
	if (ret)
		own_each(r, s->uffd, OWN_UNREGISTER);
	return ret;
}

/*
 * A range that stayed on the synchronous userfaultfd after a snapshot
 * (its move back found a thread blocking SIGSEGV): its instant is
 * uffd_sync's, a harvest that leaves every page protected.
 */
static int snap_begin_moved(struct backend_ctx *ctx,
			    struct uffdwp_snapshot *snap, struct region *r)
{
	return syncwp_harvest(st(ctx)->sync, &r, 1, snapshot_publish_instant,
			      snap);
}

int async_snap_begin(struct backend_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct async_state *s = st(ctx);
	struct region *r = snapshot_region(snap);
	struct sync_state *ss;
	bool ungated = false;
	struct gate g;
	int ret;

	if (r->memtype == MEM_FILE)
		return -EOPNOTSUPP; /* no synchronous write-protect for files */
	if (ar(r)->watch == WATCH_NONE)
		return -EBUSY; /* a failed move back: on no userfaultfd */
	if (ar(r)->watch == WATCH_SYNC)
		return snap_begin_moved(ctx, snap, r);
	if (!s->sync) {
		struct sync_env env = backend_sync_env(ctx);

		ret = syncwp_open(&env, s->uffd_mode, s->uffd_features, false,
				  1, &s->sync);
		if (ret)
			return ret;
	}
	ss = s->sync;
	ret = own_scan(s, r);
	if (!ret)
		ret = gate_prepare(&g, r->start, r->end, own_spans(r),
				   ar(r)->nown);
	if (ret) {
		own_free(r);
		return ret;
	}
	/* A thread that blocks SIGSEGV would die at the gate: move without
	 * one (also when /proc cannot tell), and count every page as
	 * written once, since a write between the two registrations is
	 * seen by neither. */
	ungated = segv_blocked_somewhere(SIGSEGV) != 0;
	ret = ungated ? 0 : gate_close(&g);
	if (ret)
		goto out;
	/* Writers are held. What they wrote goes to pending; presence is
	 * noted, since a zap from now until the synchronous userfaultfd
	 * watches would otherwise go unseen. */
	ret = async_scan_region(ctx, r, true);
	if (!ret)
		ret = movez_note(s, r, !s->check_zaps);
	if (ret)
		goto open;
	dirtymap_take(&r->pending, &r->recorded);
	own_each(r, s->uffd, OWN_UNREGISTER);
	ret = register_own(ss->uffd, r);
	if (!ret)
		ret = own_each(r, ss->uffd, OWN_PROTECT);
	if (ret) {
		unregister_sync(ss, r);
		/* Back where it was; anything written meanwhile was held by
		 * the gate, so arming again loses nothing. */
		if (arm_async(ctx, r))
			/* Reported whole until armed. */
			watch_set(r, WATCH_NONE);
		else
			own_free(r);
		goto open;
	}
	/* Zapped while unwatched: counted as written (into pending below,
	 * through the harvest of the publish). */
	movez_note(s, r, false);
	watch_set(r, WATCH_SYNC);
	if (ungated) {
		/* After the protect: from it on, the handler sees writes.
		 * The count goes to recorded, never straight to pending: a
		 * page the handler made writable since the protect is in
		 * neither, and only the harvest's re-protect of recorded,
		 * under the pause, closes it before the instant. */
		if (uffdwp_test_hooks.async_ungated_linger_us)
			usleep(uffdwp_test_hooks.async_ungated_linger_us);
		ret = own_each_mapped(r);
	}
	if (!ret)
		ret = syncwp_harvest(ss, &r, 1, snapshot_publish_instant, snap);
open:
	if (!ungated)
		gate_open(&g);
out:
	gate_release(&g);
	if (ret && ar(r)->watch == WATCH_ASYNC)
		own_free(r);
	return ret;
}

void async_snap_end(struct backend_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct async_state *s = st(ctx);
	struct region *r = snapshot_region(snap);
	struct sync_state *ss = s->sync;
	struct gate g;
	bool prepared, gated;

	/* Unmap events read by now are marked in gone (a munmap returns
	 * only once its event was read). */
	syncwp_quiesce_events(ss);
	prepared =
		!own_drop_gone(r) &&
		!gate_prepare(&g, r->start, r->end, own_spans(r), ar(r)->nown);
	/* Not with a thread that blocks SIGSEGV: it would die at the gate.
	 * The range then stays synchronous until a later snapshot ends
	 * without one. */
	gated = prepared && segv_blocked_somewhere(SIGSEGV) == 0 &&
		!gate_close(&g);
	syncwp_pause(ss);
	snapshot_unpublish(snap, ss);
	if (!gated) {
		/* No gate, no move: the range stays synchronous (correct,
		 * only slower) and is harvested as such. */
		syncwp_resume(ss);
		if (prepared)
			gate_release(&g);
		return;
	}
	movez_note(s, r, true);
	/* The writers blocked on the range retry now, and meet the gate. */
	unregister_sync(ss, r);
	syncwp_resume(ss);
	if (arm_async(ctx, r)) {
		/* Could not go back: stay synchronous, everything counted
		 * as written once (a superset loses nothing); or, if even
		 * that fails, on neither, reported whole until armed. */
		if (register_own(ss->uffd, r) ||
		    own_each(r, ss->uffd, OWN_PROTECT)) {
			unregister_sync(ss, r);
			watch_set(r, WATCH_NONE);
		} else {
			dirtymap_set_range(&r->recorded, 0, r->npages);
		}
	} else {
		watch_set(r, WATCH_ASYNC);
		own_free(r);
		movez_note(s, r, false);
		if (s->check_zaps)
			zaps_note(&s->zaps, r, true);
	}
	/* The synchronous side's zap watch is of no use here. */
	dirtymap_clear_range(&r->zapwatch, 0, r->npages);
	gate_open(&g);
	gate_release(&g);
}

static int rearm_unwatched(struct backend_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);
	int ret;

	/* Its own pages still mapped (no event tells of unmaps now). */
	ret = own_each_mapped(r);
	if (ret)
		return ret;
	dirtymap_take(&r->pending, &r->recorded);
	if (arm_async(ctx, r))
		return 0; /* still unwatched: reported whole again next time */
	watch_set(r, WATCH_ASYNC);
	own_free(r);
	if (s->check_zaps)
		return zaps_note(&s->zaps, r, true);
	return 0;
}

int async_moved_harvest(struct backend_ctx *ctx, struct region *r)
{
	switch (ar(r)->watch) {
	case WATCH_SYNC:
		return syncwp_harvest(st(ctx)->sync, &r, 1, NULL, NULL);
	case WATCH_NONE:
		return rearm_unwatched(ctx, r);
	case WATCH_ASYNC:
		break;
	}
	return -EINVAL; /* the scan's, not ours */
}

void async_moved_untrack(struct backend_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);

	if (ar(r)->watch == WATCH_SYNC) {
		/* Left on the synchronous userfaultfd by a failed move. */
		syncwp_pause(s->sync);
		unregister_sync(s->sync, r);
		syncwp_resume(s->sync);
	}
	watch_set(r, WATCH_ASYNC);
	own_free(r);
}
