/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The identity of a mapping: what a program's munmap and mmap (or an mmap
 * with MAP_FIXED) over a tracked range changes, and the library's own
 * protection changes (which split and merge mappings) do not. The mprotect
 * backend changes protections itself, so it must never change those of a
 * mapping that replaced the one it tracked: a guard page made writable is
 * a security hole.
 *
 * The kernel shows of a mapping its bounds, its protection, whether it is
 * shared, and for one backed by a file (shmem, memfd and shared anonymous
 * memory included) the device, inode and offset. A replacement by another
 * file, or with a protection the library never sets (PROT_NONE, anything
 * executable, write-only), is told apart. One by private anonymous memory
 * with the protection the library set there cannot be: the kernel gives
 * such a mapping no identity of its own (short of a name, which needs
 * CONFIG_ANON_VMA_NAME, off in the kernels this library is tested on).
 */
#ifndef UFFDWP_VMAID_H
#define UFFDWP_VMAID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vma_id {
	uint64_t dev, ino;
	/* A file mapping's offset less its start: the same for every piece
	 * of a split. 0 for anonymous memory. */
	uint64_t base;
	bool shared;
};

/* A piece of a tracked range and the identity its mapping had at track. */
struct vma_span {
	uintptr_t lo, hi;
	struct vma_id id;
};

struct vma_info {
	uintptr_t lo, hi;
	int prot; /* PROT_READ, PROT_WRITE, PROT_EXEC */
	struct vma_id id;
};

static inline bool vma_id_eq(const struct vma_id *a, const struct vma_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->base == b->base &&
	       a->shared == b->shared;
}

/*
 * Prepare vma_query(): use PROCMAP_QUERY (6.11) where the kernel has it.
 * Not async-signal-safe; idempotent.
 */
void vma_query_init(void);

/* Whether vma_query() is one system call (PROCMAP_QUERY), not a walk of
 * the whole text of /proc/self/maps. Async-signal-safe. */
bool vma_query_cheap(void);

/*
 * The mapping covering @addr. Async-signal-safe. Returns 0; -ENOENT if
 * nothing is mapped there; -errno if /proc cannot be read.
 */
int vma_query(uintptr_t addr, struct vma_info *v);

/*
 * With PROCMAP_QUERY only (-ENOSYS otherwise): the mapping covering
 * @addr, with its name (a path, "[heap]", or "" for anonymous memory)
 * into @name and its page size. 0; -ENOENT if nothing is mapped there.
 */
int vma_query_named(uintptr_t addr, struct vma_info *v, char *name,
		    size_t namelen, uint64_t *page_size);

/*
 * @fn with each mapping that overlaps [start, end), clipped to it, in
 * address order; holes are skipped. Async-signal-safe. Returns 0, the
 * first non-zero value of @fn, or -errno.
 */
int vma_walk(uintptr_t start, uintptr_t end,
	     int (*fn)(void *arg, const struct vma_info *v), void *arg);

#endif /* UFFDWP_VMAID_H */
