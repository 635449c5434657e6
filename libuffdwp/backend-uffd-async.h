/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The uffd_async backend's insides, shared by its tracking
 * (backend-uffd-async.c) and its snapshot window, the move to the
 * synchronous userfaultfd and back (backend-uffd-async-move.c).
 */
#ifndef UFFDWP_BACKEND_UFFD_ASYNC_H
#define UFFDWP_BACKEND_UFFD_ASYNC_H

#include "backend.h"
#include "sys-pagemap.h"
#include "syncwp.h"
#include "zaps.h"

/* Regions per PAGEMAP_SCAN call: 24 KiB of output. */
#define SCAN_VEC 1024

struct async_state {
	int uffd;
	int pagemap;
	/* Kernels with the pagemap-scan-zapped-reported-clean defect report
	 * a zapped page as clean: look for zaps ourselves there. */
	bool check_zaps;
	struct zap_state zaps;
	/* The probe's, for the synchronous userfaultfd opened later. */
	int uffd_mode;
	uint64_t uffd_features;
	/* The snapshot window's synchronous userfaultfd, made on first use,
	 * and presence looks across each move. */
	struct sync_state *sync;
	struct zap_state movez;
	bool movez_ready;
	struct page_region vec[SCAN_VEC];
};

static inline struct async_state *st(struct backend_ctx *ctx)
{
	return ctx->bdata;
}

/*
 * Where a range's writes are seen (struct async_range::watch):
 *
 *                 snapshot begins (moved)
 *   WATCH_ASYNC ---------------------------> WATCH_SYNC
 *       ^   ^   <---------------------------   |  ^ |
 *       |   |     snapshot ends (moved back)   |  | | snapshot ends
 *       |   |                                  |  +-+ without a gate, or
 *       |   |  collect arms it     move back   |      the move back failed
 *       |   +--------------- WATCH_NONE <------+
 *       |                        ^     failed both ways
 *       +------------------------+
 *           move there failed and arming back too
 *
 * WATCH_ASYNC: on the asynchronous userfaultfd; a collect scans it.
 * WATCH_SYNC: on the synchronous one (a snapshot window, or a move back
 *   that could not be made): a collect harvests it as uffd_sync does.
 * WATCH_NONE: on neither: every collect reports its mapped pages whole and
 *   tries to arm it again.
 * Out of WATCH_ASYNC the range's own spans say which mappings are its
 * (own_scan()). watch_set() is the only writer; ctx->lock covers it.
 */
enum async_watch {
	WATCH_ASYNC,
	WATCH_SYNC,
	WATCH_NONE,
};

/* The backend's part of a tracked range (region->bdata): not from the
 * heap, which a program may track and a move gates read-only. */
struct async_range {
	enum async_watch watch;
	/* Out of WATCH_ASYNC: the range's own mappings (registered with it
	 * when the move began, less what was unmapped since); a mapping
	 * placed in a hole is someone else's. */
	struct span *own;
	size_t nown;
};

static inline struct async_range *ar(const struct region *r)
{
	return r->bdata;
}

/* One get-and-protect pass over @r; @keep false discards the result. */
int async_scan_region(struct backend_ctx *ctx, struct region *r, bool keep);

/* backend-uffd-async-move.c: the ranges out of WATCH_ASYNC, and the
 * snapshot window that moves them. */
int async_moved_harvest(struct backend_ctx *ctx, struct region *r);
void async_moved_untrack(struct backend_ctx *ctx, struct region *r);
int async_snap_begin(struct backend_ctx *ctx, struct uffdwp_snapshot *snap);
void async_snap_end(struct backend_ctx *ctx, struct uffdwp_snapshot *snap);

#endif /* UFFDWP_BACKEND_UFFD_ASYNC_H */
