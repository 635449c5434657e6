/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: context arguments and the environment, AUTO's policy and
 * kernel writes, and mprotect's SIGSEGV chaining to a program's handler
 * installed before or after.
 */
#include "track-common.h"

/* --- contexts ----------------------------------------------------------- */

START_TEST(ctx_args_and_env)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts) };
	struct uffdwp_ctx *ctx = NULL;
	struct {
		struct uffdwp_ctx_opts o;
		uint64_t future;
	} big = { { .sz = sizeof(big) }, 1 };
	size_t i;

	ck_assert_int_eq(uffdwp_ctx_new(NULL, NULL), -EINVAL);
	opts.flags = 1u << 31; /* no such flag */
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EINVAL);
	ck_assert_ptr_null(ctx);
	/* Self-service is a mode of uffd_sync: with another backend it is
	 * bad input; with AUTO it selects uffd_sync, where it works. */
	opts.flags = UFFDWP_CTX_SELF_SERVICE;
	for (i = 0; i < 4; i++) {
		opts.backend = backends[i];
		if (backends[i] != UFFDWP_BACKEND_UFFD_SYNC)
			ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EINVAL);
	}
	ck_assert_ptr_null(ctx);
	opts.backend = UFFDWP_BACKEND_AUTO;
	if (caps.uffd_sigbus) {
		ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), 0);
		ck_assert_int_eq(uffdwp_ctx_backend(ctx),
				 UFFDWP_BACKEND_UFFD_SYNC);
		ck_assert_ptr_nonnull(
			strstr(uffdwp_ctx_backend_reason(ctx), "self-service"));
		ck_assert_ptr_nonnull(
			strstr(uffdwp_ctx_backend_reason(ctx), "EFAULT"));
		ctx = uffdwp_ctx_free(ctx);
	} else {
		ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EOPNOTSUPP);
	}
	opts.backend = UFFDWP_BACKEND_AUTO;
	ck_assert_int_eq(uffdwp_ctx_new(&big.o, &ctx), -E2BIG);
	opts.flags = 0;
	opts.backend = 99;
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &ctx), -EINVAL);
	ck_assert_ptr_null(uffdwp_ctx_free(NULL));
	ck_assert_int_eq(uffdwp_ctx_backend(NULL), -EINVAL);
	/* AUTO takes the probe's choice, and says why. */
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(ctx), caps.auto_backend);
	ck_assert_ptr_nonnull(strstr(uffdwp_ctx_backend_reason(ctx), "auto"));
	ctx = uffdwp_ctx_free(ctx);
	/* UFFDWP_BACKEND forces one; a forced unusable one is an error. */
	for (i = 0; i < 4; i++) {
		setenv("UFFDWP_BACKEND", uffdwp_backend_name(backends[i]), 1);
		if (caps.backend[backends[i]].usable) {
			ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), 0);
			ck_assert_int_eq(uffdwp_ctx_backend(ctx), backends[i]);
			ck_assert_ptr_nonnull(strstr(
				uffdwp_ctx_backend_reason(ctx), "forced"));
			ctx = uffdwp_ctx_free(ctx);
		} else {
			ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx),
					 -EOPNOTSUPP);
		}
	}
	setenv("UFFDWP_BACKEND", "soft-dirty", 1);
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx),
			 caps.soft_dirty ? 0 : -EOPNOTSUPP);
	ctx = uffdwp_ctx_free(ctx);
	setenv("UFFDWP_BACKEND", "bogus", 1);
	ck_assert_int_eq(uffdwp_ctx_new(NULL, &ctx), -EINVAL);
	unsetenv("UFFDWP_BACKEND");
}
END_TEST

/* --- AUTO's policy, and kernel writes ---------------------------------- */

/* A kernel write into @page: read(2) from a pipe. 0, or the read's -errno. */
static int kernel_write(char *page, char byte)
{
	int fd[2], err = 0;

	ck_assert_int_eq(pipe(fd), 0);
	ck_assert_int_eq(write(fd[1], &byte, 1), 1);
	if (read(fd[0], page, 1) != 1)
		err = -errno;
	close(fd[0]);
	close(fd[1]);
	return err;
}

/* What uffdwp.h promises for UFFDWP_CTX_KERNEL_WRITES. */
static bool honours_kernel_writes(int b)
{
	return b == UFFDWP_BACKEND_UFFD_ASYNC ||
	       b == UFFDWP_BACKEND_SOFT_DIRTY ||
	       (b == UFFDWP_BACKEND_UFFD_SYNC &&
		caps.uffd_mode != UFFDWP_UFFD_USER_MODE_ONLY);
}

/* Track 4 pages, collect, then make the kernel write the second one:
 * returns the write's result; a working one must be reported. */
static int tracked_kernel_write(struct uffdwp_ctx *ctx)
{
	size_t n = 0;
	char *p;
	int ret;

	p = map(4, PROT_READ | PROT_WRITE);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ret = kernel_write(p + ps, 5);
	n = 0;
	if (!ret) {
		ck_assert_int_eq(p[ps], 5);
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	}
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 4 * ps), 0);
	munmap(p, 4 * ps);
	return ret;
}

static void *block_sigbus_main(void *arg)
{
	atomic_int *state = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	atomic_store(state, 1);
	while (atomic_load(state) == 1)
		usleep(1000);
	return NULL;
}

/*
 * AUTO's policy (uffdwp.h, struct uffdwp_ctx_opts): self-service on
 * uffd_sync unless a thread blocks SIGBUS; UFFDWP_CTX_KERNEL_WRITES gets
 * a backend under which a kernel write works, proven with read(2), or
 * -EOPNOTSUPP; the reason says which.
 */
START_TEST(auto_policy_and_kernel_writes)
{
	static const int order[] = { UFFDWP_BACKEND_UFFD_ASYNC,
				     UFFDWP_BACKEND_UFFD_SYNC,
				     UFFDWP_BACKEND_SOFT_DIRTY };
	struct uffdwp_ctx_opts o = { .sz = sizeof(o) };
	struct uffdwp_ctx *ctx = NULL;
	atomic_int state = 0;
	int want = -EOPNOTSUPP;
	pthread_t tid;
	size_t i;

	unsetenv("UFFDWP_BACKEND");
	o.flags = UFFDWP_CTX_SELF_SERVICE | UFFDWP_CTX_KERNEL_WRITES;
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), -EINVAL);
	/* An explicit backend: taken if it honours kernel writes. */
	o.flags = UFFDWP_CTX_KERNEL_WRITES;
	for (i = 0; i < 4; i++) {
		o.backend = backends[i];
		if (caps.backend[backends[i]].usable &&
		    honours_kernel_writes(backends[i])) {
			ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
			ctx = uffdwp_ctx_free(ctx);
		} else {
			ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), -EOPNOTSUPP);
		}
	}
	/* AUTO: the first that honours them, and a kernel write works. */
	for (i = 0; i < ARRAY_LEN(order) && want < 0; i++)
		if (caps.backend[order[i]].usable &&
		    honours_kernel_writes(order[i]))
			want = order[i];
	o.backend = UFFDWP_BACKEND_AUTO;
	if (want < 0) {
		ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), -EOPNOTSUPP);
	} else {
		ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
		ck_assert_int_eq(uffdwp_ctx_backend(ctx), want);
		ck_assert_ptr_nonnull(strstr(uffdwp_ctx_backend_reason(ctx),
					     "UFFDWP_CTX_KERNEL_WRITES"));
		ck_assert_int_eq(tracked_kernel_write(ctx), 0);
		ctx = uffdwp_ctx_free(ctx);
	}
	printf("auto with kernel writes: %s\n",
	       want < 0 ? "-EOPNOTSUPP" : uffdwp_backend_name(want));

	/* AUTO with no flag. */
	o.flags = 0;
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	printf("auto: %s\n", uffdwp_ctx_backend_reason(ctx));
	if (caps.auto_backend != UFFDWP_BACKEND_UFFD_SYNC ||
	    !caps.uffd_sigbus) {
		ck_assert_ptr_null(strstr(uffdwp_ctx_backend_reason(ctx),
					  "self-service;"));
		ctx = uffdwp_ctx_free(ctx);
		return;
	}
	/* uffd_sync is AUTO's: self-service, whose kernel write fails with
	 * EFAULT (documented), and the reason names the way out. */
	ck_assert_ptr_nonnull(
		strstr(uffdwp_ctx_backend_reason(ctx), "self-service faults"));
	ck_assert_ptr_nonnull(strstr(uffdwp_ctx_backend_reason(ctx),
				     "UFFDWP_CTX_KERNEL_WRITES"));
	ck_assert_int_eq(tracked_kernel_write(ctx), -EFAULT);
	ctx = uffdwp_ctx_free(ctx);
	/* A thread blocks SIGBUS: the handler-thread mode, which says why. */
	ck_assert_int_eq(pthread_create(&tid, NULL, block_sigbus_main, &state),
			 0);
	while (atomic_load(&state) != 1)
		usleep(1000);
	ck_assert_int_eq(uffdwp_ctx_new(&o, &ctx), 0);
	ck_assert_ptr_nonnull(
		strstr(uffdwp_ctx_backend_reason(ctx), "blocks SIGBUS"));
	ck_assert_ptr_null(
		strstr(uffdwp_ctx_backend_reason(ctx), "self-service faults"));
	ctx = uffdwp_ctx_free(ctx);
	atomic_store(&state, 2);
	pthread_join(tid, NULL);
}
END_TEST

/* --- mprotect: SIGSEGV chaining ---------------------------------------- */

static volatile sig_atomic_t app_faults, app_usr1_blocked, app_usr2_blocked;
static char *app_page;
static struct sigaction lib_action;

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	sigset_t now;

	if ((char *)si->si_addr >= app_page &&
	    (char *)si->si_addr < app_page + ps) {
		/* Run under the mask it asked for, however it was reached:
		 * its sa_mask (SIGUSR1) blocked, nothing else added. */
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		app_usr1_blocked = sigismember(&now, SIGUSR1);
		app_usr2_blocked = sigismember(&now, SIGUSR2);
		app_faults++;
		mprotect(app_page, ps, PROT_READ | PROT_WRITE);
		return;
	}
	/* Not ours: pass it on, as a well-behaved handler does. */
	if (lib_action.sa_flags & SA_SIGINFO)
		lib_action.sa_sigaction(sig, si, uc);
}

static void chain_case(bool app_first)
{
	struct sigaction sa = { .sa_sigaction = app_handler,
				.sa_flags = SA_SIGINFO },
			 old;
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	app_faults = 0;
	app_page = map(1, PROT_READ);
	p = map(4, PROT_READ | PROT_WRITE);
	if (app_first)
		sigaction(SIGSEGV, &sa, &old);
	ctx = new_ctx(UFFDWP_BACKEND_MPROTECT);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	if (!app_first) {
		sigaction(SIGSEGV, NULL, &lib_action);
		sigaction(SIGSEGV, &sa, &old);
	}
	/* volatile: the stores must happen before app_faults is read. */
	*(volatile char *)(p + ps) = 1; /* the library's fault */
	*(volatile char *)app_page = 1; /* the program's own fault */
	ck_assert_int_eq(app_faults, 1);
	ck_assert_int_eq(app_usr1_blocked, 1);
	ck_assert_int_eq(app_usr2_blocked, 0);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	if (!app_first)
		sigaction(SIGSEGV, &old, NULL);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(app_page, ps);
}

START_TEST(mprotect_chains_handler_installed_before)
{
	NEED_BACKEND(UFFDWP_BACKEND_MPROTECT);
	chain_case(true);
}
END_TEST

START_TEST(mprotect_chains_handler_installed_after)
{
	NEED_BACKEND(UFFDWP_BACKEND_MPROTECT);
	chain_case(false);
}
END_TEST

void track_ctx_cases(Suite *s)
{
	TCase *ctx = tcase_create("ctx");
	TCase *chain = tcase_create("sigsegv-chain");

	tcase_set_timeout(ctx, 60);
	tcase_add_test(ctx, ctx_args_and_env);
	tcase_add_test(ctx, auto_policy_and_kernel_writes);
	suite_add_tcase(s, ctx);

	tcase_set_tags(chain, "mprotect");
	tcase_add_test(chain, mprotect_chains_handler_installed_before);
	tcase_add_test(chain, mprotect_chains_handler_installed_after);
	suite_add_tcase(s, chain);
}
