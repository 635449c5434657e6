/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A tracked range and the index of a context's ranges.
 *
 * Each context publishes its ranges as an immutable sorted array through
 * urcu-bp: fault handlers look addresses up under rcu_read_lock() with no
 * lock shared with track/untrack, which publish a new array, wait for a
 * grace period and only then free what they removed. A process-wide tree
 * (libbsd sys/tree.h, under a mutex) refuses ranges that overlap one
 * tracked by any context.
 */
#ifndef UFFDWP_REGION_H
#define UFFDWP_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bsd/sys/cdefs.h>
#include <bsd/sys/tree.h>

#include "dirtymap.h"
#include "internal.h"

enum memtype {
	MEM_ANON, /* private anonymous */
	MEM_SHMEM, /* shared anonymous, memfd, SysV shm */
	MEM_HUGETLB,
	MEM_FILE, /* file-backed */
};

struct backend_ctx;
struct uffdwp_snapshot;
struct wp_observer;

struct region {
	uintptr_t start, end;
	size_t npages;
	unsigned int flags; /* uffdwp_track() flags */
	int memtype;
	struct backend_ctx *ctx; /* whose range it is */
	/* Harvested and re-armed, not yet delivered to a collect callback. */
	struct dirtymap pending;
	/* uffd_sync, mprotect: unprotected by a fault since the last take. */
	struct dirtymap recorded;
	/* soft_dirty: present at the last read (absent now = zapped). */
	struct dirtymap present;
	/* Pages unmapped or moved away (events): never reported again.
	 * mprotect: pages whose mapping is not the tracked one now (unmapped,
	 * or replaced: vmaid.h), at the last collect. */
	struct dirtymap gone;
	/* uffd_sync: pages of a REMOVE event whose zap may still be to come
	 * (the kernel sends the event before it zaps), and when it came. */
	struct dirtymap zapwatch;
	uint64_t zap_ns;
	unsigned int zap_collects;
	/* The running snapshot of this range: set and cleared with fault
	 * resolution paused, together with obs. */
	struct uffdwp_snapshot *snap;
	/* What the synchronous fault loop asks before it resolves a fault
	 * on this range, and tells of its events (syncwp.h). */
	struct wp_observer *obs;
	/* The backend's own state of the range (track to untrack). */
	void *bdata;
	RB_ENTRY(region) node; /* process-wide overlap tree */
};

struct region_set {
	size_t n;
	bool holes; /* a low-memory removal left NULL slots */
	struct region *r[];
};

static inline size_t region_page(const struct region *r, uintptr_t addr)
{
	return (addr - r->start) / page_size();
}

struct region *region_new(struct backend_ctx *ctx, uintptr_t start, size_t len,
			  unsigned int flags, int memtype);
void region_free(struct region *r);

/* Claim [start, end) process-wide: -EEXIST if it overlaps a claim. */
/* The claims around fork: a child starts with none (its contexts are the
 * parent's, which it can only free). */
void region_claims_atfork(enum fork_phase phase);
int region_claim(struct region *r);
void region_unclaim(struct region *r);
bool region_overlaps(uintptr_t start, uintptr_t end);

/*
 * Publish @set with @r added or removed (caller serialises updates per
 * context). Removal waits for a grace period before returning, so no
 * reader still uses @r.
 */
int regions_add(struct region_set **set, struct region *r);
void regions_remove(struct region_set **set, struct region *r);
void regions_free(struct region_set **set);

/* Under rcu_read_lock(): the region holding @addr, or NULL. */
struct region *regions_lookup(struct region_set *set, uintptr_t addr);

/* Find the region starting at @start with length @len (updater side). */
struct region *regions_find_exact(struct region_set *set, uintptr_t start,
				  size_t len);

#endif /* UFFDWP_REGION_H */
