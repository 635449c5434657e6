/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synchronous userfaultfd write-protect, shared by the uffd_sync backend
 * and by uffd_async contexts, whose ranges move to a synchronous
 * userfaultfd while a snapshot runs: opening the descriptor and starting
 * its handlers, the protect target, zero-page population for kernels
 * without WP_UNPOPULATED, and the collect protocol of invariant 3.3.
 */
#ifndef UFFDWP_SYNCWP_H
#define UFFDWP_SYNCWP_H

#include "handler.h"
#include "wpbatch.h"

/* Open a synchronous userfaultfd with events and start @n handlers. */
int syncwp_open(struct uffdwp_ctx *ctx, unsigned int n,
		struct sync_state **out);
/* @in_child: after fork, close descriptors only. */
void syncwp_close(struct sync_state *s, bool in_child);

struct wp_target syncwp_target(struct sync_state *s);

/* Give PTE-less pages the zero page, so write-protect sticks to them. */
int syncwp_populate(struct sync_state *s, uintptr_t start, size_t len);

/*
 * Move the recorded pages of @rv into their pending maps, re-protected
 * (the caller holds s->resolve exclusively and quiesced events).
 */
int syncwp_harvest_locked(struct uffdwp_ctx *ctx, struct sync_state *s,
			  struct region *const *rv, size_t n);

#endif /* UFFDWP_SYNCWP_H */
