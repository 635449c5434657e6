/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot engine's staging ring: see snapshot-stage.h. */
#include <sys/syscall.h>
#include <unistd.h>

#include "shadow-alloc.h"
#include "snapshot-stage.h"

static void stage_lock(struct stage *st)
{
	/* Held for a few stores: yield (a plain system call) and retry. */
	while (__atomic_exchange_n(&st->lock, 1, __ATOMIC_ACQUIRE))
		syscall(SYS_sched_yield);
}

static void stage_unlock(struct stage *st)
{
	__atomic_store_n(&st->lock, 0, __ATOMIC_RELEASE);
}

int snapshot_stage_init(struct stage *st, unsigned int n)
{
	size_t ps = page_size(), meta;

	meta = n * (sizeof(uintptr_t) + 2 * sizeof(unsigned int));
	st->maplen = (size_t)n * ps + meta;
	st->mem = shadow_zalloc(st->maplen);
	if (!st->mem)
		return -ENOMEM;
	st->n = n;
	st->addr = (uintptr_t *)(st->mem + (size_t)n * ps);
	st->free = (unsigned int *)(st->addr + n);
	st->fifo = st->free + n;
	for (st->nfree = 0; st->nfree < n; st->nfree++)
		st->free[st->nfree] = n - 1 - st->nfree;
	return 0;
}

void snapshot_stage_fini(struct stage *st)
{
	if (!st->mem)
		return;
	shadow_free(st->mem, st->maplen);
	st->mem = NULL;
}

int snapshot_stage_get(struct stage *st)
{
	int slot = -1;

	stage_lock(st);
	if (st->nfree)
		slot = (int)st->free[--st->nfree];
	stage_unlock(st);
	return slot;
}

void snapshot_stage_push(struct stage *st, unsigned int slot, uintptr_t addr)
{
	stage_lock(st);
	st->addr[slot] = addr;
	st->fifo[(st->head + st->count) % st->n] = slot;
	st->count++;
	stage_unlock(st);
}

int snapshot_stage_pop(struct stage *st)
{
	int slot = -1;

	stage_lock(st);
	if (st->count) {
		slot = (int)st->fifo[st->head];
		st->head = (st->head + 1) % st->n;
		st->count--;
	}
	stage_unlock(st);
	return slot;
}

void snapshot_stage_put(struct stage *st, unsigned int slot)
{
	stage_lock(st);
	st->free[st->nfree++] = slot;
	stage_unlock(st);
}

unsigned int snapshot_stage_filled(struct stage *st)
{
	unsigned int n;

	stage_lock(st);
	n = st->count;
	stage_unlock(st);
	return n;
}
