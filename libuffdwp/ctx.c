/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Context lifecycle, argument checks, the fork check, and dispatch to the
 * backend. Collect is the same for every backend: the backend harvests
 * dirty pages into each region's pending map (re-armed), and this file
 * delivers pending runs to the caller, clearing each only after the
 * callback accepted it, so a callback error loses nothing. It is the only
 * driver of the backends and of the snapshot engine: a snapshot starts
 * here (the range, the backend's instant, the sink's begin, the copiers)
 * and its window closes here (ctx_snapshot_close()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <urcu/urcu-bp.h>

#include "backend.h"
#include "ctx.h"
#include "gate.h"
#include "probe.h"
#include "segv.h"
#include "segv.h"
#include "shadow-alloc.h"
#include "snapshot.h"
#include "testhooks.h"
#include "vma.h"

static const struct backend_ops *const all_ops[] = {
	[UFFDWP_BACKEND_UFFD_ASYNC] = &backend_uffd_async,
	[UFFDWP_BACKEND_UFFD_SYNC] = &backend_uffd_sync,
	[UFFDWP_BACKEND_SOFT_DIRTY] = &backend_soft_dirty,
	[UFFDWP_BACKEND_MPROTECT] = &backend_mprotect,
};

static void ctx_snapshot_close(struct snapshot_owner *o,
			       struct uffdwp_snapshot *snap);

/*
 * fork: the library's process-wide state (gates, the backends' tables,
 * range claims, urcu-bp's registry) is locked in that order before, and
 * unlocked in reverse after; the child forgets the parent's ranges, so it
 * can track again (its copies of the parent's contexts can only be freed).
 *
 * Registered when the library is loaded, before any handler of a program
 * or library that uses it: prepare handlers run in the reverse order of
 * registration and child handlers in order, so theirs run outside ours
 * and may call the library (bdwgc's child handler tracks its heap again).
 * Registered at the first context instead, a collector's child handler ran
 * while the claims were still locked, and hung.
 */
static int atfork_err;

static void atfork_phase(enum fork_phase phase)
{
	size_t i, n = ARRAY_SIZE(all_ops);

	if (phase == FORK_PREPARE) {
		gate_atfork(phase);
		for (i = 0; i < n; i++)
			if (all_ops[i] && all_ops[i]->atfork)
				all_ops[i]->atfork(phase);
		region_claims_atfork(phase);
		own_atfork(phase);
		/* It blocks every signal until the fork returns: this
		 * thread is no SIGSEGV blocker for a concurrent track. */
		segv_fork_begin();
		urcu_bp_before_fork();
		testhook_hold(HOLD_FORK);
		return;
	}
	if (phase == FORK_PARENT)
		urcu_bp_after_fork_parent();
	else
		urcu_bp_after_fork_child();
	segv_fork_end();
	own_atfork(phase);
	region_claims_atfork(phase);
	for (i = n; i-- > 0;)
		if (all_ops[i] && all_ops[i]->atfork)
			all_ops[i]->atfork(phase);
	gate_atfork(phase);
}

static void atfork_prepare(void)
{
	atfork_phase(FORK_PREPARE);
}

static void atfork_parent(void)
{
	atfork_phase(FORK_PARENT);
}

static void atfork_child(void)
{
	atfork_phase(FORK_CHILD);
}

__attribute__((constructor)) static void atfork_register(void)
{
	atfork_err =
		-pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Protect runs this close are merged (see struct wpbatch). */
#define PROTECT_GAP_PAGES 16

/* Which backend, and why: the caller's choice, the environment's, AUTO's. */
static int choose(const struct uffdwp_caps *caps, int want, char *why,
		  size_t len)
{
	const char *env = secure_getenv("UFFDWP_BACKEND");
	int b = want;

	if (want == UFFDWP_BACKEND_AUTO && env && *env) {
		b = uffdwp_backend_from_name(env);
		if (b < 0)
			return -EINVAL;
		if (b == UFFDWP_BACKEND_AUTO)
			env = NULL;
	}
	if (b == UFFDWP_BACKEND_AUTO) {
		if (caps->auto_backend == UFFDWP_BACKEND_AUTO)
			return -EOPNOTSUPP;
		snprintf(why, len, "auto: %s", caps->auto_reason);
		return caps->auto_backend;
	}
	if (b < 0 || (size_t)b >= ARRAY_SIZE(all_ops) || !all_ops[b])
		return -EINVAL;
	if (!caps->backend[b].usable)
		return -EOPNOTSUPP;
	snprintf(why, len, "%s (%s): %s",
		 want == UFFDWP_BACKEND_AUTO ? "forced by UFFDWP_BACKEND" :
					       "requested",
		 uffdwp_backend_name(b), caps->backend[b].reason);
	return b;
}

/* uffd_sync in the self-service mode: needs the probe's SIGBUS round trip,
 * and its contract differs, which the reason says (uffdwp.h). */
static int self_service_reason(const struct uffdwp_caps *caps, char *why,
			       size_t len)
{
	size_t n = strlen(why);

	if (!caps->uffd_sigbus)
		return -EOPNOTSUPP;
	snprintf(
		why + n, len - n,
		"; self-service faults (UFFD_FEATURE_SIGBUS): the writing thread resolves its own write fault, and a kernel write into a protected page (read(2), O_DIRECT) fails with EFAULT");
	return UFFDWP_BACKEND_UFFD_SYNC;
}

/* Under @b, does a kernel write into a protected page work (uffdwp.h)? */
static bool kernel_writes_work(const struct uffdwp_caps *caps, int b)
{
	switch (b) {
	case UFFDWP_BACKEND_UFFD_ASYNC:
	case UFFDWP_BACKEND_SOFT_DIRTY:
		return true;
	case UFFDWP_BACKEND_UFFD_SYNC:
		return caps->uffd_mode != UFFDWP_UFFD_USER_MODE_ONLY;
	default:
		return false;
	}
}

/* AUTO for a program that needs kernel writes (UFFDWP_CTX_KERNEL_WRITES):
 * the first usable backend, in AUTO's order, that honours them. */
static int choose_kernel_writes(const struct uffdwp_caps *caps, char *why,
				size_t len)
{
	static const int order[] = {
		UFFDWP_BACKEND_UFFD_ASYNC,
		UFFDWP_BACKEND_UFFD_SYNC,
		UFFDWP_BACKEND_SOFT_DIRTY,
	};
	size_t i;
	int b;

	for (i = 0; i < ARRAY_SIZE(order); i++) {
		b = order[i];
		if (!caps->backend[b].usable || !kernel_writes_work(caps, b))
			continue;
		snprintf(
			why, len,
			"auto, kernel writes asked for (UFFDWP_CTX_KERNEL_WRITES): %s: %s",
			uffdwp_backend_name(b), caps->backend[b].reason);
		return b;
	}
	return -EOPNOTSUPP;
}

/*
 * AUTO's uffd_sync takes the self-service mode (uffdwp.h) when its round
 * trip works and no thread blocks SIGBUS now (such a thread would make
 * every track fail with -EDEADLK). The reason says which mode, and why.
 */
static bool auto_self_service(const struct uffdwp_caps *caps, char *why,
			      size_t len)
{
	const char *declined = NULL;
	size_t n = strlen(why);

	if (!caps->uffd_sigbus)
		declined = caps->uffd_sigbus_reason;
	else if (segv_blocked_somewhere(SIGBUS) > 0)
		declined = "a thread blocks SIGBUS";
	if (declined) {
		snprintf(why + n, len - n,
			 "; handler-thread mode, not self-service: %s",
			 declined);
		return false;
	}
	self_service_reason(caps, why, len);
	n = strlen(why);
	snprintf(
		why + n, len - n,
		" (AUTO's choice without WP_ASYNC: a signal in the writer instead of a handler thread's wake-up; UFFDWP_CTX_KERNEL_WRITES asks for the handler thread)");
	return true;
}

UFFDWP_EXPORT int uffdwp_ctx_new(const struct uffdwp_ctx_opts *opts,
				 struct uffdwp_ctx **out)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o) };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_ctx *ctx;
	bool by_auto;
	int ret, b;

	if (!out)
		return -EINVAL;
	if (opts) {
		ret = sz_check(opts, sizeof(*opts));
		if (ret)
			return ret;
		sz_copy_in(&o, opts, sizeof(o));
	}
	if ((o.flags & ~(unsigned int)(UFFDWP_CTX_SELF_SERVICE |
				       UFFDWP_CTX_KERNEL_WRITES)) ||
	    (o.flags & UFFDWP_CTX_SELF_SERVICE &&
	     o.flags & UFFDWP_CTX_KERNEL_WRITES) ||
	    o.handler_threads > 64)
		return -EINVAL;
	if (o.flags & UFFDWP_CTX_SELF_SERVICE) {
		if (o.backend == UFFDWP_BACKEND_AUTO)
			o.backend = UFFDWP_BACKEND_UFFD_SYNC;
		if (o.backend != UFFDWP_BACKEND_UFFD_SYNC)
			return -EINVAL;
	}
	ret = uffdwp_probe(&caps);
	if (ret)
		return ret;
	if (atfork_err)
		return atfork_err; /* -ENOMEM when the library was loaded */

	ctx = shadow_zalloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	b = choose(&caps, o.backend, ctx->reason, sizeof(ctx->reason));
	by_auto = b >= 0 && !strncmp(ctx->reason, "auto", 4);
	if (b >= 0 && (o.flags & UFFDWP_CTX_SELF_SERVICE))
		b = self_service_reason(&caps, ctx->reason,
					sizeof(ctx->reason));
	else if (b >= 0 && (o.flags & UFFDWP_CTX_KERNEL_WRITES) && by_auto)
		b = choose_kernel_writes(&caps, ctx->reason,
					 sizeof(ctx->reason));
	else if (b >= 0 && (o.flags & UFFDWP_CTX_KERNEL_WRITES) &&
		 !kernel_writes_work(&caps, b))
		b = -EOPNOTSUPP;
	else if (b == UFFDWP_BACKEND_UFFD_SYNC && by_auto &&
		 auto_self_service(&caps, ctx->reason, sizeof(ctx->reason)))
		o.flags |= UFFDWP_CTX_SELF_SERVICE;
	if (b < 0) {
		shadow_free(ctx, sizeof(*ctx));
		return b;
	}
	ctx->pid = getpid();
	ctx->backend = b;
	ctx->ops = all_ops[b];
	ctx->b.handler_threads = o.handler_threads ? o.handler_threads : 1;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_cond_init(&ctx->snaps_cv, NULL);
	ctx->snap_owner.close = ctx_snapshot_close;
	wpbatch_init(&ctx->b.batch, PROTECT_GAP_PAGES * page_size(),
		     &ctx->b.wp);
	ret = ctx->ops->init(&ctx->b, &o, &caps);
	if (ret) {
		wpbatch_fini(&ctx->b.batch);
		pthread_cond_destroy(&ctx->snaps_cv);
		pthread_mutex_destroy(&ctx->lock);
		shadow_free(ctx, sizeof(*ctx));
		return ret;
	}
	*out = ctx;
	return 0;
}

/*
 * Backend operations run here or on the offload thread (offload.h). An
 * operation may hold a signal window (fault resolution paused, a gate
 * closed) for as long as its kernel work takes, which grows with the pages
 * it covers: about 0.2-0.6 s per GiB for a re-protect under busy writers.
 * Above this many pages the window runs on the offload thread, and the
 * caller's signals stay deliverable; below it the window is at most a few
 * milliseconds, less than a hand-off is worth.
 */
#define OFFLOAD_MIN_PAGES 1024

enum op { OP_TRACK, OP_UNTRACK, OP_HARVEST, OP_SNAP_BEGIN, OP_SNAP_END };

struct op_call {
	enum op op;
	struct uffdwp_ctx *ctx;
	struct region *r;
	struct uffdwp_snapshot *snap;
};

/* One backend operation, wherever ctx_run() runs it. */
static int op_run(void *arg)
{
	struct op_call *c = arg;
	struct uffdwp_ctx *ctx = c->ctx;

	switch (c->op) {
	case OP_TRACK:
		return ctx->ops->track(&ctx->b, c->r);
	case OP_UNTRACK:
		ctx->ops->untrack(&ctx->b, c->r);
		return 0;
	case OP_HARVEST:
		return ctx->ops->harvest(&ctx->b);
	case OP_SNAP_BEGIN:
		return ctx->ops->snap_begin(&ctx->b, c->snap);
	case OP_SNAP_END:
		ctx->ops->snap_end(&ctx->b, c->snap);
		return 0;
	}
	return -EINVAL;
}

/* Pages of every tracked range: what a harvest or an instant may cover. */
static size_t tracked_pages(struct uffdwp_ctx *ctx)
{
	struct region_set *set = ctx->b.regions;
	size_t i, n = 0;

	for (i = 0; set && i < set->n; i++)
		if (set->r[i])
			n += set->r[i]->npages;
	return n;
}

/* ctx->lock held: it also serialises the offload thread's calls. */
static int ctx_run(size_t pages, struct op_call *c)
{
	if (pages < OFFLOAD_MIN_PAGES)
		return op_run(c);
	return offload_call(&c->ctx->offload, op_run, c);
}

static int ctx_snap_begin(struct uffdwp_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct op_call c = { .op = OP_SNAP_BEGIN, .ctx = ctx, .snap = snap };

	return ctx_run(tracked_pages(ctx), &c);
}

static void ctx_snap_end(struct uffdwp_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct op_call c = { .op = OP_SNAP_END, .ctx = ctx, .snap = snap };

	ctx_run(tracked_pages(ctx), &c);
}

/*
 * The end of a snapshot's window, from its last copier after the sink's
 * end(). The outcome is decided under ctx->lock, so a call on the context
 * made after wait() returns, a new snapshot of the range among them, waits
 * for the close and never sees it open. (On uffd_async the move back holds
 * writers some tens of ms per GiB, and waiters need not wait for it.)
 */
static void ctx_snapshot_close(struct snapshot_owner *o,
			       struct uffdwp_snapshot *snap)
{
	struct uffdwp_ctx *ctx = container_of(o, struct uffdwp_ctx, snap_owner);
	struct region *r = snapshot_region(snap);
	int err;

	pthread_mutex_lock(&ctx->lock);
	err = snapshot_decide(snap);
	ctx_snap_end(ctx, snap);
	if (err)
		snapshot_give_back(snap);
	r->snap = NULL;
	snapshot_unlink(snap);
	pthread_cond_broadcast(&ctx->snaps_cv);
	pthread_mutex_unlock(&ctx->lock);
}

/* uffdwp_ctx_free(): end every running snapshot, and wait. */
static void ctx_snapshots_shutdown(struct uffdwp_ctx *ctx)
{
	/* Wait on the context, never on a snapshot: once unlinked, its
	 * owner may free it at any time. */
	pthread_mutex_lock(&ctx->lock);
	while (ctx->snap_owner.snaps) {
		snapshot_cancel_all(&ctx->snap_owner, UFFDWP_CAUSE_CONTEXT);
		/* Their closes take ctx->lock and unlink them. */
		pthread_cond_wait(&ctx->snaps_cv, &ctx->lock);
	}
	pthread_mutex_unlock(&ctx->lock);
}

UFFDWP_EXPORT int uffdwp_snapshot_start(struct uffdwp_ctx *ctx, void *addr,
					size_t len,
					const struct uffdwp_sink *sink,
					const struct uffdwp_snapshot_opts *opts,
					struct uffdwp_snapshot **out)
{
	struct uffdwp_snapshot *snap;
	struct snapshot_args args;
	uintptr_t a = (uintptr_t)addr;
	size_t ps = page_size();
	struct region *r;
	sigset_t mask;
	int ret;

	if (!ctx || !out)
		return -EINVAL;
	if (ctx_forked(ctx))
		return -ECHILD;
	if (!len || a % ps || len % ps || a + len < a)
		return -EINVAL;
	ret = snapshot_args_in(sink, opts, &args);
	if (ret)
		return ret;
	if (!ctx->ops->snap_begin)
		return -EOPNOTSUPP;
	ret = snapshot_new(&ctx->snap_owner, a, len, &args, &snap);
	if (ret)
		return ret;

	pthread_mutex_lock(&ctx->lock);
	/* track and untrack wait for readers: see segv.h. */
	segv_window_enter(&mask);
	urcu_bp_read_lock();
	r = regions_lookup(rcu_dereference(ctx->b.regions), a);
	urcu_bp_read_unlock();
	segv_window_leave(&mask);
	if (!r || a + len > r->end)
		ret = -ENOENT;
	else if (r->snap)
		ret = -EBUSY;
	if (ret)
		goto err_unlock;
	snapshot_bind(snap, r);
	r->snap = snap;
	ret = ctx_snap_begin(ctx, snap);
	if (ret)
		goto err_range;
	ret = snapshot_open(snap);
	if (ret) {
		ctx_snap_end(ctx, snap);
		snapshot_give_back(snap);
		goto err_range;
	}
	snapshot_link(snap);
	/* The copiers start on the offload thread (starting threads is a
	 * signal window), and leave one extra count: they cannot tear down
	 * before ctx->lock is dropped and all are counted. */
	ret = offload_call(&ctx->offload, snapshot_start_copiers, snap);
	if (ret)
		snapshot_fail(snap, ret, UFFDWP_CAUSE_KERNEL);
	pthread_mutex_unlock(&ctx->lock);
	if (!snapshot_launched(snap)) {
		snapshot_destroy(snap);
		return ret;
	}
	*out = snap;
	return 0;

err_range:
	r->snap = NULL;
err_unlock:
	pthread_mutex_unlock(&ctx->lock);
	snapshot_destroy(snap);
	return ret;
}

UFFDWP_EXPORT struct uffdwp_ctx *uffdwp_ctx_free(struct uffdwp_ctx *ctx)
{
	struct region_set *set;
	size_t i;

	if (!ctx)
		return NULL;
	if (ctx_forked(ctx)) {
		/*
		 * A child: close the descriptors and forget the context. The
		 * child's tables forgot its ranges at fork, but its regions
		 * stay allocated: mprotect's handler still finds them, to
		 * give the child's still read-only pages back on a write.
		 */
		ctx->ops->fini(&ctx->b, true);
		return NULL;
	}
	/* Running snapshots end first (cancelled): their teardown needs the
	 * context. */
	ctx_snapshots_shutdown(ctx);
	set = ctx->b.regions;
	/* Disarm first: writers blocked on a range are released. */
	pthread_mutex_lock(&ctx->lock);
	for (i = 0; set && i < set->n; i++) {
		struct op_call c = { .op = OP_UNTRACK,
				     .ctx = ctx,
				     .r = set->r[i] };

		if (c.r)
			ctx_run(c.r->npages, &c);
	}
	pthread_mutex_unlock(&ctx->lock);
	offload_stop(&ctx->offload);
	ctx->ops->fini(&ctx->b, false);
	for (i = 0; set && i < set->n; i++) {
		if (!set->r[i])
			continue;
		region_unclaim(set->r[i]);
		region_free(set->r[i]);
	}
	regions_free(&ctx->b.regions);
	wpbatch_fini(&ctx->b.batch);
	pthread_cond_destroy(&ctx->snaps_cv);
	pthread_mutex_destroy(&ctx->lock);
	shadow_free(ctx, sizeof(*ctx));
	return NULL;
}

UFFDWP_EXPORT int uffdwp_ctx_backend(const struct uffdwp_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	if (ctx_forked(ctx))
		return -ECHILD;
	return ctx->backend;
}

UFFDWP_EXPORT const char *
uffdwp_ctx_backend_reason(const struct uffdwp_ctx *ctx)
{
	return ctx ? ctx->reason : NULL;
}

static int check_range(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len || a % page_size() || len % page_size())
		return -EINVAL;
	if (a + len < a)
		return -EINVAL;
	return 0;
}

UFFDWP_EXPORT int uffdwp_track(struct uffdwp_ctx *ctx, void *addr, size_t len,
			       unsigned int flags)
{
	struct region *r;
	int ret, memtype;

	if (!ctx)
		return -EINVAL;
	if (ctx_forked(ctx))
		return -ECHILD;
	ret = check_range(addr, len);
	if (ret)
		return ret;
	if (flags &
	    ~(unsigned int)(UFFDWP_TRACK_HUGE | UFFDWP_TRACK_SIGSEGV_BLOCKERS))
		return -EINVAL;

	pthread_mutex_lock(&ctx->lock);
	/* Classified before the library maps its own bitmaps, which the
	 * kernel may place in a hole of the range. A range that overlaps a
	 * tracked one is -EEXIST even where it looks read-only (mprotect). */
	ret = vma_classify((uintptr_t)addr, len, &memtype);
	if (ret && region_overlaps((uintptr_t)addr, (uintptr_t)addr + len))
		ret = -EEXIST;
	/* The library never writes memory it protected: not its own. */
	if (!ret && own_overlaps((uintptr_t)addr, (uintptr_t)addr + len))
		ret = -EBUSY;
	if (!ret && ctx->ops->refuse(&ctx->b, memtype))
		ret = -EOPNOTSUPP;
	if (ret)
		goto out;
	r = region_new(&ctx->b, (uintptr_t)addr, len, flags, memtype);
	if (!r) {
		ret = -ENOMEM;
		goto out;
	}
	ret = region_claim(r);
	if (ret) {
		region_free(r);
		goto out;
	}
	if (!(flags & UFFDWP_TRACK_HUGE))
		madvise(addr, len, MADV_NOHUGEPAGE);
	/* Published before arming, so handlers find faults of this range. */
	ret = regions_add(&ctx->b.regions, r);
	if (!ret) {
		struct op_call c = { .op = OP_TRACK, .ctx = ctx, .r = r };

		ret = ctx_run(r->npages, &c);
		if (ret)
			regions_remove(&ctx->b.regions, r);
	}
	if (ret) {
		region_unclaim(r);
		region_free(r);
	}
out:
	pthread_mutex_unlock(&ctx->lock);
	return ret;
}

UFFDWP_EXPORT int uffdwp_untrack(struct uffdwp_ctx *ctx, void *addr, size_t len)
{
	struct region *r;
	int ret;

	if (!ctx)
		return -EINVAL;
	if (ctx_forked(ctx))
		return -ECHILD;
	ret = check_range(addr, len);
	if (ret)
		return ret;
	pthread_mutex_lock(&ctx->lock);
	r = regions_find_exact(ctx->b.regions, (uintptr_t)addr, len);
	if (r && r->snap) {
		pthread_mutex_unlock(&ctx->lock);
		return -EBUSY; /* a snapshot is running on it */
	}
	if (r) {
		struct op_call c = { .op = OP_UNTRACK, .ctx = ctx, .r = r };

		ctx_run(r->npages, &c);
		regions_remove(&ctx->b.regions, r);
		region_unclaim(r);
		region_free(r);
	}
	pthread_mutex_unlock(&ctx->lock);
	return r ? 0 : -ENOENT;
}

/* Deliver one region's pending runs; clear each once it was accepted. */
static int deliver(struct uffdwp_ctx *ctx, struct region *r, uffdwp_run_fn fn,
		   void *arg, long *pages)
{
	size_t ps = page_size(), i = 0, j;
	int ret;

	for (;;) {
		i = dirtymap_next_set(&r->pending, i);
		if (i >= r->npages)
			return 0;
		j = dirtymap_next_clear(&r->pending, i);
		ret = fn(arg, (void *)(r->start + i * ps), (j - i) * ps);
		if (ret)
			return ret < 0 ? ret : -ECANCELED;
		dirtymap_clear_range(&r->pending, i, j - i);
		*pages += (long)(j - i);
		i = j;
	}
}

UFFDWP_EXPORT long uffdwp_collect(struct uffdwp_ctx *ctx, uffdwp_run_fn fn,
				  void *arg)
{
	struct op_call c = { .op = OP_HARVEST, .ctx = ctx };
	struct region_set *set;
	uint64_t t0;
	long pages = 0;
	size_t i;
	int ret;

	if (!ctx || !fn)
		return -EINVAL;
	if (ctx_forked(ctx))
		return -ECHILD;
	pthread_mutex_lock(&ctx->lock);
	t0 = now_ns();
	ret = ctx_run(tracked_pages(ctx), &c);
	set = ctx->b.regions;
	for (i = 0; !ret && set && i < set->n; i++)
		if (set->r[i])
			ret = deliver(ctx, set->r[i], fn, arg, &pages);
	cnt_add(&ctx->b.cnt.collects, 1);
	cnt_add(&ctx->b.cnt.collect_ns, now_ns() - t0);
	cnt_add(&ctx->b.cnt.pages_reported, (uint64_t)pages);
	pthread_mutex_unlock(&ctx->lock);
	return ret ? ret : pages;
}

UFFDWP_EXPORT int uffdwp_ctx_stats(const struct uffdwp_ctx *ctx,
				   struct uffdwp_stats *stats)
{
	struct uffdwp_stats s = { .sz = sizeof(s) };
	struct region_set *set;
	sigset_t mask;
	size_t i;
	int ret;

	if (!ctx)
		return -EINVAL;
	ret = sz_check(stats, sizeof(*stats));
	if (ret)
		return ret;
	if (ctx_forked(ctx))
		return -ECHILD;
	s.faults = cnt_get(&ctx->b.cnt.faults);
	s.wp_calls = cnt_get(&ctx->b.wp.calls) +
		     cnt_get(&ctx->b.cnt.scan_calls) +
		     cnt_get(&ctx->b.cnt.clear_calls);
	s.wp_queued = cnt_get(&ctx->b.wp.queued);
	s.wp_merged = cnt_get(&ctx->b.wp.merged);
	s.pages_rearmed =
		cnt_get(&ctx->b.wp.pages) + cnt_get(&ctx->b.cnt.pages_rearmed);
	s.collects = cnt_get(&ctx->b.cnt.collects);
	s.collect_ns = cnt_get(&ctx->b.cnt.collect_ns);
	s.pages_reported = cnt_get(&ctx->b.cnt.pages_reported);
	s.retries = cnt_get(&ctx->b.wp.retries) + cnt_get(&ctx->b.cnt.retries);
	s.events = cnt_get(&ctx->b.cnt.events);
	s.granularity = page_size();
	/* track and untrack wait for readers: see segv.h. */
	segv_window_enter(&mask);
	urcu_bp_read_lock();
	testhook_hold(HOLD_RCU_READ);
	set = rcu_dereference(((struct uffdwp_ctx *)ctx)->b.regions);
	for (i = 0; set && i < set->n; i++) {
		struct region *r =
			__atomic_load_n(&set->r[i], __ATOMIC_ACQUIRE);

		if (!r)
			continue;
		s.pages_tracked += r->npages;
		if (ctx->backend == UFFDWP_BACKEND_SOFT_DIRTY &&
		    (r->flags & UFFDWP_TRACK_HUGE))
			s.granularity = 2UL << 20;
	}
	urcu_bp_read_unlock();
	segv_window_leave(&mask);
	sz_copy_out(stats, &s, sizeof(s));
	return 0;
}
