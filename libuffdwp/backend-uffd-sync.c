/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd_sync: tracked pages are write-protected with UFFDIO_WRITEPROTECT; a
 * write blocks its thread and sends a message to the library's handler
 * threads (handler.c), which record the page and unprotect it.
 *
 * Collect protocol (invariant 3.3): take the resolve lock exclusively, which
 * pauses resolution (faulting writers wait in the queue); move the recorded
 * pages to pending; re-protect their runs through the wp batch and wait for
 * the flush; release. Faults queued meanwhile belong to the next epoch.
 *
 * Without UFFD_FEATURE_WP_UNPOPULATED (before 6.4) write-protecting a page
 * with no PTE does nothing, so such pages are populated first, with the
 * shared zero page (MADV_POPULATE_READ): no memory is spent, and a write to
 * the zero page still faults to us.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "handler.h"
#include "pagemap.h"
#include "testhooks.h"
#include "uffd.h"

/*
 * A watched page that is still present may be waiting for its zap, or may
 * have been zapped and written again since: only time tells them apart.
 * Past both bounds the zap is taken as done. (A zap is the madvise caller's
 * next step after its event was read; it waits only for mmap_read_lock.)
 */
#define ZAPWATCH_COLLECTS 2
#define ZAPWATCH_NS (250ULL * 1000 * 1000)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* 5.14 */
#endif

struct uffdwp_test_hooks uffdwp_test_hooks;

static struct sync_state *st(struct uffdwp_ctx *ctx)
{
	return ctx->bdata;
}

static int sync_protect(void *arg, uintptr_t start, size_t len)
{
	int fd = *(int *)arg, ret;
	uintptr_t a;

	ret = uffd_writeprotect(fd, (void *)start, len,
				UFFDIO_WRITEPROTECT_MODE_WP);
	if (ret != -ENOENT)
		return ret;
	/*
	 * A merged run crossed memory that is not ours (a mapping the
	 * program put inside a tracked range), or, before 6.4, a mapping
	 * boundary. Page by page, skipping pages that are not registered.
	 */
	for (a = start; a < start + len; a += page_size()) {
		ret = uffd_writeprotect(fd, (void *)a, page_size(),
					UFFDIO_WRITEPROTECT_MODE_WP);
		if (ret && ret != -ENOENT)
			return ret;
	}
	return 0;
}

static int sync_unprotect(void *arg, uintptr_t start, size_t len)
{
	return uffd_writeprotect(*(int *)arg, (void *)start, len,
				 UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
}

static int sync_wake(void *arg, uintptr_t start, size_t len)
{
	return uffd_wake(*(int *)arg, (void *)start, len);
}

static struct wp_target target(struct sync_state *s)
{
	return (struct wp_target){
		.protect = sync_protect,
		.unprotect = sync_unprotect,
		.wake = sync_wake,
		.arg = &s->uffd,
	};
}

static int sync_init(struct uffdwp_ctx *ctx, const struct uffdwp_ctx_opts *o)
{
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	pthread_rwlockattr_t attr;
	struct sync_state *s;
	uint64_t want;
	int ret;

	ret = uffdwp_probe(&caps);
	if (ret)
		return ret;
	s = handler_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->stopfd = -1;
	s->pagemap = pagemap_open();
	if (s->pagemap < 0) {
		ret = s->pagemap;
		handler_free(s, sizeof(*s));
		return ret;
	}
	s->uffd = uffd_open(caps.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0) {
		ret = s->uffd;
		close(s->pagemap);
		handler_free(s, sizeof(*s));
		return ret;
	}
	/* Events keep the tracking honest when the address space changes
	 * under it; EVENT_FORK is left out: children get -ECHILD and the
	 * kernel already drops registration in them without it. */
	want = SYNC_UFFD_FEATURES | UFFD_FEATURE_EVENT_REMOVE |
	       UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
	       UFFD_FEATURE_THREAD_ID;
	want |= caps.uffd_features &
		(UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	ret = uffd_api(s->uffd, want, &s->features);
	if (ret)
		goto err;
	s->features = want;
	s->unpopulated = want & UFFD_FEATURE_WP_UNPOPULATED;

	/* Writer preference: a stream of faults must not starve a collect. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resolve, &attr);
	pthread_rwlockattr_destroy(&attr);

	ctx->bdata = s;
	ret = handler_start(ctx, s, ctx->handler_threads);
	if (ret) {
		pthread_rwlock_destroy(&s->resolve);
		goto err;
	}
	return 0;
err:
	close(s->uffd);
	close(s->pagemap);
	handler_free(s, sizeof(*s));
	ctx->bdata = NULL;
	return ret;
}

static void sync_fini(struct uffdwp_ctx *ctx, bool in_child)
{
	struct sync_state *s = st(ctx);

	unsigned int i;

	if (in_child) {
		/* None of the parent's threads exist here: close their fds,
		 * keep the memory (nothing in the child frees it twice). */
		for (i = 0; i < s->nthreads; i++)
			close(s->kickfd[i]);
		close(s->stopfd);
		close(s->uffd);
		close(s->pagemap);
		return;
	}
	handler_stop(s);
	pthread_rwlock_destroy(&s->resolve);
	close(s->uffd);
	close(s->pagemap);
	handler_free(s, sizeof(*s));
	ctx->bdata = NULL;
}

static const char *sync_refuse(struct uffdwp_ctx *ctx, int memtype)
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

/* Give PTE-less pages the zero page, so write-protect sticks to them. */
static int populate(struct sync_state *s, uintptr_t start, size_t len)
{
	volatile const char *p;
	uintptr_t a;

	if (s->unpopulated)
		return 0;
	if (!madvise((void *)start, len, MADV_POPULATE_READ))
		return 0;
	if (errno != EINVAL)
		return neg_errno();
	/* Before 5.14: read one byte per page. */
	for (a = start; a < start + len; a += page_size()) {
		p = (volatile const char *)a;
		(void)*p;
	}
	return 0;
}

/*
 * Track and untrack exclude fault resolution, like a collect: a stale
 * message for a page of an untracked range must not be resolved after the
 * same page was armed by a new track.
 */
static int sync_track(struct uffdwp_ctx *ctx, struct region *r)
{
	struct sync_state *s = st(ctx);
	struct wp_target t = target(s);
	size_t len = r->end - r->start;
	int ret;

	ret = uffd_register(s->uffd, (void *)r->start, len,
			    UFFDIO_REGISTER_MODE_WP, NULL);
	if (ret)
		return ret == -EBUSY ? -EEXIST : ret;
	ret = populate(s, r->start, len);
	pthread_rwlock_wrlock(&s->resolve);
	if (!ret)
		ret = wpbatch_protect(&ctx->batch, r->start, len, r);
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &t);
	pthread_rwlock_unlock(&s->resolve);
	handler_kick(s);
	if (ret)
		uffd_unregister(s->uffd, (void *)r->start, len);
	return ret;
}

static void sync_untrack(struct uffdwp_ctx *ctx, struct region *r)
{
	struct sync_state *s = st(ctx);

	/* Unregistering drops the protection and wakes blocked writers. */
	pthread_rwlock_wrlock(&s->resolve);
	uffd_unregister(s->uffd, (void *)r->start, r->end - r->start);
	pthread_rwlock_unlock(&s->resolve);
	handler_kick(s);
}

/*
 * The kernel sends REMOVE before it zaps, so a re-protect made between
 * the two is undone by the zap (anonymous zaps drop uffd-wp bits and
 * markers), and the zeros the zap leaves would go unreported. So the
 * pages of a REMOVE stay watched: each collect reports and re-protects
 * them again, until one finds the page gone with no marker (the zap is
 * done: this collect reports its zeros and arms a marker) or, for pages
 * still present, until the watch window has passed.
 */
static void watch_zaps(struct sync_state *s, struct region *r)
{
	size_t ps = page_size(), p, q, k;
	uint64_t e, age;
	bool expired;
	off_t off;

	if (dirtymap_next_set(&r->zapwatch, 0) >= r->npages)
		return;
	age = now_ns() - __atomic_load_n(&r->zap_ns, __ATOMIC_RELAXED);
	expired = __atomic_add_fetch(&r->zap_collects, 1, __ATOMIC_RELAXED) >
			  ZAPWATCH_COLLECTS &&
		  age > ZAPWATCH_NS;
	for (p = dirtymap_next_set(&r->zapwatch, 0); p < r->npages;
	     p = dirtymap_next_set(&r->zapwatch, q)) {
		q = dirtymap_next_clear(&r->zapwatch, p);
		for (k = p; k < q; k++) {
			off = (off_t)((r->start / ps + k) * sizeof(e));
			dirtymap_set(&r->recorded, k);
			if (pread(s->pagemap, &e, sizeof(e), off) != sizeof(e))
				continue; /* keep watching */
			if (!(e & (PM_PRESENT | PM_SWAP)) ||
			    (!(e & PM_PRESENT) && !(e & PM_UFFD_WP))) {
				/* Gone, marker gone: the zap is done. */
				dirtymap_clear_range(&r->zapwatch, k, 1);
			} else if (expired) {
				dirtymap_clear_range(&r->zapwatch, k, 1);
			}
		}
	}
}

/* Clear from @m every page of @gone (unmapped or moved away). */
static void drop_gone(struct dirtymap *m, const struct dirtymap *gone)
{
	size_t i;

	for (i = 0; i < DIRTYMAP_WORDS(m->nbits); i++)
		if (gone->w[i])
			__atomic_fetch_and(&m->w[i], ~gone->w[i],
					   __ATOMIC_RELAXED);
}

static int sync_harvest(struct uffdwp_ctx *ctx)
{
	struct sync_state *s = st(ctx);
	struct wp_target t = target(s);
	struct region_set *set = ctx->regions;
	bool paused = !uffdwp_test_hooks.break_sync_collect;
	struct region *r;
	size_t i, p, q, ps = page_size();
	int ret = 0;

	if (paused)
		pthread_rwlock_wrlock(&s->resolve);
	handler_quiesce_events(s);
	for (i = 0; set && i < set->n && !ret; i++) {
		r = set->r[i];
		if (!r)
			continue;
		watch_zaps(s, r);
		drop_gone(&r->recorded, &r->gone);
		drop_gone(&r->pending, &r->gone);
		drop_gone(&r->zapwatch, &r->gone);
		for (p = dirtymap_next_set(&r->recorded, 0); p < r->npages;
		     p = dirtymap_next_set(&r->recorded, q)) {
			q = dirtymap_next_clear(&r->recorded, p);
			/* Zapped pages lost their PTE: give them one. */
			ret = populate(s, r->start + p * ps, (q - p) * ps);
			if (!ret)
				ret = wpbatch_protect(&ctx->batch,
						      r->start + p * ps,
						      (q - p) * ps, r);
			if (ret)
				break;
		}
		dirtymap_take(&r->pending, &r->recorded);
	}
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &t);
	else
		wpbatch_flush(&ctx->batch, &t);
	if (ret) {
		/* Not re-protected for sure: record them again, so the next
		 * collect re-protects and reports them (a superset). */
		for (i = 0; set && i < set->n; i++)
			if (set->r[i])
				dirtymap_or(&set->r[i]->recorded,
					    &set->r[i]->pending);
	}
	if (paused) {
		pthread_rwlock_unlock(&s->resolve);
		handler_kick(s);
	}
	return ret;
}

const struct backend_ops backend_uffd_sync = {
	.id = UFFDWP_BACKEND_UFFD_SYNC,
	.init = sync_init,
	.fini = sync_fini,
	.refuse = sync_refuse,
	.track = sync_track,
	.untrack = sync_untrack,
	.harvest = sync_harvest,
};
