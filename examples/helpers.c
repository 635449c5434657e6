/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the example programs share: see helpers.h. */
#include <errno.h>
#include <time.h>

#include "helpers.h"

int workload_park(struct workload *w)
{
	int quit;

	pthread_mutex_lock(&w->lock);
	w->parked++;
	pthread_cond_broadcast(&w->cond);
	while (atomic_load(&w->hold) && !w->quit)
		pthread_cond_wait(&w->cond, &w->lock);
	w->parked--;
	quit = w->quit;
	pthread_mutex_unlock(&w->lock);
	return quit;
}

void workload_exit(struct workload *w)
{
	pthread_mutex_lock(&w->lock);
	w->exited++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* With w->lock held: until *@count reaches @n, or stuck_s has passed. */
static void wait_writers(struct workload *w, const unsigned int *count,
			 unsigned int n, const char *what)
{
	struct timespec deadline;
	int err = 0;

	if (!w->stuck_s) {
		while (*count < n)
			pthread_cond_wait(&w->cond, &w->lock);
		return;
	}
	/* The condition variable's clock: CLOCK_REALTIME. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += w->stuck_s;
	while (*count < n && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
	if (*count < n && w->stuck)
		w->stuck(w, n - *count, what);
}

void workload_pause(struct workload *w)
{
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->hold, 1);
	wait_writers(w, &w->parked, w->nwriters, "pause");
	pthread_mutex_unlock(&w->lock);
}

void workload_resume(struct workload *w)
{
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->hold, 0);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void workload_stop(struct workload *w, struct writer *wr, unsigned int started)
{
	unsigned int i;

	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	atomic_store(&w->hold, 1);
	pthread_cond_broadcast(&w->cond);
	wait_writers(w, &w->exited, started, "stop");
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < started; i++)
		pthread_join(wr[i].thread, NULL);
}

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}
