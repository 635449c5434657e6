/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synchronous write-protect (see syncwp.h).
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

#include "pagemap.h"
#include "syncwp.h"
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

struct wp_target syncwp_target(struct sync_state *s)
{
	return (struct wp_target){
		.protect = sync_protect,
		.unprotect = sync_unprotect,
		.wake = sync_wake,
		.arg = &s->uffd,
	};
}

int syncwp_populate(struct sync_state *s, uintptr_t start, size_t len)
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

int syncwp_open(struct uffdwp_ctx *ctx, unsigned int n, struct sync_state **out)
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

	ret = handler_start(ctx, s, n);
	if (ret) {
		pthread_rwlock_destroy(&s->resolve);
		goto err;
	}
	*out = s;
	return 0;
err:
	close(s->uffd);
	close(s->pagemap);
	handler_free(s, sizeof(*s));
	return ret;
}

void syncwp_close(struct sync_state *s, bool in_child)
{
	unsigned int i;

	if (!s)
		return;
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
}

int syncwp_harvest_locked(struct uffdwp_ctx *ctx, struct sync_state *s,
			  struct region *const *rv, size_t n)
{
	struct wp_target t = syncwp_target(s);
	struct region *r;
	size_t i, p, q, ps = page_size();
	int ret = 0;

	for (i = 0; i < n && !ret; i++) {
		r = rv[i];
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
			ret = syncwp_populate(s, r->start + p * ps,
					      (q - p) * ps);
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
		for (i = 0; i < n; i++)
			if (rv[i])
				dirtymap_or(&rv[i]->recorded, &rv[i]->pending);
	}
	return ret;
}
