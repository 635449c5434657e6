/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mappings of a range, from /proc/self/maps (the one reader of it
 * outside signal handlers, whose reader is vmaid.c's): what kind of memory
 * a range is (every backend tracks some kinds and must refuse the others
 * instead of leaving a range silently untracked), and walks over its
 * mappings.
 */
#ifndef UFFDWP_VMA_H
#define UFFDWP_VMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line of /proc/self/maps, clipped to the walk's range. */
struct vma_map {
	uintptr_t lo, hi; /* clipped */
	uintptr_t map_lo; /* where the mapping itself starts */
	int prot; /* PROT_* */
	bool shared;
	const char *path; /* "" if none; may be cut short past PATH_MAX */
};

/*
 * Call @fn with each mapping that overlaps [start, end), in address order,
 * holes skipped. Returns 0, -errno if /proc cannot be read, or the first
 * non-zero value @fn returned, which stops the walk. No heap: it may run
 * while a gate holds the heap read-only.
 */
int vma_maps_each(uintptr_t start, uintptr_t end,
		  int (*fn)(void *arg, const struct vma_map *m), void *arg);

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
