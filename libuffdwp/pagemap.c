/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pagemap reads and the PAGEMAP_SCAN loop.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"
#include "pagemap.h"

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

long pagemap_scan_once(int fd, struct pm_scan_arg *arg)
{
	long n = ioctl(fd, PAGEMAP_SCAN, arg);

	return n < 0 ? neg_errno() : n;
}

long pagemap_scan(int fd, uintptr_t start, uintptr_t end, uint64_t flags,
		  uint64_t category_mask, uint64_t return_mask,
		  struct page_region *vec, size_t vec_len, pagemap_region_fn fn,
		  void *arg)
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
		a.category_mask = category_mask;
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
