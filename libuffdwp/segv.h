/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's signal discipline.
 *
 * The handler: the library installs one handler for SIGSEGV and one for
 * SIGBUS, each once, here. Each asks the owners of faults of its signal
 * (enum segv_owner: for SIGSEGV the gates, then the mprotect backend; for
 * SIGBUS the synchronous userfaultfd's self-service faults) in a fixed
 * order, and passes a fault none of them owns, once, to the handler that
 * was there before, so the program's handler (or the default action)
 * still sees the program's faults.
 *
 * Windows: a thread must never be parked by a program's signal handler (a
 * garbage collector's stop-the-world signal, a profiler's) while other
 * threads wait on it, or a collector that stopped the world and then
 * collects waits forever. Such windows are a handler in flight (a collect
 * waits for it to drain), a collect that pauses fault resolution, a closed
 * gate (writers wait for it to open), and a program thread's urcu-bp
 * read-side section (every track and untrack waits for those to end). Each
 * runs with every asynchronous signal blocked: the handlers through their
 * sa_mask, the others through segv_window_enter()/segv_window_leave().
 * Synchronous signals (SIGSEGV, SIGBUS, ...) stay unblocked: blocked, they
 * would kill.
 *
 * Bounds: a program's thread keeps a stop signal waiting only while it is
 * in a window of its own, and no such window grows with the memory
 * tracked. A window over more than a few MiB (a re-protect, a snapshot's
 * instant or move: 0.2-0.6 s per GiB under busy writers) runs on the
 * offload thread (offload.h) while the calling thread waits with its own
 * mask, and so does starting a snapshot's copiers; a handler that waits
 * for another thread's window waits with the interrupted mask
 * (segv_wait_unblocked()); what is left is a window over a few MiB, one
 * fault's own work, a read-side section, starting a context's handler
 * threads, and liburcu's grace period in track and untrack (it blocks
 * every signal while the library's read-side sections, which never wait,
 * drain). README.md ("Using it from a garbage collector") gives the
 * measured figures.
 */
#ifndef UFFDWP_SEGV_H
#define UFFDWP_SEGV_H

#include <signal.h>
#include <stdbool.h>

/* The owners of the library's faults, asked in this order. */
enum segv_owner {
	SEGV_OWNER_GATE, /* a range held read-only while it moves */
	SEGV_OWNER_MPROTECT, /* the mprotect backend's ranges */
	SEGV_OWNER_SELF, /* SIGBUS: self-service write faults (syncwp.h) */
	SEGV_OWNERS
};

/*
 * An owner's look at a fault (async-signal-safe; errno is restored
 * after it): true if the fault was its own and is dealt with (the access
 * runs again on return), false to let the next owner, and in the end the
 * program's handler, have it.
 */
typedef bool (*segv_owner_fn)(int sig, siginfo_t *info, void *uctx);

/* Install the library's handler of @owner's signal (once per process) and
 * make @fn @owner's look. 0 or -errno. */
int segv_own(enum segv_owner owner, segv_owner_fn fn);

/* Every asynchronous signal: the mask of the library's own threads. */
void segv_thread_mask(sigset_t *set);

/*
 * From inside a handler that is about to wait for a window another thread
 * holds (a paused collect, a closed gate) and then return: the rest of the
 * handler runs under the mask of the interrupted code, synchronous signals
 * deliverable, so a program's stop signal lands while it waits. The
 * handler must do nothing after the wait but return (the kernel restores
 * the interrupted mask; the faulting access runs again and, if it still
 * faults, comes back with the handler's mask). The wait must hold nothing
 * anyone waits on, and read no state that may be freed meanwhile: the
 * program's handler may park the thread there for as long as it likes.
 * Async-signal-safe.
 */
void segv_wait_unblocked(const void *uctx);

/* Block every asynchronous signal in this thread; @old gets the mask. */
void segv_window_enter(sigset_t *old);
/* Restore the mask segv_window_enter() saved. */
void segv_window_leave(const sigset_t *old);

/*
 * Around fork(), in the library's own fork handlers: urcu-bp's blocks
 * every signal in the forking thread until the fork returns (milliseconds
 * with a large address space). That thread runs nothing of the program's
 * meanwhile, so it is no SIGSEGV blocker; segv_blocked_somewhere() skips
 * it from segv_fork_begin() to segv_fork_end(). The library's prepare
 * handler serialises forks, so one thread at a time.
 */
void segv_fork_begin(void);
void segv_fork_end(void);

/*
 * 1 if a thread of this process blocks @sig (SIGSEGV or SIGBUS), 0 if none
 * does, or -errno when /proc cannot tell. Such a thread cannot take a
 * library fault signal: the kernel forces a blocked synchronous signal,
 * and the process dies. A
 * thread may block it after the look: callers look right before relying
 * on the signal. Blocking for a moment (thread creation) does not count.
 * Reads /proc/self/task (allocates; not signal-safe); a few milliseconds
 * when some thread blocks it.
 */
int segv_blocked_somewhere(int sig);

#endif /* UFFDWP_SEGV_H */
