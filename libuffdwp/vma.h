/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What kind of memory a range is, from /proc/self/smaps: every backend
 * tracks some kinds and must refuse the others instead of leaving a range
 * silently untracked.
 */
#ifndef UFFDWP_VMA_H
#define UFFDWP_VMA_H

#include <stddef.h>
#include <stdint.h>

/*
 * Classify [start, start + len): *memtype gets one enum memtype for the
 * whole range. Returns 0; -EFAULT if part of it is not mapped; -EACCES if
 * part of it is not readable and writable; -EOPNOTSUPP if it mixes kinds.
 */
int vma_classify(uintptr_t start, size_t len, int *memtype);

/*
 * Call @fn with each mapping of [start, end), clipped to it, in address
 * order. Returns 0; -EFAULT if part of the range is not mapped; or the
 * first non-zero value @fn returned, which stops the walk.
 */
int vma_each(uintptr_t start, uintptr_t end,
	     int (*fn)(void *arg, uintptr_t lo, uintptr_t hi), void *arg);

#endif /* UFFDWP_VMA_H */
