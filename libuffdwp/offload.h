/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A library thread that runs work which opens a signal window (segv.h), so
 * that the program thread which asked for it never has its signals blocked
 * for longer than a hand-off.
 *
 * A window (fault resolution paused, a gate closed) must not be held by a
 * thread that a program's signal handler may park: writers would wait on
 * it for as long as the program keeps it parked. So a window runs with the
 * asynchronous signals blocked, and a stop-the-world signal sent to the
 * thread in it waits until the window ends, which on a large range is the
 * whole re-protect (about 0.2-0.6 s per GiB written since the last
 * collect). Run on this thread instead, the window is still never parked,
 * and the program thread waits for it with its own mask: a stop signal
 * parks it at once, and the window ends without it.
 */
#ifndef UFFDWP_OFFLOAD_H
#define UFFDWP_OFFLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct offload {
	pthread_t tid;
	bool started;
	int (*fn)(void *arg);
	void *arg;
	int ret;
	/* Futex words: req is OFFLOAD_CALL or OFFLOAD_STOP while the thread
	 * has work; done turns 1 when the call returned. */
	uint32_t req;
	uint32_t done;
};

/*
 * Run @fn(@arg) on the offload thread (started on first use) and return
 * its result; the caller waits with its own signal mask, and cancellation
 * points are not crossed. If the thread cannot be started, @fn runs here.
 * Callers serialise (the context's lock).
 */
int offload_call(struct offload *o, int (*fn)(void *arg), void *arg);

/* Stop and join the thread, if it was started. */
void offload_stop(struct offload *o);

#endif /* UFFDWP_OFFLOAD_H */
