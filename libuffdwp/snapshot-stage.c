/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot engine's staging ring: see snapshot-stage.h. */
#include "shadow-alloc.h"
#include "snapshot-stage.h"

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
	pthread_mutex_init(&st->mu, NULL);
	return 0;
}

void snapshot_stage_fini(struct stage *st)
{
	if (!st->mem)
		return;
	pthread_mutex_destroy(&st->mu);
	shadow_free(st->mem, st->maplen);
	st->mem = NULL;
}

int snapshot_stage_get(struct stage *st)
{
	int slot = -1;

	pthread_mutex_lock(&st->mu);
	if (st->nfree)
		slot = (int)st->free[--st->nfree];
	pthread_mutex_unlock(&st->mu);
	return slot;
}

void snapshot_stage_push(struct stage *st, unsigned int slot, uintptr_t addr)
{
	pthread_mutex_lock(&st->mu);
	st->addr[slot] = addr;
	st->fifo[(st->head + st->count) % st->n] = slot;
	st->count++;
	pthread_mutex_unlock(&st->mu);
}

int snapshot_stage_pop(struct stage *st)
{
	int slot = -1;

	pthread_mutex_lock(&st->mu);
	if (st->count) {
		slot = (int)st->fifo[st->head];
		st->head = (st->head + 1) % st->n;
		st->count--;
	}
	pthread_mutex_unlock(&st->mu);
	return slot;
}

void snapshot_stage_put(struct stage *st, unsigned int slot)
{
	pthread_mutex_lock(&st->mu);
	st->free[st->nfree++] = slot;
	pthread_mutex_unlock(&st->mu);
}

unsigned int snapshot_stage_filled(struct stage *st)
{
	unsigned int n;

	pthread_mutex_lock(&st->mu);
	n = st->count;
	pthread_mutex_unlock(&st->mu);
	return n;
}
