/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Probes that need no userfaultfd: PAGEMAP_SCAN and its masks, soft-dirty,
 * mprotect, and the THP mode.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys-pagemap.h"
#include "probe.h"
#include "sys-uffd.h"

static long scan_page(int pm, void *page, uint64_t flags, uint64_t mask)
{
	struct page_region vec[1];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = flags,
		.start = (uintptr_t)page,
		.end = (uintptr_t)page + page_size(),
		.vec = (uintptr_t)vec,
		.vec_len = 1,
		.category_mask = mask,
		.return_mask = mask,
	};

	return pagemap_scan_once(pm, &a);
}

/*
 * The backends' exact masks, tried on a plain page: the get-only written
 * scan must succeed, and the async flags must be understood, which on a VMA
 * without WP_ASYNC means -EPERM (PM_SCAN_CHECK_WPASYNC doing its job), not
 * -EINVAL. Then the soft-dirty category on its own, as 6.7 lacks it.
 */
static void probe_scan(struct probe_result *r, int pm, void *page)
{
	long n = scan_page(pm, page, 0, ASYNC_SCAN_MASK);
	long wp;

	r->scan_ioctl = n != -ENOTTY;
	if (n < 0)
		return;
	/* The check flag refuses this plain VMA: proof it is understood. */
	wp = scan_page(pm, page, ASYNC_SCAN_FLAGS | PM_SCAN_CHECK_WPASYNC,
		       ASYNC_SCAN_MASK);
	r->caps.pagemap_scan = wp == -EPERM;
	r->caps.pagemap_scan_soft_dirty =
		scan_page(pm, page, 0, SOFT_DIRTY_SCAN_MASK) >= 0;
}

/*
 * Soft-dirty by behaviour, since writing "4" to clear_refs succeeds even on
 * kernels built without it: a written page of a new VMA must show bit 55, a
 * clear must drop it and a second write must set it again. The clear (and
 * its whole-process reset) only happens once bit 55 was seen.
 */
static void probe_soft_dirty(struct probe_result *r, int pm,
			     volatile char *page)
{
	char *why = r->reason[UFFDWP_BACKEND_SOFT_DIRTY];
	size_t wlen = sizeof(r->reason[0]);
	uint64_t e;
	int err;

	page[0] = 1;
	err = pagemap_entry(pm, (const void *)page, &e);
	if (err) {
		snprintf(why, wlen, "reading /proc/self/pagemap: %s",
			 strerror(-err));
		return;
	}
	if (!(e & PM_SOFT_DIRTY)) {
		snprintf(
			why, wlen,
			"kernel built without CONFIG_MEM_SOFT_DIRTY: a freshly written page never shows pagemap bit 55 (clear_refs \"4\" is accepted but does nothing)");
		return;
	}
	err = pagemap_clear_soft_dirty();
	if (err) {
		snprintf(why, wlen, "cannot write /proc/self/clear_refs: %s",
			 strerror(-err));
		return;
	}
	err = pagemap_entry(pm, (const void *)page, &e);
	if (err || (e & PM_SOFT_DIRTY)) {
		snprintf(why, wlen,
			 "clear_refs \"4\" did not clear pagemap bit 55");
		return;
	}
	page[0] = 2;
	err = pagemap_entry(pm, (const void *)page, &e);
	if (err || !(e & PM_SOFT_DIRTY)) {
		snprintf(
			why, wlen,
			"a write after clear_refs did not set pagemap bit 55 again");
		return;
	}
	r->caps.soft_dirty = 1;
	snprintf(
		why, wlen,
		"pagemap bit 55 round trip works; collect needs writers quiescent and clear_refs resets the whole process; read with %s",
		r->caps.pagemap_scan_soft_dirty ?
			"PAGEMAP_SCAN PAGE_IS_SOFT_DIRTY" :
			"pread of pagemap");
}

static void probe_mprotect(struct probe_result *r, volatile char *page)
{
	char *why = r->reason[UFFDWP_BACKEND_MPROTECT];
	size_t wlen = sizeof(r->reason[0]);

	if (mprotect((void *)page, page_size(), PROT_READ) ||
	    mprotect((void *)page, page_size(), PROT_READ | PROT_WRITE)) {
		snprintf(why, wlen, "mprotect refused: %s", strerror(errno));
		return;
	}
	page[0] = 3;
	r->caps.backend[UFFDWP_BACKEND_MPROTECT].usable = 1;
	snprintf(
		why, wlen,
		"mprotect round trip works; every first write after a collect costs a SIGSEGV (slowest)");
}

static int probe_thp(void)
{
	static const char *const names[] = {
		[UFFDWP_THP_ALWAYS] = "[always]",
		[UFFDWP_THP_MADVISE] = "[madvise]",
		[UFFDWP_THP_NEVER] = "[never]",
	};
	char line[128];
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	int mode = UFFDWP_THP_UNKNOWN;
	size_t i;

	if (!f)
		return mode;
	if (fgets(line, sizeof(line), f))
		for (i = 1; i < ARRAY_SIZE(names); i++)
			if (strstr(line, names[i]))
				mode = (int)i;
	fclose(f);
	return mode;
}

int probe_memory(struct probe_result *r)
{
	size_t ps = page_size();
	char *pages;
	int pm;

	r->caps.thp = probe_thp();
	/* A fresh VMA: soft-dirty marks new VMAs dirty until the first clear. */
	pages = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pages == MAP_FAILED)
		return neg_errno();
	pm = pagemap_open();
	if (pm < 0) {
		/* E.g. a process made non-dumpable by a change of uid. */
		if (!resource_error(pm)) {
			textf(r->reason[UFFDWP_BACKEND_SOFT_DIRTY],
			      "cannot open /proc/self/pagemap: %s",
			      strerror(-pm));
			probe_mprotect(r, pages + 2 * ps);
		}
		munmap(pages, 3 * ps);
		return resource_error(pm) ? pm : 0;
	}
	pages[0] = 1;
	probe_scan(r, pm, pages);
	probe_soft_dirty(r, pm, pages + ps);
	probe_mprotect(r, pages + 2 * ps);
	r->caps.backend[UFFDWP_BACKEND_SOFT_DIRTY].usable = r->caps.soft_dirty;
	close(pm);
	munmap(pages, 3 * ps);
	return 0;
}
