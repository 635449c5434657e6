/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: fork, a child that tracks again, with another thread
 * tracking at the fork, and from a fork handler.
 */
#include "track-common.h"

/*
 * After fork the child frees the parent's context, makes its own and
 * tracks the same range again: the convergence oracle must hold in the
 * child, and still in the parent afterwards.
 */
START_TEST(fork_child_tracks_again)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backends[_i],
					.flags = test_ctx_flags(backends[_i]) };
	size_t npages = test_scaled(512, 128);
	struct oracle o;
	int status;
	pid_t pid;

	NEED_BACKEND(backends[_i]);
	oracle_setup(&o, backends[_i], npages);
	o.pattern = RANDOM;
	ck_assert_uint_eq(oracle_run(&o, 20), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t bad;

		alarm(120); /* a hang is a failure, not a stuck suite */
		o.ctx = uffdwp_ctx_free(o.ctx);
		if (uffdwp_ctx_new(&opts, &o.ctx))
			_exit(2);
		/* The child's copy may still be read-only (mprotect):
		 * the library gives pages back until it is tracked. */
		o.mem[0] ^= 1;
		if (uffdwp_track(o.ctx, o.mem, npages * ps, 0))
			_exit(3);
		memcpy(o.shadow, o.mem, npages * ps);
		atomic_store(&o.stop, 0);
		/* oracle_run() ends quiescing: soft_dirty needs it again. */
		o.quiesce = backends[_i] == UFFDWP_BACKEND_SOFT_DIRTY;
		bad = oracle_run(&o, (unsigned int)test_scaled(200, 50));
		printf("child: %zu pages reported, %zu stale\n", o.reported,
		       bad);
		o.ctx = uffdwp_ctx_free(o.ctx);
		_exit(bad ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status %#x (exit 2: ctx_new, 3: track failed)",
		      status);
	atomic_store(&o.stop, 0);
	o.quiesce = backends[_i] == UFFDWP_BACKEND_SOFT_DIRTY;
	ck_assert_uint_eq(oracle_run(&o, 20), 0);
	oracle_teardown(&o);
}
END_TEST

/* What a collector's fork child handler does: its own context, its heap
 * tracked again. */
static struct {
	struct uffdwp_ctx *ctx;
	char *mem;
	size_t len;
	int backend;
	int ret;
} child_hook;

static void child_hook_run(void)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = child_hook.backend,
					.flags = test_ctx_flags(
						child_hook.backend) };

	if (!child_hook.ctx)
		return; /* another test's fork, in this process */
	alarm(30); /* a hang here is the failure */
	child_hook.ctx = uffdwp_ctx_free(child_hook.ctx);
	child_hook.ret = uffdwp_ctx_new(&opts, &child_hook.ctx);
	if (!child_hook.ret)
		child_hook.ret = uffdwp_track(child_hook.ctx, child_hook.mem,
					      child_hook.len, 0);
}

/*
 * A fork handler the program registered before its first context (as
 * bdwgc does in GC_init) makes a context and tracks in the child. The
 * library's own handlers must have run by then: registered at its first
 * context, they ran after the program's child handler, which hung on a
 * claim lock still held.
 */
START_TEST(fork_handler_calls_library_in_child)
{
	int status;
	pid_t pid;

	NEED_BACKEND(backends[_i]);
	ck_assert_int_eq(pthread_atfork(NULL, NULL, child_hook_run), 0);
	child_hook.backend = backends[_i];
	child_hook.len = 8 * ps;
	child_hook.mem = map(8, PROT_READ | PROT_WRITE);
	memset(child_hook.mem, 1, child_hook.len);
	child_hook.ctx = new_ctx(backends[_i]);
	ck_assert_int_eq(uffdwp_track(child_hook.ctx, child_hook.mem,
				      child_hook.len, 0),
			 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t n = 0;
		long got = -1;

		if (!child_hook.ret) {
			child_hook.mem[2 * ps] = 5;
			got = uffdwp_collect(child_hook.ctx, count_run, &n);
		}
		_exit(child_hook.ret ? 2 : got == 1 ? 0 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(
		WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"child: status %#x (exit 2: the handler's track failed, 3: its collect; signal 14: the handler hung)",
		status);
	child_hook.ctx = uffdwp_ctx_free(child_hook.ctx);
	munmap(child_hook.mem, child_hook.len);
}
END_TEST

/*
 * ASan's allocator (GCC 12's libsanitizer, LLVM before 17) does not lock
 * itself across fork(): a child forked while another thread is inside
 * malloc() hangs at its own first malloc(), whatever the library does.
 * Under ASan the churning thread therefore lets the parent fork only
 * between its rounds; the plain build and the kernel matrix fork at any
 * moment, with the library's own locks held.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_ANYWHERE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_ANYWHERE 0
#endif
#endif
#ifndef FORK_ANYWHERE
#define FORK_ANYWHERE 1
#endif

struct churn {
	int backend;
	atomic_int stop;
	unsigned long rounds;
	/* !FORK_ANYWHERE: the churning thread holds @between except
	 * between rounds, where it waits while the parent is @forking. */
	pthread_mutex_t between;
	atomic_int forking;
	atomic_int running; /* past its thread's start-up */
};

static void churn_hold(struct churn *c)
{
	if (!FORK_ANYWHERE)
		pthread_mutex_lock(&c->between);
}

static void churn_release(struct churn *c)
{
	if (!FORK_ANYWHERE)
		pthread_mutex_unlock(&c->between);
}

/* The churning thread, between two rounds. */
static void churn_between(struct churn *c)
{
	churn_release(c);
	while (!FORK_ANYWHERE && atomic_load(&c->forking))
		sched_yield();
	churn_hold(c);
}

/* The parent, around a fork(). */
static void churn_pause(struct churn *c)
{
	atomic_store(&c->forking, 1);
	churn_hold(c);
}

static void churn_resume(struct churn *c)
{
	churn_release(c);
	atomic_store(&c->forking, 0);
}

/* Track, write, collect and untrack a range of its own, over and over:
 * some of the library's locks are held at any moment. */
static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = c->backend,
					.flags = test_ctx_flags(c->backend) };
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	churn_hold(c);
	atomic_store(&c->running, 1);
	p = map(8, PROT_READ | PROT_WRITE);
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
	while (!atomic_load(&c->stop)) {
		ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
		p[(c->rounds % 8) * ps] = 1;
		ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
		ck_assert_int_eq(uffdwp_untrack(ctx, p, 8 * ps), 0);
		c->rounds++;
		churn_between(c);
	}
	uffdwp_ctx_free(ctx);
	munmap(p, 8 * ps);
	churn_release(c);
	return NULL;
}

/*
 * Forks while another thread tracks, collects and untracks: every child
 * tracks the parent's range again, writes and collects. A lock the
 * parent's thread held at fork would hang the child (then its alarm
 * kills it); a claim it kept would give -EEXIST.
 */
START_TEST(fork_while_tracking_elsewhere)
{
	struct churn c = { .backend = backends[_i],
			   .between = PTHREAD_MUTEX_INITIALIZER };
	struct uffdwp_ctx *ctx;
	int i, status, forks = (int)test_scaled(40, 8);
	pthread_t tid;
	pid_t pid;
	char *p;

	NEED_BACKEND(backends[_i]);
	ctx = new_ctx(c.backend);
	p = map(16, PROT_READ | PROT_WRITE);
	memset(p, 1, 16 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 16 * ps, 0), 0);
	ck_assert_int_eq(pthread_create(&tid, NULL, churn_main, &c), 0);
	/* A thread still starting may be inside the allocator. */
	while (!atomic_load(&c.running))
		sched_yield();
	for (i = 0; i < forks; i++) {
		churn_pause(&c);
		pid = fork();
		/* The child calls nothing of check's: the churning thread may
		 * have held check's own mutex (any ck_assert) at the fork. */
		if (pid == 0) {
			struct uffdwp_ctx *mine = NULL;
			size_t n = 0;
			long got;

			alarm(30);
			uffdwp_ctx_free(ctx);
			if (uffdwp_ctx_new(
				    &(struct uffdwp_ctx_opts){
					    .sz = sizeof(struct uffdwp_ctx_opts),
					    .backend = c.backend,
					    .flags = test_ctx_flags(c.backend) },
				    &mine))
				_exit(2);
			if (uffdwp_track(mine, p, 16 * ps, 0))
				_exit(3);
			p[3 * ps] = 2;
			p[9 * ps] = 2;
			got = uffdwp_collect(mine, count_run, &n);
			uffdwp_ctx_free(mine);
			_exit(got == 2 && n == 2 ? 0 : 4);
		}
		churn_resume(&c);
		ck_assert_int_ge(pid, 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(
			WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"fork %d: child status %#x (exit 2: ctx_new, 3: track, 4: collect; signal 14: hung)",
			i, status);
	}
	atomic_store(&c.stop, 1);
	pthread_join(tid, NULL);
	printf("%s: %d forks while the other thread ran %lu rounds\n",
	       uffdwp_backend_name(c.backend), forks, c.rounds);
	/* The parent's own tracking went on. */
	p[5 * ps] = 3;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &(size_t){ 0 }), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 16 * ps);
}
END_TEST

void track_fork_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "fork",
		  180,
		  { fork_child_tracks_again, fork_while_tracking_elsewhere,
		    fork_handler_calls_library_in_child } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
