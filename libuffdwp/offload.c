/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The offload thread: see offload.h. */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "offload.h"
#include "segv.h"
#include "shadow-alloc.h"

enum { OFFLOAD_IDLE, OFFLOAD_CALL, OFFLOAD_STOP };

/* A plain system call: no cancellation point, unlike sem_wait() or
 * pthread_cond_wait(); a cancelled caller would leave the thread running
 * on its stack's arguments. A signal handler's return just loops. */
static void futex_wait(uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *offload_main(void *arg)
{
	struct offload *o = arg;
	uint32_t req;

	own_thread_started();
	for (;;) {
		while ((req = __atomic_load_n(&o->req, __ATOMIC_ACQUIRE)) ==
		       OFFLOAD_IDLE)
			futex_wait(&o->req, OFFLOAD_IDLE);
		if (req == OFFLOAD_STOP)
			break;
		o->ret = o->fn(o->arg);
		__atomic_store_n(&o->req, OFFLOAD_IDLE, __ATOMIC_RELAXED);
		__atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
		futex_wake(&o->done);
	}
	return NULL;
}

static int offload_start(struct offload *o)
{
	sigset_t all, old;
	int ret;

	/* Every asynchronous signal blocked, the synchronous ones not: a
	 * library thread never counts as one that blocks SIGSEGV (segv.h),
	 * and no program handler ever parks it inside a window. */
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = own_thread_create(&o->tid, offload_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret)
		o->started = true;
	return ret;
}

int offload_call(struct offload *o, int (*fn)(void *arg), void *arg)
{
	if (!o->started && offload_start(o))
		return fn(arg); /* no thread: the window is ours, as before */
	o->fn = fn;
	o->arg = arg;
	__atomic_store_n(&o->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&o->req, OFFLOAD_CALL, __ATOMIC_RELEASE);
	futex_wake(&o->req);
	while (!__atomic_load_n(&o->done, __ATOMIC_ACQUIRE))
		futex_wait(&o->done, 0);
	return o->ret;
}

void offload_stop(struct offload *o)
{
	if (!o->started)
		return;
	__atomic_store_n(&o->req, OFFLOAD_STOP, __ATOMIC_RELEASE);
	futex_wake(&o->req);
	own_thread_join(o->tid);
	o->started = false;
	o->req = OFFLOAD_IDLE;
}
