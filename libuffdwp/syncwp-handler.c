/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synchronous userfaultfd's fault loop (see syncwp-handler.h).
 *
 * Rules (invariant 3.6): a handler never touches tracked memory: its
 * buffers come from mmap at start, not from a heap the program may track;
 * it blocks all signals; it never forks, mremaps or munmaps. A page is
 * recorded before it is unprotected, so an unprotected page is always in
 * a recorded set, and both happen under the shared resolve lock, so a
 * collect (exclusive) never sees one without the other.
 */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>

#include "segv.h"
#include "shadow-alloc.h"
#include "syncwp-handler.h"
#include "syncwp-self.h"
#include "testhooks.h"
#include "sys-uffd.h"

/* Messages per read(2): one system call serves a burst of faults. */
#define MSGS 64
/* Pages waiting for a retry: after EAGAIN (an event in delivery), or while
 * a collect pauses resolution. New messages are read only while there is
 * room for them here, so no fault is ever dropped. */
#define RETRY_CAP (4 * MSGS)
#define BACKOFF_MAX_MS 64
/* A collect kicks handlers when it resumes resolution; this is only the
 * fallback in case a kick is missed. */
#define PAUSED_POLL_MS 20

struct handler {
	struct sync_state *s;
	int kickfd;
	struct uffd_msg msgs[MSGS];
	uintptr_t pages[RETRY_CAP];
	uintptr_t retry[RETRY_CAP];
	size_t nretry;
	/* s->regen when the oldest message of the batch was read: the
	 * batch is stale once it moved on (syncwp_unregistered()). */
	uint64_t regen;
	struct wp_op prot[RETRY_CAP], unprot[RETRY_CAP];
	struct wpbatch batch;
};

static int cmp_page(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return (x > y) - (x < y);
}

/* Sort and drop duplicates: several threads fault on one page. */
static size_t dedupe(uintptr_t *v, size_t n)
{
	size_t i, j, out = 0;
	uintptr_t t;

	/* Insertion sort: small n, and no allocation. */
	for (i = 1; i < n; i++) {
		t = v[i];
		for (j = i; j > 0 && cmp_page(&v[j - 1], &t) > 0; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
	for (i = 0; i < n; i++)
		if (!out || v[out - 1] != v[i])
			v[out++] = v[i];
	return out;
}

static void mark_range(struct region_set *set, uintptr_t start, uintptr_t end,
		       bool gone)
{
	struct wp_observer *obs;
	size_t i, a, b;
	struct region *r;

	for (i = 0; set && i < set->n; i++) {
		r = __atomic_load_n(&set->r[i], __ATOMIC_ACQUIRE);
		if (!r || r->end <= start || r->start >= end)
			continue;
		a = region_page(r, start > r->start ? start : r->start);
		b = region_page(r, end < r->end ? end : r->end);
		/* Zapped pages read as zeros now: changed, so dirty. Gone
		 * pages are no longer there to report. */
		dirtymap_set_range(gone ? &r->gone : &r->recorded, a, b - a);
		if (!gone) {
			/* The zap itself comes after this event was read:
			 * watch these pages until it is seen done. */
			__atomic_store_n(&r->zap_ns, now_ns(),
					 __ATOMIC_RELAXED);
			__atomic_store_n(&r->zap_collects, 0, __ATOMIC_RELAXED);
			dirtymap_set_range(&r->zapwatch, a, b - a);
		}
		/* After the marks (see the observer's attach). */
		obs = __atomic_load_n(&r->obs, __ATOMIC_SEQ_CST);
		if (obs)
			obs->event(obs, start, end,
				   gone ? UFFDWP_CAUSE_UNMAPPED :
					  UFFDWP_CAUSE_ZAPPED);
	}
}

/*
 * Address-space events, handled at once and without the resolve lock (only
 * atomic bit marks), so they are read even while a collect pauses fault
 * resolution: the thread that caused one waits until it is read, and the
 * collect's own ioctls get EAGAIN until then.
 */
static void handle_event(struct handler *h, struct region_set *set,
			 const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		mark_range(set, m->arg.remove.start, m->arg.remove.end, false);
		break;
	case UFFD_EVENT_UNMAP:
		mark_range(set, m->arg.remove.start, m->arg.remove.end, true);
		break;
	case UFFD_EVENT_REMAP:
		mark_range(set, m->arg.remap.from,
			   m->arg.remap.from + m->arg.remap.len, true);
		/* The moved VMA stays registered with us but is no tracked
		 * range: release it, or its writers would fault forever. */
		uffd_unregister(h->s->uffd, (void *)(uintptr_t)m->arg.remap.to,
				m->arg.remap.len);
		uffd_wake(h->s->uffd, (void *)(uintptr_t)m->arg.remap.to,
			  m->arg.remap.len);
		break;
	default:
		return;
	}
	cnt_add(h->s->env.events, 1);
}

/*
 * A batch read before an unregister (syncwp_unregistered()): its writers
 * were woken and retry under whatever watches their range now, so none of
 * its pages is recorded; waking them again costs a still-protected
 * writer one more fault, whose fresh message is then resolved.
 */
static void drop_stale(struct handler *h, const uintptr_t *pages, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		uffd_wake(h->s->uffd, (void *)pages[i], page_size());
}

/*
 * Record and resolve @n deduplicated pages. Returns -EBUSY if a collect
 * holds resolution, -EAGAIN if the kernel refused an unprotect while an
 * event was being delivered; the pages then go to the retry list. Pages a
 * range's observer holds (a snapshot that must copy them first, and cannot
 * yet) are moved to the front of @pages and counted in *@deferred: they
 * wait too.
 */
static int resolve(struct handler *h, uintptr_t *pages, size_t n,
		   size_t *deferred)
{
	struct sync_state *s = h->s;
	const struct wp_target t = syncwp_resolve_target(s);
	bool late = uffdwp_test_hooks.snapshot_unprotect_first;
	struct wp_observer *obs;
	struct region_set *set;
	struct region *r;
	size_t i, ps = page_size(), nd = 0;
	int ret;

	*deferred = 0;
	if (!n)
		return 0;
	if (!uffdwp_test_hooks.break_sync_collect &&
	    pthread_rwlock_tryrdlock(&s->resolve))
		return -EBUSY;
	/* Stable while resolve is held: the pausing paths unregister. */
	if (h->regen != __atomic_load_n(&s->regen, __ATOMIC_SEQ_CST)) {
		drop_stale(h, pages, n);
		if (!uffdwp_test_hooks.break_sync_collect)
			pthread_rwlock_unlock(&s->resolve);
		return 0;
	}
	urcu_bp_read_lock();
	set = rcu_dereference(*s->env.regions);
	for (i = 0; i < n; i++) {
		r = regions_lookup(set, pages[i]);
		if (r) {
			/* Invariant 3.4: the pre-image is copied before the
			 * unprotect is even queued. (Stable under the shared
			 * resolve lock: attached and detached exclusively.) */
			obs = __atomic_load_n(&r->obs, __ATOMIC_ACQUIRE);
			if (obs && !late && obs->fault(obs, pages[i], false)) {
				pages[nd++] = pages[i];
				continue;
			}
			dirtymap_set(&r->recorded, region_page(r, pages[i]));
			wpbatch_unprotect(&h->batch, pages[i], ps);
		} else {
			/* A stale message of a range untracked since (track
			 * and untrack exclude resolution, so never one being
			 * tracked anew): unregistering already made it
			 * writable. Wake only; never unprotect what a later
			 * track may have armed. */
			uffd_wake(s->uffd, (void *)pages[i], ps);
		}
	}
	urcu_bp_read_unlock();
	if (uffdwp_test_hooks.break_sync_collect) {
		struct timespec ts = { 0, 200000 };

		nanosleep(&ts, NULL);
	}
	/* The flush barrier: no fault is resolved while a change the
	 * context's batch holds could cover its page. That batch belongs to
	 * track or collect, which flush it before they return; wait for it.
	 * The hashed filter makes this a load when nothing is pending. */
	for (i = nd; i < n; i++)
		while (wpbatch_may_cover(s->env.batch, pages[i]))
			sched_yield();
	ret = wpbatch_flush(&h->batch, &t);
	if (late) {
		/* Broken on purpose: the copy comes after the unprotect. */
		urcu_bp_read_lock();
		set = rcu_dereference(*s->env.regions);
		for (i = nd; i < n; i++) {
			r = regions_lookup(set, pages[i]);
			obs = r ? __atomic_load_n(&r->obs, __ATOMIC_ACQUIRE) :
				  NULL;
			if (obs)
				while (obs->fault(obs, pages[i], false))
					sched_yield();
		}
		urcu_bp_read_unlock();
	}
	if (!uffdwp_test_hooks.break_sync_collect)
		pthread_rwlock_unlock(&s->resolve);
	cnt_add(s->env.faults, n - nd);
	*deferred = nd;
	return ret;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct sync_state *s = h->s;
	struct pollfd pfd[3] = {
		{ .fd = s->uffd, .events = POLLIN },
		{ .fd = s->stopfd, .events = POLLIN },
		{ .fd = h->kickfd, .events = POLLIN },
	};
	uint64_t kicks;
	struct region_set *set;
	int backoff = 0, timeout, ret;
	size_t n, i, np, room, nd;
	ssize_t got;

	own_thread_started();
	sem_post(&s->started);
	for (;;) {
		timeout = -1;
		if (h->nretry)
			timeout = backoff ? backoff : PAUSED_POLL_MS;
		ret = poll(pfd, 3, timeout);
		if (ret < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (pfd[2].revents &&
		    read(h->kickfd, &kicks, sizeof(kicks)) < 0 &&
		    errno != EAGAIN)
			break;
		np = 0;
		/* Retries first: their writers have waited longest. */
		for (i = 0; i < h->nretry; i++)
			h->pages[np++] = h->retry[i];
		h->nretry = 0;
		room = (RETRY_CAP - np) < MSGS ? RETRY_CAP - np : MSGS;
		got = 0;
		__atomic_fetch_add(&s->reading, 1, __ATOMIC_SEQ_CST);
		if (s->self)
			syncwp_self_events(true);
		if (pfd[0].revents && room)
			got = read(s->uffd, h->msgs, room * sizeof(h->msgs[0]));
		/* After the read: a message of a fault under a registration
		 * newer than the tag can never be taken for stale. */
		if (!np)
			h->regen = __atomic_load_n(&s->regen, __ATOMIC_SEQ_CST);
		n = got > 0 ? (size_t)got / sizeof(h->msgs[0]) : 0;
		for (i = 0; i < n; i++) {
			const struct uffd_msg *m = &h->msgs[i];

			if (m->event == UFFD_EVENT_PAGEFAULT) {
				h->pages[np++] = m->arg.pagefault.address &
						 ~(uint64_t)(page_size() - 1);
				continue;
			}
			testhook_hold(HOLD_SYNC_EVENT);
			urcu_bp_read_lock();
			set = rcu_dereference(*s->env.regions);
			handle_event(h, set, m);
			urcu_bp_read_unlock();
		}
		if (s->self)
			syncwp_self_events(false);
		__atomic_fetch_sub(&s->reading, 1, __ATOMIC_SEQ_CST);
		np = dedupe(h->pages, np);
		ret = resolve(h, h->pages, np, &nd);
		for (i = 0; i < nd; i++)
			h->retry[h->nretry++] = h->pages[i];
		if (ret == -EBUSY || ret == -EAGAIN) {
			h->nretry = 0; /* all of them, deferred ones too */
			/* Keep their writers blocked; look again soon, and
			 * keep reading events meanwhile. */
			for (i = 0; i < np; i++)
				h->retry[h->nretry++] = h->pages[i];
			if (ret == -EAGAIN) {
				cnt_add(s->env.retries, 1);
				backoff = backoff ? backoff * 2 : 1;
				if (backoff > BACKOFF_MAX_MS)
					backoff = BACKOFF_MAX_MS;
			}
		} else {
			backoff = 0;
		}
	}
	urcu_bp_unregister_thread();
	return NULL;
}

int syncwp_handlers_start(struct sync_state *s, unsigned int n)
{
	sigset_t all, old;
	struct handler *h;
	unsigned int i;
	int ret = 0;

	s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stopfd < 0)
		return neg_errno();
	sem_init(&s->started, 0, 0);
	/* Every asynchronous signal blocked, the synchronous ones not: a
	 * library thread never counts as one that blocks SIGSEGV (segv.h). */
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		h = shadow_zalloc(sizeof(*h));
		if (!h) {
			ret = -ENOMEM;
			break;
		}
		h->s = s;
		h->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (h->kickfd < 0) {
			ret = neg_errno();
			shadow_free(h, sizeof(*h));
			break;
		}
		s->kickfd[i] = h->kickfd;
		wpbatch_init_fixed(&h->batch, h->prot, h->unprot,
				   ARRAY_SIZE(h->prot), s->env.wp);
		ret = own_thread_create(&s->tid[i], handler_main, h);
		if (ret) {
			close(h->kickfd);
			shadow_free(h, sizeof(*h));
			break;
		}
		s->handlers[i] = h;
		s->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/*
	 * Return only once every handler runs its own loop, which allocates
	 * nothing. A thread still starting may be inside the allocator (the
	 * thread library frees memory there, and ASan's per-thread setup
	 * allocates), and an allocator that does not lock itself across
	 * fork(), as ASan's does not before LLVM 17, hangs the child of a
	 * fork() made right after uffdwp_ctx_new() at its first malloc().
	 */
	for (i = 0; i < s->nthreads; i++)
		while (sem_wait(&s->started) && errno == EINTR)
			;
	if (ret)
		syncwp_handlers_stop(s);
	return ret;
}

void syncwp_handlers_stop(struct sync_state *s)
{
	uint64_t one = 1;
	unsigned int i;

	if (write(s->stopfd, &one, sizeof(one)) != sizeof(one))
		abort(); /* an eventfd write of 1 cannot fail */
	for (i = 0; i < s->nthreads; i++) {
		own_thread_join(s->tid[i]);
		close(s->kickfd[i]);
		shadow_free(s->handlers[i], sizeof(struct handler));
	}
	s->nthreads = 0;
	close(s->stopfd);
	s->stopfd = -1;
	sem_destroy(&s->started);
}
