/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's SIGSEGV handlers (the mprotect backend's, the gates'):
 * each is installed once and passes every fault that is not its own to
 * the handler that was there before it, so the program's handler (or the
 * default action) still sees the program's faults.
 */
#ifndef UFFDWP_SEGV_H
#define UFFDWP_SEGV_H

#include <signal.h>

/* Install @fn for SIGSEGV, keeping the handler before it in @previous. */
int segv_install(void (*fn)(int, siginfo_t *, void *),
		 struct sigaction *previous);

/* From inside a handler: hand the fault to @previous. Async-signal-safe. */
void segv_chain(const struct sigaction *previous, int sig, siginfo_t *info,
		void *uctx);

#endif /* UFFDWP_SEGV_H */
