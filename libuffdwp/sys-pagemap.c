/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pagemap reads and the PAGEMAP_SCAN loop.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"
#include "sys-pagemap.h"

int pagemap_open(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? neg_errno() : fd;
}

int pagemap_entry(int fd, const void *addr, uint64_t *entry)
{
	off_t off = (off_t)((uintptr_t)addr / page_size() * sizeof(*entry));
	ssize_t n = pread(fd, entry, sizeof(*entry), off);

	if (n < 0)
		return neg_errno();
	return n == sizeof(*entry) ? 0 : -EIO;
}

bool pagemap_has_content(uint64_t e)
{
	/*
	 * A page of its own: swapped, or present and mapped only here. The
	 * shared zero page (what a read of a zapped page maps) is never
	 * "exclusively mapped"; neither are pages shared with a fork child,
	 * which then count as zapped once: extra pages, never fewer.
	 */
	return (e & PM_SWAP) || ((e & PM_PRESENT) && (e & PM_EXCLUSIVE));
}

int pagemap_clear_soft_dirty(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return neg_errno();
	if (write(fd, "4", 1) != 1)
		ret = neg_errno();
	close(fd);
	return ret;
}

long pagemap_scan_once(int fd, struct pm_scan_arg *arg)
{
	long n = ioctl(fd, PAGEMAP_SCAN, arg);

	return n < 0 ? neg_errno() : n;
}

static long scan_loop(int fd, uintptr_t start, uintptr_t end, uint64_t flags,
		      uint64_t inverted, uint64_t category_mask,
		      uint64_t anyof_mask, uint64_t return_mask,
		      struct page_region *vec, size_t vec_len,
		      pagemap_region_fn fn, void *arg)
{
	struct pm_scan_arg a;
	long total = 0, n;
	int ret;

	while (start < end) {
		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.flags = flags;
		a.start = start;
		a.end = end;
		a.vec = (uintptr_t)vec;
		a.vec_len = vec_len;
		a.category_inverted = inverted;
		a.category_mask = category_mask;
		a.category_anyof_mask = anyof_mask;
		a.return_mask = return_mask;
		n = pagemap_scan_once(fd, &a);
		if (n < 0)
			return n;
		if (n > 0 && fn) {
			ret = fn(vec, (size_t)n, arg);
			if (ret)
				return ret;
		}
		total += n;
		/* A short vector is the only trustworthy end-of-walk sign. */
		if (vec_len == 0 || (size_t)n < vec_len)
			break;
		start = a.walk_end;
		if (vec[n - 1].end > start)
			start = vec[n - 1].end;
	}
	return total;
}

long pagemap_scan(int fd, uintptr_t start, uintptr_t end, uint64_t flags,
		  uint64_t category_mask, uint64_t return_mask,
		  struct page_region *vec, size_t vec_len, pagemap_region_fn fn,
		  void *arg)
{
	return scan_loop(fd, start, end, flags, 0, category_mask, 0,
			 return_mask, vec, vec_len, fn, arg);
}

struct presence_arg {
	uintptr_t start;
	pagemap_run_fn fn;
	void *arg;
};

static int mark_presence(const struct page_region *vec, size_t n, void *arg)
{
	struct presence_arg *a = arg;
	size_t i, ps = page_size();

	for (i = 0; i < n; i++)
		a->fn(a->arg, (vec[i].start - a->start) / ps,
		      (vec[i].end - vec[i].start) / ps);
	return 0;
}

/* Buffers on the stack: a paused collect must not malloc (see wpbatch.c). */
#define PRESENCE_VEC 256
#define PREAD_ENTRIES 1024

int pagemap_presence(int fd, uintptr_t start, size_t npages, bool scan,
		     pagemap_run_fn fn, void *arg)
{
	size_t ps = page_size(), i = 0, n, k;
	struct presence_arg a = { start, fn, arg };
	struct page_region vec[PRESENCE_VEC];
	uint64_t e[PREAD_ENTRIES];
	ssize_t got;
	long r;

	if (scan) {
		/* The shared zero page is no content: a zapped page that
		 * was read since maps it, and must still count as gone. */
		r = scan_loop(fd, start, start + npages * ps, 0,
			      PAGE_IS_PFNZERO, PAGE_IS_PFNZERO,
			      PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			      PAGE_IS_PRESENT | PAGE_IS_SWAPPED, vec,
			      PRESENCE_VEC, mark_presence, &a);
		return r < 0 ? (int)r : 0;
	}
	while (i < npages) {
		n = npages - i < PREAD_ENTRIES ? npages - i : PREAD_ENTRIES;
		got = pread(fd, e, n * sizeof(*e),
			    (off_t)((start / ps + i) * sizeof(*e)));
		if (got <= 0)
			return got < 0 ? neg_errno() : -EIO;
		n = (size_t)got / sizeof(*e);
		for (k = 0; k < n; k++)
			if (pagemap_has_content(e[k]))
				fn(arg, i + k, 1);
		i += n;
	}
	return 0;
}
