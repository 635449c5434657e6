/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library's signal discipline: see segv.h. */
#include <pthread.h>
#include <string.h>
#include <ucontext.h>

#include "internal.h"
#include "segv.h"

/* Raised by the faulting instruction itself: never block these. */
static const int sync_signals[] = { SIGSEGV, SIGBUS,  SIGILL,
				    SIGFPE,  SIGTRAP, SIGSYS };

static void async_set(sigset_t *set)
{
	size_t i;

	sigfillset(set);
	for (i = 0; i < ARRAY_SIZE(sync_signals); i++)
		sigdelset(set, sync_signals[i]);
}

int segv_install(void (*fn)(int, siginfo_t *, void *),
		 struct sigaction *previous)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	/* NODEFER: a fault while one is handled (a chained handler's own)
	 * is delivered; a blocked SIGSEGV would be a forced kill. */
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
	/* No asynchronous signal while in flight (see segv.h). */
	async_set(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, previous))
		return neg_errno();
	return 0;
}

void segv_chain(const struct sigaction *previous, int sig, siginfo_t *info,
		void *uctx)
{
	const ucontext_t *uc = uctx;
	sigset_t mask, ours;
	size_t i;

	if (!(previous->sa_flags & SA_SIGINFO) &&
	    (previous->sa_handler == SIG_IGN ||
	     previous->sa_handler == SIG_DFL)) {
		/* Ignoring SIGSEGV would spin on the fault. Returning with
		 * the default restored re-runs the access, which now kills
		 * the process as if we had never been installed. */
		signal(sig, SIG_DFL);
		return;
	}
	/* The program's handler runs as the kernel would have run it: the
	 * interrupted mask plus its own sa_mask. Synchronous signals stay
	 * deliverable as under ours. (The kernel restores the interrupted
	 * mask when the outer handler returns.) */
	mask = uc->uc_sigmask;
	for (i = 1; i < NSIG; i++)
		if (sigismember(&previous->sa_mask, (int)i) == 1)
			sigaddset(&mask, (int)i);
	for (i = 0; i < ARRAY_SIZE(sync_signals); i++)
		if (sigismember(&uc->uc_sigmask, sync_signals[i]) != 1)
			sigdelset(&mask, sync_signals[i]);
	pthread_sigmask(SIG_SETMASK, &mask, &ours);
	if (previous->sa_flags & SA_SIGINFO)
		previous->sa_sigaction(sig, info, uctx);
	else
		previous->sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &ours, NULL);
}

void segv_window_enter(sigset_t *old)
{
	sigset_t set;

	async_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

void segv_window_leave(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}
