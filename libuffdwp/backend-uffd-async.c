/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_async: UFFD_FEATURE_WP_ASYNC lets the kernel resolve write-protect
 * faults itself (it just clears the page's uffd-wp bit), and one
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING reports the written pages and
 * protects them again atomically, per PTE under its lock (invariant 3.5).
 * No thread, no signal, and writers never wait for the library.
 *
 * Re-protection does not go through the wp batch: splitting get from
 * protect is exactly the race 3.5 forbids, and the scan already issues one
 * call per vector of runs.
 *
 * Snapshots need a writer held before its first write, which WP_ASYNC never
 * does: for the snapshot window the range moves to a synchronous
 * userfaultfd with its own handler thread (syncwp.c), and back afterwards.
 * Unregistering drops every uffd-wp bit, so each move runs behind a gate
 * (gate.h: the range is read-only and writers wait in a SIGSEGV handler),
 * and zaps made while no userfaultfd watches are found by presence
 * (zaps.h). During the window the range is harvested like uffd_sync's.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "gate.h"
#include "snapshot.h"
#include "syncwp.h"
#include "pagemap.h"
#include "segv.h"
#include "testhooks.h"
#include "uffd.h"
#include "vma.h"
#include "zaps.h"

/* Regions per PAGEMAP_SCAN call: 24 KiB of output. */
#define SCAN_VEC 1024

struct async_state {
	int uffd;
	int pagemap;
	/* Kernels with the pagemap-scan-zapped-reported-clean defect report
	 * a zapped page as clean: look for zaps ourselves there. */
	bool check_zaps;
	struct zap_state zaps;
	/* The snapshot window's synchronous userfaultfd, made on first use,
	 * and presence looks across each move. */
	struct sync_state *sync;
	struct zap_state movez;
	bool movez_ready;
	struct page_region vec[SCAN_VEC];
};

static struct async_state *st(struct uffdwp_ctx *ctx)
{
	return ctx->bdata;
}

static bool zapped_clean_defect(void)
{
	struct uffdwp_defect d = { .sz = sizeof(d) };
	size_t i;

	for (i = 0; uffdwp_defect_get(i, &d) == 0; i++)
		if (!strcmp(d.id, "pagemap-scan-zapped-reported-clean"))
			return d.status == UFFDWP_DEFECT_PRESENT ||
			       d.status == UFFDWP_DEFECT_UNKNOWN;
	return true;
}

static int async_init(struct uffdwp_ctx *ctx, const struct uffdwp_ctx_opts *o)
{
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct async_state *s;
	uint64_t want = ASYNC_UFFD_FEATURES, have = 0;
	int ret;

	ret = uffdwp_probe(&caps);
	if (ret)
		return ret;
	/* Not from the heap: the scan writes its output here, and a program
	 * may track its heap (and snapshot it, which gates it read-only). */
	s = handler_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->uffd = uffd_open(caps.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0) {
		ret = s->uffd;
		goto err;
	}
	/* shmem and hugetlbfs need this one too, where the kernel has it. */
	if (caps.uffd_features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
		want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	ret = uffd_api(s->uffd, want, &have);
	if (ret)
		goto err_uffd;
	s->pagemap = pagemap_open();
	if (s->pagemap < 0) {
		ret = s->pagemap;
		goto err_uffd;
	}
	s->check_zaps = uffdwp_test_hooks.async_check_zaps ||
			zapped_clean_defect();
	if (s->check_zaps) {
		ret = zaps_init(&s->zaps, true);
		if (ret) {
			close(s->pagemap);
			goto err_uffd;
		}
	}
	ctx->bdata = s;
	return 0;
err_uffd:
	close(s->uffd);
err:
	handler_free(s, sizeof(*s));
	return ret;
}

static void async_fini(struct uffdwp_ctx *ctx, bool in_child)
{
	struct async_state *s = st(ctx);

	if (s->check_zaps)
		close(s->zaps.pagemap);
	if (s->movez_ready)
		close(s->movez.pagemap);
	close(s->pagemap);
	close(s->uffd);
	syncwp_close(s->sync, in_child);
	if (in_child)
		return;
	if (s->check_zaps)
		dirtymap_free(&s->zaps.now);
	if (s->movez_ready)
		dirtymap_free(&s->movez.now);
	handler_free(s, sizeof(*s));
	ctx->bdata = NULL;
}

static const char *async_refuse(struct uffdwp_ctx *ctx, int memtype)
{
	if (memtype == MEM_HUGETLB)
		return "hugetlbfs ranges are not supported yet";
	return NULL;
}

struct harvest_arg {
	struct uffdwp_ctx *ctx;
	struct region *r;
	size_t pages;
};

static int mark_pending(const struct page_region *vec, size_t n, void *arg)
{
	struct harvest_arg *h = arg;
	struct region *r = h->r;
	size_t i, first, count;

	for (i = 0; i < n; i++) {
		first = region_page(r, vec[i].start);
		count = (vec[i].end - vec[i].start) / page_size();
		dirtymap_set_range(&r->pending, first, count);
		h->pages += count;
	}
	cnt_add(&h->ctx->cnt.scan_calls, 1);
	return 0;
}

/* One get-and-protect pass over @r; @keep false discards the result. */
static int scan_region(struct uffdwp_ctx *ctx, struct region *r, bool keep)
{
	struct async_state *s = st(ctx);
	struct harvest_arg h = { ctx, r, 0 };
	long n;

	if (!keep) {
		/* Arm: the kernel's pure-protect fast path, no output. */
		n = pagemap_scan(s->pagemap, r->start, r->end, ASYNC_SCAN_FLAGS,
				 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, NULL, 0,
				 NULL, NULL);
		cnt_add(&ctx->cnt.scan_calls, 1);
		return n < 0 ? (int)n : 0;
	}
	if (uffdwp_test_hooks.async_get_then_protect) {
		/* Broken on purpose (race probe B's sensitivity test). */
		n = pagemap_scan(s->pagemap, r->start, r->end, 0,
				 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, s->vec,
				 SCAN_VEC, mark_pending, &h);
		if (n >= 0)
			n = pagemap_scan(s->pagemap, r->start, r->end,
					 ASYNC_SCAN_FLAGS, ASYNC_SCAN_MASK,
					 ASYNC_SCAN_MASK, NULL, 0, NULL, NULL);
		cnt_add(&ctx->cnt.pages_rearmed, h.pages);
		return n < 0 ? (int)n : 0;
	}
	n = pagemap_scan(s->pagemap, r->start, r->end, ASYNC_SCAN_FLAGS,
			 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, s->vec, SCAN_VEC,
			 mark_pending, &h);
	cnt_add(&ctx->cnt.pages_rearmed, h.pages);
	return n < 0 ? (int)n : 0;
}

static int async_track(struct uffdwp_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);
	int ret;

	ret = uffd_register(s->uffd, (void *)r->start, r->end - r->start,
			    UFFDIO_REGISTER_MODE_WP, NULL);
	if (ret)
		return ret == -EBUSY ? -EEXIST : ret;
	/* Arm everything, never-touched pages included (WP_UNPOPULATED):
	 * writes from now on clear a uffd-wp bit the next scan finds. */
	ret = scan_region(ctx, r, false);
	if (!ret && s->check_zaps)
		ret = zaps_note(&s->zaps, r, true);
	if (ret)
		uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
	return ret;
}

static void own_free(struct region *r);
static int own_each_mapped(struct region *r);
static void unregister_sync(struct sync_state *ss, struct region *r);

static void async_untrack(struct uffdwp_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);

	if (r->moved) {
		/* Left on the synchronous userfaultfd by a failed move. */
		handler_pause(s->sync);
		unregister_sync(s->sync, r);
		handler_resume(s->sync);
		r->moved = false;
	} else if (!r->unwatched) {
		/* Unregistering drops the uffd-wp bits of the range. */
		uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
	}
	r->unwatched = false;
	own_free(r);
}

/* Harvest a range that sits on the synchronous userfaultfd. */
static int harvest_moved(struct uffdwp_ctx *ctx, struct region *r)
{
	struct sync_state *ss = st(ctx)->sync;
	int ret;

	handler_pause(ss);
	handler_quiesce_events(ss);
	ret = syncwp_harvest_locked(ctx, ss, &r, 1);
	handler_resume(ss);
	return ret;
}

static int arm_async(struct uffdwp_ctx *ctx, struct region *r);

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

static int rearm_unwatched(struct uffdwp_ctx *ctx, struct region *r)
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
	r->unwatched = false;
	own_free(r);
	if (s->check_zaps)
		return zaps_note(&s->zaps, r, true);
	return 0;
}

static int async_harvest(struct uffdwp_ctx *ctx)
{
	struct async_state *s = st(ctx);
	struct region_set *set = ctx->regions;
	struct region *r;
	size_t i;
	int ret;

	for (i = 0; set && i < set->n; i++) {
		if (!set->r[i])
			continue;
		r = set->r[i];
		if (r->moved) {
			ret = harvest_moved(ctx, r);
			if (ret)
				return ret;
			continue;
		}
		if (r->unwatched) {
			ret = rearm_unwatched(ctx, r);
			if (ret)
				return ret;
			continue;
		}
		ret = scan_region(ctx, r, true);
		/* Unmapped parts and foreign mappings scan as empty. */
		if (ret)
			return ret;
		if (s->check_zaps) {
			/* After the scan: a zap after it is seen next time,
			 * and its marker is re-armed by the next scan. */
			ret = zaps_note(&s->zaps, r, false);
			if (ret)
				return ret;
		}
		/* Faults of a snapshot window, zaps found by presence. */
		dirtymap_take(&r->pending, &r->recorded);
	}
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
	free(r->own);
	r->own = NULL;
	r->nown = 0;
}

static int own_add(struct region *r, uintptr_t lo, uintptr_t hi)
{
	struct span *v;

	if (r->nown && r->own[r->nown - 1].hi == lo) {
		r->own[r->nown - 1].hi = hi;
		return 0;
	}
	v = reallocarray(r->own, r->nown + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r->own = v;
	r->own[r->nown++] = (struct span){ lo, hi };
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
	struct span *old = r->own;
	size_t nold = r->nown, i, a, b, end, ps = page_size();
	int ret = 0;

	r->own = NULL;
	r->nown = 0;
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
		free(r->own);
		r->own = old;
		r->nown = nold;
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

	return r->own ? r->own : &none;
}

enum own_op { OWN_REGISTER, OWN_PROTECT, OWN_UNREGISTER };

/* @op on each of @r's own spans with @fd; the first error stops it. */
static int own_each(struct region *r, int fd, enum own_op op)
{
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < r->nown; i++) {
		void *lo = (void *)r->own[i].lo;
		size_t len = r->own[i].hi - r->own[i].lo;

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
	uffd_wake(ss->uffd, (void *)r->start, r->end - r->start);
}

/* Record as written every page of @r's own spans still mapped. */
static int own_each_mapped(struct region *r)
{
	size_t i;
	int ret;

	for (i = 0; i < r->nown; i++) {
		ret = vma_each(r->own[i].lo, r->own[i].hi, mark_mapped, r);
		if (ret && ret != -EFAULT)
			return ret;
	}
	return 0;
}

/* Back from the synchronous userfaultfd (or from none) to the
 * asynchronous one: the range's own spans, registered and armed. */
static int arm_async(struct uffdwp_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);
	int ret;

	if (uffdwp_test_hooks.async_arm_fails)
		return -ENOMEM;
	ret = register_own(s->uffd, r);
	if (!ret)
		ret = scan_region(ctx, r, false);
	if (ret)
		own_each(r, s->uffd, OWN_UNREGISTER);
	return ret;
}

/*
 * A range that stayed on the synchronous userfaultfd after a snapshot
 * (its move back found a thread blocking SIGSEGV): its instant is
 * uffd_sync's, a harvest that leaves every page protected.
 */
static int snap_begin_moved(struct uffdwp_ctx *ctx,
			    struct uffdwp_snapshot *snap, struct region *r)
{
	struct sync_state *ss = st(ctx)->sync;
	int ret;

	handler_pause(ss);
	handler_quiesce_events(ss);
	ret = syncwp_harvest_locked(ctx, ss, &r, 1);
	if (!ret)
		snapshot_publish(snap, ss);
	handler_resume(ss);
	return ret;
}

static int async_snap_begin(struct uffdwp_ctx *ctx,
			    struct uffdwp_snapshot *snap)
{
	struct async_state *s = st(ctx);
	struct region *r = snapshot_region(snap);
	struct sync_state *ss;
	bool ungated = false;
	struct gate g;
	int ret;

	if (r->memtype == MEM_FILE)
		return -EOPNOTSUPP; /* no synchronous write-protect for files */
	if (r->unwatched)
		return -EBUSY; /* a failed move back: on no userfaultfd */
	if (r->moved)
		return snap_begin_moved(ctx, snap, r);
	if (!s->sync) {
		ret = syncwp_open(ctx, 1, &s->sync);
		if (ret)
			return ret;
	}
	ss = s->sync;
	ret = own_scan(s, r);
	if (!ret)
		ret = gate_prepare(&g, r->start, r->end, own_spans(r), r->nown);
	if (ret) {
		own_free(r);
		return ret;
	}
	/* A thread that blocks SIGSEGV would die at the gate: move without
	 * one (also when /proc cannot tell), and count every page as
	 * written once, since a write between the two registrations is
	 * seen by neither. */
	ungated = segv_blocked_somewhere() != 0;
	ret = ungated ? 0 : gate_close(&g);
	if (ret)
		goto out;
	/* Writers are held. What they wrote goes to pending; presence is
	 * noted, since a zap from now until the synchronous userfaultfd
	 * watches would otherwise go unseen. */
	ret = scan_region(ctx, r, true);
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
			r->unwatched = true; /* reported whole until armed */
		else
			own_free(r);
		goto open;
	}
	/* Zapped while unwatched: counted as written (into pending below,
	 * through the harvest of the publish). */
	movez_note(s, r, false);
	r->moved = true;
	if (ungated) {
		/* After the protect: from it on, the handler sees writes. */
		ret = own_each_mapped(r);
		if (!ret)
			dirtymap_take(&r->pending, &r->recorded);
	}
	handler_pause(ss);
	handler_quiesce_events(ss);
	if (!ret)
		ret = syncwp_harvest_locked(ctx, ss, &r, 1);
	if (!ret)
		snapshot_publish(snap, ss);
	handler_resume(ss);
open:
	if (!ungated)
		gate_open(&g);
out:
	gate_release(&g);
	if (ret && !r->moved && !r->unwatched)
		own_free(r);
	return ret;
}

static void async_snap_end(struct uffdwp_ctx *ctx, struct uffdwp_snapshot *snap)
{
	struct async_state *s = st(ctx);
	struct region *r = snapshot_region(snap);
	struct sync_state *ss = s->sync;
	struct gate g;
	bool prepared, gated;

	/* Unmap events read by now are marked in gone (a munmap returns
	 * only once its event was read). */
	handler_quiesce_events(ss);
	prepared = !own_drop_gone(r) &&
		   !gate_prepare(&g, r->start, r->end, own_spans(r), r->nown);
	/* Not with a thread that blocks SIGSEGV: it would die at the gate.
	 * The range then stays synchronous until a later snapshot ends
	 * without one. */
	gated = prepared && segv_blocked_somewhere() == 0 && !gate_close(&g);
	handler_pause(ss);
	snapshot_unpublish(snap, ss);
	if (!gated) {
		/* No gate, no move: the range stays synchronous (correct,
		 * only slower) and is harvested as such. */
		handler_resume(ss);
		if (prepared)
			gate_release(&g);
		return;
	}
	movez_note(s, r, true);
	/* The writers blocked on the range retry now, and meet the gate. */
	unregister_sync(ss, r);
	handler_resume(ss);
	if (arm_async(ctx, r)) {
		/* Could not go back: stay synchronous, everything counted
		 * as written once (a superset loses nothing); or, if even
		 * that fails, on neither, reported whole until armed. */
		if (register_own(ss->uffd, r) ||
		    own_each(r, ss->uffd, OWN_PROTECT)) {
			unregister_sync(ss, r);
			r->moved = false;
			r->unwatched = true;
		} else {
			dirtymap_set_range(&r->recorded, 0, r->npages);
		}
	} else {
		r->moved = false;
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

const struct backend_ops backend_uffd_async = {
	.id = UFFDWP_BACKEND_UFFD_ASYNC,
	.init = async_init,
	.fini = async_fini,
	.refuse = async_refuse,
	.track = async_track,
	.untrack = async_untrack,
	.harvest = async_harvest,
	.snap_begin = async_snap_begin,
	.snap_end = async_snap_end,
};
