/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: a program's signal handlers must never park a thread where
 * other threads wait on it.
 *
 * A stop-the-world garbage collector parks every thread in a signal handler
 * (bdwgc's SIGPWR), then collects. If a thread is parked inside one of the
 * library's windows that others wait on, the collect (or a writer) waits
 * for a thread that will not run until the collect is over: a deadlock.
 * The windows: a mprotect or self-service (SIGBUS) fault handler in flight
 * (a collect waits for it), a mprotect or userfaultfd collect that paused
 * fault resolution (self-service writers wait for it), a closed
 * gate of a snapshot's move (faulting writers wait for both), and a
 * program thread's urcu-bp read-side section (every track waits for it).
 *
 * Each case holds one thread in a window with a test hook, sends it a
 * signal whose handler parks it until released, and has another thread do
 * what must complete (a collect, or a write into the range). If that does
 * not complete in time, the test releases the parked thread, which ends
 * the deadlock, and fails. Without the signal windows of segv.h every case
 * fails.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "testhooks.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NPAGES 16
#define HOLD_MS 300
/* Far longer than the hold: a held signal is delivered when it ends. */
#define DEADLINE_MS 5000

static size_t ps;
static struct uffdwp_caps caps;

/* The stop signal's handler: parks until released, like a GC's. */
static atomic_int parked, release, park_count;

static void park(int sig)
{
	struct timespec ts = { 0, 1000000 };
	int saved = errno;

	(void)sig;
	atomic_store(&parked, 1);
	atomic_fetch_add(&park_count, 1);
	while (!atomic_load(&release))
		nanosleep(&ts, NULL);
	atomic_store(&parked, 0);
	errno = saved;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool wait_flag(atomic_int *flag, unsigned int ms)
{
	uint64_t end = ms_now() + ms;

	while (!atomic_load(flag))
		if (ms_now() > end)
			return false;
		else
			usleep(1000);
	return true;
}

enum act { COLLECT, WRITE, SNAPSHOT, STATS, TRACK };

struct job {
	enum act act;
	struct uffdwp_ctx *ctx;
	char *mem;
	size_t page;
	size_t npages; /* a snapshot's */
	size_t reported;
	long ret;
	atomic_int done;
	pthread_t tid;
};

static int count_run(void *arg, void *addr, size_t len)
{
	struct job *j = arg;

	(void)addr;
	j->reported += len / ps;
	return 0;
}

static void *job_main(void *arg)
{
	struct uffdwp_snapshot *snap = NULL;
	struct uffdwp_sink *sink = NULL;
	struct job *j = arg;
	char *buf;

	switch (j->act) {
	case COLLECT:
		j->ret = uffdwp_collect(j->ctx, count_run, j);
		break;
	case WRITE:
		*(volatile char *)(j->mem + j->page * ps) = 7;
		j->ret = 0;
		break;
	case STATS: {
		struct uffdwp_stats st = { .sz = sizeof(st) };

		j->ret = uffdwp_ctx_stats(j->ctx, &st);
		break;
	}
	case TRACK: {
		/* Another context and range: only urcu-bp is shared. */
		struct uffdwp_ctx *other = NULL;
		char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		j->ret = p == MAP_FAILED ? -errno :
					   uffdwp_ctx_new(NULL, &other);
		if (!j->ret)
			j->ret = uffdwp_track(other, p, ps, 0);
		uffdwp_ctx_free(other);
		if (p != MAP_FAILED)
			munmap(p, ps);
		break;
	}
	case SNAPSHOT:
		buf = malloc(j->npages * ps);
		j->ret = buf ? uffdwp_sink_memory_new(buf, j->npages * ps,
						      &sink) :
			       -ENOMEM;
		if (!j->ret)
			j->ret = uffdwp_snapshot_start(j->ctx, j->mem,
						       j->npages * ps, sink,
						       NULL, &snap);
		if (!j->ret)
			j->ret = uffdwp_snapshot_wait(snap, -1);
		uffdwp_snapshot_free(snap);
		uffdwp_sink_free(sink);
		free(buf);
		break;
	}
	atomic_store(&j->done, 1);
	return NULL;
}

/* The pages a job's snapshot covers. */
static size_t job_npages = NPAGES;

static void job_start(struct job *j, enum act act, struct uffdwp_ctx *ctx,
		      char *mem, size_t page)
{
	memset(j, 0, sizeof(*j));
	j->act = act;
	j->ctx = ctx;
	j->mem = mem;
	j->page = page;
	j->npages = job_npages;
	ck_assert_int_eq(pthread_create(&j->tid, NULL, job_main, j), 0);
}

/*
 * One case: @held does @held_act until the hook holds it in @window; it is
 * sent the stop signal there; then @waiter does @waiter_act, which must
 * complete although @held is parked.
 */
struct signal_case {
	const char *name;
	int backend;
	int window;
	enum act held_act, waiter_act;
	unsigned int ctx_flags; /* UFFDWP_CTX_SELF_SERVICE */
};

static const struct signal_case cases[] = {
	{ "mprotect handler in flight, collect", UFFDWP_BACKEND_MPROTECT,
	  HOLD_MPROTECT_HANDLER, WRITE, COLLECT },
	{ "mprotect collect paused, write", UFFDWP_BACKEND_MPROTECT,
	  HOLD_MPROTECT_PAUSE, COLLECT, WRITE },
	{ "uffd_sync collect paused, write", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SYNC_PAUSE, COLLECT, WRITE },
	{ "uffd_async snapshot gate closed, write", UFFDWP_BACKEND_UFFD_ASYNC,
	  HOLD_GATE_CLOSED, SNAPSHOT, WRITE },
	{ "stats in a read-side section, track elsewhere",
	  UFFDWP_BACKEND_MPROTECT, HOLD_RCU_READ, STATS, TRACK },
	{ "self-service handler in flight, collect", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SELF_HANDLER, WRITE, COLLECT, UFFDWP_CTX_SELF_SERVICE },
	{ "self-service collect paused, write", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SYNC_PAUSE, COLLECT, WRITE, UFFDWP_CTX_SELF_SERVICE },
};

/*
 * A case's set-up: the stop signal's handler, @npages populated pages
 * tracked on @backend with nothing pending, and the hook armed to hold
 * the first thread that reaches @window for @hold_ms.
 */
static char *case_setup(int backend, unsigned int flags, size_t npages,
			int window, unsigned int hold_ms,
			struct uffdwp_ctx **ctx)
{
	struct uffdwp_ctx_opts o = { .sz = sizeof(o),
				     .backend = backend,
				     .flags = flags };
	struct sigaction sa = { .sa_handler = park };
	struct job last = { 0 };
	char *mem;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	memset(mem, 1, npages * ps);
	ck_assert_int_eq(uffdwp_ctx_new(&o, ctx), 0);
	ck_assert_int_eq(uffdwp_track(*ctx, mem, npages * ps, 0), 0);
	/* Nothing pending: a later collect sees only the case. */
	ck_assert_int_ge(uffdwp_collect(*ctx, count_run, &last), 0);
	uffdwp_test_hooks.hold_ms = hold_ms;
	uffdwp_test_hooks.held = HOLD_NONE;
	uffdwp_test_hooks.hold = window;
	return mem;
}

START_TEST(parked_thread_does_not_block_others)
{
	const struct signal_case *c = &cases[_i];
	struct job held, waiter, last = { 0 };
	struct uffdwp_ctx *ctx;
	bool completed;
	char *mem;

	mem = case_setup(c->backend, c->ctx_flags, NPAGES, c->window, HOLD_MS,
			 &ctx);
	job_start(&held, c->held_act, ctx, mem, 1);
	ck_assert_msg(wait_flag((atomic_int *)&uffdwp_test_hooks.held, 5000),
		      "%s: the hook never held the thread", c->name);
	pthread_kill(held.tid, SIGUSR1);
	/* Let the signal land while the thread is still in the window. */
	usleep(20 * 1000);
	job_start(&waiter, c->waiter_act, ctx, mem, 2);
	completed = wait_flag(&waiter.done, DEADLINE_MS);
	/* Either way, end the park (this also ends a deadlock). */
	atomic_store(&release, 1);
	pthread_join(waiter.tid, NULL);
	pthread_join(held.tid, NULL);
	ck_assert_msg(
		completed,
		"%s: a thread parked by a signal handler inside the library's window blocked another thread for %d ms",
		c->name, DEADLINE_MS);
	/* The signal was held, not lost: it was delivered after the window. */
	ck_assert_int_eq(atomic_load(&park_count), 1);
	ck_assert_int_eq(held.ret < 0 ? held.ret : 0, 0);
	ck_assert_int_eq(waiter.ret < 0 ? waiter.ret : 0, 0);
	/* And nothing written was lost: each written page is reported at
	 * least once (twice if its write ran again after a collect took
	 * it, as the held write does when the collect re-protects first). */
	memset(&last, 0, sizeof(last));
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &last), 0);
	ck_assert_uint_ge(last.reported + held.reported + waiter.reported,
			  (c->held_act == WRITE) + (c->waiter_act == WRITE));
	uffdwp_ctx_free(ctx);
	munmap(mem, NPAGES * ps);
}
END_TEST

/*
 * The other half: a stop signal must land while a window is held, not
 * after it. Sent to the thread that called into the library (a window
 * over many pages runs on the library's offload thread), or to a writer
 * waiting for a window another thread holds (it waits with its own mask).
 * Before, both waited with every asynchronous signal blocked until the
 * window ended, which lasts 0.2-0.6 s per GiB re-protected: a collector
 * stopping the world waited seconds on a large heap.
 */
#define BIG_PAGES 2048 /* above the library's offload threshold */
#define LAND_HOLD_MS 2000

enum target { CALLER, WRITER };

struct land_case {
	const char *name;
	int backend;
	int window;
	enum act act;
	enum target target;
};

static const struct land_case land_cases[] = {
	{ "uffd_sync collect, its caller", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SYNC_PAUSE, COLLECT, CALLER },
	{ "uffd_sync snapshot instant, its caller", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SYNC_PAUSE, SNAPSHOT, CALLER },
	{ "uffd_sync collect, a writer", UFFDWP_BACKEND_UFFD_SYNC,
	  HOLD_SYNC_PAUSE, COLLECT, WRITER },
	{ "mprotect collect, its caller", UFFDWP_BACKEND_MPROTECT,
	  HOLD_MPROTECT_PAUSE, COLLECT, CALLER },
	{ "mprotect collect, a writer", UFFDWP_BACKEND_MPROTECT,
	  HOLD_MPROTECT_PAUSE, COLLECT, WRITER },
	{ "uffd_async snapshot gate, its caller", UFFDWP_BACKEND_UFFD_ASYNC,
	  HOLD_GATE_CLOSED, SNAPSHOT, CALLER },
	{ "uffd_async snapshot gate, a writer", UFFDWP_BACKEND_UFFD_ASYNC,
	  HOLD_GATE_CLOSED, SNAPSHOT, WRITER },
};

START_TEST(stop_signal_lands_during_window)
{
	const struct land_case *c = &land_cases[_i];
	struct job held, writer = { 0 }, last = { 0 };
	struct uffdwp_ctx *ctx;
	uint64_t t_held, t_parked = 0;
	pthread_t target;
	char *mem;

	mem = case_setup(c->backend, 0, BIG_PAGES, c->window, LAND_HOLD_MS,
			 &ctx);
	job_npages = BIG_PAGES;
	job_start(&held, c->act, ctx, mem, 1);
	ck_assert_msg(wait_flag((atomic_int *)&uffdwp_test_hooks.held, 5000),
		      "%s: the hook never held the window", c->name);
	t_held = ms_now();
	target = held.tid;
	if (c->target == WRITER) {
		job_start(&writer, WRITE, ctx, mem, 7);
		/* Let it fault and start waiting for the window. */
		usleep(100 * 1000);
		target = writer.tid;
	}
	pthread_kill(target, SIGUSR1);
	if (wait_flag(&parked, LAND_HOLD_MS / 2))
		t_parked = ms_now();
	atomic_store(&release, 1);
	ck_assert_msg(wait_flag(&held.done, 10000) &&
			      (c->target != WRITER ||
			       wait_flag(&writer.done, 10000)),
		      "%s: a job never completed", c->name);
	pthread_join(held.tid, NULL);
	if (c->target == WRITER)
		pthread_join(writer.tid, NULL);
	ck_assert_msg(t_parked && t_parked - t_held < LAND_HOLD_MS / 2,
		      "%s: the stop signal waited for the window to end",
		      c->name);
	ck_assert_int_eq(atomic_load(&park_count), 1);
	ck_assert_int_eq(held.ret < 0 ? held.ret : 0, 0);
	ck_assert_int_eq(writer.ret < 0 ? writer.ret : 0, 0);
	/* The write that waited for the window is reported. */
	memset(&last, 0, sizeof(last));
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &last), 0);
	ck_assert_uint_ge(last.reported + held.reported, c->target == WRITER);
	uffdwp_ctx_free(ctx);
	munmap(mem, BIG_PAGES * ps);
}
END_TEST

static Suite *signals_suite(void)
{
	Suite *s = suite_create("signals");
	static char names[ARRAY_LEN(cases)][48];
	static char land_names[ARRAY_LEN(land_cases)][48];
	size_t i;
	TCase *tc;

	/* One case per backend-tagged TCase: a backend the kernel lacks is
	 * excluded by its name. */
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		snprintf(names[i], sizeof(names[i]), "stop-the-world-%zu", i);
		tc = tcase_create(names[i]);
		tcase_set_tags(tc,
			       cases[i].ctx_flags & UFFDWP_CTX_SELF_SERVICE ?
				       "uffd_sync self_service" :
				       uffdwp_backend_name(cases[i].backend));
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, parked_thread_does_not_block_others,
				    (int)i, (int)i + 1);
		suite_add_tcase(s, tc);
	}
	for (i = 0; i < ARRAY_LEN(land_cases); i++) {
		snprintf(land_names[i], sizeof(land_names[i]),
			 "signal-lands-%zu", i);
		tc = tcase_create(land_names[i]);
		tcase_set_tags(tc, uffdwp_backend_name(land_cases[i].backend));
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, stop_signal_lands_during_window, (int)i,
				    (int)i + 1);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };
	int b;

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	caps.sz = sizeof(caps);
	if (uffdwp_probe(&caps))
		test_skip("uffdwp_probe failed");
	for (b = UFFDWP_BACKEND_UFFD_ASYNC; b <= UFFDWP_BACKEND_MPROTECT; b++)
		if (!caps.backend[b].usable)
			test_exclude(&ex, uffdwp_backend_name(b),
				     caps.backend[b].reason);
	if (!caps.uffd_sigbus)
		test_exclude(&ex, "self_service", caps.uffd_sigbus_reason);
	unsetenv("UFFDWP_BACKEND");
	if (!test_forking())
		test_skip("each case needs its own process (CK_FORK=no)");
	return test_run(signals_suite(), &ex);
}
