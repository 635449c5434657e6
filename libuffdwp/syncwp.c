/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synchronous userfaultfd (see syncwp.h): opening and closing it,
 * its protect targets, the pause of resolution and the collect protocol.
 *
 * Without UFFD_FEATURE_WP_UNPOPULATED (before 6.4) write-protecting a page
 * with no PTE does nothing, so such pages are populated first, with the
 * shared zero page (MADV_POPULATE_READ): no memory is spent, and a write to
 * the zero page still faults to us.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys-pagemap.h"
#include "segv.h"
#include "shadow-alloc.h"
#include "syncwp-handler.h"
#include "syncwp-self.h"
#include "testhooks.h"
#include "sys-uffd.h"
#include "vma.h"

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

/*
 * A protect may give a resolved page its protection back: a new epoch
 * before and after it, so that a self-service handler that read the epoch
 * in between does not take the page's next fault for a repeat (see
 * syncwp-self.c). Epochs are drawn from one process-wide count: a state
 * allocated where a freed one was, tracking the same addresses, must not
 * meet that one's epochs again (a thread's last resolved page would look
 * like a repeat, and go to the program's handler). A state's epoch only
 * grows, whatever order concurrent protects store in.
 */
static uint64_t epochs;

static void new_epoch(int *uffd)
{
	struct sync_state *s = container_of(uffd, struct sync_state, uffd);
	uint64_t e = __atomic_add_fetch(&epochs, 1, __ATOMIC_SEQ_CST);
	uint64_t cur = __atomic_load_n(&s->epoch, __ATOMIC_SEQ_CST);

	while (cur < e &&
	       !__atomic_compare_exchange_n(&s->epoch, &cur, e, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

static int sync_protect_run(int fd, uintptr_t start, size_t len)
{
	int ret;
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

static int sync_protect(void *arg, uintptr_t start, size_t len)
{
	int ret;

	new_epoch(arg);
	ret = sync_protect_run(*(int *)arg, start, len);
	new_epoch(arg);
	return ret;
}

static int sync_unprotect(void *arg, uintptr_t start, size_t len)
{
	return uffd_writeprotect(*(int *)arg, (void *)start, len,
				 UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
}

/* -ENOENT: the range left this userfaultfd (untracked, or moved back to
 * uffd_async after a snapshot) between the fault and its resolution.
 * Whoever unregistered it woke its writers (the kernel wakes only MISSING
 * waiters on unregister); a writer of a message read before that is woken
 * by the wake that follows. */
static int sync_unprotect_gone_ok(void *arg, uintptr_t start, size_t len)
{
	int ret = sync_unprotect(arg, start, len);

	return ret == -ENOENT ? 0 : ret;
}

static int sync_wake(void *arg, uintptr_t start, size_t len)
{
	return uffd_wake(*(int *)arg, (void *)start, len);
}

static int sync_unprotect_wake(void *arg, uintptr_t start, size_t len)
{
	int ret = uffd_writeprotect(*(int *)arg, (void *)start, len, 0);

	if (ret == -ENOENT)
		return sync_wake(arg, start, len);
	return ret;
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

struct wp_target syncwp_resolve_target(struct sync_state *s)
{
	return (struct wp_target){
		.unprotect = sync_unprotect_gone_ok,
		.wake = sync_wake,
		.unprotect_wake = sync_unprotect_wake,
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

int syncwp_open(const struct sync_env *env, int uffd_mode,
		uint64_t uffd_features, bool self, unsigned int n,
		struct sync_state **out)
{
	pthread_rwlockattr_t attr;
	struct sync_state *s;
	uint64_t want;
	int ret;

	s = shadow_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->stopfd = -1;
	s->env = *env;
	s->pagemap = pagemap_open();
	if (s->pagemap < 0) {
		ret = s->pagemap;
		shadow_free(s, sizeof(*s));
		return ret;
	}
	s->uffd = uffd_open(uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0) {
		ret = s->uffd;
		close(s->pagemap);
		shadow_free(s, sizeof(*s));
		return ret;
	}
	/* Events keep the tracking honest when the address space changes
	 * under it; EVENT_FORK is left out: children get -ECHILD and the
	 * kernel already drops registration in them without it. */
	want = SYNC_UFFD_FEATURES | UFFD_FEATURE_EVENT_REMOVE |
	       UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
	       UFFD_FEATURE_THREAD_ID;
	want |= uffd_features &
		(UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	if (self)
		want |= UFFD_FEATURE_SIGBUS;
	ret = uffd_api(s->uffd, want, &s->features);
	if (ret)
		goto err;
	s->features = want;
	s->unpopulated = want & UFFD_FEATURE_WP_UNPOPULATED;
	s->self = self;
	/* Faults come as signals: one thread for the events is enough. */
	if (self)
		n = 1;

	/* Writer preference: a stream of faults must not starve a collect. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resolve, &attr);
	pthread_rwlockattr_destroy(&attr);

	ret = syncwp_handlers_start(s, n);
	if (ret) {
		pthread_rwlock_destroy(&s->resolve);
		goto err;
	}
	*out = s;
	return 0;
err:
	close(s->uffd);
	close(s->pagemap);
	shadow_free(s, sizeof(*s));
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
	syncwp_handlers_stop(s);
	pthread_rwlock_destroy(&s->resolve);
	close(s->uffd);
	close(s->pagemap);
	shadow_free(s, sizeof(*s));
}

void syncwp_quiesce_events(struct sync_state *s)
{
	while (__atomic_load_n(&s->reading, __ATOMIC_SEQ_CST))
		sched_yield();
}

void syncwp_unregistered(struct sync_state *s, uintptr_t lo, size_t len)
{
	uffd_wake(s->uffd, (void *)lo, len);
	/* After the wake: a message read between the unregister and the
	 * wake is then stale too (the wake woke its writer). */
	__atomic_fetch_add(&s->regen, 1, __ATOMIC_SEQ_CST);
}

void syncwp_kick(struct sync_state *s)
{
	uint64_t one = 1;
	unsigned int i;

	for (i = 0; i < s->nthreads; i++)
		if (write(s->kickfd[i], &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			break; /* the fallback poll timeout still retries */
}

void syncwp_pause(struct sync_state *s)
{
	sigset_t mask;

	segv_window_enter(&mask);
	pthread_rwlock_wrlock(&s->resolve);
	if (s->self)
		syncwp_self_pause(s);
	s->pause_mask = mask;
	testhook_hold(HOLD_SYNC_PAUSE);
}

void syncwp_resume(struct sync_state *s)
{
	sigset_t mask = s->pause_mask;

	if (s->self)
		syncwp_self_resume(s);
	pthread_rwlock_unlock(&s->resolve);
	syncwp_kick(s);
	segv_window_leave(&mask);
}

int syncwp_attach(struct sync_state *s, struct region *r)
{
	return s->self ? syncwp_self_add(s, r) : 0;
}

void syncwp_detach(struct sync_state *s, struct region *r)
{
	if (s->self)
		syncwp_self_remove(r);
}

void syncwp_atfork(enum fork_phase phase)
{
	syncwp_self_atfork(phase);
}

int syncwp_harvest_locked(struct sync_state *s, struct region *const *rv,
			  size_t n)
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
				ret = wpbatch_protect(s->env.batch,
						      r->start + p * ps,
						      (q - p) * ps, r);
			if (ret)
				break;
		}
		dirtymap_take(&r->pending, &r->recorded);
	}
	if (!ret)
		ret = wpbatch_flush(s->env.batch, &t);
	else
		wpbatch_flush(s->env.batch, &t);
	if (ret) {
		/* Not re-protected for sure: record them again, so the next
		 * collect re-protects and reports them (a superset). */
		for (i = 0; i < n; i++)
			if (rv[i])
				dirtymap_or(&rv[i]->recorded, &rv[i]->pending);
	}
	return ret;
}

int syncwp_harvest(struct sync_state *s, struct region *const *rv, size_t n,
		   void (*instant)(void *arg, struct sync_state *s), void *arg)
{
	/* Broken on purpose (a test): a collect that does not pause. */
	bool paused = instant || !uffdwp_test_hooks.break_sync_collect;
	int ret;

	if (paused)
		syncwp_pause(s);
	syncwp_quiesce_events(s);
	ret = syncwp_harvest_locked(s, rv, n);
	if (!ret && instant)
		instant(arg, s);
	if (paused)
		syncwp_resume(s);
	return ret;
}

int syncwp_each_zap_pending(struct sync_state *s, struct region *r,
			    uintptr_t lo, uintptr_t hi,
			    int (*fn)(void *arg, uintptr_t page), void *arg)
{
	size_t first = region_page(r, lo), last = region_page(r, hi), p;
	uintptr_t page;
	uint64_t e;
	int ret;

	for (p = dirtymap_next_set(&r->zapwatch, first); p < last;
	     p = dirtymap_next_set(&r->zapwatch, p + 1)) {
		page = r->start + p * page_size();
		/* Private anonymous, neither present nor swapped out: zeros
		 * now, and after any zap. (A shmem page may be in the page
		 * cache without being mapped here.) */
		if (r->memtype == MEM_ANON &&
		    pagemap_entry(s->pagemap, (void *)page, &e) == 0 &&
		    !(e & (PM_PRESENT | PM_SWAP)))
			continue;
		ret = fn(arg, page);
		if (ret)
			return ret;
	}
	return 0;
}

static int still_registered(void *arg, uintptr_t lo, uintptr_t hi)
{
	(void)hi;
	/* -ENOENT unless the mapping is registered for write-protect.
	 * Protecting one more page costs at most one more fault, whose
	 * page is then reported written: a superset, nothing lost. */
	return uffd_writeprotect(*(int *)arg, (void *)lo, page_size(),
				 UFFDIO_WRITEPROTECT_MODE_WP);
}

int syncwp_still_registered(struct sync_state *s, uintptr_t lo, uintptr_t hi)
{
	int ret;

	/* Self-service: this protect, like every other, must not fall
	 * between a handler's look at the epoch and its unprotect, or the
	 * page's next fault looks like a repeat and goes to the program's
	 * handler (syncwp-self.c). */
	if (!s->self)
		return vma_each(lo, hi, still_registered, &s->uffd);
	syncwp_pause(s);
	new_epoch(&s->uffd);
	ret = vma_each(lo, hi, still_registered, &s->uffd);
	new_epoch(&s->uffd);
	syncwp_resume(s);
	return ret;
}
