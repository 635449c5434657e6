/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thin userfaultfd wrappers: each issues one system call and returns 0 (or a
 * value) or -errno, so callers never look at errno.
 */
#ifndef UFFDWP_SYS_UFFD_H
#define UFFDWP_SYS_UFFD_H

#include <stddef.h>
#include <stdint.h>

#include "uapi-compat.h"

/* Open a userfaultfd the way @mode (enum uffdwp_uffd_mode) says.
 * @flags: O_CLOEXEC / O_NONBLOCK. Returns the fd or -errno. */
int uffd_open(int mode, int flags);

/* UFFDIO_API handshake asking for @want; *@got gets what the kernel
 * offers. It may be done once per fd. */
int uffd_api(int fd, uint64_t want, uint64_t *got);

/* UFFDIO_REGISTER with @mode (UFFDIO_REGISTER_MODE_*). */
int uffd_register(int fd, void *addr, size_t len, uint64_t mode,
		  uint64_t *ioctls);
int uffd_unregister(int fd, void *addr, size_t len);

/* UFFDIO_WRITEPROTECT: @mode is UFFDIO_WRITEPROTECT_MODE_WP to protect,
 * 0 (optionally | _DONTWAKE) to unprotect. */
int uffd_writeprotect(int fd, void *addr, size_t len, uint64_t mode);
int uffd_wake(int fd, void *addr, size_t len);

/*
 * What the async backend asks of the kernel, shared with the probe so the
 * probe tries exactly what the backend will use: WP_ASYNC (with
 * WP_UNPOPULATED, which it implies, so never-touched pages are armed too),
 * and one PAGEMAP_SCAN that reports written pages and re-protects them.
 *
 * Without PM_SCAN_CHECK_WPASYNC (DESIGN 3.5 names it): with it, a mapping
 * the program placed inside a tracked range (MAP_FIXED over part of it)
 * fails the whole scan with -EPERM after the pages before it were already
 * re-protected, and their report is lost with the error. Without it the
 * kernel skips such a mapping, which is no longer tracked memory, and the
 * get-and-re-protect stays one atomic call. The library registers every
 * tracked mapping itself, so the check guards nothing else.
 */
#define ASYNC_UFFD_FEATURES \
	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)
#define ASYNC_SCAN_FLAGS PM_SCAN_WP_MATCHING
#define ASYNC_SCAN_MASK PAGE_IS_WRITTEN

/* The sync backend's minimum: write-protect faults on anonymous memory. */
#define SYNC_UFFD_FEATURES UFFD_FEATURE_PAGEFAULT_FLAG_WP

/* The soft-dirty backend's PAGEMAP_SCAN read (6.8+): get only. */
#define SOFT_DIRTY_SCAN_MASK PAGE_IS_SOFT_DIRTY

#endif /* UFFDWP_SYS_UFFD_H */
