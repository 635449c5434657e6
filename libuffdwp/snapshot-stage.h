/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot engine's staging ring, private to it: pages a handler copied
 * on the fault path before the sink could take them (the sink had not
 * begun, or gave no place), held until a copier delivers them, oldest
 * first. Not from the heap: handlers write it, and the heap may be tracked.
 *
 * Locked with a spin lock, not a mutex: a writer's own SIGBUS handler
 * stages pages in the self-service mode, where only async-signal-safe
 * calls may run. Every holder has the asynchronous signals blocked (the
 * library's threads always, a SIGBUS handler by its mask), so no thread is
 * ever parked by a signal while it holds the lock.
 */
#ifndef UFFDWP_SNAPSHOT_STAGE_H
#define UFFDWP_SNAPSHOT_STAGE_H

#include <stddef.h>
#include <stdint.h>

struct stage {
	int lock;
	unsigned int n;
	char *mem; /* n pages */
	uintptr_t *addr; /* the page each slot holds */
	unsigned int *free, nfree;
	unsigned int *fifo, head, count; /* filled, oldest first */
	size_t maplen;
};

/* @n slots of a page each; -ENOMEM. */
int snapshot_stage_init(struct stage *st, unsigned int n);
void snapshot_stage_fini(struct stage *st);
/* A free slot, or -1 if every slot holds a page. */
int snapshot_stage_get(struct stage *st);
/* @slot now holds the page at @addr: deliver it in turn. */
void snapshot_stage_push(struct stage *st, unsigned int slot, uintptr_t addr);
/* The oldest filled slot, or -1. */
int snapshot_stage_pop(struct stage *st);
/* @slot is free again. */
void snapshot_stage_put(struct stage *st, unsigned int slot);
/* How many slots hold a page. */
unsigned int snapshot_stage_filled(struct stage *st);

#endif /* UFFDWP_SNAPSHOT_STAGE_H */
