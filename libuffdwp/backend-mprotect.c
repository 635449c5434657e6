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
 * handler.) It is one owner of the library's SIGSEGV handler (segv.h):
 * faults outside tracked ranges go on to the program's handler.
 *
 * Collect protocol (3.3): raise the context's pause flag, wait until no
 * handler is in flight (handlers seeing the flag wait), take the recorded
 * pages, re-protect them through the wp batch, lower the flag.
 *
 * The program may unmap tracked memory and map something else there (a
 * guard page, a read-only file). The library then must not touch it: it
 * changes the protection only of mappings that are still the tracked ones
 * (vmaid.h), at track, collect, untrack and in the handler, and passes
 * faults on the others to the program's handler.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "segv.h"
#include "shadow-alloc.h"
#include "testhooks.h"
#include "vmaid.h"
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
/*
 * Collects of any context that paused their handlers. A handler waits for
 * this to drop, not for its context's own flag: it waits with the
 * program's mask (segv_wait_begin()), so the program may park it there
 * while the context is freed.
 */
static unsigned long pausing;
#define REMOVAL_GRACE_NS (50ULL * 1000 * 1000)

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

static struct region *inherited_lookup(uintptr_t addr)
{
	struct sig_table *t;
	struct region *r;

	for (t = inherited; t; t = t->older) {
		r = table_lookup(t, addr);
		if (r)
			return r;
	}
	return NULL;
}

/* --- the range's own mappings (vmaid.h) -------------------------------- */

/* The backend's part of a tracked range (region->bdata): its mappings at
 * track. The SIGSEGV handler reads it: not from the heap. */
struct mp_range {
	struct vma_span *ids;
	size_t nids;
};

/* Whether @v, the mapping at @addr now, is the one tracked there. */
static bool mp_ours(const struct region *r, const struct vma_info *v,
		    uintptr_t addr)
{
	const struct mp_range *m = __atomic_load_n(&r->bdata, __ATOMIC_ACQUIRE);
	size_t i;

	/* The library sets only these; anything else is the program's. */
	if (v->prot != PROT_READ && v->prot != (PROT_READ | PROT_WRITE))
		return false;
	for (i = 0; m && i < m->nids; i++)
		if (addr >= m->ids[i].lo && addr < m->ids[i].hi)
			return vma_id_eq(&v->id, &m->ids[i].id);
	return false;
}

enum fault_kind { FAULT_OURS, FAULT_RETRY, FAULT_FOREIGN };

/*
 * A write fault at @page of @r: the library's to resolve, one another
 * thread resolved already, or the program's (a replaced mapping).
 * Where the kernel answers for one address in one call (PROCMAP_QUERY,
 * 6.11), the mapping's whole identity is checked; before that, walking
 * the maps text per fault would cost milliseconds in a process of many
 * mappings, so only what the last collect found gone and whether the
 * page is readable (a PROT_NONE guard is not) are.
 */
static enum fault_kind classify_fault(const struct region *r, uintptr_t page)
{
	struct vma_info v;
	struct iovec local, remote;
	char byte;
	int ret;

	if (dirtymap_test(&r->gone, region_page(r, page)))
		return FAULT_FOREIGN;
	if (!vma_query_cheap()) {
		local = (struct iovec){ .iov_base = &byte, .iov_len = 1 };
		remote = (struct iovec){ .iov_base = (void *)page,
					 .iov_len = 1 };
		if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0 &&
		    errno == EFAULT)
			return FAULT_FOREIGN;
		return FAULT_OURS;
	}
	ret = vma_query(page, &v);
	if (ret == -ENOENT)
		return FAULT_FOREIGN;
	if (ret)
		return FAULT_OURS; /* /proc unreadable: as before it existed */
	if (!mp_ours(r, &v, page))
		return FAULT_FOREIGN;
	return v.prot & PROT_WRITE ? FAULT_RETRY : FAULT_OURS;
}

struct ids_fill {
	struct vma_span *s;
	size_t n, cap;
};

static int add_id(void *arg, const struct vma_info *v)
{
	struct ids_fill *f = arg;
	struct vma_span *last = f->s && f->n ? &f->s[f->n - 1] : NULL;

	if (last && last->hi == v->lo && vma_id_eq(&last->id, &v->id)) {
		last->hi = v->hi;
		return 0;
	}
	if (f->s && f->n < f->cap) {
		f->s[f->n].lo = v->lo;
		f->s[f->n].hi = v->hi;
		f->s[f->n].id = v->id;
	}
	f->n++;
	return 0;
}

/* Note the identity of @r's mappings, as the track found them. */
static int ids_record(struct region *r)
{
	struct ids_fill f = { 0 };
	struct mp_range *m;
	int ret = vma_walk(r->start, r->end, add_id, &f);

	if (ret)
		return ret;
	f.cap = f.n ? f.n : 1;
	f.n = 0;
	f.s = shadow_zalloc(f.cap * sizeof(*f.s));
	m = shadow_zalloc(sizeof(*m));
	if (!f.s || !m) {
		ret = -ENOMEM;
		goto err;
	}
	ret = vma_walk(r->start, r->end, add_id, &f);
	if (ret)
		goto err;
	m->ids = f.s;
	m->nids = f.cap; /* unused entries are empty spans */
	/* The handler may look at the range already (it is published). */
	__atomic_store_n(&r->bdata, m, __ATOMIC_RELEASE);
	return 0;
err:
	if (f.s)
		shadow_free(f.s, f.cap * sizeof(*f.s));
	if (m)
		shadow_free(m, sizeof(*m));
	return ret;
}

static void ids_free(struct region *r)
{
	struct mp_range *m = r->bdata;

	if (!m)
		return;
	r->bdata = NULL;
	shadow_free(m->ids, m->nids * sizeof(*m->ids));
	shadow_free(m, sizeof(*m));
}

/*
 * @prot on [lo, hi) of @r, less the pages its last look found gone (not
 * its own mapping: vmaid.h). Pages unmapped since are skipped.
 */
static int prot_own(const struct region *r, uintptr_t lo, uintptr_t hi,
		    int prot)
{
	size_t p = region_page(r, lo), end = region_page(r, hi), q;
	uintptr_t a;

	for (; p < end; p = q) {
		if (dirtymap_test(&r->gone, p)) {
			q = dirtymap_next_clear(&r->gone, p);
			continue;
		}
		q = dirtymap_next_set(&r->gone, p);
		q = q < end ? q : end;
		if (!mprotect((void *)(r->start + p * page_size()),
			      (q - p) * page_size(), prot))
			continue;
		if (errno != ENOMEM)
			return neg_errno();
		/* The program unmapped part of the run: do what is left. */
		for (a = r->start + p * page_size();
		     a < r->start + q * page_size(); a += page_size())
			if (mprotect((void *)a, page_size(), prot) &&
			    errno != ENOMEM)
				return neg_errno();
	}
	return 0;
}

/* The mprotect backend's look at a fault (segv.h). */
static bool mp_fault(int sig, siginfo_t *info, void *uctx)
{
	uintptr_t addr = (uintptr_t)info->si_addr, page;
	enum fault_kind kind;
	struct region *r;
	struct mp_state *s;

	(void)sig;
	page = addr & ~(uintptr_t)(page_size() - 1);
	__atomic_fetch_add(&inflight, 1, __ATOMIC_SEQ_CST);
	r = table_lookup(__atomic_load_n(&table, __ATOMIC_SEQ_CST), addr);
	if (!r && info->si_code == SEGV_ACCERR &&
	    (r = inherited_lookup(addr))) {
		/* A forked child's copy of its parent's range. */
		kind = classify_fault(r, page);
		if (kind == FAULT_OURS)
			mprotect((void *)page, page_size(),
				 PROT_READ | PROT_WRITE);
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		return kind != FAULT_FOREIGN;
	}
	if (!r || info->si_code != SEGV_ACCERR) {
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		/* A fault on a range just untracked, from a write that saw
		 * it read-only: it runs again, now writable. */
		return !r && info->si_code == SEGV_ACCERR &&
		       now_ns() - __atomic_load_n(&last_removal_ns,
						  __ATOMIC_SEQ_CST) <
			       REMOVAL_GRACE_NS;
	}
	s = r->ctx->bdata;
	if (__atomic_load_n(&s->paused, __ATOMIC_SEQ_CST)) {
		/* Not in flight while waiting: the collect does not wait for
		 * us, so a stop signal may park us here. Then the write runs
		 * again, and faults again if it must. */
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		segv_wait_unblocked(uctx);
		while (__atomic_load_n(&pausing, __ATOMIC_SEQ_CST))
			relax();
		return true;
	}
	testhook_hold(HOLD_MPROTECT_HANDLER);
	kind = classify_fault(r, page);
	if (kind != FAULT_OURS) {
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		return kind != FAULT_FOREIGN;
	}
	/* Record before unprotecting: an unprotected page is always in the
	 * recorded set, so a collect cannot miss its writes. */
	dirtymap_set(&r->recorded, region_page(r, page));
	if (mprotect((void *)page, page_size(), PROT_READ | PROT_WRITE)) {
		/* Not writable at all (a file opened read-only mapped over
		 * it): not ours, and retrying would fault for ever. */
		__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
		return false;
	}
	cnt_add(&r->ctx->cnt.faults, 1);
	__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
	return true;
}

static void wait_no_handlers(void)
{
	while (__atomic_load_n(&inflight, __ATOMIC_SEQ_CST))
		relax();
}

static size_t first_ending_after(const struct sig_table *t, uintptr_t addr);

/* Swap in a table with @add added or @del removed; caller holds lock. */
static int table_update(struct region *add, struct region *del)
{
	struct sig_table *old = table, *t;
	size_t n = old ? old->n : 0, i, j = 0;

	t = malloc(sizeof(*t) + (n + 1) * sizeof(t->r[0]));
	if (!t)
		return -ENOMEM;
	t->older = NULL;
	/* Kept sorted by two copies around the new slot, not a sort: a
	 * program may track thousands of ranges one by one. */
	if (add && !del) {
		i = first_ending_after(old, add->start);
		if (n)
			memcpy(t->r, old->r, i * sizeof(t->r[0]));
		t->r[i] = add;
		if (n)
			memcpy(t->r + i + 1, old->r + i,
			       (n - i) * sizeof(t->r[0]));
		t->n = n + 1;
		n = 0; /* nothing left for the merge below */
		j = t->n;
		add = NULL;
	}
	for (i = 0; i < n; i++) {
		if (old->r[i] == del)
			continue;
		if (add && add->start < old->r[i]->start) {
			t->r[j++] = add;
			add = NULL;
		}
		t->r[j++] = old->r[i];
	}
	if (add)
		t->r[j++] = add;
	t->n = j;
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
	return segv_own(SEGV_OWNER_MPROTECT, mp_fault);
}

/* The first range of @t that ends after @addr. */
static size_t first_ending_after(const struct sig_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t ? t->n : 0, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (t->r[mid]->end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * @prot on a run of the wp batch: only where the mapping is still the one
 * its range tracked. Runs of one range may merge across gaps, and ranges
 * that touch may merge: each part is checked against its own range.
 */
static int prot_run(uintptr_t start, size_t len, int prot)
{
	uintptr_t a = start, end = start + len, b;
	struct sig_table *t;
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&table_lock);
	t = table;
	for (i = first_ending_after(t, a); t && i < t->n && !ret && a < end;
	     i++) {
		if (t->r[i]->end <= a)
			continue;
		if (t->r[i]->start >= end)
			break;
		a = a > t->r[i]->start ? a : t->r[i]->start;
		b = t->r[i]->end < end ? t->r[i]->end : end;
		ret = prot_own(t->r[i], a, b, prot);
		a = b;
	}
	pthread_mutex_unlock(&table_lock);
	return ret;
}

static int mp_protect(void *arg, uintptr_t start, size_t len)
{
	return prot_run(start, len, PROT_READ);
}

static int mp_unprotect(void *arg, uintptr_t start, size_t len)
{
	return prot_run(start, len, PROT_READ | PROT_WRITE);
}

static const struct wp_target mp_target = {
	.protect = mp_protect,
	.unprotect = mp_unprotect,
};

static int mp_init(struct backend_ctx *ctx, const struct uffdwp_ctx_opts *o,
		   const struct uffdwp_caps *caps)
{
	struct mp_state *s;
	int ret;

	s = shadow_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = zaps_init(&s->zaps, caps->pagemap_scan);
	if (ret) {
		shadow_free(s, sizeof(*s));
		return ret;
	}
	ctx->bdata = s;
	return 0;
}

static void mp_fini(struct backend_ctx *ctx, bool in_child)
{
	struct mp_state *s = ctx->bdata;
	struct region_set *set = ctx->regions;
	size_t i;

	/* A child freeing its parent's context starts over: the ranges get
	 * their write access back now, not a fault at a time, so that the
	 * child can track them again (tracking needs them writable). */
	for (i = 0; in_child && set && i < set->n; i++)
		if (set->r[i])
			prot_own(set->r[i], set->r[i]->start, set->r[i]->end,
				 PROT_READ | PROT_WRITE);

	zaps_fini(&s->zaps);
	shadow_free(s, sizeof(*s));
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
		__atomic_store_n(&pausing, 0, __ATOMIC_SEQ_CST);
		if (table) {
			table->older = inherited;
			inherited = table;
			table = NULL;
		}
		pthread_mutex_unlock(&table_lock);
		break;
	}
}

static const char *mp_refuse(struct backend_ctx *ctx, int memtype)
{
	if (memtype == MEM_FILE)
		return "file-backed mappings: writes through other mappings or write(2) are invisible; use uffd_async";
	if (memtype == MEM_HUGETLB)
		return "hugetlbfs ranges are not supported yet";
	return NULL;
}

static int mp_track(struct backend_ctx *ctx, struct region *r)
{
	int ret;

	/* A thread that blocks SIGSEGV would die on its first write here:
	 * refuse while one exists, unless the caller vouches that none
	 * writes the range (threads started later are the caller's to
	 * check; uffdwp.h). When /proc cannot tell, track. */
	testhook_hold(HOLD_TRACK_LOOK);
	if (!(r->flags & UFFDWP_TRACK_SIGSEGV_BLOCKERS) &&
	    segv_blocked_somewhere(SIGSEGV) > 0)
		return -EDEADLK;
	vma_query_init();
	ret = ids_record(r);
	if (ret)
		return ret;
	pthread_mutex_lock(&table_lock);
	ret = install_handler();
	if (!ret)
		ret = table_update(r, NULL);
	pthread_mutex_unlock(&table_lock);
	if (ret) {
		ids_free(r);
		return ret;
	}
	ret = zaps_note(&((struct mp_state *)ctx->bdata)->zaps, r, true);
	if (!ret)
		ret = wpbatch_protect(&ctx->batch, r->start, r->end - r->start,
				      r);
	if (!ret)
		ret = wpbatch_flush(&ctx->batch, &mp_target);
	if (ret) {
		pthread_mutex_lock(&table_lock);
		while (table_update(NULL, r))
			relax();
		pthread_mutex_unlock(&table_lock);
		ids_free(r);
	}
	return ret;
}

static int note_foreign(const struct backend_ctx *ctx, uintptr_t lo,
			uintptr_t hi);

static void mp_untrack(struct backend_ctx *ctx, struct region *r)
{
	/* What is not its own mapping now stays as the program made it. */
	pthread_mutex_lock(&table_lock);
	note_foreign(ctx, r->start, r->end);
	pthread_mutex_unlock(&table_lock);
	/* Writable first, then forgotten: a late fault still finds it. */
	if (!wpbatch_unprotect(&ctx->batch, r->start, r->end - r->start))
		wpbatch_flush(&ctx->batch, &mp_target);
	pthread_mutex_lock(&table_lock);
	while (table_update(NULL, r))
		relax();
	pthread_mutex_unlock(&table_lock);
	/* No handler reads it now (the update waited for them). */
	ids_free(r);
}

/*
 * Which pages of @ctx's ranges in [lo, hi) are not their own mapping now
 * (gone: unmapped, or replaced), and which came back (a hole mapped again,
 * a protection restored): those count as written, since their writes
 * raised no fault. One walk of the mappings for all of them; caller holds
 * table_lock.
 */
struct foreign_walk {
	const struct sig_table *t;
	const struct backend_ctx *ctx;
	size_t i;
	uintptr_t prev;
};

static void mark_gone(struct region *r, uintptr_t lo, uintptr_t hi)
{
	dirtymap_set_range(&r->gone, region_page(r, lo),
			   (hi - lo) / page_size());
}

static void back_home(struct region *r, uintptr_t lo, uintptr_t hi)
{
	size_t p, end = region_page(r, hi);

	for (p = dirtymap_next_set(&r->gone, region_page(r, lo)); p < end;
	     p = dirtymap_next_set(&r->gone, p + 1)) {
		dirtymap_set(&r->recorded, p);
		dirtymap_clear_range(&r->gone, p, 1);
	}
}

/* [lo, hi) is mapped as @v, or a hole if @v is NULL. */
static void foreign_span(struct foreign_walk *w, uintptr_t lo, uintptr_t hi,
			 const struct vma_info *v)
{
	struct region *r;
	uintptr_t a, b;
	size_t j;

	while (w->i < w->t->n && w->t->r[w->i]->end <= lo)
		w->i++;
	for (j = w->i; j < w->t->n && w->t->r[j]->start < hi; j++) {
		r = w->t->r[j];
		if (r->ctx != w->ctx)
			continue;
		a = lo > r->start ? lo : r->start;
		b = hi < r->end ? hi : r->end;
		if (!v || !mp_ours(r, v, a))
			mark_gone(r, a, b);
		else
			back_home(r, a, b);
	}
}

static int foreign_piece(void *arg, const struct vma_info *v)
{
	struct foreign_walk *w = arg;

	if (v->lo > w->prev)
		foreign_span(w, w->prev, v->lo, NULL);
	foreign_span(w, v->lo, v->hi, v);
	w->prev = v->hi;
	return 0;
}

static int note_foreign(const struct backend_ctx *ctx, uintptr_t lo,
			uintptr_t hi)
{
	struct foreign_walk w = { .t = table, .ctx = ctx, .prev = lo };
	int ret;

	if (!table || lo >= hi)
		return 0;
	ret = vma_walk(lo, hi, foreign_piece, &w);
	if (!ret && w.prev < hi)
		foreign_span(&w, w.prev, hi, NULL);
	return ret;
}

/* The span of @ctx's ranges in the table; caller holds table_lock. */
static void ctx_span(const struct backend_ctx *ctx, uintptr_t *lo,
		     uintptr_t *hi)
{
	size_t i;

	*lo = *hi = 0;
	for (i = 0; table && i < table->n; i++) {
		if (table->r[i]->ctx != ctx)
			continue;
		if (!*hi)
			*lo = table->r[i]->start;
		*hi = table->r[i]->end;
	}
}

/* Never report, nor protect, what is not the range's own mapping. */
static void drop_gone(struct region *r)
{
	size_t p, q;

	for (p = dirtymap_next_set(&r->gone, 0); p < r->npages;
	     p = dirtymap_next_set(&r->gone, q)) {
		q = dirtymap_next_clear(&r->gone, p);
		dirtymap_clear_range(&r->recorded, p, q - p);
	}
}

static int mp_harvest(struct backend_ctx *ctx)
{
	struct mp_state *s = ctx->bdata;
	struct region_set *set = ctx->regions;
	struct region *r;
	uintptr_t lo, hi;
	size_t i, p, q;
	sigset_t mask;
	int ret = 0;

	/* Handlers wait for the pause to end: see segv.h. */
	segv_window_enter(&mask);
	__atomic_fetch_add(&pausing, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->paused, 1, __ATOMIC_SEQ_CST);
	testhook_hold(HOLD_MPROTECT_PAUSE);
	wait_no_handlers();
	pthread_mutex_lock(&table_lock);
	ctx_span(ctx, &lo, &hi);
	ret = note_foreign(ctx, lo, hi);
	pthread_mutex_unlock(&table_lock);
	for (i = 0; set && i < set->n && !ret; i++) {
		r = set->r[i];
		if (!r)
			continue;
		ret = zaps_note(&s->zaps, r, false);
		if (ret)
			break;
		drop_gone(r);
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
	__atomic_fetch_sub(&pausing, 1, __ATOMIC_SEQ_CST);
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
