/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An LD_PRELOAD module that measures how long threads keep a signal
 * blocked: each pthread_sigmask() or sigprocmask() call (the library's and
 * liburcu's go through the dynamic linker, so they land here) that blocks
 * it starts a window, the call that unblocks it ends the window. At exit
 * it prints the longest window, a histogram, and where the longest began.
 * A thread that blocks the signal for life (the library's own) never ends
 * a window and is not counted. Masks a signal handler's return restores
 * are not seen: a window found closed at the thread's next call ended at
 * an unknown time and is dropped (counted as "unseen").
 *
 *   LD_PRELOAD=build/bench/sigmask-watch.so build/bench/bench-stw
 *   SIGMASK_WATCH_SIG=10 ...   watch signal 10 instead of SIGPWR
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEPTH 16
#define BUCKETS 8 /* < 10 us, < 100 us, ... < 10 s, more */

typedef int (*mask_fn)(int, const sigset_t *, sigset_t *);

static __thread unsigned long long since;
static __thread void *since_bt[DEPTH];
static __thread int since_n;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long worst, hist[BUCKETS];
static void *worst_bt[DEPTH];
static int worst_n, watched;
static unsigned long long unseen;

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL +
	       (unsigned long long)ts.tv_nsec;
}

static int watched_sig(void)
{
	const char *e;

	if (!watched) {
		e = getenv("SIGMASK_WATCH_SIG");
		watched = e ? atoi(e) : SIGPWR;
	}
	return watched;
}

/* Before a mask change: a window some sigreturn closed is dropped. */
static void check(mask_fn real)
{
	sigset_t cur;

	if (!since || real(SIG_BLOCK, NULL, &cur))
		return;
	if (sigismember(&cur, watched_sig()) != 1) {
		since = 0;
		__atomic_fetch_add(&unseen, 1, __ATOMIC_RELAXED);
	}
}

/* After any mask change: open or close this thread's window. */
static void note(mask_fn real)
{
	unsigned long long d, limit = 10000;
	sigset_t cur;
	int blocked, b = 0;

	if (real(SIG_BLOCK, NULL, &cur))
		return;
	blocked = sigismember(&cur, watched_sig()) == 1;
	if (blocked && !since) {
		since = now_ns();
		since_n = backtrace(since_bt, DEPTH);
	} else if (!blocked && since) {
		d = now_ns() - since;
		since = 0;
		while (b < BUCKETS - 1 && d >= limit) {
			b++;
			limit *= 10;
		}
		pthread_mutex_lock(&lock);
		hist[b]++;
		if (d > worst) {
			worst = d;
			memcpy(worst_bt, since_bt, sizeof(worst_bt));
			worst_n = since_n;
		}
		pthread_mutex_unlock(&lock);
	}
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real;
	int ret;

	if (!real)
		real = (mask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
	check(real);
	ret = real(how, set, old);
	note(real);
	return ret;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real, pmask;
	int ret;

	if (!real) {
		real = (mask_fn)dlsym(RTLD_NEXT, "sigprocmask");
		pmask = (mask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
	}
	check(pmask);
	ret = real(how, set, old);
	note(pmask);
	return ret;
}

__attribute__((destructor)) static void report(void)
{
	static const char *const names[BUCKETS] = { "<10us", "<100us", "<1ms",
						    "<10ms", "<100ms", "<1s",
						    "<10s",  ">=10s" };
	int i;

	fprintf(stderr, "sigmask-watch: signal %d: longest window %.3f ms;",
		watched_sig(), (double)worst / 1e6);
	for (i = 0; i < BUCKETS; i++)
		fprintf(stderr, " %s %llu", names[i], hist[i]);
	fprintf(stderr, " unseen %llu", unseen);
	fprintf(stderr, "\nsigmask-watch: the longest began at:\n");
	backtrace_symbols_fd(worst_bt, worst_n, 2);
}
