/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Context lifecycle, argument checks, the fork check, and dispatch to the
 * backend. Collect is the same for every backend: the backend harvests
 * dirty pages into each region's pending map (re-armed), and this file
 * delivers pending runs to the caller, clearing each only after the
 * callback accepted it, so a callback error loses nothing.
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
		urcu_bp_before_fork();
		return;
	}
	if (phase == FORK_PARENT)
		urcu_bp_after_fork_parent();
	else
		urcu_bp_after_fork_child();
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

UFFDWP_EXPORT int uffdwp_ctx_new(const struct uffdwp_ctx_opts *opts,
				 struct uffdwp_ctx **out)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o) };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_ctx *ctx;
	int ret, b;

	if (!out)
		return -EINVAL;
	if (opts) {
		ret = sz_check(opts, sizeof(*opts));
		if (ret)
			return ret;
		memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
		o.sz = sizeof(o);
	}
	if (o.flags || o.handler_threads > 64)
		return -EINVAL;
	ret = uffdwp_probe(&caps);
	if (ret)
		return ret;
	if (atfork_err)
		return atfork_err; /* -ENOMEM when the library was loaded */

	ctx = handler_zalloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	b = choose(&caps, o.backend, ctx->reason, sizeof(ctx->reason));
	if (b < 0) {
		handler_free(ctx, sizeof(*ctx));
		return b;
	}
	ctx->pid = getpid();
	ctx->backend = b;
	ctx->ops = all_ops[b];
	ctx->handler_threads = o.handler_threads ? o.handler_threads : 1;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_cond_init(&ctx->snaps_cv, NULL);
	wpbatch_init(&ctx->batch, PROTECT_GAP_PAGES * page_size(), &ctx->wp);
	ret = ctx->ops->init(ctx, &o);
	if (ret) {
		wpbatch_fini(&ctx->batch);
		pthread_cond_destroy(&ctx->snaps_cv);
		pthread_mutex_destroy(&ctx->lock);
		handler_free(ctx, sizeof(*ctx));
		return ret;
	}
	*out = ctx;
	return 0;
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
		ctx->ops->fini(ctx, true);
		return NULL;
	}
	/* Running snapshots end first (cancelled): their teardown needs the
	 * context. */
	snapshot_ctx_shutdown(ctx);
	set = ctx->regions;
	/* Disarm first: writers blocked on a range are released. */
	pthread_mutex_lock(&ctx->lock);
	for (i = 0; set && i < set->n; i++)
		if (set->r[i])
			ctx->ops->untrack(ctx, set->r[i]);
	pthread_mutex_unlock(&ctx->lock);
	ctx->ops->fini(ctx, false);
	for (i = 0; set && i < set->n; i++) {
		if (!set->r[i])
			continue;
		region_unclaim(set->r[i]);
		region_free(set->r[i]);
	}
	regions_free(&ctx->regions);
	wpbatch_fini(&ctx->batch);
	pthread_cond_destroy(&ctx->snaps_cv);
	pthread_mutex_destroy(&ctx->lock);
	handler_free(ctx, sizeof(*ctx));
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
	if (!ret && ctx->ops->refuse(ctx, memtype))
		ret = -EOPNOTSUPP;
	if (ret)
		goto out;
	r = region_new(ctx, (uintptr_t)addr, len, flags, memtype);
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
	ret = regions_add(&ctx->regions, r);
	if (!ret) {
		ret = ctx->ops->track(ctx, r);
		if (ret)
			regions_remove(&ctx->regions, r);
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
	r = regions_find_exact(ctx->regions, (uintptr_t)addr, len);
	if (r && r->snap) {
		pthread_mutex_unlock(&ctx->lock);
		return -EBUSY; /* a snapshot is running on it */
	}
	if (r) {
		ctx->ops->untrack(ctx, r);
		regions_remove(&ctx->regions, r);
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
	ret = ctx->ops->harvest(ctx);
	set = ctx->regions;
	for (i = 0; !ret && set && i < set->n; i++)
		if (set->r[i])
			ret = deliver(ctx, set->r[i], fn, arg, &pages);
	cnt_add(&ctx->cnt.collects, 1);
	cnt_add(&ctx->cnt.collect_ns, now_ns() - t0);
	cnt_add(&ctx->cnt.pages_reported, (uint64_t)pages);
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
	s.faults = cnt_get(&ctx->cnt.faults);
	s.wp_calls = cnt_get(&ctx->wp.calls) + cnt_get(&ctx->cnt.scan_calls) +
		     cnt_get(&ctx->cnt.clear_calls);
	s.wp_queued = cnt_get(&ctx->wp.queued);
	s.wp_merged = cnt_get(&ctx->wp.merged);
	s.pages_rearmed =
		cnt_get(&ctx->wp.pages) + cnt_get(&ctx->cnt.pages_rearmed);
	s.collects = cnt_get(&ctx->cnt.collects);
	s.collect_ns = cnt_get(&ctx->cnt.collect_ns);
	s.pages_reported = cnt_get(&ctx->cnt.pages_reported);
	s.retries = cnt_get(&ctx->wp.retries) + cnt_get(&ctx->cnt.retries);
	s.events = cnt_get(&ctx->cnt.events);
	s.granularity = page_size();
	/* track and untrack wait for readers: see segv.h. */
	segv_window_enter(&mask);
	urcu_bp_read_lock();
	testhook_hold(HOLD_RCU_READ);
	set = rcu_dereference(((struct uffdwp_ctx *)ctx)->regions);
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
