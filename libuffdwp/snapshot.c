/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live snapshots: copy-before-write (invariant 3.4).
 *
 * At the instant the backend protects the range and publishes the snapshot
 * to its fault handlers, with resolution paused. From then on a page's
 * pre-image is copied exactly once, by whoever claims it first:
 *
 * - a fault handler, for a writer's first write: claim, copy the page to
 *   the sink's place() or to a staging slot, mark it done, and only then
 *   resolve the fault through the handler's wp batch (flush, unprotect
 *   without wake, wake). The sink is fed from staging by the copiers, so a
 *   writer waits for one page copy, not for the sink;
 * - a copier thread, sweeping 64 pages (one bitmap word, one atomic
 *   claim) at a time.
 *
 * A handler that finds its page claimed by a copier defers the fault and is
 * kicked when the copier is done; with the staging area full it defers too
 * (backpressure).
 *
 * In the self-service mode the fault handler is the writer's own SIGBUS
 * handler, where only async-signal-safe code may run: it copies to staging
 * only (the sink is the program's code), wakes the copiers with a futex
 * (not the condition variable, whose mutex it could not take), and leaves
 * a failed copy for a copier to turn into the snapshot's failure. A held
 * writer backs off and faults again.
 *
 * Pages are read with process_vm_readv(2) on our own process, not memcpy:
 * a range unmapped under a copier (or under a writer's handler) gives
 * EFAULT and a cancelled snapshot instead of a SIGSEGV in a library thread
 * or inside a signal handler.
 *
 * Zaps: the kernel sends REMOVE before it zaps, and the zap follows as
 * soon as a handler has read the event. A copier marks a page done only
 * when no handler is between reading events and marking them (the same
 * quiescence collects use), so either its copy finished before the zap
 * could start, or the handler saw the page not done and cancelled.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>

#include "segv.h"
#include "shadow-alloc.h"
#include "sink-file.h"
#include "snapshot-stage.h"
#include "snapshot.h"
#include "testhooks.h"

#define CHUNK 64 /* pages per sweep claim: one bitmap word */
#define DEFAULT_STAGING 512
#define MAX_COPIERS 64
#define IDLE_WAIT_MS 5
#define HBUFS 4 /* handler threads copying a fault's word at once */

/*
 * A snapshot's lifecycle, one way (snap->phase):
 *
 *   SNAP_BEGINNING -> SNAP_OPEN -> SNAP_COMMITTING -> SNAP_DECIDED -> SNAP_ENDED
 *                         \___________ failed ____________/
 *
 * BEGINNING: made, its instant taken or being taken; only staging may hold
 *   a copy (the sink has not begun). A sink that refuses to begin ends it
 *   here: the starting call destroys it, no copier ever ran.
 * OPEN: the sink began (snapshot_open()); handlers and copiers deliver.
 * COMMITTING: every page is delivered and the sink's end(0) runs; only the
 *   sink's own failure can still fail the snapshot (the image may be in
 *   place). A failed snapshot skips it.
 * DECIDED: the outcome (failed, cause) is final and waiters return; the
 *   window may still be closing (the owner's close()).
 * ENDED: the teardown is over; free() may destroy it.
 *
 * BEGINNING -> OPEN is stored in the starting call before any copier runs,
 * with no lock (handlers read it under the resolve lock). Every later
 * transition is made under mu by the teardown, DECIDED also under the
 * owner's lock (snapshot_decide(), from its close()). fail() writes the
 * outcome, under mu, and only before DECIDED.
 */
enum snap_phase {
	SNAP_BEGINNING,
	SNAP_OPEN,
	SNAP_COMMITTING,
	SNAP_DECIDED,
	SNAP_ENDED,
};

struct uffdwp_snapshot {
	/* The fault loop's hook on the range, while published. */
	struct wp_observer obs;
	pid_t pid;
	struct snapshot_owner *owner; /* NULL once ended */
	struct region *r;
	struct sync_state *s; /* the handlers serving it, once published */
	struct uffdwp_snapshot *owner_next; /* owner->snaps */
	uintptr_t start, end;
	size_t npages;
	unsigned int flags, ncopiers;
	struct uffdwp_sink sink;
	int phase; /* enum snap_phase */
	struct dirtymap claim, done;
	/* The range's pending pages consumed at the instant: given back to
	 * the next collect if the snapshot fails, so none is lost. */
	struct dirtymap taken;
	size_t cursor; /* next sweep word */
	size_t nwords;
	uint64_t pages, pages_done, pages_faulted, faults_waited, staging_full;
	int kick; /* a handler deferred a fault */
	struct stage st;
	char *cbuf; /* CHUNK pages per copier, then per HBUFS */
	size_t cbuflen;
	/* Which of the HBUFS handler buffers (after the copiers') are free:
	 * a handler thread copying a fault's word takes one. */
	unsigned int hbuf_free;
	/* The sink may be fed from the thread serving faults (fault_word()):
	 * it has place() only, or it is the library's file sink. */
	bool word_on_fault;
	pthread_t tid[MAX_COPIERS];
	struct copier {
		struct uffdwp_snapshot *snap;
		char *buf;
	} copier[MAX_COPIERS];
	unsigned int nthreads, running;
	/* start() has dropped its own count on running (under mu): copiers
	 * drop theirs only after it, so the teardown is a copier's. */
	bool launched;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int failed; /* the first error, once */
	int cause;
	/* A copy failed in a SIGBUS handler (self-service), which may not
	 * take mu: the error, until a copier or the teardown fails the
	 * snapshot with it. failed() counts it already. */
	int sig_err;
	/* Bumped, then woken with FUTEX_WAKE, by whoever gives an idle
	 * copier work: a signal handler may do both. The wake, a system
	 * call, only when a copier counts itself idle. */
	unsigned int wake_seq;
	unsigned int idle;
	bool pvr; /* process_vm_readv works */
	uint64_t t0, t_instant, t_end, start_ns, instant_rt;
};

void snapshot_bind(struct uffdwp_snapshot *snap, struct region *r)
{
	snap->r = r;
}

struct region *snapshot_region(const struct uffdwp_snapshot *snap)
{
	return snap->r;
}

static int phase(const struct uffdwp_snapshot *snap)
{
	return __atomic_load_n(&snap->phase, __ATOMIC_SEQ_CST);
}

/* Under mu, but for BEGINNING -> OPEN (see enum snap_phase). */
static void phase_set(struct uffdwp_snapshot *snap, enum snap_phase p)
{
	__atomic_store_n(&snap->phase, p, __ATOMIC_SEQ_CST);
}

/*
 * Async-signal-safe: atomics and a system call. A copier counts itself
 * idle before it looks for work, so one that missed this work is counted
 * by the time the count is read here, and is woken.
 */
static void wake_copiers(struct uffdwp_snapshot *snap)
{
	__atomic_add_fetch(&snap->wake_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&snap->idle, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &snap->wake_seq, FUTEX_WAKE_PRIVATE,
			MAX_COPIERS, NULL, NULL, 0);
}

static void broadcast(struct uffdwp_snapshot *snap)
{
	wake_copiers(snap);
	pthread_mutex_lock(&snap->mu);
	pthread_cond_broadcast(&snap->cv);
	pthread_mutex_unlock(&snap->mu);
}

static void fail(struct uffdwp_snapshot *snap, int err, int cause)
{
	int zero = 0;

	/* Under mu: a decided outcome never changes, nor does a committing
	 * one but by its sink (the image may be in place). */
	pthread_mutex_lock(&snap->mu);
	if (phase(snap) < SNAP_DECIDED &&
	    (phase(snap) != SNAP_COMMITTING || cause == UFFDWP_CAUSE_SINK) &&
	    __atomic_compare_exchange_n(&snap->failed, &zero, err, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		__atomic_store_n(&snap->cause, cause, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&snap->cv);
	pthread_mutex_unlock(&snap->mu);
	wake_copiers(snap);
}

static bool failed(const struct uffdwp_snapshot *snap)
{
	return __atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE) != 0 ||
	       __atomic_load_n(&snap->sig_err, __ATOMIC_ACQUIRE) != 0;
}

static bool complete(const struct uffdwp_snapshot *snap)
{
	return __atomic_load_n(&snap->pages_done, __ATOMIC_SEQ_CST) ==
	       snap->pages;
}

/* Copy @len bytes of our own memory at @src; -EFAULT if it is gone. */
static int copy_in(struct uffdwp_snapshot *snap, void *dst, uintptr_t src,
		   size_t len)
{
	struct iovec l = { dst, len }, r = { (void *)src, len };
	ssize_t n;

	if (!snap->pvr) {
		memcpy(dst, (void *)src, len);
		return 0;
	}
	n = process_vm_readv(snap->pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? neg_errno() : -EFAULT;
}

/* A failed copy: an unmapped page cancels (-ECANCELED, as uffdwp.h
 * documents for that cause); any other error is the kernel's. */
static void fail_copy(struct uffdwp_snapshot *snap, int err)
{
	if (err == -EFAULT)
		fail(snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	else
		fail(snap, err, UFFDWP_CAUSE_KERNEL);
}

/* The same from a SIGBUS handler: recorded, and failed() says so at once;
 * a copier (or the teardown) makes it the outcome (take_sig_err()). */
static void fail_copy_in_signal(struct uffdwp_snapshot *snap, int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&snap->sig_err, &zero, err, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	wake_copiers(snap);
}

static void take_sig_err(struct uffdwp_snapshot *snap)
{
	int err = __atomic_load_n(&snap->sig_err, __ATOMIC_ACQUIRE);

	if (err && !__atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE))
		fail_copy(snap, err);
}

static void pages_delivered(struct uffdwp_snapshot *snap, uint64_t n)
{
	if (__atomic_add_fetch(&snap->pages_done, n, __ATOMIC_SEQ_CST) ==
	    snap->pages)
		broadcast(snap);
}

/* Mark copied pages done, and let deferred writers retry. */
static void mark_done(struct uffdwp_snapshot *snap, size_t first, size_t n)
{
	dirtymap_set_range(&snap->done, first, n);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&snap->kick, 0, __ATOMIC_SEQ_CST))
		syncwp_kick(snap->s);
}

/* Deliver @len bytes at @addr, held in @data, to the sink. */
static int deliver(struct uffdwp_snapshot *snap, uintptr_t addr,
		   const void *data, size_t len)
{
	void *dst;

	if (snap->sink.place) {
		dst = snap->sink.place(snap->sink.arg, (void *)addr, len);
		if (dst) {
			memcpy(dst, data, len);
			return 0;
		}
	}
	return snap->sink.write(snap->sink.arg, (void *)addr, data, len);
}

/* --- the fault path ----------------------------------------------------- */

/*
 * Copy a claimed page's pre-image; -errno cancels the snapshot, 1 means
 * no staging slot is free. @self: in a SIGBUS handler (only staging, no
 * lock, no condition variable).
 */
static int copy_claimed(struct uffdwp_snapshot *snap, uintptr_t page, size_t i,
			bool staging_only, bool self)
{
	size_t ps = page_size();
	void *dst = NULL;
	int slot = -1, ret;

	if (snap->sink.place && !staging_only && !self)
		dst = snap->sink.place(snap->sink.arg, (void *)page, ps);
	if (!dst) {
		slot = snapshot_stage_get(&snap->st);
		if (slot < 0)
			return 1;
		dst = snap->st.mem + (size_t)slot * ps;
	}
	ret = copy_in(snap, dst, page, ps);
	if (ret) {
		if (slot >= 0)
			snapshot_stage_put(&snap->st, (unsigned int)slot);
		if (self)
			fail_copy_in_signal(snap, ret);
		else
			fail_copy(snap, ret);
		return ret;
	}
	syncwp_quiesce_events(snap->s);
	mark_done(snap, i, 1);
	cnt_add(&snap->pages_faulted, 1);
	if (slot >= 0) {
		snapshot_stage_push(&snap->st, (unsigned int)slot, page);
		if (self)
			wake_copiers(snap);
		else
			broadcast(snap);
	} else {
		pages_delivered(snap, 1);
	}
	return 0;
}

/* The pages of sweep word @w that belong to the range. */
static uint64_t word_mask(const struct uffdwp_snapshot *snap, size_t w)
{
	if (w == snap->nwords - 1 && snap->npages % 64)
		return (1ULL << (snap->npages % 64)) - 1;
	return ~0ULL;
}

static void copy_word(struct uffdwp_snapshot *snap, char *buf, size_t w,
		      uint64_t mine);

/*
 * Page @i is claimed by someone else: 0 if it is done by now (or the
 * snapshot failed), else 1, the fault waits and the holder kicks the
 * handlers. The kick flag is set before looking, so a holder marking the
 * page done after this look sees the flag.
 */
static int wait_for_holder(struct uffdwp_snapshot *snap, size_t i)
{
	cnt_add(&snap->faults_waited, 1);
	__atomic_store_n(&snap->kick, 1, __ATOMIC_SEQ_CST);
	return dirtymap_test(&snap->done, i) || failed(snap) ? 0 : 1;
}

static char *hbuf_get(struct uffdwp_snapshot *snap, unsigned int *k)
{
	unsigned int f = __atomic_load_n(&snap->hbuf_free, __ATOMIC_ACQUIRE);

	while (f) {
		*k = (unsigned int)__builtin_ctz(f);
		if (__atomic_compare_exchange_n(
			    &snap->hbuf_free, &f, f & ~(1U << *k), false,
			    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return snap->cbuf + (size_t)(snap->ncopiers + *k) *
						    CHUNK * page_size();
	}
	return NULL;
}

/*
 * A handler thread's fault on page @i once the sink has begun: claim every
 * page of its sweep word that nobody holds and deliver them as a copier
 * would, then let the fault be resolved. A random writer faults on nearly
 * every write until its page is copied, so its wait is better spent on a
 * copy the sweep would have to make anyway (the writer sleeps; the handler
 * thread copies) than on one page and a wake-up: the window, which is what
 * the writer loses, shortens by the handler's share of the copying.
 * Only with a sink whose calls wait for no thread of the program
 * (word_on_fault): a handler thread stuck in a write() that waits for a
 * writer would hold every writer of the context.
 * Returns -1 when no buffer is free (the caller copies the one page), else
 * as obs_fault().
 */
static int fault_word(struct uffdwp_snapshot *snap, size_t i)
{
	size_t w = i / 64;
	uint64_t mask = word_mask(snap, w), mine;
	unsigned int k;
	char *buf = hbuf_get(snap, &k);

	if (!buf)
		return -1;
	mine = mask &
	       ~__atomic_fetch_or(&snap->claim.w[w], mask, __ATOMIC_SEQ_CST);
	if (uffdwp_test_hooks.snapshot_word_done_first && mine)
		/* Broken on purpose: the word's pages count as copied
		 * before they are, so their faults are resolved early. */
		mark_done(snap, w * 64 + (size_t)__builtin_ctzll(mine),
			  64 - (size_t)__builtin_ctzll(mine) -
				  (size_t)__builtin_clzll(mine));
	cnt_add(&snap->pages_faulted, (uint64_t)__builtin_popcountll(mine));
	copy_word(snap, buf, w, mine);
	__atomic_fetch_or(&snap->hbuf_free, 1U << k, __ATOMIC_RELEASE);
	if (dirtymap_test(&snap->done, i) || failed(snap))
		return 0;
	/* A copier (or another handler) holds the page. */
	return wait_for_holder(snap, i);
}

/*
 * The observer's fault: a handler resolving a write fault on @page of the
 * range (shared resolve lock held). 0 when the page's pre-image is safe
 * (copied now or before, or not part of the snapshot) and the fault may be
 * resolved; 1 when it must wait (a copier holds the page, the staging area
 * is full, or the sink is not ready): a copier kicks the handlers later.
 */
static int obs_fault(struct wp_observer *o, uintptr_t page, bool self)
{
	struct uffdwp_snapshot *snap =
		container_of(o, struct uffdwp_snapshot, obs);
	size_t i;
	uint64_t bit, old;
	bool open;
	int ret;

	if (page < snap->start || page >= snap->end)
		return 0;
	i = (page - snap->start) / page_size();
	if (dirtymap_test(&snap->done, i) || failed(snap))
		return 0;
	/* Before the sink began (start is still calling begin()) only
	 * staging may hold a copy. The writer must not wait for begin():
	 * start itself, the sink's begin() or malloc() may be writing a
	 * page of the range. */
	open = phase(snap) >= SNAP_OPEN;
	if (open && !self && snap->word_on_fault) {
		ret = fault_word(snap, i);
		if (ret >= 0)
			return ret;
	}
	bit = 1ULL << (i % 64);
	old = __atomic_fetch_or(&snap->claim.w[i / 64], bit, __ATOMIC_SEQ_CST);
	if (old & bit)
		return wait_for_holder(snap, i); /* a copier has it */
	ret = copy_claimed(snap, page, i, !open, self);
	if (ret <= 0)
		return 0; /* copied, or failed: the writer may go on */
	/* Staging full: give the claim back and wait for a free slot. */
	__atomic_fetch_and(&snap->claim.w[i / 64], ~bit, __ATOMIC_SEQ_CST);
	cnt_add(&snap->staging_full, 1);
	__atomic_store_n(&snap->kick, 1, __ATOMIC_SEQ_CST);
	return 1;
}

/* The observer's event: a handler saw [start, end) zapped or unmapped. */
static void obs_event(struct wp_observer *o, uintptr_t start, uintptr_t end,
		      int cause)
{
	struct uffdwp_snapshot *snap =
		container_of(o, struct uffdwp_snapshot, obs);
	size_t a, b;

	if (end <= snap->start || start >= snap->end)
		return;
	if (cause == UFFDWP_CAUSE_UNMAPPED &&
	    uffdwp_test_hooks.snapshot_late_unmap_events)
		return;
	a = start > snap->start ? (start - snap->start) / page_size() : 0;
	b = end < snap->end ? (end - snap->start) / page_size() : snap->npages;
	/* A zap's REMOVE comes before the zap: pages done by now were
	 * copied before it, any other would read zeros. An unmap's event
	 * comes after the fact, and a copier may have read whatever was
	 * mapped in its place (mmap MAP_FIXED, mremap) before a handler
	 * saw the event: no page of the range is safe until all are done. */
	if (cause == UFFDWP_CAUSE_UNMAPPED ?
		    !complete(snap) :
		    dirtymap_next_clear(&snap->done, a) < b)
		fail(snap, -ECANCELED, cause);
}

/* --- publish, at the instant -------------------------------------------- */

/*
 * A zap whose REMOVE was read before the instant may still be on its way
 * (the kernel zaps after the event is read), and would turn a page the
 * snapshot must hold into zeros. Pages of the range watched for such a
 * zap and still present are copied at the instant, to staging (the sink
 * has not begun), while nothing can write them. Staging too small for
 * them cancels the snapshot rather than risk a wrong page.
 */
static int copy_zap_page(void *arg, uintptr_t page)
{
	struct uffdwp_snapshot *snap = arg;
	size_t i = (page - snap->start) / page_size();
	int ret;

	if (dirtymap_test(&snap->done, i))
		return 0;
	dirtymap_set(&snap->claim, i);
	ret = copy_claimed(snap, page, i, true, false);
	if (ret > 0)
		fail(snap, -ECANCELED, UFFDWP_CAUSE_ZAPPED);
	return ret;
}

static void copy_zap_pending(struct uffdwp_snapshot *snap, struct sync_state *s)
{
	syncwp_each_zap_pending(s, snap->r, snap->start, snap->end,
				copy_zap_page, snap);
}

void snapshot_publish(struct uffdwp_snapshot *snap, struct sync_state *s)
{
	struct region *r = snap->r;
	size_t first = region_page(r, snap->start), i, w;
	uint64_t bits;

	snap->s = s;
	/* The range's dirty pages are the snapshot's: consumed here, so the
	 * next collect reports only writes made after the instant. */
	for (i = 0; i < snap->npages; i++) {
		if (dirtymap_test(&r->pending, first + i)) {
			dirtymap_set(&snap->taken, i);
		} else if (snap->flags & UFFDWP_SNAPSHOT_INCREMENTAL) {
			/* Not written since the last image: nothing to copy. */
			dirtymap_set(&snap->claim, i);
			dirtymap_set(&snap->done, i);
		}
	}
	dirtymap_clear_range(&r->pending, first, snap->npages);
	snap->pages = 0;
	for (w = 0; w < snap->nwords; w++) {
		bits = ~snap->done.w[w];
		if (w == snap->nwords - 1 && snap->npages % 64)
			bits &= (1ULL << (snap->npages % 64)) - 1;
		snap->pages += (uint64_t)__builtin_popcountll(bits);
	}
	snap->t_instant = now_ns();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		snap->instant_rt = (uint64_t)ts.tv_sec * 1000000000ULL +
				   (uint64_t)ts.tv_nsec;
	}
	/* Sequentially consistent, like the handlers' count of readers: a
	 * handler either sees the snapshot when it marks an event (and
	 * cancels if it hits an uncopied page), or had its zap marks in
	 * place before the quiescence below ends. */
	snap->obs =
		(struct wp_observer){ .fault = obs_fault, .event = obs_event };
	__atomic_store_n(&r->obs, &snap->obs, __ATOMIC_SEQ_CST);
	syncwp_quiesce_events(s);
	/* Pages unmapped or moved away since the track are no longer under
	 * our protection (whatever is mapped there now is not): no exact
	 * image of them can be promised. */
	if (dirtymap_next_set(&r->gone, first) < first + snap->npages)
		fail(snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	else
		copy_zap_pending(snap, s);
}

void snapshot_publish_instant(void *snap, struct sync_state *s)
{
	snapshot_publish(snap, s);
}

void snapshot_unpublish(struct uffdwp_snapshot *snap, struct sync_state *s)
{
	__atomic_store_n(&snap->r->obs, NULL, __ATOMIC_RELEASE);
	/* Events are handled without the resolve lock: let any handler
	 * that may have loaded the pointer finish with it. */
	syncwp_quiesce_events(s);
}

/* --- copiers ------------------------------------------------------------ */

static bool drain_one(struct uffdwp_snapshot *snap)
{
	size_t ps = page_size();
	int slot, ret;

	slot = snapshot_stage_pop(&snap->st);
	if (slot < 0)
		return false;
	if (!failed(snap)) {
		ret = deliver(snap, snap->st.addr[slot],
			      snap->st.mem + (size_t)slot * ps, ps);
		if (ret)
			fail(snap, ret < 0 ? ret : -EIO, UFFDWP_CAUSE_SINK);
		else
			pages_delivered(snap, 1);
	}
	snapshot_stage_put(&snap->st, (unsigned int)slot);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&snap->kick, 0, __ATOMIC_SEQ_CST))
		syncwp_kick(snap->s);
	return true;
}

/* Copy one run of claimed pages [b, e) of word @w (a copier, or a handler
 * thread in fault_word()). */
static void sweep_run(struct uffdwp_snapshot *snap, char *buf, size_t w,
		      unsigned int b, unsigned int e)
{
	size_t ps = page_size(), first = w * 64 + b, n = e - b;
	uintptr_t addr = snap->start + first * ps;
	void *dst = NULL;
	int ret;

	if (snap->sink.place)
		dst = snap->sink.place(snap->sink.arg, (void *)addr, n * ps);
	ret = copy_in(snap, dst ? dst : buf, addr, n * ps);
	if (ret) {
		fail_copy(snap, ret);
		return;
	}
	syncwp_quiesce_events(snap->s);
	if (failed(snap))
		return;
	mark_done(snap, first, n);
	if (!dst) {
		ret = snap->sink.write(snap->sink.arg, (void *)addr, buf,
				       n * ps);
		if (ret) {
			fail(snap, ret < 0 ? ret : -EIO, UFFDWP_CAUSE_SINK);
			return;
		}
	}
	pages_delivered(snap, n);
}

/* Copy the claimed pages @mine of word @w, run by run. */
static void copy_word(struct uffdwp_snapshot *snap, char *buf, size_t w,
		      uint64_t mine)
{
	unsigned int b, e;

	while (mine && !failed(snap)) {
		b = (unsigned int)__builtin_ctzll(mine);
		e = b;
		while (e < 64 && (mine & (1ULL << e)))
			e++;
		sweep_run(snap, buf, w, b, e);
		mine &= e < 64 ? ~((1ULL << e) - 1) : 0;
	}
}

static bool sweep_one(struct uffdwp_snapshot *snap, char *buf)
{
	size_t w = __atomic_fetch_add(&snap->cursor, 1, __ATOMIC_RELAXED);
	uint64_t mask, mine;

	if (w >= snap->nwords)
		return false;
	mask = word_mask(snap, w);
	mine = mask &
	       ~__atomic_fetch_or(&snap->claim.w[w], mask, __ATOMIC_SEQ_CST);
	copy_word(snap, buf, w, mine);
	return true;
}

static void teardown(struct uffdwp_snapshot *snap);

static void *copier_main(void *arg)
{
	struct copier *c = arg;
	struct uffdwp_snapshot *snap = c->snap;
	char *buf = c->buf;
	struct timespec ts;
	unsigned int seq;

	own_thread_started();
	for (;;) {
		take_sig_err(snap);
		if (failed(snap) || complete(snap))
			break;
		if (drain_one(snap))
			continue;
		if (sweep_one(snap, buf))
			continue;
		/* Idle: wait for a wake (a staged page, a failure, the
		 * last delivery), or look again after a while. The sequence
		 * is read before looking, so a wake after the look is not
		 * missed. */
		seq = __atomic_load_n(&snap->wake_seq, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&snap->idle, 1, __ATOMIC_SEQ_CST);
		if (!failed(snap) && !complete(snap) &&
		    !snapshot_stage_filled(&snap->st)) {
			ts.tv_sec = 0;
			ts.tv_nsec = IDLE_WAIT_MS * 1000000L;
			syscall(SYS_futex, &snap->wake_seq, FUTEX_WAIT_PRIVATE,
				seq, &ts, NULL, 0);
		}
		__atomic_sub_fetch(&snap->idle, 1, __ATOMIC_SEQ_CST);
	}
	/* Staged pages of a failed snapshot are dropped. */
	while (failed(snap) && drain_one(snap))
		;
	/* Not before start() dropped its count: the last count, and the
	 * teardown with the sink's end(), must not fall to the program's
	 * thread inside uffdwp_snapshot_start(). */
	pthread_mutex_lock(&snap->mu);
	while (!snap->launched)
		pthread_cond_wait(&snap->cv, &snap->mu);
	pthread_mutex_unlock(&snap->mu);
	if (__atomic_sub_fetch(&snap->running, 1, __ATOMIC_SEQ_CST) == 0)
		teardown(snap);
	return NULL;
}

/* --- lifecycle ---------------------------------------------------------- */

void snapshot_link(struct uffdwp_snapshot *snap)
{
	snap->owner_next = snap->owner->snaps;
	snap->owner->snaps = snap;
}

void snapshot_unlink(struct uffdwp_snapshot *snap)
{
	struct uffdwp_snapshot **pp;

	for (pp = &snap->owner->snaps; *pp; pp = &(*pp)->owner_next) {
		if (*pp == snap) {
			*pp = snap->owner_next;
			break;
		}
	}
}

void snapshot_cancel_all(struct snapshot_owner *owner, int cause)
{
	struct uffdwp_snapshot *snap;

	for (snap = owner->snaps; snap; snap = snap->owner_next)
		fail(snap, -ECANCELED, cause);
}

void snapshot_fail(struct uffdwp_snapshot *snap, int err, int cause)
{
	fail(snap, err, cause);
}

void snapshot_give_back(struct uffdwp_snapshot *snap)
{
	size_t first = region_page(snap->r, snap->start), i;

	for (i = dirtymap_next_set(&snap->taken, 0); i < snap->npages;
	     i = dirtymap_next_set(&snap->taken, i + 1))
		dirtymap_set(&snap->r->pending, first + i);
}

/*
 * The kernel reports an unmap (munmap, mmap MAP_FIXED, mremap) after the
 * fact: a copier may have read what was mapped in its place before any
 * handler saw the event. Every part of the range must still be a mapping
 * registered at the end, or the image may hold pages that were never the
 * range's. (An unmap after the last copy fails the snapshot too: it
 * cannot be told apart.)
 */
static void check_still_mapped(struct uffdwp_snapshot *snap)
{
	int ret;

	if (failed(snap) || !snap->s)
		return;
	ret = syncwp_still_registered(snap->s, snap->start, snap->end);
	if (ret == -ENOENT || ret == -EFAULT)
		fail(snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	else if (ret)
		/* Not an unmap: /proc unreadable (-EMFILE at the limit of
		 * open files, say), or the protect failed. */
		fail(snap, ret, UFFDWP_CAUSE_KERNEL);
}

/* The sink's end, then the end of the window (the last copier). */
static void teardown(struct uffdwp_snapshot *snap)
{
	int err, ret;

	take_sig_err(snap);
	if (!failed(snap) && !complete(snap))
		fail(snap, -EIO, UFFDWP_CAUSE_KERNEL); /* cannot happen */
	check_still_mapped(snap);
	pthread_mutex_lock(&snap->mu);
	err = __atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE);
	if (!err)
		phase_set(snap, SNAP_COMMITTING);
	pthread_mutex_unlock(&snap->mu);
	if (!err && snap->sink.end) {
		/* Before the window closes: a sink that fails to commit
		 * (fsync) fails the snapshot, and its pages go back. */
		ret = snap->sink.end(snap->sink.arg, 0);
		if (ret)
			fail(snap, ret < 0 ? ret : -EIO, UFFDWP_CAUSE_SINK);
	} else if (snap->sink.end) {
		snap->sink.end(snap->sink.arg, err);
	}

	/* The owner decides the outcome (snapshot_decide()) and closes the
	 * window under its own lock. */
	snap->owner->close(snap->owner, snap);

	pthread_mutex_lock(&snap->mu);
	snap->owner = NULL;
	phase_set(snap, SNAP_ENDED);
	pthread_cond_broadcast(&snap->cv);
	pthread_mutex_unlock(&snap->mu);
}

int snapshot_decide(struct uffdwp_snapshot *snap)
{
	int err;

	pthread_mutex_lock(&snap->mu);
	err = __atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE);
	snap->t_end = now_ns();
	phase_set(snap, SNAP_DECIDED);
	pthread_cond_broadcast(&snap->cv);
	pthread_mutex_unlock(&snap->mu);
	return err;
}

void snapshot_destroy(struct uffdwp_snapshot *snap)
{
	snapshot_stage_fini(&snap->st);
	if (snap->cbuf)
		shadow_free(snap->cbuf, snap->cbuflen);
	dirtymap_free(&snap->claim);
	dirtymap_free(&snap->done);
	dirtymap_free(&snap->taken);
	pthread_cond_destroy(&snap->cv);
	pthread_mutex_destroy(&snap->mu);
	shadow_free(snap, sizeof(*snap));
}

static bool pvr_works(void)
{
	char src[8] = "uffdwp", dst[8] = { 0 };
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };

	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == sizeof(dst) &&
	       !memcmp(src, dst, sizeof(dst));
}

static unsigned int default_copiers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 4 ? 4 : (unsigned int)n;
}

static int sink_in(const struct uffdwp_sink *sink, struct uffdwp_sink *out)
{
	int ret;

	if (!sink)
		return -EINVAL;
	ret = sz_check(sink, sizeof(*sink));
	if (ret)
		return ret;
	sz_copy_in(out, sink, sizeof(*out));
	if (!out->write && !out->place)
		return -EINVAL;
	return 0;
}

/*
 * Run on the owner's offload thread (ctx.c): starting threads under
 * snap->mu is a signal window, which takes milliseconds when the CPUs are
 * busy, and the program's thread waits for it with its own mask.
 */
int snapshot_start_copiers(void *arg)
{
	struct uffdwp_snapshot *snap = arg;
	sigset_t all, old;
	unsigned int i;
	int ret = 0;

	/* Every asynchronous signal blocked, the synchronous ones not: a
	 * library thread never counts as one that blocks SIGSEGV (segv.h).
	 * (The offload thread's own mask, unless it could not start.) */
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* None may finish (and tear down) before all are counted. */
	pthread_mutex_lock(&snap->mu);
	__atomic_add_fetch(&snap->running, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < snap->ncopiers; i++) {
		snap->copier[i].snap = snap;
		snap->copier[i].buf =
			snap->cbuf + (size_t)i * CHUNK * page_size();
		__atomic_add_fetch(&snap->running, 1, __ATOMIC_SEQ_CST);
		ret = own_thread_create(&snap->tid[i], copier_main,
					&snap->copier[i]);
		if (ret) {
			__atomic_sub_fetch(&snap->running, 1, __ATOMIC_SEQ_CST);
			break;
		}
		snap->nthreads++;
	}
	pthread_mutex_unlock(&snap->mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

int snapshot_args_in(const struct uffdwp_sink *sink,
		     const struct uffdwp_snapshot_opts *opts,
		     struct snapshot_args *out)
{
	int ret;

	ret = sink_in(sink, &out->sink);
	if (ret)
		return ret;
	memset(&out->opts, 0, sizeof(out->opts));
	out->opts.sz = sizeof(out->opts);
	if (opts) {
		ret = sz_check(opts, sizeof(*opts));
		if (ret)
			return ret;
		sz_copy_in(&out->opts, opts, sizeof(out->opts));
	}
	if (out->opts.flags & ~(unsigned int)UFFDWP_SNAPSHOT_INCREMENTAL ||
	    out->opts.copiers > MAX_COPIERS)
		return -EINVAL;
	return 0;
}

int snapshot_new(struct snapshot_owner *owner, uintptr_t addr, size_t len,
		 const struct snapshot_args *args, struct uffdwp_snapshot **out)
{
	const struct uffdwp_snapshot_opts *o = &args->opts;
	struct uffdwp_snapshot *snap;
	size_t ps = page_size();

	snap = shadow_zalloc(sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	pthread_mutex_init(&snap->mu, NULL);
	pthread_cond_init(&snap->cv, NULL);
	snap->t0 = now_ns();
	snap->pid = getpid();
	snap->owner = owner;
	snap->start = addr;
	snap->end = addr + len;
	snap->npages = len / ps;
	snap->nwords = DIRTYMAP_WORDS(snap->npages);
	snap->flags = o->flags;
	snap->sink = args->sink;
	snap->word_on_fault = snap->sink.write ? sink_is_file(&snap->sink) :
						 true;
	snap->ncopiers = o->copiers ? o->copiers : default_copiers();
	snap->pvr = pvr_works();
	snap->cbuflen = (size_t)(snap->ncopiers + HBUFS) * CHUNK * ps;
	snap->hbuf_free = (1U << HBUFS) - 1;
	snap->cbuf = shadow_zalloc(snap->cbuflen);
	if (!snap->cbuf || dirtymap_init(&snap->claim, snap->npages) ||
	    dirtymap_init(&snap->done, snap->npages) ||
	    dirtymap_init(&snap->taken, snap->npages) ||
	    snapshot_stage_init(&snap->st, o->staging_pages ?
						   o->staging_pages :
						   DEFAULT_STAGING)) {
		snapshot_destroy(snap);
		return -ENOMEM;
	}
	*out = snap;
	return 0;
}

int snapshot_open(struct uffdwp_snapshot *snap)
{
	struct uffdwp_snapshot_info info = { .sz = sizeof(info) };
	int ret;

	/* The instant has passed: writers may already be deferred on the
	 * sink, which begins now. */
	snap->start_ns = now_ns() - snap->t0;
	info.addr = (void *)snap->start;
	info.len = snap->end - snap->start;
	info.page_size = page_size();
	info.pages = snap->pages;
	info.flags = snap->flags;
	info.instant_realtime_ns = snap->instant_rt;
	if (snap->sink.begin) {
		ret = snap->sink.begin(snap->sink.arg, &info);
		if (ret) {
			ret = ret < 0 ? ret : -EIO;
			fail(snap, ret, UFFDWP_CAUSE_SINK);
			return ret;
		}
	}
	phase_set(snap, SNAP_OPEN);
	if (__atomic_exchange_n(&snap->kick, 0, __ATOMIC_SEQ_CST))
		syncwp_kick(snap->s);
	return 0;
}

bool snapshot_launched(struct uffdwp_snapshot *snap)
{
	bool last;

	/* Dropped before any copier's (they wait for launched): the count
	 * ends here only when no copier runs, and then the teardown (of a
	 * failed snapshot) is ours. A sink's end(), an fsync say, never
	 * runs in this call when a copier does. */
	testhook_hold(HOLD_SNAPSHOT_LAUNCH);
	pthread_mutex_lock(&snap->mu);
	snap->launched = true;
	last = __atomic_sub_fetch(&snap->running, 1, __ATOMIC_SEQ_CST) == 0;
	pthread_cond_broadcast(&snap->cv);
	pthread_mutex_unlock(&snap->mu);
	if (last)
		teardown(snap);
	return snap->nthreads;
}

UFFDWP_EXPORT int uffdwp_snapshot_wait(struct uffdwp_snapshot *snap,
				       long timeout_ms)
{
	struct timespec ts;
	int ret = 0;

	if (!snap)
		return -EINVAL;
	if (snap->pid != getpid())
		return -ECHILD;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms >= 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&snap->mu);
	while (phase(snap) < SNAP_DECIDED && ret != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&snap->cv, &snap->mu);
		else
			ret = pthread_cond_timedwait(&snap->cv, &snap->mu, &ts);
	}
	ret = phase(snap) >= SNAP_DECIDED ?
		      __atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE) :
		      -ETIMEDOUT;
	pthread_mutex_unlock(&snap->mu);
	return ret;
}

UFFDWP_EXPORT int uffdwp_snapshot_cancel(struct uffdwp_snapshot *snap)
{
	if (!snap)
		return -EINVAL;
	if (snap->pid != getpid())
		return -ECHILD;
	fail(snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	return 0;
}

UFFDWP_EXPORT int uffdwp_snapshot_status(const struct uffdwp_snapshot *snap,
					 struct uffdwp_snapshot_status *status)
{
	struct uffdwp_snapshot_status s = { .sz = sizeof(s) };
	struct uffdwp_snapshot *m = (struct uffdwp_snapshot *)snap;
	bool decided;
	int ret;

	if (!snap)
		return -EINVAL;
	ret = sz_check(status, sizeof(*status));
	if (ret)
		return ret;
	if (snap->pid != getpid())
		return -ECHILD;
	pthread_mutex_lock(&m->mu);
	decided = phase(snap) >= SNAP_DECIDED;
	s.error = decided ? __atomic_load_n(&snap->failed, __ATOMIC_ACQUIRE) :
			    0;
	s.state = !decided ? UFFDWP_SNAPSHOT_RUNNING :
		  s.error  ? UFFDWP_SNAPSHOT_FAILED :
			     UFFDWP_SNAPSHOT_DONE;
	s.cause = s.error ? __atomic_load_n(&snap->cause, __ATOMIC_ACQUIRE) :
			    UFFDWP_CAUSE_NONE;
	/* Exact only when every page reached the sink and the sink said so:
	 * nothing short of that may carry the label. */
	s.consistency = s.state == UFFDWP_SNAPSHOT_DONE ?
				UFFDWP_CONSISTENCY_EXACT :
				UFFDWP_CONSISTENCY_NONE;
	s.pages = snap->pages;
	s.pages_done = __atomic_load_n(&snap->pages_done, __ATOMIC_RELAXED);
	s.pages_faulted = cnt_get(&snap->pages_faulted);
	s.faults_waited = cnt_get(&snap->faults_waited);
	s.staging_full = cnt_get(&snap->staging_full);
	s.start_ns = snap->start_ns;
	s.elapsed_ns = (decided ? snap->t_end : now_ns()) - snap->t_instant;
	s.instant_realtime_ns = snap->instant_rt;
	s.committing = !decided && complete(snap);
	pthread_mutex_unlock(&m->mu);
	sz_copy_out(status, &s, sizeof(s));
	return 0;
}

UFFDWP_EXPORT struct uffdwp_snapshot *
uffdwp_snapshot_free(struct uffdwp_snapshot *snap)
{
	unsigned int i;

	if (!snap)
		return NULL;
	if (snap->pid != getpid())
		return NULL; /* the parent's threads and memory */
	fail(snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	/* Not only decided: the window closed (the last copier's teardown,
	 * joined here, closes it). */
	for (i = 0; i < snap->nthreads; i++)
		own_thread_join(snap->tid[i]);
	pthread_mutex_lock(&snap->mu);
	while (phase(snap) != SNAP_ENDED)
		pthread_cond_wait(&snap->cv, &snap->mu);
	pthread_mutex_unlock(&snap->mu);
	snapshot_destroy(snap);
	return NULL;
}
