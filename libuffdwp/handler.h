/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synchronous fault loop of uffd_sync: library-owned threads read fault
 * and event messages in batches, deduplicate pages, record them, and resolve
 * them through a wp batch (unprotect without wake, one wake per run).
 */
#ifndef UFFDWP_HANDLER_H
#define UFFDWP_HANDLER_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>

#include "ctx.h"

struct sync_state {
	int uffd;
	int pagemap; /* for the zap watch */
	int stopfd; /* eventfd: handlers exit when it is readable */
	uint64_t features;
	bool unpopulated; /* UFFD_FEATURE_WP_UNPOPULATED */
	/* Handlers hold it shared while they record and resolve; a collect
	 * holds it exclusive, which pauses resolution (invariant 3.3). */
	pthread_rwlock_t resolve;
	/* Handlers between reading messages and marking their events: a
	 * program's MADV_DONTNEED returns once its event was read, and a
	 * collect after it must see the mark (handler_quiesce_events()). */
	unsigned long reading;
	unsigned int nthreads;
	pthread_t tid[64];
	void *handlers[64];
	/* One eventfd per handler: a collect that paused resolution kicks
	 * them when it is done, so a faulting writer waits for the collect
	 * and not for a poll timeout. */
	int kickfd[64];
	/* The pausing thread's signal mask, kept while it holds resolve
	 * exclusively (segv.h: a paused collect is a signal window). */
	sigset_t pause_mask;
	/* Posted by each handler as it enters its loop (handler_start()). */
	sem_t started;
};

/* Start @n handler threads with every signal blocked; returns once each
 * has entered its loop. */
int handler_start(struct uffdwp_ctx *ctx, struct sync_state *s, unsigned int n);
void handler_stop(struct sync_state *s);

/* Wait until every event read so far has been marked. */
void handler_quiesce_events(struct sync_state *s);

/* Resolution was paused and is resumed: handlers retry at once. */
void handler_kick(struct sync_state *s);

/*
 * Pause fault resolution (resolve held exclusively) with asynchronous
 * signals blocked, so no program's signal handler parks this thread while
 * faulting writers wait on it; resume releases, kicks and restores.
 */
void handler_pause(struct sync_state *s);
void handler_resume(struct sync_state *s);

#endif /* UFFDWP_HANDLER_H */
