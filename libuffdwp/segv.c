/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGSEGV handler installation and chaining: see segv.h. */
#include <string.h>

#include "internal.h"
#include "segv.h"

int segv_install(void (*fn)(int, siginfo_t *, void *),
		 struct sigaction *previous)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	/* NODEFER: a fault while one is handled (a chained handler's own)
	 * is delivered; a blocked SIGSEGV would be a forced kill. */
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, previous))
		return neg_errno();
	return 0;
}

void segv_chain(const struct sigaction *previous, int sig, siginfo_t *info,
		void *uctx)
{
	if (previous->sa_flags & SA_SIGINFO) {
		previous->sa_sigaction(sig, info, uctx);
	} else if (previous->sa_handler == SIG_IGN ||
		   previous->sa_handler == SIG_DFL) {
		/* Ignoring SIGSEGV would spin on the fault. Returning with
		 * the default restored re-runs the access, which now kills
		 * the process as if we had never been installed. */
		signal(sig, SIG_DFL);
	} else {
		previous->sa_handler(sig);
	}
}
