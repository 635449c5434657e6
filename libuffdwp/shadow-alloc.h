/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's own memory and threads (see shadow-alloc.c): mappings a
 * tracked range must never include.
 */
#ifndef UFFDWP_SHADOW_ALLOC_H
#define UFFDWP_SHADOW_ALLOC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Zeroed, page-rounded, registered as the library's own. */
void *own_map(size_t len);
void own_unmap(void *p, size_t len);

/* The same, named for what uses them: zeroed memory outside the heap, for
 * what handlers write and a tracked range never includes. */
void *shadow_zalloc(size_t len);
void shadow_free(void *p, size_t len);

/* Whether [lo, hi) overlaps a mapping of the library's own. */
bool own_overlaps(uintptr_t lo, uintptr_t hi);

/* Around fork (called by the context layer's handlers). */
void own_atfork(enum fork_phase phase);

/* A thread running on a stack of the library's own; -errno. */
int own_thread_create(pthread_t *tid, void *(*fn)(void *), void *arg);
/* Called first by each library thread: registers it with urcu-bp now,
 * and the registry chunk its reader slot is in as the library's own. */
void own_thread_started(void);
/* Join it and unmap its stack. */
void own_thread_join(pthread_t tid);

#endif /* UFFDWP_SHADOW_ALLOC_H */
