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
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "pagemap.h"
#include "testhooks.h"
#include "uffd.h"
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
	s = calloc(1, sizeof(*s));
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
	free(s);
	return ret;
}

static void async_fini(struct uffdwp_ctx *ctx, bool in_child)
{
	struct async_state *s = st(ctx);

	if (s->check_zaps)
		close(s->zaps.pagemap);
	close(s->pagemap);
	close(s->uffd);
	if (in_child)
		return;
	if (s->check_zaps)
		dirtymap_free(&s->zaps.now);
	free(s);
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

static void async_untrack(struct uffdwp_ctx *ctx, struct region *r)
{
	/* Unregistering drops the uffd-wp bits of the range. */
	uffd_unregister(st(ctx)->uffd, (void *)r->start, r->end - r->start);
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
			dirtymap_take(&r->pending, &r->recorded);
		}
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
};
