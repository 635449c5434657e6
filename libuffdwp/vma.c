/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory kinds: see vma.h.
 *
 * /proc/self/maps, not smaps: smaps walks the page tables of every mapping
 * of the process to count pages, which made tracking 1 GiB cost 3x the
 * kernel's own registration (measured by bench-track). Whether a mapping is
 * hugetlbfs is asked of the file system instead (statfs), and only smaps
 * can tell for a memfd, so only those read it.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>

#include "internal.h"
#include "region.h"
#include "vma.h"
#include "vmaid.h"

#define HUGETLBFS_MAGIC 0x958458f6

/* A memfd or SysV segment may be hugetlb: ask smaps about this VMA. */
static bool smaps_says_huge(unsigned long lo)
{
	char line[512], perms[8];
	unsigned long a, b, kps;
	bool in = false, huge = false;
	char procbuf[4096];
	FILE *f = proc_fopen("/proc/self/smaps", procbuf, sizeof(procbuf));

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		/* A VMA's first line; the others are "Name: value". */
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3) {
			if (in)
				break;
			in = a == lo;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %lu kB", &kps) == 1) {
			huge = kps > 4;
			break;
		}
	}
	fclose(f);
	return huge;
}

/* @page_size: the mapping's, or 0 if unknown (then smaps is asked). */
static int kind_of(unsigned long lo, bool shared, const char *path,
		   uint64_t page_size)
{
	struct statfs fs;

	if (!*path || path[0] == '[')
		return shared ? MEM_SHMEM : MEM_ANON;
	if (strstr(path, "anon_hugepage"))
		return MEM_HUGETLB;
	if (!strncmp(path, "/memfd:", 7) || !strncmp(path, "/SYSV", 5)) {
		if (page_size)
			return page_size > 4096 ? MEM_HUGETLB : MEM_SHMEM;
		return smaps_says_huge(lo) ? MEM_HUGETLB : MEM_SHMEM;
	}
	if (!strncmp(path, "/dev/zero", 9) || !strncmp(path, "/dev/shm/", 9))
		return MEM_SHMEM;
	if (!statfs(path, &fs) &&
	    fs.f_type == (typeof(fs.f_type))HUGETLBFS_MAGIC)
		return MEM_HUGETLB;
	return MEM_FILE;
}

/*
 * With PROCMAP_QUERY (6.11), one query per mapping of the range: the
 * cost does not grow with the mappings elsewhere in the process (a
 * program that tracks thousands of ranges has thousands). -ENOSYS
 * without it.
 */
static int classify_queried(uintptr_t start, uintptr_t end, int *memtype)
{
	char path[256];
	struct vma_info v;
	uint64_t page_size;
	uintptr_t a;
	int kind = -1, k, ret;

	vma_query_init();
	for (a = start; a < end; a = v.hi) {
		ret = vma_query_named(a, &v, path, sizeof(path), &page_size);
		if (ret == -ENOENT)
			return -EFAULT;
		if (ret)
			return ret;
		if ((v.prot & (PROT_READ | PROT_WRITE)) !=
		    (PROT_READ | PROT_WRITE))
			return -EACCES;
		k = kind_of(v.lo, v.id.shared, path, page_size);
		if (kind >= 0 && k != kind)
			return -EOPNOTSUPP;
		kind = k;
	}
	*memtype = kind;
	return 0;
}

int vma_maps_each(uintptr_t start, uintptr_t end,
		  int (*fn)(void *arg, const struct vma_map *m), void *arg)
{
	/* A path is at most PATH_MAX; what is past it is cut, never read
	 * as the start of another mapping. */
	char line[PATH_MAX + 128], rest[256], perms[8], procbuf[4096];
	unsigned long lo, hi;
	struct vma_map m;
	int n, off, ret = 0;
	char *nl;
	FILE *f = proc_fopen("/proc/self/maps", procbuf, sizeof(procbuf));

	if (!f)
		return neg_errno();
	while (!ret && fgets(line, sizeof(line), f)) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		else
			while (fgets(rest, sizeof(rest), f) &&
			       !strchr(rest, '\n'))
				;
		off = 0;
		n = sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms,
			   &off);
		if (n != 3 || strlen(perms) < 4 || hi <= start)
			continue;
		if (lo >= end)
			break;
		m = (struct vma_map){
			.lo = lo > start ? lo : start,
			.hi = hi < end ? hi : end,
			.map_lo = lo,
			.prot = (perms[0] == 'r' ? PROT_READ : 0) |
				(perms[1] == 'w' ? PROT_WRITE : 0) |
				(perms[2] == 'x' ? PROT_EXEC : 0),
			.shared = perms[3] == 's',
			.path = off ? line + off : "",
		};
		ret = fn(arg, &m);
	}
	fclose(f);
	return ret;
}

struct classify {
	uintptr_t covered;
	int kind;
};

static int classify_one(void *arg, const struct vma_map *m)
{
	struct classify *c = arg;
	int k;

	if (m->lo > c->covered)
		return -EFAULT;
	c->covered = m->hi;
	if ((m->prot & (PROT_READ | PROT_WRITE)) != (PROT_READ | PROT_WRITE))
		return -EACCES;
	k = kind_of(m->map_lo, m->shared, m->path, 0);
	if (c->kind >= 0 && k != c->kind)
		return -EOPNOTSUPP;
	c->kind = k;
	return 0;
}

int vma_classify(uintptr_t start, size_t len, int *memtype)
{
	struct classify c = { start, -1 };
	int ret;

	ret = classify_queried(start, start + len, memtype);
	if (ret != -ENOSYS)
		return ret;
	ret = vma_maps_each(start, start + len, classify_one, &c);
	if (!ret && c.covered < start + len)
		ret = -EFAULT;
	if (!ret)
		*memtype = c.kind;
	return ret;
}

struct each {
	uintptr_t covered;
	int (*fn)(void *arg, uintptr_t lo, uintptr_t hi);
	void *arg;
};

static int each_one(void *arg, const struct vma_map *m)
{
	struct each *e = arg;

	if (m->lo > e->covered)
		return -EFAULT;
	e->covered = m->hi;
	return e->fn(e->arg, m->lo, m->hi);
}

int vma_each(uintptr_t start, uintptr_t end,
	     int (*fn)(void *arg, uintptr_t lo, uintptr_t hi), void *arg)
{
	struct each e = { start, fn, arg };
	int ret;

	ret = vma_maps_each(start, end, each_one, &e);
	if (!ret && e.covered < end)
		ret = -EFAULT;
	return ret;
}
