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

#include "ctx.h"

struct backend_ops {
	int id; /* enum uffdwp_backend */
	/* Set up ctx->bdata; may start threads. */
	int (*init)(struct uffdwp_ctx *ctx, const struct uffdwp_ctx_opts *o);
	/* Tear down; @in_child: after fork, release memory and fds only. */
	void (*fini)(struct uffdwp_ctx *ctx, bool in_child);
	/* NULL if this backend can track @memtype, else why not. */
	const char *(*refuse)(struct uffdwp_ctx *ctx, int memtype);
	/* Arm @r, already published in ctx->regions: pages written after
	 * this returns must be harvested later. */
	int (*track)(struct uffdwp_ctx *ctx, struct region *r);
	/* Disarm @r (still published); it is unpublished afterwards. */
	void (*untrack)(struct uffdwp_ctx *ctx, struct region *r);
	/* Move every page written since the last harvest into its region's
	 * pending map, re-armed. On error what was moved stays pending and
	 * nothing written is lost. */
	int (*harvest)(struct uffdwp_ctx *ctx);
	/* Snapshots (NULL: -EOPNOTSUPP). snap_begin: protect the snapshot's
	 * range, harvest, and publish @snap to the fault handlers
	 * (snapshot_publish()) while resolution is paused: that moment is
	 * the instant. snap_end: unpublish, and undo what begin changed;
	 * nothing written may be lost across either. */
	int (*snap_begin)(struct uffdwp_ctx *ctx, struct uffdwp_snapshot *snap);
	void (*snap_end)(struct uffdwp_ctx *ctx, struct uffdwp_snapshot *snap);
	/* Process-wide state around fork (NULL: none). */
	void (*atfork)(enum fork_phase phase);
};

extern const struct backend_ops backend_uffd_async;
extern const struct backend_ops backend_uffd_sync;
extern const struct backend_ops backend_soft_dirty;
extern const struct backend_ops backend_mprotect;

#endif /* UFFDWP_BACKEND_H */
