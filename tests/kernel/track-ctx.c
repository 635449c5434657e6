/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: context arguments and the environment, and mprotect's
 * SIGSEGV chaining to a program's handler installed before or after.
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
	suite_add_tcase(s, ctx);

	tcase_set_tags(chain, "mprotect");
	tcase_add_test(chain, mprotect_chains_handler_installed_before);
	tcase_add_test(chain, mprotect_chains_handler_installed_after);
	suite_add_tcase(s, chain);
}
