/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /proc/self/pagemap: per-page entries and the PAGEMAP_SCAN ioctl.
 */
#ifndef UFFDWP_SYS_PAGEMAP_H
#define UFFDWP_SYS_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uapi-compat.h"

/* The fd binds the mm at open time: a forked child must open its own. */
int pagemap_open(void);

/* The 64-bit pagemap entry of the page holding @addr. */
int pagemap_entry(int fd, const void *addr, uint64_t *entry);

/* One PAGEMAP_SCAN ioctl: the number of regions written, or -errno. */
long pagemap_scan_once(int fd, struct pm_scan_arg *arg);

/* Called with each batch of regions a scan returns; non-zero stops it. */
typedef int (*pagemap_region_fn)(const struct page_region *vec, size_t n,
				 void *arg);

/*
 * Scan [@start, @end) to the end (invariant 3.5): one ioctl per full vector,
 * resuming at max(walk_end, last region's end) because 6.18 returns a stale
 * walk_end once a scan needs more than the kernel's 512-entry buffer, and
 * treating a short vector as completion. With PM_SCAN_WP_MATCHING in @flags
 * each call atomically reports and re-protects its pages.
 *
 * Returns the number of regions reported, -errno from the kernel, or the
 * callback's non-zero value.
 */
long pagemap_scan(int fd, uintptr_t start, uintptr_t end, uint64_t flags,
		  uint64_t category_mask, uint64_t return_mask,
		  struct page_region *vec, size_t vec_len, pagemap_region_fn fn,
		  void *arg);

/* Does a pagemap entry hold contents of its own (not the zero page)? */
bool pagemap_has_content(uint64_t entry);

/* echo 4 > /proc/self/clear_refs: soft-dirty off for the whole process. */
int pagemap_clear_soft_dirty(void);

/*
 * Call @fn(@arg, first, n) for each run of pages of [start, start + @npages
 * pages) that are present or swapped, as page indexes from @start: a page
 * present before and absent now was zapped. PAGEMAP_SCAN when @scan, else
 * pread() of the entries. No heap: a paused collect calls it.
 */
typedef void (*pagemap_run_fn)(void *arg, size_t first, size_t n);
int pagemap_presence(int fd, uintptr_t start, size_t npages, bool scan,
		     pagemap_run_fn fn, void *arg);

#endif /* UFFDWP_SYS_PAGEMAP_H */
