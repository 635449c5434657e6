/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_sync: tracked pages are write-protected with UFFDIO_WRITEPROTECT; a
 * write blocks its thread and sends a message to the library's handler
 * threads (syncwp-handler.c), which record the page and unprotect it. In
 * the self-service mode (UFFDWP_CTX_SELF_SERVICE) the write raises SIGBUS
 * in the writing thread instead, which does the same itself
 * (syncwp-self.c).
 *
 * Collect protocol (invariant 3.3): take the resolve lock exclusively, which
 * pauses resolution (faulting writers wait in the queue); move the recorded
 * pages to pending; re-protect their runs through the wp batch and wait for
 * the flush; release. Faults queued meanwhile belong to the next epoch.
 *
 * The shared machinery (descriptor, handlers, population, the collect
 * itself) is in syncwp.c; this file is the backend's face.
 */
#include <stdlib.h>

#include "backend.h"
#include "segv.h"
#include "snapshot.h"
#include "syncwp.h"
#include "sys-uffd.h"

static struct sync_state *st(struct backend_ctx *ctx)
{
	return ctx->bdata;
}

static int sync_init(struct backend_ctx *ctx, const struct uffdwp_ctx_opts *o,
		     const struct uffdwp_caps *caps)
{
	struct sync_env env = backend_sync_env(ctx);
	struct sync_state *s;
	int ret;

	ret = syncwp_open(&env, caps->uffd_mode, caps->uffd_features,
			  o->flags & UFFDWP_CTX_SELF_SERVICE,
			  ctx->handler_threads, &s);
	if (ret)
		return ret;
	ctx->bdata = s;
	return 0;
}

static void sync_fini(struct backend_ctx *ctx, bool in_child)
{
	syncwp_close(st(ctx), in_child);
	if (!in_child)
		ctx->bdata = NULL;
}

static const char *sync_refuse(struct backend_ctx *ctx, int memtype)
{
	struct sync_state *s = st(ctx);

	if (memtype == MEM_FILE)
		return "regular files cannot be registered for synchronous write-protect; use uffd_async";
	if (memtype == MEM_HUGETLB)
		return "hugetlbfs ranges are not supported yet";
	if (memtype == MEM_SHMEM &&
	    !(s->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return "shmem write-protect needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19)";
	return NULL;
}

/*
 * Track and untrack exclude fault resolution, like a collect: a stale
 * message for a page of an untracked range must not be resolved after the
 * same page was armed by a new track.
 */
static int sync_track(struct backend_ctx *ctx, struct region *r)
{
	struct sync_state *s = st(ctx);
	struct wp_target t = syncwp_target(s);
	size_t len = r->end - r->start;
	int ret;

	/* A thread that blocks SIGBUS would die on its first write here:
	 * as on the mprotect backend (uffdwp.h). */
	if (s->self && !(r->flags & UFFDWP_TRACK_SIGSEGV_BLOCKERS) &&
	    segv_blocked_somewhere(SIGBUS) > 0)
		return -EDEADLK;
	ret = uffd_register(s->uffd, (void *)r->start, len,
			    UFFDIO_REGISTER_MODE_WP, NULL);
	if (ret)
		return ret == -EBUSY ? -EEXIST : ret;
	ret = syncwp_populate(s, r->start, len);
	if (!ret)
		ret = syncwp_attach(s, r);
	syncwp_pause(s);
	if (!ret)
		ret = wpbatch_protect(&ctx->batch, r->start, len, r);
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &t);
	syncwp_resume(s);
	if (ret) {
		uffd_unregister(s->uffd, (void *)r->start, len);
		syncwp_unregistered(s, r->start, len);
		syncwp_detach(s, r);
	}
	return ret;
}

static void sync_untrack(struct backend_ctx *ctx, struct region *r)
{
	struct sync_state *s = st(ctx);

	/* Unregistering drops the protection, but wakes only the waiters of
	 * MISSING registrations: wake write-protect waiters ourselves. */
	syncwp_pause(s);
	uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
	syncwp_unregistered(s, r->start, r->end - r->start);
	syncwp_resume(s);
	syncwp_detach(s, r);
}

static int sync_harvest(struct backend_ctx *ctx)
{
	struct region_set *set = ctx->regions;

	return syncwp_harvest(st(ctx), set ? set->r : NULL, set ? set->n : 0,
			      NULL, NULL);
}

/*
 * The snapshot instant: pause resolution, harvest (every recorded page is
 * re-protected, so the whole range is protected), hand the pending pages
 * of the range to the snapshot, publish it to the handlers, resume.
 */
static int sync_snap_begin(struct backend_ctx *ctx,
			   struct uffdwp_snapshot *snap)
{
	struct region_set *set = ctx->regions;

	/* In the self-service mode too: the writer's SIGBUS handler copies
	 * its page to staging before the unprotect (snapshot.c). */
	return syncwp_harvest(st(ctx), set->r, set->n, snapshot_publish_instant,
			      snap);
}

static void sync_snap_end(struct backend_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct sync_state *s = st(ctx);

	/* Pages stay protected: their next write is recorded as usual. */
	syncwp_pause(s);
	snapshot_unpublish(snap, s);
	syncwp_resume(s);
}

const struct backend_ops backend_uffd_sync = {
	.id = UFFDWP_BACKEND_UFFD_SYNC,
	.init = sync_init,
	.fini = sync_fini,
	.refuse = sync_refuse,
	.track = sync_track,
	.untrack = sync_untrack,
	.harvest = sync_harvest,
	.snap_begin = sync_snap_begin,
	.snap_end = sync_snap_end,
	.atfork = syncwp_atfork,
};
