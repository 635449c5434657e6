/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * soft_dirty: the kernel sets pagemap bit 55 on a page's first write after
 * `echo 4 > /proc/self/clear_refs`. The clear has no range form: it resets
 * every page of the process. So every collect (of any context) first reads
 * the bits of every soft-dirty range in the process into that range's
 * recorded map, and only then clears once (invariant 3.3); a context moves
 * its own recorded pages to pending under its own lock, so pages another
 * context's collect found wait there, untouched by a delivery in progress.
 *
 * A page present at the last read and absent now was zapped (MADV_DONTNEED
 * drops the PTE and its bit with it) and counts as dirty: its contents
 * became zeros. Bits are read with PAGEMAP_SCAN (PAGE_IS_SOFT_DIRTY, 6.8+)
 * or by pread() of pagemap.
 *
 * Not atomic: a write landing between the read and the clear of a collect
 * is lost. Writers must be quiescent during a collect (uffdwp.h says so).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <bsd/sys/queue.h>
#include <unistd.h>

#include "backend.h"
#include "sys-pagemap.h"
#include "sys-uffd.h"

#define PREAD_ENTRIES 4096
#define SCAN_VEC 1024

/* Every soft-dirty range of the process, across contexts. */
struct sd_entry {
	struct region *r;
	LIST_ENTRY(sd_entry) link;
};

static pthread_mutex_t sd_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, sd_entry) sd_regions = LIST_HEAD_INITIALIZER(sd_regions);

struct sd_state {
	int pagemap;
	bool use_scan;
};

static int sd_init(struct backend_ctx *ctx, const struct uffdwp_ctx_opts *o,
		   const struct uffdwp_caps *caps)
{
	struct sd_state *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pagemap = pagemap_open();
	if (s->pagemap < 0) {
		ret = s->pagemap;
		free(s);
		return ret;
	}
	s->use_scan = caps->pagemap_scan_soft_dirty;
	ctx->bdata = s;
	return 0;
}

static void sd_fini(struct backend_ctx *ctx, bool in_child)
{
	struct sd_state *s = ctx->bdata;

	/* In a child too: its range list forgot the parent's at fork. */
	(void)in_child;
	close(s->pagemap);
	free(s);
	ctx->bdata = NULL;
}

static void sd_atfork(enum fork_phase phase)
{
	switch (phase) {
	case FORK_PREPARE:
		pthread_mutex_lock(&sd_lock);
		break;
	case FORK_PARENT:
		pthread_mutex_unlock(&sd_lock);
		break;
	case FORK_CHILD:
		/* The parent's ranges: the child's clear_refs must not read
		 * them for contexts it can only free. (Entries leak, as the
		 * regions they point to do.) */
		LIST_INIT(&sd_regions);
		pthread_mutex_unlock(&sd_lock);
		break;
	}
}

static const char *sd_refuse(struct backend_ctx *ctx, int memtype)
{
	if (memtype != MEM_ANON)
		return "soft-dirty tracks private anonymous memory only here";
	return NULL;
}

/* Fold one page's state into the region: dirty, or present then gone. */
static void fold(struct region *r, size_t i, bool dirty, bool present,
		 bool keep)
{
	bool was = dirtymap_test(&r->present, i);

	if (keep && (dirty || (was && !present)))
		dirtymap_set(&r->recorded, i);
	if (present != was) {
		if (present)
			dirtymap_set(&r->present, i);
		else
			dirtymap_clear_range(&r->present, i, 1);
	}
}

static int read_pread(int pm, struct region *r, bool keep)
{
	uint64_t *e = malloc(PREAD_ENTRIES * sizeof(*e));
	size_t i = 0, n, k;
	ssize_t got;
	int ret = 0;

	if (!e)
		return -ENOMEM;
	while (i < r->npages) {
		n = r->npages - i < PREAD_ENTRIES ? r->npages - i :
						    PREAD_ENTRIES;
		got = pread(pm, e, n * sizeof(*e),
			    (off_t)((r->start / page_size() + i) * sizeof(*e)));
		if (got <= 0) {
			ret = got < 0 ? neg_errno() : -EIO;
			break;
		}
		n = (size_t)got / sizeof(*e);
		for (k = 0; k < n; k++)
			fold(r, i + k, e[k] & PM_SOFT_DIRTY,
			     pagemap_has_content(e[k]), keep);
		i += n;
	}
	free(e);
	return ret;
}

struct scan_arg {
	struct region *r;
	struct dirtymap *seen; /* present or swapped now */
	bool keep;
};

static int scan_fold(const struct page_region *vec, size_t n, void *arg)
{
	struct scan_arg *a = arg;
	struct region *r = a->r;
	size_t i, p, first, last;

	for (i = 0; i < n; i++) {
		first = region_page(r, vec[i].start);
		last = region_page(r, vec[i].end);
		for (p = first; p < last; p++) {
			/* The zero page holds no content (a zapped page
			 * read since maps it): not present for this. */
			if (!(vec[i].categories & PAGE_IS_PFNZERO))
				dirtymap_set(a->seen, p);
			if (a->keep && (vec[i].categories & PAGE_IS_SOFT_DIRTY))
				dirtymap_set(&r->recorded, p);
		}
	}
	return 0;
}

/* PAGEMAP_SCAN reports only pages that are present, swapped or dirty. */
static int read_scan(int pm, struct region *r, bool keep)
{
	static const uint64_t cats = PAGE_IS_SOFT_DIRTY | PAGE_IS_PRESENT |
				     PAGE_IS_SWAPPED;
	static const uint64_t ret_cats = cats | PAGE_IS_PFNZERO;
	struct page_region *vec = malloc(SCAN_VEC * sizeof(*vec));
	struct scan_arg a = { r, NULL, keep };
	struct dirtymap seen;
	struct pm_scan_arg arg;
	uintptr_t start = r->start;
	size_t p;
	long n;
	int ret = 0;

	if (!vec || dirtymap_init(&seen, r->npages)) {
		free(vec);
		return -ENOMEM;
	}
	a.seen = &seen;
	while (start < r->end) {
		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.start = start;
		arg.end = r->end;
		arg.vec = (uintptr_t)vec;
		arg.vec_len = SCAN_VEC;
		arg.category_anyof_mask = cats;
		arg.return_mask = ret_cats;
		n = pagemap_scan_once(pm, &arg);
		if (n < 0) {
			ret = (int)n;
			break;
		}
		scan_fold(vec, (size_t)n, &a);
		if ((size_t)n < SCAN_VEC)
			break;
		start = arg.walk_end > vec[n - 1].end ? arg.walk_end :
							vec[n - 1].end;
	}
	if (!ret) {
		for (p = 0; p < r->npages; p++) {
			bool now = dirtymap_test(&seen, p);

			if (keep && !now && dirtymap_test(&r->present, p))
				dirtymap_set(&r->recorded, p);
		}
		memcpy(r->present.w, seen.w,
		       DIRTYMAP_WORDS(r->npages) * sizeof(uint64_t));
	}
	dirtymap_free(&seen);
	free(vec);
	return ret;
}

static int read_region(struct backend_ctx *ctx, struct region *r, bool keep)
{
	struct sd_state *s = r->ctx->bdata;

	return s->use_scan ? read_scan(s->pagemap, r, keep) :
			     read_pread(s->pagemap, r, keep);
}

static int clear_refs(struct backend_ctx *ctx)
{
	cnt_add(&ctx->cnt.clear_calls, 1);
	return pagemap_clear_soft_dirty();
}

/*
 * Read every soft-dirty range of the process (@fresh's result discarded:
 * what was written before it was tracked is not news), then clear once.
 * Caller holds sd_lock.
 */
static int read_all_then_clear(struct backend_ctx *ctx, struct region *fresh)
{
	struct sd_entry *e;
	int ret;

	LIST_FOREACH(e, &sd_regions, link) {
		ret = read_region(ctx, e->r, e->r != fresh);
		if (ret)
			return ret;
	}
	ret = clear_refs(ctx);
	if (ret)
		return ret;
	LIST_FOREACH(e, &sd_regions, link)
		cnt_add(&ctx->cnt.pages_rearmed, e->r->npages);
	return 0;
}

static int sd_track(struct backend_ctx *ctx, struct region *r)
{
	struct sd_entry *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->r = r;
	pthread_mutex_lock(&sd_lock);
	LIST_INSERT_HEAD(&sd_regions, e, link);
	ret = read_all_then_clear(ctx, r);
	if (ret) {
		LIST_REMOVE(e, link);
		free(e);
	}
	pthread_mutex_unlock(&sd_lock);
	return ret;
}

static void sd_untrack(struct backend_ctx *ctx, struct region *r)
{
	struct sd_entry *e;

	pthread_mutex_lock(&sd_lock);
	LIST_FOREACH(e, &sd_regions, link) {
		if (e->r == r) {
			LIST_REMOVE(e, link);
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&sd_lock);
}

static int sd_harvest(struct backend_ctx *ctx)
{
	struct region_set *set = ctx->regions;
	size_t i;
	int ret;

	pthread_mutex_lock(&sd_lock);
	ret = read_all_then_clear(ctx, NULL);
	pthread_mutex_unlock(&sd_lock);
	/* Even after a failed clear: what was read is reported. */
	for (i = 0; set && i < set->n; i++)
		if (set->r[i])
			dirtymap_take(&set->r[i]->pending,
				      &set->r[i]->recorded);
	return ret;
}

const struct backend_ops backend_soft_dirty = {
	.id = UFFDWP_BACKEND_SOFT_DIRTY,
	.init = sd_init,
	.fini = sd_fini,
	.refuse = sd_refuse,
	.track = sd_track,
	.untrack = sd_untrack,
	.harvest = sd_harvest,
	.atfork = sd_atfork,
};
