/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's signal discipline.
 *
 * Handlers: the library's SIGSEGV handlers (the mprotect backend's, the
 * gates') are each installed once and pass every fault that is not their
 * own to the handler that was there before, so the program's handler (or
 * the default action) still sees the program's faults.
 *
 * Windows: a thread must never be parked by a program's signal handler (a
 * garbage collector's stop-the-world signal, a profiler's) while other
 * threads wait on it, or a collector that stopped the world and then
 * collects waits forever. Such windows are a handler in flight (a collect
 * waits for it to drain), a collect that pauses fault resolution, a closed
 * gate (writers wait for it to open), and a program thread's urcu-bp
 * read-side section (every track and untrack waits for those to end). Each runs with every
 * asynchronous signal blocked: the handlers through their sa_mask, the
 * others through segv_window_enter()/segv_window_leave(). Every such
 * window is short and waits on nothing a parked thread can hold, so a
 * held signal is delivered a bounded time later. Synchronous signals
 * (SIGSEGV, SIGBUS, ...) stay unblocked: blocked, they would kill.
 */
#ifndef UFFDWP_SEGV_H
#define UFFDWP_SEGV_H

#include <signal.h>

/* Install @fn for SIGSEGV, keeping the handler before it in @previous. */
int segv_install(void (*fn)(int, siginfo_t *, void *),
		 struct sigaction *previous);

/*
 * From inside a handler: hand the fault to @previous, run under the mask
 * it asked for (the interrupted mask and its sa_mask) rather than ours.
 * Async-signal-safe.
 */
void segv_chain(const struct sigaction *previous, int sig, siginfo_t *info,
		void *uctx);

/* Every asynchronous signal: the mask of the library's own threads. */
void segv_thread_mask(sigset_t *set);

/* Block every asynchronous signal in this thread; @old gets the mask. */
void segv_window_enter(sigset_t *old);
/* Restore the mask segv_window_enter() saved. */
void segv_window_leave(const sigset_t *old);

/*
 * 1 if a thread of this process blocks SIGSEGV, 0 if none does, or -errno
 * when /proc cannot tell. Such a thread cannot take a library SIGSEGV: the
 * kernel forces a blocked synchronous signal, and the process dies. A
 * thread may block it after the look: callers look right before relying
 * on the signal. Blocking for a moment (thread creation) does not count.
 * Reads /proc/self/task (allocates; not signal-safe); a few milliseconds
 * when some thread blocks it.
 */
int segv_blocked_somewhere(void);

#endif /* UFFDWP_SEGV_H */
