/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the example programs share (helpers.c, as liburing's examples do):
 * a workload of writer threads that each own a share of a region's pages,
 * and the pause that holds every writer between two writes, so that a
 * program knows what the memory is at an instant. The writes themselves
 * are each example's own.
 */
#ifndef UFFDWP_EXAMPLES_HELPERS_H
#define UFFDWP_EXAMPLES_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct workload {
	char *base;
	size_t page, npages;
	unsigned int nwriters;
	/* Checked before every write; the rest is under lock. */
	atomic_int hold;
	int quit;
	unsigned int parked, exited;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_ulong writes;
	/* A pause or stop that waits longer than stuck_s seconds (0: for
	 * ever) calls stuck() with how many writers did not arrive: a
	 * writer held in a fault that is never resolved would hang it. */
	int stuck_s;
	void (*stuck)(struct workload *w, unsigned int missing,
		      const char *what);
};

struct writer {
	struct workload *w;
	unsigned int id;
	pthread_t thread;
};

/* A writer's side, when it sees hold set: 1 if it must quit. */
int workload_park(struct workload *w);
/* A writer's last act: counted, so a stop knows it is gone. */
void workload_exit(struct workload *w);

/* On return no writer is between the start and the end of a write. */
void workload_pause(struct workload *w);
void workload_resume(struct workload *w);
/* Make the @started writers of @wr quit, and join them. */
void workload_stop(struct workload *w, struct writer *wr, unsigned int started);

/* CLOCK_MONOTONIC, in seconds. */
double now(void);

#endif /* UFFDWP_EXAMPLES_HELPERS_H */
