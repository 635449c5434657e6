/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Gates (see gate.h). The handler is process-wide and async-signal-safe:
 * it reads a fixed table of slots with atomic loads, and sleeps on the
 * slot's futex. A write that faulted while a gate was closed
 * may reach the handler after it opened; for a grace period such a fault
 * is retried (the access runs again on a writable page) rather than passed
 * to the previous handler as the program's own.
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "internal.h"
#include "segv.h"
#include "testhooks.h"
#include "vma.h"

#define SLOTS 256
#define GRACE_NS (200ULL * 1000 * 1000)

struct slot {
	uintptr_t start, end;
	int closed;
	int used;
	uint64_t opened_ns;
};

static struct slot slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * fork() waits until every gate is open: a child would inherit the range
 * read-only and a closed slot that nothing in it will ever open, and its
 * first write would wait forever. (uffdwp_snapshot_wait() returns while
 * uffd_async's move back may still run: a fork right after it is usual.)
 */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fork_cv = PTHREAD_COND_INITIALIZER;
static unsigned int nclosed;

void gate_atfork(enum fork_phase phase)
{
	int i;

	switch (phase) {
	case FORK_PREPARE:
		pthread_mutex_lock(&fork_mu);
		while (nclosed)
			pthread_cond_wait(&fork_cv, &fork_mu);
		pthread_mutex_lock(&lock);
		break;
	case FORK_PARENT:
		pthread_mutex_unlock(&lock);
		pthread_mutex_unlock(&fork_mu);
		break;
	case FORK_CHILD:
		/* The parent's snapshots do not run here: their slots are
		 * free (their late faults keep the grace period). */
		for (i = 0; i < SLOTS; i++)
			slots[i].used = 0;
		pthread_mutex_unlock(&lock);
		pthread_mutex_unlock(&fork_mu);
		break;
	}
}

/* The gates' look at a fault (segv.h). */
static bool gate_fault(int sig, siginfo_t *info, void *uctx)
{
	uintptr_t addr = (uintptr_t)info->si_addr;
	bool ours = false;
	int i;

	(void)sig;
	if (info->si_code != SEGV_ACCERR)
		return false;
	for (i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[i];

		if (addr < __atomic_load_n(&s->start, __ATOMIC_ACQUIRE) ||
		    addr >= __atomic_load_n(&s->end, __ATOMIC_ACQUIRE))
			continue;
		if (__atomic_load_n(&s->closed, __ATOMIC_ACQUIRE)) {
			/* The gate's closer does not wait for us (slots are
			 * static), so a stop signal may park us here; we only
			 * return after the wait. */
			ours = true;
			segv_wait_unblocked(uctx);
		}
		while (__atomic_load_n(&s->closed, __ATOMIC_ACQUIRE)) {
			/* Sleep, not spin: the thread that will open the
			 * gate may need this CPU. (futex is a plain system
			 * call: safe here.) The timeout covers a wake that
			 * races with a slot being reused. */
			struct timespec ts = { 0, 1000000 };

			syscall(SYS_futex, &s->closed, FUTEX_WAIT_PRIVATE, 1,
				&ts, NULL, 0);
		}
		if (ours || now_ns() - __atomic_load_n(&s->opened_ns,
						       __ATOMIC_ACQUIRE) <
				    GRACE_NS)
			return true;
	}
	return false;
}

static int add_seg(struct gate *g, size_t *n, uintptr_t lo, uintptr_t hi,
		   int prot)
{
	struct gate_seg *v = reallocarray(g->seg, *n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	g->seg = v;
	g->seg[*n] = (struct gate_seg){ lo, hi, prot };
	(*n)++;
	return 0;
}

/* The writable mappings of [start, end), clipped to it and to @allow (if
 * not NULL), from maps. */
struct gate_walk {
	struct gate *g;
	size_t n;
	const struct span *allow;
	size_t nallow;
};

/* The writable parts of a mapping, within the allowed spans, if any. */
static int gate_one(void *arg, const struct vma_map *m)
{
	struct gate_walk *w = arg;
	uintptr_t a, b;
	size_t i;
	int ret = 0;

	if (!(m->prot & PROT_WRITE))
		return 0;
	if (!w->allow)
		return add_seg(w->g, &w->n, m->lo, m->hi, m->prot);
	for (i = 0; !ret && i < w->nallow; i++) {
		a = w->allow[i].lo > m->lo ? w->allow[i].lo : m->lo;
		b = w->allow[i].hi < m->hi ? w->allow[i].hi : m->hi;
		if (a < b)
			ret = add_seg(w->g, &w->n, a, b, m->prot);
	}
	return ret;
}

static int read_maps(struct gate *g, uintptr_t start, uintptr_t end,
		     const struct span *allow, size_t nallow)
{
	struct gate_walk w = { g, 0, allow, nallow };
	int ret;

	ret = vma_maps_each(start, end, gate_one, &w);
	g->n = w.n;
	return ret;
}

int gate_prepare(struct gate *g, uintptr_t start, uintptr_t end,
		 const struct span *allow, size_t nallow)
{
	int ret, i;

	memset(g, 0, sizeof(*g));
	g->slot = -1;
	/* A slot whose late faults may still arrive is not reused: when all
	 * are in use or in their grace period, wait for one. */
	for (;;) {
		pthread_mutex_lock(&lock);
		ret = segv_own(SEGV_OWNER_GATE, gate_fault);
		/* The same range's slot first: its late faults stay ours. */
		for (i = 0; !ret && i < SLOTS && g->slot < 0; i++)
			if (!slots[i].used && slots[i].start == start &&
			    slots[i].end == end)
				g->slot = i;
		for (i = 0; !ret && i < SLOTS && g->slot < 0; i++)
			if (!slots[i].used &&
			    (!slots[i].opened_ns ||
			     now_ns() - slots[i].opened_ns >= GRACE_NS))
				g->slot = i;
		if (g->slot >= 0)
			slots[g->slot].used = 1;
		pthread_mutex_unlock(&lock);
		if (ret)
			return ret;
		if (g->slot >= 0)
			break;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	ret = read_maps(g, start, end, allow, nallow);
	if (ret) {
		gate_release(g);
		return ret;
	}
	/* Publish the range before any write can fault on it (a slot of the
	 * same range already holds it). */
	if (slots[g->slot].start == start && slots[g->slot].end == end)
		return 0;
	__atomic_store_n(&slots[g->slot].end, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&slots[g->slot].start, start, __ATOMIC_RELEASE);
	__atomic_store_n(&slots[g->slot].end, end, __ATOMIC_RELEASE);
	return 0;
}

int gate_close(struct gate *g)
{
	size_t i;

	/* Writers wait for this thread to open: no signal may park it. */
	segv_window_enter(&g->mask);
	pthread_mutex_lock(&fork_mu);
	nclosed++;
	pthread_mutex_unlock(&fork_mu);
	__atomic_store_n(&slots[g->slot].closed, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < g->n; i++) {
		if (mprotect((void *)g->seg[i].start,
			     g->seg[i].end - g->seg[i].start,
			     g->seg[i].prot & ~PROT_WRITE)) {
			int ret = neg_errno();

			g->n = i + 1; /* restore what may have changed */
			gate_open(g);
			return ret;
		}
	}
	testhook_hold(HOLD_GATE_CLOSED);
	return 0;
}

void gate_open(struct gate *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		mprotect((void *)g->seg[i].start,
			 g->seg[i].end - g->seg[i].start, g->seg[i].prot);
	__atomic_store_n(&slots[g->slot].opened_ns, now_ns(), __ATOMIC_SEQ_CST);
	__atomic_store_n(&slots[g->slot].closed, 0, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &slots[g->slot].closed, FUTEX_WAKE_PRIVATE,
		INT32_MAX, NULL, NULL, 0);
	pthread_mutex_lock(&fork_mu);
	if (!--nclosed)
		pthread_cond_broadcast(&fork_cv);
	pthread_mutex_unlock(&fork_mu);
	segv_window_leave(&g->mask);
}

void gate_release(struct gate *g)
{
	free(g->seg);
	g->seg = NULL;
	g->n = 0;
	if (g->slot < 0)
		return;
	/* The range stays in the slot for the grace period of late faults;
	 * a later gate_prepare() may reuse the slot. */
	pthread_mutex_lock(&lock);
	slots[g->slot].used = 0;
	pthread_mutex_unlock(&lock);
	g->slot = -1;
}
