/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context, as the library sees it.
 */
#ifndef UFFDWP_CTX_H
#define UFFDWP_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "internal.h"
#include "backend.h"
#include "offload.h"
#include "snapshot.h"

struct uffdwp_ctx {
	pid_t pid; /* the process that made it: anything else is a child */
	int backend;
	const struct backend_ops *ops;
	char reason[1024];

	/* Serialises track, untrack and collect. */
	pthread_mutex_t lock;
	/* What the backend sees: the ranges, counters, batch, its state. */
	struct backend_ctx b;

	/* Running snapshots (under lock; the engine links them), and their
	 * end; snaps_cv is signalled when one leaves the list. */
	struct snapshot_owner snap_owner;
	pthread_cond_t snaps_cv;

	/* Runs the backend's large signal windows (offload.h; ctx_run()). */
	struct offload offload;
};

static inline bool ctx_forked(const struct uffdwp_ctx *ctx)
{
	return ctx->pid != getpid();
}

#endif /* UFFDWP_CTX_H */
