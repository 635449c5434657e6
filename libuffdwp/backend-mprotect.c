/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mprotect: tracked pages are PROT_READ; the first write raises SIGSEGV,
 * whose handler records the page and makes it writable again. Works on any
 * kernel and where userfaultfd is blocked (Docker's default seccomp), at
 * the price of a signal per first write.
 *
 * The handler is process-wide, so the ranges it must know are a
 * process-wide, immutable, sorted table swapped atomically; a counter of
 * handlers in flight tells an updater when nobody can still read the old
 * table. (urcu-bp readers register lazily under a mutex: not in a signal
 * handler.) Faults outside tracked ranges go to the handler that was
 * installed before ours.
 *
 * Collect protocol (3.3): raise the context's pause flag, wait until no
 * handler is in flight (handlers seeing the flag wait), take the recorded
 * pages, re-protect them through the wp batch, lower the flag.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "segv.h"
#include "testhooks.h"
#include "zaps.h"

struct mp_state {
	int paused; /* collect in progress: handlers wait */
	/* MADV_DONTNEED raises no fault here: zaps come from pagemap. */
	struct zap_state zaps;
};

struct sig_table {
	struct sig_table *older; /* inherited: the table of the fork before */
	size_t n;
	struct region *r[];
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sig_table *table;
/*
 * In a forked child: the tables of its parent (and theirs), whose ranges
 * are still read-only in the child's copy but tracked by nobody. A write
 * there just gets its page back; the child may track the same ranges
 * again in the live table, which is looked at first.
 */
static struct sig_table *inherited;
static unsigned long inflight;
/*
 * When a range was last untracked. A write that faulted just before its
 * range became writable again may reach the handler after the range left
 * the table; for a short while such a fault is retried (the access simply
 * runs again, on a page that is writable now) instead of being passed on
 * to the previous handler as the program's own.
 */
static uint64_t last_removal_ns;
/* Handlers waiting for a context's collect to end (they read its state). */
static unsigned long waiters;
#define REMOVAL_GRACE_NS (50ULL * 1000 * 1000)
static struct sigaction previous;
static bool installed;

static void relax(void)
{
	/* sched_yield(2) is a plain system call: safe in a handler. */
	syscall(SYS_sched_yield);
}

static struct region *table_lookup(struct sig_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t ? t->n : 0, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (addr < t->r[mid]->start)
			hi = mid;
		else if (addr >= t->r[mid]->end)
			lo = mid + 1;
		else
			return t->r[mid];
	}
	return NULL;
}

static bool inherited_lookup(uintptr_t addr)
{
	struct sig_table *t;

	for (t = inherited; t; t = t->older)
		if (table_lookup(t, addr))
			return true;
	return false;
}

static void on_segv(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno;
	uintptr_t addr = (uintptr_t)info->si_addr, page;
	struct region *r;
	struct mp_state *s;

	page = addr & ~(uintptr_t)(page_size() - 1);
	for (;;) {
		__atomic_fetch_add(&inflight, 1, __ATOMIC_SEQ_CST);
		r = table_lookup(__atomic_load_n(&table, __ATOMIC_SEQ_CST),
				 addr);
		if (!r && info->si_code == SEGV_ACCERR &&
		    inherited_lookup(addr)) {
			/* A forked child's copy of its parent's range. */
			mprotect((void *)page, page_size(),
				 PROT_READ | PROT_WRITE);
			__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
			errno = saved;
			return;
		}
		if (!r || info->si_code != SEGV_ACCERR) {
			__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
			errno = saved;
			if (!r && info->si_code == SEGV_ACCERR &&
			    now_ns() - __atomic_load_n(&last_removal_ns,
						       __ATOMIC_SEQ_CST) <
				    REMOVAL_GRACE_NS)
				return;
			segv_chain(&previous, sig, info, uctx);
			return;
		}
		s = r->ctx->bdata;
		if (!__atomic_load_n(&s->paused, __ATOMIC_SEQ_CST))
			break;
		__atomic_fetch_add(&waiters, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&s->paused, __ATOMIC_SEQ_CST))
			relax();
		__atomic_fetch_sub(&waiters, 1, __ATOMIC_SEQ_CST);
	}
	testhook_hold(HOLD_MPROTECT_HANDLER);
	/* Record before unprotecting: an unprotected page is always in the
	 * recorded set, so a collect cannot miss its writes. */
	dirtymap_set(&r->recorded, region_page(r, page));
	mprotect((void *)page, page_size(), PROT_READ | PROT_WRITE);
	cnt_add(&r->ctx->cnt.faults, 1);
	__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
	errno = saved;
}

static void wait_no_handlers(void)
{
	while (__atomic_load_n(&inflight, __ATOMIC_SEQ_CST))
		relax();
}

static int cmp_region(const void *a, const void *b)
{
	const struct region *x = *(struct region *const *)a;
	const struct region *y = *(struct region *const *)b;

	return (x->start > y->start) - (x->start < y->start);
}

/* Swap in a table with @add added or @del removed; caller holds lock. */
static int table_update(struct region *add, struct region *del)
{
	struct sig_table *old = table, *t;
	size_t n = old ? old->n : 0, i, j = 0;

	t = malloc(sizeof(*t) + (n + 1) * sizeof(t->r[0]));
	if (!t)
		return -ENOMEM;
	t->older = NULL;
	for (i = 0; i < n; i++)
		if (old->r[i] != del)
			t->r[j++] = old->r[i];
	if (add)
		t->r[j++] = add;
	t->n = j;
	qsort(t->r, t->n, sizeof(t->r[0]), cmp_region);
	if (del)
		__atomic_store_n(&last_removal_ns, now_ns(), __ATOMIC_SEQ_CST);
	__atomic_store_n(&table, t, __ATOMIC_SEQ_CST);
	/* Every handler that could hold @old entered before the swap. */
	wait_no_handlers();
	free(old);
	return 0;
}

static int install_handler(void)
{
	int ret;

	if (installed)
		return 0;
	ret = segv_install(on_segv, &previous);
	if (ret)
		return ret;
	installed = true;
	return 0;
}

static int mp_protect(void *arg, uintptr_t start, size_t len)
{
	uintptr_t a;

	if (!mprotect((void *)start, len, PROT_READ))
		return 0;
	if (errno != ENOMEM)
		return neg_errno();
	/* The program unmapped part of the run: protect what is left. */
	for (a = start; a < start + len; a += page_size())
		if (mprotect((void *)a, page_size(), PROT_READ) &&
		    errno != ENOMEM)
			return neg_errno();
	return 0;
}

static int mp_unprotect(void *arg, uintptr_t start, size_t len)
{
	return mprotect((void *)start, len, PROT_READ | PROT_WRITE) ?
		       neg_errno() :
		       0;
}

static const struct wp_target mp_target = {
	.protect = mp_protect,
	.unprotect = mp_unprotect,
};

static int mp_init(struct uffdwp_ctx *ctx, const struct uffdwp_ctx_opts *o)
{
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct mp_state *s;
	int ret = uffdwp_probe(&caps);

	if (ret)
		return ret;
	s = handler_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = zaps_init(&s->zaps, caps.pagemap_scan);
	if (ret) {
		handler_free(s, sizeof(*s));
		return ret;
	}
	ctx->bdata = s;
	return 0;
}

/* Make [start, start + len) writable, around what is no longer mapped. */
static void writable_again(uintptr_t start, size_t len)
{
	uintptr_t a;

	if (!mprotect((void *)start, len, PROT_READ | PROT_WRITE) ||
	    errno != ENOMEM)
		return;
	for (a = start; a < start + len; a += page_size())
		mprotect((void *)a, page_size(), PROT_READ | PROT_WRITE);
}

static void mp_fini(struct uffdwp_ctx *ctx, bool in_child)
{
	struct mp_state *s = ctx->bdata;
	struct region_set *set = ctx->regions;
	size_t i;

	/* A child freeing its parent's context starts over: the ranges get
	 * their write access back now, not a fault at a time, so that the
	 * child can track them again (tracking needs them writable). */
	for (i = 0; in_child && set && i < set->n; i++)
		if (set->r[i])
			writable_again(set->r[i]->start,
				       set->r[i]->end - set->r[i]->start);

	/* Handlers waiting out a pause read s->paused: let them leave. (In
	 * a child none can: the inherited table points at no context.) */
	while (!in_child && __atomic_load_n(&waiters, __ATOMIC_SEQ_CST))
		relax();
	zaps_fini(&s->zaps);
	handler_free(s, sizeof(*s));
	ctx->bdata = NULL;
}

static void mp_atfork(enum fork_phase phase)
{
	switch (phase) {
	case FORK_PREPARE:
		pthread_mutex_lock(&table_lock);
		break;
	case FORK_PARENT:
		pthread_mutex_unlock(&table_lock);
		break;
	case FORK_CHILD:
		/* The parent's handlers in flight do not exist here. */
		__atomic_store_n(&inflight, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&waiters, 0, __ATOMIC_SEQ_CST);
		if (table) {
			table->older = inherited;
			inherited = table;
			table = NULL;
		}
		pthread_mutex_unlock(&table_lock);
		break;
	}
}

static const char *mp_refuse(struct uffdwp_ctx *ctx, int memtype)
{
	if (memtype == MEM_FILE)
		return "file-backed mappings: writes through other mappings or write(2) are invisible; use uffd_async";
	if (memtype == MEM_HUGETLB)
		return "hugetlbfs ranges are not supported yet";
	return NULL;
}

static int mp_track(struct uffdwp_ctx *ctx, struct region *r)
{
	int ret;

	/* A thread that blocks SIGSEGV would die on its first write here:
	 * refuse while one exists, unless the caller vouches that none
	 * writes the range (threads started later are the caller's to
	 * check; uffdwp.h). When /proc cannot tell, track. */
	if (!(r->flags & UFFDWP_TRACK_SIGSEGV_BLOCKERS) &&
	    segv_blocked_somewhere() > 0)
		return -EDEADLK;
	pthread_mutex_lock(&table_lock);
	ret = install_handler();
	if (!ret)
		ret = table_update(r, NULL);
	pthread_mutex_unlock(&table_lock);
	if (ret)
		return ret;
	ret = zaps_note(&((struct mp_state *)ctx->bdata)->zaps, r, true);
	if (!ret)
		ret = wpbatch_protect(&ctx->batch, r->start, r->end - r->start,
				      r);
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &mp_target);
	if (ret) {
		pthread_mutex_lock(&table_lock);
		table_update(NULL, r);
		pthread_mutex_unlock(&table_lock);
	}
	return ret;
}

static void mp_untrack(struct uffdwp_ctx *ctx, struct region *r)
{
	/* Writable first, then forgotten: a late fault still finds it. */
	if (!wpbatch_unprotect(&ctx->batch, r->start, r->end - r->start))
		wpbatch_flush(&ctx->batch, &mp_target);
	pthread_mutex_lock(&table_lock);
	while (table_update(NULL, r))
		relax();
	pthread_mutex_unlock(&table_lock);
}

static int mp_harvest(struct uffdwp_ctx *ctx)
{
	struct mp_state *s = ctx->bdata;
	struct region_set *set = ctx->regions;
	struct region *r;
	size_t i, p, q;
	sigset_t mask;
	int ret = 0;

	/* Handlers wait for the pause to end: see segv.h. */
	segv_window_enter(&mask);
	__atomic_store_n(&s->paused, 1, __ATOMIC_SEQ_CST);
	testhook_hold(HOLD_MPROTECT_PAUSE);
	wait_no_handlers();
	for (i = 0; set && i < set->n && !ret; i++) {
		r = set->r[i];
		if (!r)
			continue;
		ret = zaps_note(&s->zaps, r, false);
		if (ret)
			break;
		/* Queue the runs about to be taken, then take them. */
		for (p = dirtymap_next_set(&r->recorded, 0); p < r->npages;
		     p = dirtymap_next_set(&r->recorded, q)) {
			q = dirtymap_next_clear(&r->recorded, p);
			ret = wpbatch_protect(&ctx->batch,
					      r->start + p * page_size(),
					      (q - p) * page_size(), r);
			if (ret)
				break;
		}
		if (!ret)
			dirtymap_take(&r->pending, &r->recorded);
	}
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &mp_target);
	if (ret) {
		/* Whatever was not re-protected must be recorded again. */
		for (i = 0; set && i < set->n; i++)
			if (set->r[i])
				dirtymap_or(&set->r[i]->recorded,
					    &set->r[i]->pending);
	}
	__atomic_store_n(&s->paused, 0, __ATOMIC_SEQ_CST);
	segv_window_leave(&mask);
	return ret;
}

const struct backend_ops backend_mprotect = {
	.id = UFFDWP_BACKEND_MPROTECT,
	.init = mp_init,
	.fini = mp_fini,
	.refuse = mp_refuse,
	.track = mp_track,
	.untrack = mp_untrack,
	.harvest = mp_harvest,
	.atfork = mp_atfork,
};
