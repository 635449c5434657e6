/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The table of known kernel defects a tracking library must live with: what
 * each is, how the library detects it (by behaviour; a kernel version is
 * never evidence, distributions backport), and what the library does. The
 * probe's defect step and the race probe's verdicts on the stale-TLB
 * entries live here; probe.c serves the table from its cached result.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "sys-pagemap.h"
#include "probe.h"
#include "sys-uffd.h"

static const struct defect_desc descs[DEFECT_COUNT] = {
	[DEFECT_STALE_TLB_UFFD_WP] = {
		.id = "stale-tlb-cow-uffd-wp",
		.summary = "UFFDIO_WRITEPROTECT demotes PTEs under mmap_read_lock with a deferred TLB flush; a concurrent do_wp_page() copy misses stores made through a stale writable TLB entry (5.9 to 5.12-rc2 without 6ce64428d620)",
		.detection = "only by the lost-update race probe (uffdwp-check --race-probe), too costly to run implicitly",
		.action = "every protection counts only after its ioctl returned and copies precede unprotects (flush barrier); the kernel-side copy cannot be repaired from userspace: run the race probe and avoid uffd backends on a kernel that fails it",
	},
	[DEFECT_STALE_TLB_SOFT_DIRTY] = {
		.id = "stale-tlb-cow-soft-dirty",
		.summary = "clear_refs \"4\" cleared soft-dirty under mmap_read_lock (before 29a951dfb3c3, 5.10.9) and without a TLB flush (before 912efa17e512, 5.10.20): writes through stale entries are lost or go unrecorded",
		.detection = "only by the lost-update race probe on the soft-dirty mechanism (uffdwp-check --race-probe)",
		.action = "the soft-dirty backend reads every range before its one clear and requires quiescent writers; run the race probe before trusting it",
	},
	[DEFECT_SCAN_NO_SOFT_DIRTY] = {
		.id = "pagemap-scan-no-soft-dirty-category",
		.summary = "PAGEMAP_SCAN exists (6.7) but does not know PAGE_IS_SOFT_DIRTY (added in 6.8)",
		.detection = "PAGEMAP_SCAN accepts the async masks but rejects category PAGE_IS_SOFT_DIRTY with EINVAL",
		.action = "the soft-dirty backend reads pagemap with pread instead of PAGEMAP_SCAN",
	},
	[DEFECT_SCAN_STALE_WALK_END] = {
		.id = "pagemap-scan-stale-walk-end",
		.summary = "when a PAGEMAP_SCAN result needs more than the kernel's 512-entry buffer, the returned walk_end points where that buffer filled, not at the end, though the walk finished (seen on 6.18); looping on walk_end rescans and reports pages twice",
		.detection = "a get-only scan of 600 alternating present/absent regions with room for 1024: a short result whose walk_end is before the end",
		.action = "the scan loop treats a short vector as completion and resumes a full one at max(walk_end, last region end), on every kernel",
	},
	[DEFECT_SCAN_ZAPPED_CLEAN] = {
		.id = "pagemap-scan-zapped-reported-clean",
		.summary = "PAGEMAP_SCAN reports none PTEs after MADV_DONTNEED, and unpopulated PMD holes, as not written in a WP_ASYNC range (unfixed 6.7-6.18; 2026 stable fixes): the page became zeros and nobody is told",
		.detection = "in a WP_ASYNC range: write and arm a page, MADV_DONTNEED it, and scan; and scan an untouched, unarmed 2 MiB hole: both must read written",
		.action = "the library counts zapped and unpopulated tracked pages as dirty itself instead of trusting the scan",
	},
	[DEFECT_MREMAP_STALE_WP] = {
		.id = "mremap-stale-uffd-wp",
		.summary = "mremap of a write-protected range keeps the uffd-wp PTE bits when the destination is not registered (5.7 to 6.12.10; fixed by 0cef0bb836e3 in 6.13, CVE-2025-21696)",
		.detection = "write-protect a page with a sync uffd (no EVENT_REMAP), mremap it, and read pagemap bit 57 at the destination",
		.action = "the library requests UFFD_FEATURE_EVENT_REMAP and re-arms or untracks moved ranges itself, so stale bits never stand for tracking",
	},
	[DEFECT_ARM64_NO_UFFD_WP] = {
		.id = "arm64-no-uffd-wp",
		.summary = "arm64 has no userfaultfd write-protect before 6.10 (5b32510af77b) and no soft-dirty at all",
		.detection = "UFFDIO_API does not report UFFD_FEATURE_PAGEFAULT_FLAG_WP on an arm64 kernel",
		.action = "AUTO falls back to mprotect, and says so",
	},
	[DEFECT_READ_NO_ZERO_PAGE] = {
		.id = "anon-read-maps-fresh-page",
		.summary = "a read fault in private anonymous memory maps a fresh page of its own, not the shared zero page (seen on a 6.18 host): a page zapped by MADV_DONTNEED and then read looks like a page that was never zapped",
		.detection = "read one byte of a fresh anonymous page (no THP) and read its pagemap entry: the zero page is never exclusively mapped, a page of its own is",
		.action = "mprotect and soft_dirty see a zap only by the page's absence at the next collect: on this kernel a read of the zapped page before then hides the zap. Collect (or untrack) before MADV_DONTNEED of tracked memory, or use a userfaultfd backend, which is told of zaps by events",
	},
};

const struct defect_desc *defect_desc(size_t id)
{
	return id < DEFECT_COUNT ? &descs[id] : NULL;
}

static void set(struct probe_result *r, enum defect_id id, int status,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set(struct probe_result *r, enum defect_id id, int status,
		const char *fmt, ...)
{
	va_list ap;

	r->defect[id].status = status;
	va_start(ap, fmt);
	vsnprintf(r->defect[id].observed, sizeof(r->defect[id].observed), fmt,
		  ap);
	va_end(ap);
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* 600 present pages separated by holes: 600 regions, beyond 512. */
#define WALK_REGIONS 600

static int check_walk_end(struct probe_result *r, int pm)
{
	size_t ps = page_size(), len = 2 * WALK_REGIONS * ps, i;
	struct page_region *vec;
	struct pm_scan_arg a;
	char *p;
	long n;

	if (!r->scan_ioctl) {
		set(r, DEFECT_SCAN_STALE_WALK_END, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "no PAGEMAP_SCAN ioctl");
		return 0;
	}
	vec = calloc(1024, sizeof(*vec));
	p = map_anon(len);
	if (!vec || !p) {
		free(vec);
		if (p)
			munmap(p, len);
		return -ENOMEM;
	}
	for (i = 0; i < WALK_REGIONS; i++)
		p[2 * i * ps] = 1;
	a = (struct pm_scan_arg){
		.size = sizeof(a),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + len,
		.vec = (uintptr_t)vec,
		.vec_len = 1024,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	n = pagemap_scan_once(pm, &a);
	if (n != WALK_REGIONS)
		set(r, DEFECT_SCAN_STALE_WALK_END, UFFDWP_DEFECT_UNKNOWN,
		    "inconclusive: the scan returned %ld regions, expected %d",
		    n, WALK_REGIONS);
	else if (a.walk_end < a.end)
		set(r, DEFECT_SCAN_STALE_WALK_END, UFFDWP_DEFECT_PRESENT,
		    "all %d regions returned but walk_end stopped at page %llu of %zu",
		    WALK_REGIONS,
		    (unsigned long long)((a.walk_end - a.start) / ps),
		    2 * (size_t)WALK_REGIONS);
	else
		set(r, DEFECT_SCAN_STALE_WALK_END, UFFDWP_DEFECT_ABSENT,
		    "walk_end reached the end after %d regions", WALK_REGIONS);
	munmap(p, len);
	free(vec);
	return 0;
}

/* Does a get-only scan of [start, end) report every page written? */
static int all_written(int pm, uintptr_t start, uintptr_t end)
{
	struct page_region vec[4];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_CHECK_WPASYNC,
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = ARRAY_SIZE(vec),
		.category_mask = ASYNC_SCAN_MASK,
		.return_mask = ASYNC_SCAN_MASK,
	};
	long n = pagemap_scan_once(pm, &a);

	if (n < 0)
		return (int)n;
	return n == 1 && vec[0].start == start && vec[0].end == end;
}

#define PMD_SIZE_2M (2UL << 20)

static int check_zapped_clean(struct probe_result *r, int pm)
{
	size_t ps = page_size(), len = 3 * PMD_SIZE_2M;
	struct page_region vec[8];
	uintptr_t a, hole;
	int fd, zap, unpop;
	char *p;
	long n;

	if (!r->uffd_async) {
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "uffd_async is not usable here");
		return 0;
	}
	fd = uffd_open(r->caps.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return resource_error(fd) ? fd : 0;
	p = map_anon(len);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	/* One written, armed page, and a 2 MiB-aligned untouched hole. */
	a = ((uintptr_t)p + PMD_SIZE_2M - 1) & ~(PMD_SIZE_2M - 1);
	hole = a + PMD_SIZE_2M;
	if (uffd_api(fd, ASYNC_UFFD_FEATURES, NULL) ||
	    uffd_register(fd, p, len, UFFDIO_REGISTER_MODE_WP, NULL)) {
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_UNKNOWN,
		    "could not register a WP_ASYNC range");
		goto out;
	}
	*(volatile char *)a = 1;
	n = pagemap_scan(pm, a, a + ps, ASYNC_SCAN_FLAGS, ASYNC_SCAN_MASK,
			 ASYNC_SCAN_MASK, vec, ARRAY_SIZE(vec), NULL, NULL);
	if (n < 0 || madvise((void *)a, ps, MADV_DONTNEED)) {
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_UNKNOWN,
		    "could not arm and zap a page");
		goto out;
	}
	zap = all_written(pm, a, a + ps);
	unpop = all_written(pm, hole, hole + PMD_SIZE_2M);
	if (zap < 0 || unpop < 0)
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_UNKNOWN,
		    "scan failed: %s", strerror(-(zap < 0 ? zap : unpop)));
	else if (!zap || !unpop)
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_PRESENT,
		    "zapped page reported %s, unpopulated PMD hole reported %s",
		    zap ? "written" : "clean", unpop ? "written" : "clean");
	else
		set(r, DEFECT_SCAN_ZAPPED_CLEAN, UFFDWP_DEFECT_ABSENT,
		    "zapped page and unpopulated PMD hole both reported written");
out:
	munmap(p, len);
	close(fd);
	return 0;
}

static int check_mremap(struct probe_result *r, int pm)
{
	size_t ps = page_size();
	uint64_t before, after;
	char *src, *dst;
	void *moved;
	int fd;

	if (!r->caps.uffd_wp) {
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "userfaultfd write-protect is not usable here");
		return 0;
	}
	fd = uffd_open(r->caps.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return resource_error(fd) ? fd : 0;
	src = map_anon(ps);
	dst = map_anon(ps);
	if (!src || !dst) {
		if (src)
			munmap(src, ps);
		close(fd);
		return -ENOMEM;
	}
	src[0] = 1;
	if (uffd_api(fd, SYNC_UFFD_FEATURES, NULL) ||
	    uffd_register(fd, src, ps, UFFDIO_REGISTER_MODE_WP, NULL) ||
	    uffd_writeprotect(fd, src, ps, UFFDIO_WRITEPROTECT_MODE_WP) ||
	    pagemap_entry(pm, src, &before)) {
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_UNKNOWN,
		    "could not write-protect a page");
		goto out;
	}
	if (!(before & PM_UFFD_WP)) {
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_UNKNOWN,
		    "pagemap does not show the uffd-wp bit (before 5.13)");
		goto out;
	}
	moved = mremap(src, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (moved == MAP_FAILED) {
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_UNKNOWN,
		    "mremap failed: %s", strerror(errno));
		goto out;
	}
	src = NULL;
	if (pagemap_entry(pm, dst, &after))
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_UNKNOWN,
		    "could not read pagemap after mremap");
	else if (after & PM_UFFD_WP)
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_PRESENT,
		    "the moved page kept its uffd-wp bit");
	else
		set(r, DEFECT_MREMAP_STALE_WP, UFFDWP_DEFECT_ABSENT,
		    "the moved page lost its uffd-wp bit");
out:
	if (src)
		munmap(src, ps);
	munmap(dst, ps);
	close(fd);
	return 0;
}

static int check_read_zero_page(struct probe_result *r, int pm)
{
	volatile char *p = map_anon(page_size());
	uint64_t e;

	if (!p)
		return -ENOMEM;
	(void)p[0];
	if (pagemap_entry(pm, (void *)p, &e))
		set(r, DEFECT_READ_NO_ZERO_PAGE, UFFDWP_DEFECT_UNKNOWN,
		    "could not read pagemap");
	else if (!(e & PM_PRESENT))
		set(r, DEFECT_READ_NO_ZERO_PAGE, UFFDWP_DEFECT_UNKNOWN,
		    "a read mapped no page");
	else if (e & PM_EXCLUSIVE)
		set(r, DEFECT_READ_NO_ZERO_PAGE, UFFDWP_DEFECT_PRESENT,
		    "a read fault mapped a page of its own");
	else
		set(r, DEFECT_READ_NO_ZERO_PAGE, UFFDWP_DEFECT_ABSENT,
		    "a read fault mapped the shared zero page");
	munmap((void *)p, page_size());
	return 0;
}

static void check_arm64(struct probe_result *r)
{
	if (strcmp(r->machine, "aarch64"))
		set(r, DEFECT_ARM64_NO_UFFD_WP, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "not arm64 (%s)", r->machine);
	else if (r->caps.uffd_mode == UFFDWP_UFFD_NONE)
		set(r, DEFECT_ARM64_NO_UFFD_WP, UFFDWP_DEFECT_UNKNOWN,
		    "no userfaultfd to ask");
	else if (r->caps.uffd_features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		set(r, DEFECT_ARM64_NO_UFFD_WP, UFFDWP_DEFECT_ABSENT,
		    "UFFDIO_API reports PAGEFAULT_FLAG_WP");
	else
		set(r, DEFECT_ARM64_NO_UFFD_WP, UFFDWP_DEFECT_PRESENT,
		    "UFFDIO_API lacks PAGEFAULT_FLAG_WP");
}

int probe_defects(struct probe_result *r)
{
	int pm, ret;

	if (r->caps.uffd_wp)
		set(r, DEFECT_STALE_TLB_UFFD_WP, UFFDWP_DEFECT_UNKNOWN,
		    "race probe not run");
	else
		set(r, DEFECT_STALE_TLB_UFFD_WP, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "userfaultfd write-protect is not usable here");
	if (r->caps.soft_dirty)
		set(r, DEFECT_STALE_TLB_SOFT_DIRTY, UFFDWP_DEFECT_UNKNOWN,
		    "race probe not run");
	else
		set(r, DEFECT_STALE_TLB_SOFT_DIRTY,
		    UFFDWP_DEFECT_NOT_APPLICABLE,
		    "soft-dirty is not usable here");

	if (!r->scan_ioctl)
		set(r, DEFECT_SCAN_NO_SOFT_DIRTY, UFFDWP_DEFECT_NOT_APPLICABLE,
		    "no PAGEMAP_SCAN ioctl");
	else if (r->caps.pagemap_scan_soft_dirty)
		set(r, DEFECT_SCAN_NO_SOFT_DIRTY, UFFDWP_DEFECT_ABSENT,
		    "PAGE_IS_SOFT_DIRTY accepted");
	else
		set(r, DEFECT_SCAN_NO_SOFT_DIRTY, UFFDWP_DEFECT_PRESENT,
		    "PAGE_IS_SOFT_DIRTY rejected");
	check_arm64(r);

	pm = pagemap_open();
	if (pm < 0) {
		if (resource_error(pm))
			return pm;
		set(r, DEFECT_SCAN_STALE_WALK_END, UFFDWP_DEFECT_UNKNOWN,
		    "cannot open /proc/self/pagemap: %s", strerror(-pm));
		r->defect[DEFECT_SCAN_ZAPPED_CLEAN] =
			r->defect[DEFECT_SCAN_STALE_WALK_END];
		r->defect[DEFECT_MREMAP_STALE_WP] =
			r->defect[DEFECT_SCAN_STALE_WALK_END];
		r->defect[DEFECT_READ_NO_ZERO_PAGE] =
			r->defect[DEFECT_SCAN_STALE_WALK_END];
		return 0;
	}
	ret = check_walk_end(r, pm);
	if (!ret)
		ret = check_zapped_clean(r, pm);
	if (!ret)
		ret = check_mremap(r, pm);
	if (!ret)
		ret = check_read_zero_page(r, pm);
	close(pm);
	return ret;
}

/*
 * The stale-TLB defects are decided only by race probe A, too costly to run
 * implicitly: its latest verdicts live here, beside the immutable probe
 * result. Their strings stay valid until the next uffdwp_race_probe().
 */
static pthread_mutex_t race_note_lock = PTHREAD_MUTEX_INITIALIZER;
static struct defect_state race_note[2];
static bool race_noted[2];

void defects_note_race(const struct uffdwp_race_result *res)
{
	int idx = res->mechanism == UFFDWP_RACE_SOFT_DIRTY ? 1 : 0;
	int status;

	if (res->probe != UFFDWP_RACE_PROBE_A)
		return;
	if (res->verdict == UFFDWP_RACE_FAIL)
		status = UFFDWP_DEFECT_PRESENT;
	else if (res->verdict == UFFDWP_RACE_INCONCLUSIVE)
		status = UFFDWP_DEFECT_UNKNOWN;
	else
		status = UFFDWP_DEFECT_ABSENT;
	pthread_mutex_lock(&race_note_lock);
	/* Two uffd mechanisms share one entry: a failure sticks. */
	if (!(race_noted[idx] &&
	      race_note[idx].status == UFFDWP_DEFECT_PRESENT)) {
		race_note[idx].status = status;
		snprintf(race_note[idx].observed,
			 sizeof(race_note[idx].observed),
			 "race probe A on %s: %s: %s",
			 uffdwp_race_mechanism_name(res->mechanism),
			 uffdwp_race_verdict_name(res->verdict), res->why);
		race_noted[idx] = true;
	}
	pthread_mutex_unlock(&race_note_lock);
}

void defect_race_overlay(size_t idx, int *status, const char **observed)
{
	int k;

	if ((idx != DEFECT_STALE_TLB_UFFD_WP &&
	     idx != DEFECT_STALE_TLB_SOFT_DIRTY) ||
	    *status == UFFDWP_DEFECT_NOT_APPLICABLE)
		return;
	k = idx == DEFECT_STALE_TLB_SOFT_DIRTY;
	pthread_mutex_lock(&race_note_lock);
	if (race_noted[k]) {
		*status = race_note[k].status;
		*observed = race_note[k].observed;
	}
	pthread_mutex_unlock(&race_note_lock);
}
