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

#include "backend-uffd-async.h"
#include "probe.h"
#include "shadow-alloc.h"
#include "testhooks.h"
#include "sys-uffd.h"

static bool zapped_clean_defect(void)
{
	int status = defect_status(DEFECT_SCAN_ZAPPED_CLEAN);

	return status == UFFDWP_DEFECT_PRESENT ||
	       status == UFFDWP_DEFECT_UNKNOWN;
}

static int async_init(struct backend_ctx *ctx, const struct uffdwp_ctx_opts *o,
		      const struct uffdwp_caps *caps)
{
	struct async_state *s;
	uint64_t want = ASYNC_UFFD_FEATURES, have = 0;
	int ret;

	/* Not from the heap: the scan writes its output here, and a program
	 * may track its heap (and snapshot it, which gates it read-only). */
	s = shadow_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->uffd_mode = caps->uffd_mode;
	s->uffd_features = caps->uffd_features;
	s->uffd = uffd_open(caps->uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0) {
		ret = s->uffd;
		goto err;
	}
	/* shmem and hugetlbfs need this one too, where the kernel has it. */
	if (caps->uffd_features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
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
	shadow_free(s, sizeof(*s));
	return ret;
}

static void async_fini(struct backend_ctx *ctx, bool in_child)
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
	shadow_free(s, sizeof(*s));
	ctx->bdata = NULL;
}

static const char *async_refuse(struct backend_ctx *ctx, int memtype)
{
	if (memtype == MEM_HUGETLB)
		return "hugetlbfs ranges are not supported yet";
	return NULL;
}

struct harvest_arg {
	struct backend_ctx *ctx;
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

int async_scan_region(struct backend_ctx *ctx, struct region *r, bool keep)
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

static int async_track(struct backend_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);
	int ret;

	r->bdata = shadow_zalloc(sizeof(struct async_range));
	if (!r->bdata)
		return -ENOMEM;
	ret = uffd_register(s->uffd, (void *)r->start, r->end - r->start,
			    UFFDIO_REGISTER_MODE_WP, NULL);
	if (ret) {
		ret = ret == -EBUSY ? -EEXIST : ret;
		goto err;
	}
	/* Arm everything, never-touched pages included (WP_UNPOPULATED):
	 * writes from now on clear a uffd-wp bit the next scan finds. */
	ret = async_scan_region(ctx, r, false);
	if (!ret && s->check_zaps)
		ret = zaps_note(&s->zaps, r, true);
	if (!ret)
		return 0;
	uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
err:
	shadow_free(r->bdata, sizeof(struct async_range));
	r->bdata = NULL;
	return ret;
}

static void async_untrack(struct backend_ctx *ctx, struct region *r)
{
	struct async_state *s = st(ctx);

	if (ar(r)->watch == WATCH_ASYNC)
		/* Unregistering drops the uffd-wp bits of the range. */
		uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
	else
		async_moved_untrack(ctx, r);
	shadow_free(r->bdata, sizeof(struct async_range));
	r->bdata = NULL;
}

static int async_harvest(struct backend_ctx *ctx)
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
		if (ar(r)->watch != WATCH_ASYNC) {
			ret = async_moved_harvest(ctx, r);
			if (ret)
				return ret;
			continue;
		}
		ret = async_scan_region(ctx, r, true);
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
