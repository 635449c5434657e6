/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: a program's signal handlers must never park a thread where
 * other threads wait on it.
 *
 * A stop-the-world garbage collector parks every thread in a signal handler
 * (bdwgc's SIGPWR), then collects. If a thread is parked inside one of the
 * library's windows that others wait on, the collect (or a writer) waits
 * for a thread that will not run until the collect is over: a deadlock.
 * The windows: a mprotect fault handler in flight (a collect waits for it),
 * a mprotect or userfaultfd collect that paused fault resolution, a closed
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
		buf = malloc(NPAGES * ps);
		j->ret = buf ? uffdwp_sink_memory_new(buf, NPAGES * ps, &sink) :
			       -ENOMEM;
		if (!j->ret)
			j->ret = uffdwp_snapshot_start(
				j->ctx, j->mem, NPAGES * ps, sink, NULL, &snap);
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

static void job_start(struct job *j, enum act act, struct uffdwp_ctx *ctx,
		      char *mem, size_t page)
{
	memset(j, 0, sizeof(*j));
	j->act = act;
	j->ctx = ctx;
	j->mem = mem;
	j->page = page;
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
};

START_TEST(parked_thread_does_not_block_others)
{
	const struct signal_case *c = &cases[_i];
	struct uffdwp_ctx_opts o = { .sz = sizeof(o), .backend = c->backend };
	struct sigaction sa = { .sa_handler = park };
	struct job held, waiter, last = { 0 };
	struct uffdwp_ctx *ctx;
	bool completed;
	char *mem;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	mem = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	memset(mem, 1, NPAGES * ps);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_int_eq(uffdwp_track(ctx, mem, NPAGES * ps, 0), 0);
	/* Nothing pending: the waiter's collect sees only this case. */
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &last), 0);

	uffdwp_test_hooks.hold_ms = HOLD_MS;
	uffdwp_test_hooks.held = HOLD_NONE;
	uffdwp_test_hooks.hold = c->window;
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

static Suite *signals_suite(void)
{
	Suite *s = suite_create("signals");
	static char names[ARRAY_LEN(cases)][48];
	size_t i;
	TCase *tc;

	/* One case per backend-tagged TCase: a backend the kernel lacks is
	 * excluded by its name. */
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		snprintf(names[i], sizeof(names[i]), "stop-the-world-%zu", i);
		tc = tcase_create(names[i]);
		tcase_set_tags(tc, uffdwp_backend_name(cases[i].backend));
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, parked_thread_does_not_block_others,
				    (int)i, (int)i + 1);
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
	unsetenv("UFFDWP_BACKEND");
	if (!test_forking())
		test_skip("each case needs its own process (CK_FORK=no)");
	return test_run(signals_suite(), &ex);
}
