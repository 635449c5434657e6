/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy-before-write snapshot engine (invariant 3.4), as the backends
 * and the fault handlers see it.
 */
#ifndef UFFDWP_SNAPSHOT_H
#define UFFDWP_SNAPSHOT_H

#include "ctx.h"
#include "handler.h"

/* The region a snapshot covers part of. */
struct region *snapshot_region(const struct uffdwp_snapshot *snap);

/*
 * At the instant, with fault resolution paused and every page of the range
 * protected: take the range's pending pages (they are the snapshot's own
 * for an incremental one, and consumed either way) and publish @snap to
 * the handlers of @s.
 */
void snapshot_publish(struct uffdwp_snapshot *snap, struct sync_state *s);

/* With fault resolution paused: the handlers forget @snap. */
void snapshot_unpublish(struct uffdwp_snapshot *snap, struct sync_state *s);

/*
 * A handler resolving a write fault on @page of @snap's region (shared
 * resolve lock held): 0 when the page's pre-image is safe (copied now or
 * before, or not part of the snapshot) and the fault may be resolved; 1
 * when it must wait (a copier holds the page, the staging area is full,
 * or the sink is not ready): retry it later, a copier kicks the handlers.
 */
int snapshot_fault(struct uffdwp_snapshot *snap, uintptr_t page);

/* A handler saw [start, end) zapped or unmapped (a #uffdwp_snapshot_cause). */
void snapshot_event(struct uffdwp_snapshot *snap, uintptr_t start,
		    uintptr_t end, int cause);

/* uffdwp_ctx_free(): end every running snapshot of @ctx, and wait. */
void snapshot_ctx_shutdown(struct uffdwp_ctx *ctx);

#endif /* UFFDWP_SNAPSHOT_H */
