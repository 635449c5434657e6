/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend interface. Only ctx.c calls through it; backends never
 * include each other. ctx.c owns argument checks, the fork check, the
 * per-context lock and the delivery of pending pages; a backend owns how
 * writes are noticed, how ranges are armed and how dirty pages are moved
 * into each region's pending map.
 */
#ifndef UFFDWP_BACKEND_H
#define UFFDWP_BACKEND_H

#include <stdbool.h>

#include "region.h"
#include "snapshot.h"
#include "syncwp.h"
#include "wpbatch.h"

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

/*
 * What a backend sees of its context (ctx.c embeds it in struct uffdwp_ctx
 * and passes it to every operation): never the context's lock, its
 * snapshots or its other state.
 */
struct backend_ctx {
	/* Published by ctx.c with rcu_assign_pointer() (under its lock);
	 * read under rcu_read_lock(). */
	struct region_set *regions;
	struct ctx_counters cnt;
	/* The batch collects re-protect through (sync, mprotect). */
	struct wpbatch batch;
	struct wp_counters wp;
	unsigned int handler_threads; /* uffd_sync */
	void *bdata; /* the backend's */
};

/* What a synchronous userfaultfd of this context borrows (syncwp.h). */
static inline struct sync_env backend_sync_env(struct backend_ctx *ctx)
{
	return (struct sync_env){
		.regions = &ctx->regions,
		.batch = &ctx->batch,
		.wp = &ctx->wp,
		.faults = &ctx->cnt.faults,
		.events = &ctx->cnt.events,
		.retries = &ctx->cnt.retries,
	};
}

struct backend_ops {
	int id; /* enum uffdwp_backend */
	/* Set up ctx->bdata; may start threads. @caps: what uffdwp_ctx_new()
	 * probed; a backend never probes again. */
	int (*init)(struct backend_ctx *ctx, const struct uffdwp_ctx_opts *o,
		    const struct uffdwp_caps *caps);
	/* Tear down; @in_child: after fork, release memory and fds only. */
	void (*fini)(struct backend_ctx *ctx, bool in_child);
	/* NULL if this backend can track @memtype, else why not. */
	const char *(*refuse)(struct backend_ctx *ctx, int memtype);
	/* Arm @r, already published in ctx->regions: pages written after
	 * this returns must be harvested later. */
	int (*track)(struct backend_ctx *ctx, struct region *r);
	/* Disarm @r (still published); it is unpublished afterwards. */
	void (*untrack)(struct backend_ctx *ctx, struct region *r);
	/* Move every page written since the last harvest into its region's
	 * pending map, re-armed. On error what was moved stays pending and
	 * nothing written is lost. */
	int (*harvest)(struct backend_ctx *ctx);
	/* Snapshots (NULL: -EOPNOTSUPP). snap_begin: protect the snapshot's
	 * range, harvest, and publish @snap to the fault handlers
	 * (snapshot_publish()) while resolution is paused: that moment is
	 * the instant. snap_end: unpublish, and undo what begin changed;
	 * nothing written may be lost across either. */
	int (*snap_begin)(struct backend_ctx *ctx,
			  struct uffdwp_snapshot *snap);
	void (*snap_end)(struct backend_ctx *ctx, struct uffdwp_snapshot *snap);
	/* Process-wide state around fork (NULL: none). */
	void (*atfork)(enum fork_phase phase);
};

extern const struct backend_ops backend_uffd_async;
extern const struct backend_ops backend_uffd_sync;
extern const struct backend_ops backend_soft_dirty;
extern const struct backend_ops backend_mprotect;

#endif /* UFFDWP_BACKEND_H */
