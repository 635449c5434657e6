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
#include "region.h"
#include "wpbatch.h"

struct backend_ops;

struct ctx_counters {
	uint64_t faults;
	uint64_t collects;
	uint64_t collect_ns;
	uint64_t pages_reported;
	uint64_t pages_rearmed;
	uint64_t events;
	uint64_t retries;
	uint64_t scan_calls; /* async: PAGEMAP_SCAN with WP_MATCHING */
	uint64_t clear_calls; /* soft_dirty: clear_refs writes */
};

struct uffdwp_ctx {
	pid_t pid; /* the process that made it: anything else is a child */
	int backend;
	const struct backend_ops *ops;
	char reason[1024];
	unsigned int handler_threads;

	/* Serialises track, untrack and collect. */
	pthread_mutex_t lock;
	/* Published with rcu_assign_pointer(); read under rcu_read_lock(). */
	struct region_set *regions;

	struct ctx_counters cnt;
	/* The batch collects re-protect through (sync, mprotect). */
	struct wpbatch batch;
	struct wp_counters wp;

	/* Running snapshots, linked through their ctx_next (under lock);
	 * snaps_cv is signalled when one leaves the list. */
	struct uffdwp_snapshot *snaps;
	pthread_cond_t snaps_cv;

	void *bdata; /* the backend's */
};

static inline bool ctx_forked(const struct uffdwp_ctx *ctx)
{
	return ctx->pid != getpid();
}

#endif /* UFFDWP_CTX_H */
