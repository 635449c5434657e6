/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Self-service write faults (see syncwp-self.h): with UFFD_FEATURE_SIGBUS
 * the kernel queues no message for a write to a write-protected page; it
 * raises SIGBUS in the writing thread, and this file's handler (an owner
 * of the library's SIGBUS handler, segv.h) records the page and
 * unprotects it. The write then runs again and goes through.
 *
 * The handler is process-wide, so the ranges it must know are a
 * process-wide, immutable, sorted table swapped atomically; a counter of
 * handlers in flight tells an updater when nobody can still read the old
 * table (urcu-bp readers register lazily under a mutex: not in a signal
 * handler). The same counter carries the collect protocol (invariant 3.3):
 * a pause raises the state's flag and waits until no handler is in
 * flight; a handler that sees the flag leaves, waits with the interrupted
 * mask until no pause is left, and lets the write fault again. So a page
 * is recorded and unprotected either wholly before a harvest, which then
 * re-protects and reports it, or wholly after it.
 *
 * A handler in flight has every asynchronous signal blocked (the
 * handler's sa_mask), takes no lock, allocates nothing and waits for
 * nobody but the kernel: a collect never waits for a thread that a
 * program's stop signal parked.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "segv.h"
#include "sys-uffd.h"
#include "syncwp-self.h"
#include "testhooks.h"

struct self_entry {
	struct region *r;
	struct sync_state *s;
};

struct self_table {
	size_t n;
	struct self_entry e[];
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct self_table *table;
static unsigned long inflight;
/* Pauses of any state in progress: a waiting handler waits for this to
 * drop, not for its state's flag, which may be freed meanwhile. */
static unsigned long pausing;
/*
 * When a range last left the table. A write that faulted just before its
 * range was unregistered may reach the handler after the range left the
 * table: for a short while such a fault runs again (on memory that is no
 * longer write-protected) instead of going to the program's handler.
 */
static uint64_t last_removal_ns;
#define REMOVAL_GRACE_NS (50ULL * 1000 * 1000)
/*
 * Handler threads of self-service states between reading events and
 * marking them. mremap(2) returns once its UFFD_EVENT_REMAP is read, but
 * the moved VMA stays registered, its pages write-protected, until the
 * handler thread has unregistered it: a write there meanwhile faults at an
 * address in no range, and must wait for the event, not go to the
 * program's handler (for which that is a SIGBUS out of nowhere).
 */
static unsigned long events_reading;

/*
 * The last page this thread's handler resolved, and the state's epoch
 * then (every protect the component makes starts and ends an epoch). The
 * same page faulting again in the same epoch, so with no protect since,
 * is no write-protect fault: a shmem page past the end of its file, say.
 * It goes to the program's handler instead of looping. Initial-exec:
 * reading it in a signal handler must not allocate.
 */
static __thread __attribute__((tls_model("initial-exec"))) uintptr_t last_page;
static __thread __attribute__((tls_model("initial-exec"))) uint64_t last_epoch;
static __thread __attribute__((tls_model("initial-exec")))
const void *last_state;

static void relax(void)
{
	/* sched_yield(2) is a plain system call: safe in a handler. */
	syscall(SYS_sched_yield);
}

static const struct self_entry *lookup(const struct self_table *t,
				       uintptr_t addr)
{
	size_t lo = 0, hi = t ? t->n : 0, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (addr < t->e[mid].r->start)
			hi = mid;
		else if (addr >= t->e[mid].r->end)
			lo = mid + 1;
		else
			return &t->e[mid];
	}
	return NULL;
}

static void wait_no_handlers(void)
{
	while (__atomic_load_n(&inflight, __ATOMIC_SEQ_CST))
		relax();
}

static void leave(void)
{
	__atomic_fetch_sub(&inflight, 1, __ATOMIC_SEQ_CST);
}

/* Unprotect one page and wake nobody (nothing waits in the kernel). */
static int unprotect(int uffd, uintptr_t page)
{
	return uffd_writeprotect(uffd, (void *)page, page_size(),
				 UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
}

/*
 * -EAGAIN from the unprotect: an address-space event (a zap, say) is
 * being delivered, and only the component's handler thread can read it.
 * Spinning here in flight starved that thread (four writers on two CPUs
 * kept it from running for seconds) and held off every collect waiting
 * for the in-flight count. So: out of flight, a short sleep with the
 * interrupted mask, and the write faults again. The page is recorded
 * already, so a harvest meanwhile re-protects and reports it.
 */
static void back_off(const void *uctx)
{
	struct timespec ts = { 0, 50000 };

	leave();
	segv_wait_unblocked(uctx);
	syscall(SYS_nanosleep, &ts, NULL);
}

/* The self-service look at a SIGBUS (segv.h). */
static bool self_fault(int sig, siginfo_t *info, void *uctx)
{
	uintptr_t addr = (uintptr_t)info->si_addr, page;
	bool late = uffdwp_test_hooks.snapshot_unprotect_first;
	const struct self_entry *e;
	struct wp_observer *obs;
	struct sync_state *s;
	struct region *r;
	uint64_t epoch;
	int ret;

	(void)sig;
	/* A userfault gives BUS_ADRERR; machine-check errors are not ours. */
	if (info->si_code != BUS_ADRERR)
		return false;
	page = addr & ~(uintptr_t)(page_size() - 1);
	__atomic_fetch_add(&inflight, 1, __ATOMIC_SEQ_CST);
	e = lookup(__atomic_load_n(&table, __ATOMIC_SEQ_CST), addr);
	if (!e) {
		leave();
		if (__atomic_load_n(&events_reading, __ATOMIC_SEQ_CST)) {
			segv_wait_unblocked(uctx);
			while (__atomic_load_n(&events_reading,
					       __ATOMIC_SEQ_CST))
				relax();
			return true;
		}
		return now_ns() - __atomic_load_n(&last_removal_ns,
						  __ATOMIC_SEQ_CST) <
		       REMOVAL_GRACE_NS;
	}
	s = e->s;
	r = e->r;
	/* A collect, track or untrack pauses resolution; so does a change
	 * the context's batch still holds for this page (the flush
	 * barrier). Either way: out of flight, and fault again later. */
	if (__atomic_load_n(&s->self_paused, __ATOMIC_SEQ_CST) ||
	    wpbatch_may_cover(s->env.batch, page)) {
		leave();
		segv_wait_unblocked(uctx);
		while (__atomic_load_n(&pausing, __ATOMIC_SEQ_CST))
			relax();
		return true;
	}
	epoch = __atomic_load_n(&s->epoch, __ATOMIC_SEQ_CST);
	if (last_page == page && last_state == s && last_epoch == epoch) {
		leave();
		return false;
	}
	/* Invariant 3.4: a snapshot's pre-image is copied (to staging) and
	 * marked done before the page is unprotected. Published and
	 * withdrawn with resolution paused, so stable while in flight. A
	 * held page (a copier has it, or staging is full): back off and
	 * fault again. */
	obs = __atomic_load_n(&r->obs, __ATOMIC_ACQUIRE);
	if (obs && !late && obs->fault(obs, page, true)) {
		back_off(uctx);
		return true;
	}
	testhook_hold(HOLD_SELF_HANDLER);
	/* Record before unprotecting: an unprotected page is always in the
	 * recorded set, so a harvest cannot miss its writes. */
	dirtymap_set(&r->recorded, region_page(r, page));
	if (uffdwp_test_hooks.break_sync_collect) {
		/* Broken on purpose (collects do not pause either): linger
		 * between the two, so a harvest falls in between. */
		struct timespec ts = { 0, 200000 };

		syscall(SYS_nanosleep, &ts, NULL);
	}
	/* -ENOENT or -EFAULT: the mapping was replaced or unmapped since;
	 * the access runs again on whatever is there now. */
	ret = unprotect(s->uffd, page);
	if (obs && late)
		/* Broken on purpose: the copy comes after the unprotect,
		 * while other threads may write the page. */
		while (obs->fault(obs, page, true))
			relax();
	if (ret == -EAGAIN) {
		back_off(uctx);
		return true;
	}
	if (!ret) {
		cnt_add(s->env.faults, 1);
		last_page = page;
		last_state = s;
		last_epoch = epoch;
	}
	leave();
	return true;
}

/* Swap in a table with (@r, @s) added, or @r removed; table_lock held. */
static int table_update(struct region *r, struct sync_state *s, bool add)
{
	struct self_table *old = table, *t;
	size_t n = old ? old->n : 0, i, j = 0;

	t = malloc(sizeof(*t) + (n + 1) * sizeof(t->e[0]));
	if (!t)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (old->e[i].r == r)
			continue;
		if (add && r && r->start < old->e[i].r->start) {
			t->e[j++] = (struct self_entry){ r, s };
			r = NULL;
		}
		t->e[j++] = old->e[i];
	}
	if (add && r)
		t->e[j++] = (struct self_entry){ r, s };
	t->n = j;
	if (!add)
		__atomic_store_n(&last_removal_ns, now_ns(), __ATOMIC_SEQ_CST);
	__atomic_store_n(&table, t, __ATOMIC_SEQ_CST);
	/* Every handler that could hold @old entered before the swap. */
	wait_no_handlers();
	free(old);
	return 0;
}

int syncwp_self_add(struct sync_state *s, struct region *r)
{
	int ret;

	ret = segv_own(SEGV_OWNER_SELF, self_fault);
	if (ret)
		return ret;
	pthread_mutex_lock(&table_lock);
	ret = table_update(r, s, true);
	pthread_mutex_unlock(&table_lock);
	return ret;
}

void syncwp_self_remove(struct region *r)
{
	pthread_mutex_lock(&table_lock);
	/* Without memory for a new table, keep the entry: a stale entry only
	 * makes later faults there run again. Retry until it goes. */
	while (table_update(r, NULL, false))
		relax();
	pthread_mutex_unlock(&table_lock);
}

void syncwp_self_pause(struct sync_state *s)
{
	__atomic_fetch_add(&pausing, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->self_paused, 1, __ATOMIC_SEQ_CST);
	wait_no_handlers();
}

void syncwp_self_resume(struct sync_state *s)
{
	__atomic_store_n(&s->self_paused, 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_sub(&pausing, 1, __ATOMIC_SEQ_CST);
}

void syncwp_self_events(bool on)
{
	if (on)
		__atomic_fetch_add(&events_reading, 1, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_sub(&events_reading, 1, __ATOMIC_SEQ_CST);
}

void syncwp_self_atfork(enum fork_phase phase)
{
	switch (phase) {
	case FORK_PREPARE:
		pthread_mutex_lock(&table_lock);
		break;
	case FORK_PARENT:
		pthread_mutex_unlock(&table_lock);
		break;
	case FORK_CHILD:
		/* The child's copies are registered nowhere (the kernel
		 * drops registration without EVENT_FORK), so they never
		 * fault to us; and an ioctl on the inherited descriptor
		 * would act on the parent's memory. Forget the parent's
		 * ranges (their memory is the child's copy: not freed). */
		table = NULL;
		__atomic_store_n(&inflight, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&pausing, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&events_reading, 0, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&table_lock);
		break;
	}
}
