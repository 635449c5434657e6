/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory kinds from /proc/self/smaps: see vma.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "region.h"
#include "vma.h"

static int kind_of(const char *perms, const char *path, unsigned long kps)
{
	if (kps > 4)
		return MEM_HUGETLB;
	if (strstr(path, "anon_hugepage"))
		return MEM_HUGETLB;
	if (!*path || path[0] == '[')
		return perms[3] == 's' ? MEM_SHMEM : MEM_ANON;
	if (!strncmp(path, "/dev/zero", 9) || !strncmp(path, "/memfd:", 7) ||
	    !strncmp(path, "/SYSV", 5) || !strncmp(path, "/dev/shm/", 9))
		return MEM_SHMEM;
	return MEM_FILE;
}

int vma_classify(uintptr_t start, size_t len, int *memtype)
{
	uintptr_t end = start + len, covered = start;
	unsigned long lo, hi, kps;
	char line[512], perms[8], path[256], vperms[8] = "", vpath[256] = "";
	int kind = -1, k, ret = 0;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return neg_errno();
	while (fgets(line, sizeof(line), f)) {
		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &lo, &hi,
			   perms, path) >= 3) {
			/* A VMA header line. */
			in = hi > start && lo < end;
			if (lo >= end)
				break;
			if (!in)
				continue;
			if (lo > covered) {
				ret = -EFAULT;
				break;
			}
			covered = hi;
			memcpy(vperms, perms, sizeof(vperms));
			memcpy(vpath, path, sizeof(vpath));
			if (perms[0] != 'r' || perms[1] != 'w') {
				ret = -EACCES;
				break;
			}
			/* KernelPageSize follows; remember this VMA's line. */
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %lu kB", &kps) == 1) {
			k = kind_of(vperms, vpath, kps);
			if (kind >= 0 && k != kind) {
				ret = -EOPNOTSUPP;
				break;
			}
			kind = k;
		}
	}
	fclose(f);
	if (!ret && covered < end)
		ret = -EFAULT;
	if (!ret)
		*memtype = kind;
	return ret;
}
