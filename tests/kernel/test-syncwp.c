/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: the synchronous userfaultfd as a component, with no
 * context around it (syncwp.h): a range set, a batch and counters of the
 * test's own, a real userfaultfd and real writer threads. A write fault is
 * recorded before it is resolved; an observer sees the page's old contents
 * before the write lands and can hold the writer until it kicks; events
 * reach the range's marks and then its observer; a harvest moves the
 * recorded pages to pending, re-protected, and runs the instant while
 * resolution is paused. A fault read before its range was unregistered
 * is stale and never recorded.
 *
 * Self-service (UFFD_FEATURE_SIGBUS): the writing thread's own SIGBUS
 * records and resolves its fault before the write returns, with no
 * handler thread; a harvest re-protects; a kernel write into a protected
 * page fails with EFAULT; the handler runs on an alternate signal stack;
 * a SIGBUS that is not the library's reaches the program's handler.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../common.h"
#include "region.h"
#include "syncwp.h"
#include "sys-uffd.h"

#define NPAGES 16

static struct uffdwp_caps caps;
static size_t ps;

struct rig {
	char *mem;
	struct region_set *set;
	struct region *r;
	struct wpbatch batch;
	struct wp_counters wp;
	uint64_t faults, events, retries;
	struct sync_state *s;
};

static void rig_up_mode(struct rig *g, bool self)
{
	struct sync_env env;

	memset(g, 0, sizeof(*g));
	g->mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(g->mem, MAP_FAILED);
	memset(g->mem, 1, NPAGES * ps);
	g->r = region_new(NULL, (uintptr_t)g->mem, NPAGES * ps, 0, MEM_ANON);
	ck_assert_ptr_nonnull(g->r);
	ck_assert_int_eq(regions_add(&g->set, g->r), 0);
	wpbatch_init(&g->batch, 16 * ps, &g->wp);
	env = (struct sync_env){ .regions = &g->set,
				 .batch = &g->batch,
				 .wp = &g->wp,
				 .faults = &g->faults,
				 .events = &g->events,
				 .retries = &g->retries };
	ck_assert_int_eq(syncwp_open(&env, caps.uffd_mode, caps.uffd_features,
				     self, 1, &g->s),
			 0);
	ck_assert_int_eq(uffd_register(g->s->uffd, g->mem, NPAGES * ps,
				       UFFDIO_REGISTER_MODE_WP, NULL),
			 0);
	ck_assert_int_eq(syncwp_attach(g->s, g->r), 0);
	ck_assert_int_eq(syncwp_populate(g->s, (uintptr_t)g->mem, NPAGES * ps),
			 0);
	ck_assert_int_eq(uffd_writeprotect(g->s->uffd, g->mem, NPAGES * ps,
					   UFFDIO_WRITEPROTECT_MODE_WP),
			 0);
}

static void rig_up(struct rig *g)
{
	rig_up_mode(g, false);
}

static void rig_down(struct rig *g)
{
	uffd_unregister(g->s->uffd, g->mem, NPAGES * ps);
	uffd_wake(g->s->uffd, g->mem, NPAGES * ps);
	syncwp_detach(g->s, g->r);
	syncwp_close(g->s, false);
	regions_remove(&g->set, g->r);
	region_free(g->r);
	regions_free(&g->set);
	wpbatch_fini(&g->batch);
	munmap(g->mem, NPAGES * ps);
}

struct writer {
	char *p;
	char v;
	atomic_int done;
	pthread_t tid;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	*(volatile char *)w->p = w->v;
	atomic_store(&w->done, 1);
	return NULL;
}

static void write_from_thread(struct writer *w, char *p, char v)
{
	w->p = p;
	w->v = v;
	atomic_store(&w->done, 0);
	ck_assert_int_eq(pthread_create(&w->tid, NULL, writer_main, w), 0);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The handler counts a fault after it woke the writer: wait (up to 2 s)
 * for the count to reach @want, and return it. */
static uint64_t faults_reach(struct rig *g, uint64_t want)
{
	uint64_t n;
	int i;

	for (i = 0; i < 2000; i++) {
		n = __atomic_load_n(&g->faults, __ATOMIC_RELAXED);
		if (n >= want)
			break;
		sleep_ms(1);
	}
	return n;
}

/* A write fault: recorded, resolved, counted; the next write is free. */
START_TEST(fault_recorded_and_resolved)
{
	struct rig g;
	struct writer w;
	size_t i;

	rig_up(&g);
	write_from_thread(&w, g.mem + 3 * ps, 7);
	pthread_join(w.tid, NULL);
	ck_assert_int_eq(g.mem[3 * ps], 7);
	ck_assert_uint_eq(faults_reach(&g, 1), 1);
	for (i = 0; i < NPAGES; i++)
		ck_assert_int_eq(dirtymap_test(&g.r->recorded, i), i == 3);
	g.mem[3 * ps] = 8; /* unprotected now: no second fault */
	sleep_ms(20);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 1);
	rig_down(&g);
}
END_TEST

/*
 * A fault message the handler read before its range was unregistered is
 * stale: the unregister woke its writer, who wrote with nothing watching.
 * Recording the page at the retry after the pause reported a write in a
 * period that had none (on uffd_async, an incremental snapshot one page
 * larger than what was written, after a move back).
 */
START_TEST(stale_fault_after_unregister_not_recorded)
{
	struct rig g;
	struct writer w;
	size_t i;

	rig_up(&g);
	syncwp_pause(g.s);
	write_from_thread(&w, g.mem + 5 * ps, 9);
	/* Time for the handler to read the message and find resolution
	 * paused: the page waits in its retry list. */
	sleep_ms(200);
	ck_assert_int_eq(atomic_load(&w.done), 0);
	ck_assert_int_eq(uffd_unregister(g.s->uffd, g.mem, NPAGES * ps), 0);
	syncwp_unregistered(g.s, (uintptr_t)g.mem, NPAGES * ps);
	pthread_join(w.tid, NULL);
	ck_assert_int_eq(g.mem[5 * ps], 9);
	syncwp_resume(g.s);
	sleep_ms(200);
	syncwp_pause(g.s);
	for (i = 0; i < NPAGES; i++)
		ck_assert_msg(!dirtymap_test(&g.r->recorded, i),
			      "page %zu recorded from a stale message", i);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 0);
	syncwp_resume(g.s);
	rig_down(&g);
}
END_TEST

struct watcher {
	struct wp_observer obs;
	const char *mem;
	atomic_int hold;
	atomic_int calls;
	atomic_int seen; /* the page's first byte, at the first call */
	atomic_int events;
	uintptr_t ev_lo, ev_hi;
	int ev_cause;
};

static int watch_fault(struct wp_observer *o, uintptr_t page, bool self)
{
	struct watcher *w = (struct watcher *)o;

	(void)self;
	if (atomic_fetch_add(&w->calls, 1) == 0)
		atomic_store(&w->seen, *(const volatile char *)page);
	return atomic_load(&w->hold);
}

static void watch_event(struct wp_observer *o, uintptr_t lo, uintptr_t hi,
			int cause)
{
	struct watcher *w = (struct watcher *)o;

	w->ev_lo = lo;
	w->ev_hi = hi;
	w->ev_cause = cause;
	atomic_fetch_add(&w->events, 1);
}

static void watch(struct rig *g, struct watcher *w)
{
	memset(w, 0, sizeof(*w));
	w->obs = (struct wp_observer){ .fault = watch_fault,
				       .event = watch_event };
	syncwp_pause(g->s);
	__atomic_store_n(&g->r->obs, &w->obs, __ATOMIC_SEQ_CST);
	syncwp_resume(g->s);
}

/* The observer runs before the unprotect (it reads the old byte) and holds
 * the writer until it lets go and kicks. */
START_TEST(observer_holds_until_kick)
{
	struct watcher obs;
	struct writer w;
	struct rig g;
	int i;

	rig_up(&g);
	watch(&g, &obs);
	atomic_store(&obs.hold, 1);
	write_from_thread(&w, g.mem + 5 * ps, 9);
	for (i = 0; i < 2000 && !atomic_load(&obs.calls); i++)
		sleep_ms(1);
	sleep_ms(50); /* held: the writer must still be waiting after this */
	ck_assert_int_ge(atomic_load(&obs.calls), 1);
	ck_assert_int_eq(atomic_load(&obs.seen), 1);
	ck_assert_int_eq(atomic_load(&w.done), 0);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 5), 0);
	atomic_store(&obs.hold, 0);
	syncwp_kick(g.s);
	pthread_join(w.tid, NULL);
	ck_assert_int_eq(g.mem[5 * ps], 9);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 5), 1);
	ck_assert_uint_eq(faults_reach(&g, 1), 1);
	rig_down(&g);
}
END_TEST

/* A zap's event marks the page written and watched, then tells the
 * observer. */
START_TEST(event_marks_then_observer)
{
	struct watcher obs;
	struct rig g;

	rig_up(&g);
	watch(&g, &obs);
	ck_assert_int_eq(madvise(g.mem + 6 * ps, ps, MADV_DONTNEED), 0);
	/* madvise returns once the event was read; marks are set by then
	 * or soon after (handlers mark without the resolve lock). */
	syncwp_quiesce_events(g.s);
	ck_assert_int_eq(atomic_load(&obs.events), 1);
	ck_assert_uint_eq(obs.ev_lo, (uintptr_t)g.mem + 6 * ps);
	ck_assert_uint_eq(obs.ev_hi, (uintptr_t)g.mem + 7 * ps);
	ck_assert_int_eq(obs.ev_cause, UFFDWP_CAUSE_ZAPPED);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 6), 1);
	ck_assert_int_eq(dirtymap_test(&g.r->zapwatch, 6), 1);
	ck_assert_uint_eq(__atomic_load_n(&g.events, __ATOMIC_RELAXED), 1);
	rig_down(&g);
}
END_TEST

static void instant(void *arg, struct sync_state *s)
{
	struct rig *g = arg;

	ck_assert_ptr_eq(s, g->s);
	/* Resolution is paused: a harvest's caller holds it exclusively. */
	ck_assert_int_ne(pthread_rwlock_tryrdlock(&g->s->resolve), 0);
	g->retries += 1000; /* the test's own mark that it ran */
}

/* A harvest moves recorded pages to pending, re-protected, and runs the
 * instant inside the pause. */
START_TEST(harvest_reprotects_and_runs_instant)
{
	struct writer w;
	struct rig g;
	size_t i;

	rig_up(&g);
	for (i = 1; i <= 2; i++) {
		write_from_thread(&w, g.mem + i * ps, 3);
		pthread_join(w.tid, NULL);
	}
	ck_assert_uint_eq(faults_reach(&g, 2), 2);
	ck_assert_int_eq(syncwp_harvest(g.s, &g.r, 1, instant, &g), 0);
	ck_assert_uint_ge(g.retries, 1000);
	for (i = 0; i < NPAGES; i++) {
		ck_assert_int_eq(dirtymap_test(&g.r->pending, i),
				 i == 1 || i == 2);
		ck_assert_int_eq(dirtymap_test(&g.r->recorded, i), 0);
	}
	write_from_thread(&w, g.mem + ps, 4);
	pthread_join(w.tid, NULL);
	ck_assert_uint_eq(faults_reach(&g, 3), 3);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 1), 1);
	rig_down(&g);
}
END_TEST

/* --- self-service ------------------------------------------------------ */

/* The fault is recorded and counted before the write returns: by the
 * writing thread itself. */
START_TEST(self_fault_resolved_by_the_writer)
{
	struct writer w;
	struct rig g;
	size_t i;

	rig_up_mode(&g, true);
	ck_assert(g.s->self);
	write_from_thread(&w, g.mem + 5 * ps, 9);
	pthread_join(w.tid, NULL);
	ck_assert_int_eq(g.mem[5 * ps], 9);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 1);
	for (i = 0; i < NPAGES; i++)
		ck_assert_int_eq(dirtymap_test(&g.r->recorded, i), i == 5);
	/* The main thread too, and a page already resolved is free. */
	*(volatile char *)(g.mem + 6 * ps) = 1;
	*(volatile char *)(g.mem + 5 * ps) = 2;
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 2);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 6), 1);
	ck_assert_int_eq(syncwp_harvest(g.s, &g.r, 1, NULL, NULL), 0);
	ck_assert_int_eq(dirtymap_test(&g.r->pending, 5), 1);
	ck_assert_int_eq(dirtymap_test(&g.r->pending, 6), 1);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 5), 0);
	/* Re-protected: the same page faults again, in the same thread. */
	*(volatile char *)(g.mem + 5 * ps) = 3;
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 3);
	ck_assert_int_eq(dirtymap_test(&g.r->recorded, 5), 1);
	rig_down(&g);
}
END_TEST

/* A write the kernel makes into a protected page fails with EFAULT (the
 * documented contract), and works once the page was written. */
START_TEST(self_kernel_write_is_efault)
{
	struct rig g;
	int pfd[2];

	rig_up_mode(&g, true);
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(write(pfd[1], "ab", 2), 2);
	errno = 0;
	ck_assert_int_eq(read(pfd[0], g.mem + 2 * ps, 1), -1);
	ck_assert_int_eq(errno, EFAULT);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 0);
	*(volatile char *)(g.mem + 2 * ps) = 'x';
	ck_assert_int_eq(read(pfd[0], g.mem + 2 * ps, 1), 1);
	ck_assert_int_eq(g.mem[2 * ps], 'a');
	close(pfd[0]);
	close(pfd[1]);
	rig_down(&g);
}
END_TEST

/* The writer's fault on an alternate signal stack (SA_ONSTACK): the
 * handler's frame lands there, and the write goes through. */
struct alt_writer {
	char *page;
	unsigned char *stack;
	size_t len;
	int used; /* bytes of the pattern overwritten */
};

static void *alt_writer_main(void *arg)
{
	struct alt_writer *a = arg;
	stack_t ss = { .ss_sp = a->stack, .ss_size = a->len };
	size_t i;

	memset(a->stack, 0xa5, a->len);
	if (sigaltstack(&ss, NULL))
		return NULL;
	*(volatile char *)a->page = 4;
	for (i = 0; i < a->len; i++)
		a->used += a->stack[i] != 0xa5;
	return NULL;
}

START_TEST(self_fault_on_an_alternate_stack)
{
	struct alt_writer a = { .len = 64 * 1024 };
	pthread_t tid;
	struct rig g;

	rig_up_mode(&g, true);
	a.page = g.mem + 7 * ps;
	a.stack = mmap(NULL, a.len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(a.stack, MAP_FAILED);
	ck_assert_int_eq(pthread_create(&tid, NULL, alt_writer_main, &a), 0);
	pthread_join(tid, NULL);
	ck_assert_int_eq(g.mem[7 * ps], 4);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 1);
	ck_assert_msg(a.used > 0,
		      "the handler did not run on the alternate stack");
	munmap(a.stack, a.len);
	rig_down(&g);
}
END_TEST

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_seen;

static void program_bus(int sig)
{
	(void)sig;
	bus_seen++;
	siglongjmp(bus_jmp, 1);
}

/* A SIGBUS that is not a write-protect fault of a tracked page (a shared
 * memory page past the end of its file) reaches the handler the program
 * installed before the library's, outside tracked ranges and inside. */
START_TEST(self_foreign_sigbus_chains)
{
	struct sigaction sa = { .sa_handler = program_bus };
	volatile char *past;
	struct rig g;
	char *shm;
	int fd;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
	rig_up_mode(&g, true);
	*(volatile char *)g.mem = 1; /* the handler is in place, and works */
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 1);
	fd = memfd_create("short", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ps), 0);
	shm = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(shm, MAP_FAILED);
	past = shm + ps;
	if (!sigsetjmp(bus_jmp, 1))
		*past = 1;
	ck_assert_int_eq(bus_seen, 1);
	ck_assert_uint_eq(__atomic_load_n(&g.faults, __ATOMIC_RELAXED), 1);
	rig_down(&g);
	munmap(shm, 2 * ps);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("syncwp");
	TCase *tc = tcase_create("component");
	struct test_exclusions ex = { 0 };

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	if (!caps.backend[UFFDWP_BACKEND_UFFD_SYNC].usable)
		test_skip("no synchronous userfaultfd write-protect: %s",
			  caps.backend[UFFDWP_BACKEND_UFFD_SYNC].reason);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, fault_recorded_and_resolved);
	tcase_add_test(tc, observer_holds_until_kick);
	tcase_add_test(tc, event_marks_then_observer);
	tcase_add_test(tc, harvest_reprotects_and_runs_instant);
	tcase_add_test(tc, stale_fault_after_unregister_not_recorded);
	suite_add_tcase(s, tc);
	if (caps.uffd_features & UFFD_FEATURE_SIGBUS) {
		TCase *self = tcase_create("self-service");

		tcase_set_timeout(self, 60);
		tcase_add_test(self, self_fault_resolved_by_the_writer);
		tcase_add_test(self, self_kernel_write_is_efault);
		tcase_add_test(self, self_fault_on_an_alternate_stack);
		tcase_add_test(self, self_foreign_sigbus_chains);
		suite_add_tcase(s, self);
	}
	return test_run(s, &ex);
}
