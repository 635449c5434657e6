/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel suite: uffdwp_probe() must agree with what this test observes on its
 * own, through raw system calls and pagemap bits, on whatever kernel it runs:
 * the open modes and their errors, the UFFDIO_API features, the soft-dirty
 * bit, PAGEMAP_SCAN, write-protect bits, EVENT_FORK permission, THP, AUTO's
 * choice, and what an unprivileged or seccomp-filtered process is told.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#include "../common.h"
#include "uapi-compat.h"

static size_t ps;

static struct uffdwp_caps probe(void)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };

	ck_assert_int_eq(uffdwp_probe(&c), 0);
	return c;
}

/* --- independent observations ----------------------------------------- */

static int raw_open(int mode)
{
	int dev, fd;

	switch (mode) {
	case UFFDWP_UFFD_DEV:
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return -errno;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
		close(dev);
		return fd;
	case UFFDWP_UFFD_SYSCALL:
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	case UFFDWP_UFFD_USER_MODE_ONLY:
		fd = (int)syscall(__NR_userfaultfd,
				  O_CLOEXEC | UFFD_USER_MODE_ONLY);
		return fd < 0 ? -errno : fd;
	}
	return -EINVAL;
}

static int raw_err(int mode)
{
	int fd = raw_open(mode);

	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : 0;
}

static int raw_api(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got)
		*got = api.features;
	return 0;
}

static uint64_t pm_entry(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &e, sizeof(e),
			       (off_t)((uintptr_t)addr / ps * sizeof(e))),
			 (ssize_t)sizeof(e));
	close(fd);
	return e;
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	madvise(p, n * ps, MADV_NOHUGEPAGE);
	return p;
}

static bool has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff & (1ULL << cap);
}

#define CAP_SYS_PTRACE_BIT 19

static int first_open_mode(void)
{
	static const int order[] = { UFFDWP_UFFD_DEV, UFFDWP_UFFD_SYSCALL,
				     UFFDWP_UFFD_USER_MODE_ONLY };
	size_t i;

	for (i = 0; i < 3; i++)
		if (raw_err(order[i]) == 0)
			return order[i];
	return UFFDWP_UFFD_NONE;
}

/* --- cases -------------------------------------------------------------- */

START_TEST(open_modes_match)
{
	struct uffdwp_caps c = probe();

	ck_assert_int_eq(c.uffd_dev_err, raw_err(UFFDWP_UFFD_DEV));
	ck_assert_int_eq(c.uffd_syscall_err, raw_err(UFFDWP_UFFD_SYSCALL));
	ck_assert_int_eq(c.uffd_user_mode_only_err,
			 raw_err(UFFDWP_UFFD_USER_MODE_ONLY));
	ck_assert_int_eq(c.uffd_mode, first_open_mode());
	if (c.uffd_mode == UFFDWP_UFFD_NONE)
		ck_assert_ptr_nonnull(c.uffd_blocked);
	else
		ck_assert_ptr_null(c.uffd_blocked);
	ck_assert_ptr_nonnull(c.uffd_mode_limits);
}
END_TEST

START_TEST(features_match)
{
	struct uffdwp_caps c = probe();
	uint64_t got = 0;
	int fd = raw_open(first_open_mode());

	if (fd < 0) {
		ck_assert_uint_eq(c.uffd_features, 0);
		return;
	}
	ck_assert_int_eq(raw_api(fd, 0, &got), 0);
	close(fd);
	ck_assert_uint_eq(c.uffd_features, got);
	ck_assert_uint_ne(got, 0);
}
END_TEST

START_TEST(event_fork_matches_capability)
{
	struct uffdwp_caps c = probe();
	int fd = raw_open(first_open_mode());
	int ret;

	if (fd < 0) {
		ck_assert_int_eq(c.event_fork, 0);
		return;
	}
	ret = raw_api(fd, UFFD_FEATURE_EVENT_FORK, NULL);
	close(fd);
	ck_assert_int_eq(c.event_fork, ret == 0);
	/* The kernel's rule: EVENT_FORK needs CAP_SYS_PTRACE. */
	ck_assert_int_eq(c.event_fork, has_cap(CAP_SYS_PTRACE_BIT));
}
END_TEST

/*
 * Soft-dirty by reading bit 55 directly: on a kernel without it a freshly
 * written page of a new VMA never has the bit, and the probe must say so
 * naming the kernel option; with it, clear and rewrite must round-trip.
 */
START_TEST(soft_dirty_matches_bit55)
{
	struct uffdwp_caps c = probe();
	volatile char *p = map_pages(1);
	bool works = false;
	int fd;

	p[0] = 1;
	if (pm_entry((void *)p) & PM_SOFT_DIRTY) {
		fd = open("/proc/self/clear_refs", O_WRONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "4", 1), 1);
		close(fd);
		if (!(pm_entry((void *)p) & PM_SOFT_DIRTY)) {
			p[0] = 2;
			works = pm_entry((void *)p) & PM_SOFT_DIRTY;
		}
	} else {
		ck_assert_ptr_nonnull(
			strstr(c.backend[UFFDWP_BACKEND_SOFT_DIRTY].reason,
			       "CONFIG_MEM_SOFT_DIRTY"));
	}
	ck_assert_int_eq(c.soft_dirty, works);
	ck_assert_int_eq(c.backend[UFFDWP_BACKEND_SOFT_DIRTY].usable, works);
	munmap((void *)p, ps);
}
END_TEST

static long raw_scan(void *p, uint64_t flags, uint64_t mask)
{
	struct page_region vec[4];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = flags,
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + ps,
		.vec = (uintptr_t)vec,
		.vec_len = 4,
		.category_mask = mask,
		.return_mask = mask,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY);
	long n;

	ck_assert_int_ge(fd, 0);
	n = ioctl(fd, PAGEMAP_SCAN, &a);
	n = n < 0 ? -errno : n;
	close(fd);
	return n;
}

START_TEST(pagemap_scan_matches_ioctl)
{
	struct uffdwp_caps c = probe();
	char *p = map_pages(1);
	long get, wp, sd;

	p[0] = 1;
	get = raw_scan(p, 0, PAGE_IS_WRITTEN);
	wp = raw_scan(p, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		      PAGE_IS_WRITTEN);
	sd = raw_scan(p, 0, PAGE_IS_SOFT_DIRTY);
	if (get == -ENOTTY) {
		ck_assert_int_eq(c.pagemap_scan, 0);
		ck_assert_int_eq(c.pagemap_scan_soft_dirty, 0);
	} else {
		/* A plain VMA reports written; WP on it must be refused. */
		ck_assert_int_eq(get, 1);
		ck_assert_int_eq(wp, -EPERM);
		ck_assert_int_eq(c.pagemap_scan, 1);
		ck_assert_int_eq(c.pagemap_scan_soft_dirty, sd >= 0);
	}
	munmap(p, ps);
}
END_TEST

/* Sync write-protect, seen through pagemap bit 57 (5.13+). */
START_TEST(uffd_wp_matches_bit57)
{
	struct uffdwp_caps c = probe();
	int fd = raw_open(first_open_mode());
	struct uffdio_register reg;
	struct uffdio_writeprotect wp;
	uint64_t got = 0;
	bool works = false;
	char *p;

	if (fd < 0) {
		ck_assert_int_eq(c.uffd_wp, 0);
		return;
	}
	p = map_pages(1);
	p[0] = 1;
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)p, .len = ps },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	wp = (struct uffdio_writeprotect){
		.range = { .start = (uintptr_t)p, .len = ps },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	if (raw_api(fd, UFFD_FEATURE_PAGEFAULT_FLAG_WP, &got) == 0 &&
	    ioctl(fd, UFFDIO_REGISTER, &reg) == 0 &&
	    ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 &&
	    (pm_entry(p) & PM_UFFD_WP)) {
		wp.mode = 0;
		ck_assert_int_eq(ioctl(fd, UFFDIO_WRITEPROTECT, &wp), 0);
		works = !(pm_entry(p) & PM_UFFD_WP);
	}
	close(fd);
	munmap(p, ps);
	ck_assert_int_eq(c.uffd_wp, works);
	ck_assert_int_eq(c.backend[UFFDWP_BACKEND_UFFD_SYNC].usable, works);
}
END_TEST

/*
 * WP_ASYNC seen through bit 57: armed by one PAGEMAP_SCAN, set on the page;
 * a write clears it with no fault message.
 */
START_TEST(uffd_async_matches_bit57)
{
	struct uffdwp_caps c = probe();
	int fd = raw_open(first_open_mode()), pm;
	struct uffdio_register reg;
	struct page_region vec[4];
	struct pm_scan_arg a;
	bool works = false;
	volatile char *p;

	if (fd < 0) {
		ck_assert_int_eq(c.backend[UFFDWP_BACKEND_UFFD_ASYNC].usable,
				 0);
		return;
	}
	p = map_pages(1);
	p[0] = 1;
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)p, .len = ps },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	a = (struct pm_scan_arg){
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + ps,
		.vec = (uintptr_t)vec,
		.vec_len = 4,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	pm = open("/proc/self/pagemap", O_RDONLY);
	ck_assert_int_ge(pm, 0);
	if (raw_api(fd, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
		    NULL) == 0 &&
	    ioctl(fd, UFFDIO_REGISTER, &reg) == 0 &&
	    ioctl(pm, PAGEMAP_SCAN, &a) >= 0 &&
	    (pm_entry((void *)p) & PM_UFFD_WP)) {
		p[0] = 2;
		works = !(pm_entry((void *)p) & PM_UFFD_WP);
	}
	close(pm);
	close(fd);
	munmap((void *)p, ps);
	ck_assert_int_eq(c.backend[UFFDWP_BACKEND_UFFD_ASYNC].usable, works);
}
END_TEST

START_TEST(thp_matches_sysfs)
{
	struct uffdwp_caps c = probe();
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	int want = UFFDWP_THP_UNKNOWN;

	if (f) {
		ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
		fclose(f);
		if (strstr(line, "[always]"))
			want = UFFDWP_THP_ALWAYS;
		else if (strstr(line, "[madvise]"))
			want = UFFDWP_THP_MADVISE;
		else if (strstr(line, "[never]"))
			want = UFFDWP_THP_NEVER;
	}
	ck_assert_int_eq(c.thp, want);
}
END_TEST

START_TEST(auto_is_first_usable)
{
	static const int order[] = { UFFDWP_BACKEND_UFFD_ASYNC,
				     UFFDWP_BACKEND_UFFD_SYNC,
				     UFFDWP_BACKEND_SOFT_DIRTY,
				     UFFDWP_BACKEND_MPROTECT };
	struct uffdwp_caps c = probe();
	int want = UFFDWP_BACKEND_AUTO;
	size_t i;

	for (i = 0; i < 4; i++) {
		ck_assert_ptr_nonnull(c.backend[order[i]].reason);
		ck_assert_int_gt(strlen(c.backend[order[i]].reason), 10);
		if (want == UFFDWP_BACKEND_AUTO && c.backend[order[i]].usable)
			want = order[i];
		else if (want == UFFDWP_BACKEND_AUTO)
			/* Every downgrade is explained by name. */
			ck_assert_ptr_nonnull(strstr(
				c.auto_reason, uffdwp_backend_name(order[i])));
	}
	ck_assert_int_eq(c.auto_backend, want);
	ck_assert_int_eq(c.backend[UFFDWP_BACKEND_MPROTECT].usable, 1);
	ck_assert_int_eq(c.backend[UFFDWP_BACKEND_AUTO].usable, 0);
	for (i = UFFDWP_BACKEND_MPROTECT + 1; i < UFFDWP_BACKEND_SLOTS; i++)
		ck_assert_int_eq(c.backend[i].usable, 0);
}
END_TEST

/*
 * The stale walk_end, observed with a shape of our own (700 regions, room
 * for 2048): a complete, short result whose walk_end is not the end.
 */
START_TEST(defect_walk_end_matches)
{
	struct uffdwp_caps c = probe();
	size_t n = 700, i;
	char *p = map_pages(2 * n);
	struct page_region *vec = calloc(2048, sizeof(*vec));
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + 2 * n * ps,
		.vec = (uintptr_t)vec,
		.vec_len = 2048,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY);
	long got;

	for (i = 0; i < n; i++)
		p[2 * i * ps] = 1;
	got = ioctl(fd, PAGEMAP_SCAN, &a);
	close(fd);
	if (!c.pagemap_scan) {
		ck_assert_int_eq(
			test_defect_status("pagemap-scan-stale-walk-end"),
			UFFDWP_DEFECT_NOT_APPLICABLE);
	} else {
		ck_assert_int_eq(got, (long)n);
		ck_assert_int_eq(
			test_defect_status("pagemap-scan-stale-walk-end"),
			a.walk_end < a.end ? UFFDWP_DEFECT_PRESENT :
					     UFFDWP_DEFECT_ABSENT);
	}
	free(vec);
	munmap(p, 2 * n * ps);
}
END_TEST

/*
 * Whether a read fault maps the shared zero page, seen our own way: the
 * PAGEMAP_SCAN zero-page category where there is one, else the pagemap
 * "exclusively mapped" bit, on a page zapped and then read.
 */
START_TEST(defect_read_zero_page_matches)
{
	struct uffdwp_caps c = probe();
	char *p = map_pages(4);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	bool zero_page;
	uint64_t e;

	ck_assert_int_ge(fd, 0);
	p[ps] = 1;
	ck_assert_int_eq(madvise(p + ps, ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(*(volatile char *)(p + ps), 0);
	if (c.pagemap_scan) {
		struct page_region v[4];
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = (uintptr_t)p + ps,
			.end = (uintptr_t)p + 2 * ps,
			.vec = (uintptr_t)v,
			.vec_len = 4,
			.category_mask = PAGE_IS_PFNZERO,
			.return_mask = PAGE_IS_PFNZERO,
		};

		zero_page = ioctl(fd, PAGEMAP_SCAN, &a) == 1;
	} else {
		ck_assert_int_eq(pread(fd, &e, sizeof(e),
				       (off_t)((uintptr_t)(p + ps) / ps * 8)),
				 8);
		ck_assert(e >> 63);
		zero_page = !(e & (1ULL << 56));
	}
	close(fd);
	ck_assert_int_eq(test_defect_status("anon-read-maps-fresh-page"),
			 zero_page ? UFFDWP_DEFECT_ABSENT :
				     UFFDWP_DEFECT_PRESENT);
	munmap(p, 4 * ps);
}
END_TEST

START_TEST(defects_follow_mechanisms)
{
	struct uffdwp_caps c = probe();

	ck_assert_int_eq(test_defect_status("stale-tlb-cow-uffd-wp"),
			 c.uffd_wp ? UFFDWP_DEFECT_UNKNOWN :
				     UFFDWP_DEFECT_NOT_APPLICABLE);
	ck_assert_int_eq(test_defect_status("stale-tlb-cow-soft-dirty"),
			 c.soft_dirty ? UFFDWP_DEFECT_UNKNOWN :
					UFFDWP_DEFECT_NOT_APPLICABLE);
	if (!c.pagemap_scan)
		ck_assert_int_eq(test_defect_status(
					 "pagemap-scan-no-soft-dirty-category"),
				 UFFDWP_DEFECT_NOT_APPLICABLE);
	else
		ck_assert_int_eq(test_defect_status(
					 "pagemap-scan-no-soft-dirty-category"),
				 c.pagemap_scan_soft_dirty ?
					 UFFDWP_DEFECT_ABSENT :
					 UFFDWP_DEFECT_PRESENT);
	if (!c.backend[UFFDWP_BACKEND_UFFD_ASYNC].usable)
		ck_assert_int_eq(test_defect_status(
					 "pagemap-scan-zapped-reported-clean"),
				 UFFDWP_DEFECT_NOT_APPLICABLE);
	if (!c.uffd_wp)
		ck_assert_int_eq(test_defect_status("mremap-stale-uffd-wp"),
				 UFFDWP_DEFECT_NOT_APPLICABLE);
	else
		ck_assert_int_ne(test_defect_status("mremap-stale-uffd-wp"),
				 UFFDWP_DEFECT_NOT_APPLICABLE);
}
END_TEST

/* --- processes with fewer rights ---------------------------------------- */

#define child_check(cond, ...)                                          \
	do {                                                            \
		if (!(cond)) {                                          \
			fprintf(stderr, "child: %s:%d: %s: ", __FILE__, \
				__LINE__, #cond);                       \
			fprintf(stderr, __VA_ARGS__);                   \
			fprintf(stderr, "\n");                          \
			_exit(1);                                       \
		}                                                       \
	} while (0)

static void drop_to_nobody(void)
{
	if (geteuid() != 0)
		return;
	child_check(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
	child_check(setresgid(65534, 65534, 65534) == 0, "setresgid");
	child_check(setresuid(65534, 65534, 65534) == 0, "setresuid");
}

static void run_child(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed (status %#x); see its message above",
		      status);
}

/*
 * Without privileges: the probe must take the first mode that opens for this
 * user, and a user-mode-only fd must really fail a read(2) into a protected
 * page with EFAULT, as the probe's limits line says.
 */
static void unprivileged_child(void)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };
	int mode, fd, pfd[2];
	struct uffdio_register reg;
	struct uffdio_writeprotect wp;
	char *p;

	drop_to_nobody();
	mode = first_open_mode();
	child_check(uffdwp_probe(&c) == 0, "probe");
	child_check(c.uffd_mode == mode, "mode %d, observed %d", c.uffd_mode,
		    mode);
	child_check(c.uffd_dev_err == raw_err(UFFDWP_UFFD_DEV), "dev err %d",
		    c.uffd_dev_err);
	child_check(c.event_fork == 0,
		    "EVENT_FORK allowed without a capability");
	if (mode != UFFDWP_UFFD_USER_MODE_ONLY)
		return;
	child_check(strstr(c.uffd_mode_limits, "EFAULT") != NULL, "limits: %s",
		    c.uffd_mode_limits);

	fd = raw_open(UFFDWP_UFFD_USER_MODE_ONLY);
	child_check(fd >= 0, "UMO open");
	child_check(raw_api(fd, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL) == 0,
		    "api");
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	child_check(p != MAP_FAILED, "mmap");
	p[0] = 1;
	reg = (struct uffdio_register){
		.range = { .start = (uintptr_t)p, .len = ps },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	wp = (struct uffdio_writeprotect){
		.range = { .start = (uintptr_t)p, .len = ps },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	child_check(ioctl(fd, UFFDIO_REGISTER, &reg) == 0, "register");
	child_check(ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0, "protect");
	child_check(pipe(pfd) == 0, "pipe");
	child_check(write(pfd[1], "x", 1) == 1, "pipe write");
	errno = 0;
	child_check(read(pfd[0], p, 1) == -1 && errno == EFAULT,
		    "read(2) into a protected page: %s", strerror(errno));
}

START_TEST(unprivileged_user_mode_only)
{
	run_child(unprivileged_child);
}
END_TEST

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#else
#define SECCOMP_ARCH 0 /* excluded in main() */
#endif

/* Deny userfaultfd(2) with @err, as Docker's default profile does. */
static void deny_userfaultfd(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(*f), .filter = f };

	child_check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "nnp");
	child_check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0,
		    "seccomp: %s", strerror(errno));
}

static void check_blocked(const char *needle)
{
	struct uffdwp_caps c = { .sz = sizeof(c) };
	int want_auto = UFFDWP_BACKEND_MPROTECT;

	child_check(uffdwp_probe(&c) == 0, "probe");
	if (raw_err(UFFDWP_UFFD_DEV) == 0) {
		/* /dev/userfaultfd is open to this user: not blocked. */
		child_check(c.uffd_mode == UFFDWP_UFFD_DEV, "mode %d",
			    c.uffd_mode);
		return;
	}
	child_check(c.uffd_mode == UFFDWP_UFFD_NONE, "mode %d", c.uffd_mode);
	child_check(c.uffd_blocked && strstr(c.uffd_blocked, needle),
		    "blocked: %s", c.uffd_blocked ? c.uffd_blocked : "(null)");
	child_check(!c.backend[UFFDWP_BACKEND_UFFD_ASYNC].usable &&
			    !c.backend[UFFDWP_BACKEND_UFFD_SYNC].usable,
		    "uffd backend usable");
	child_check(strstr(c.backend[UFFDWP_BACKEND_UFFD_SYNC].reason,
			   "no userfaultfd") != NULL,
		    "reason: %s", c.backend[UFFDWP_BACKEND_UFFD_SYNC].reason);
	child_check(c.uffd_features == 0, "features %#llx",
		    (unsigned long long)c.uffd_features);
	if (c.soft_dirty)
		want_auto = UFFDWP_BACKEND_SOFT_DIRTY;
	child_check(c.auto_backend == want_auto, "auto %d: %s", c.auto_backend,
		    c.auto_reason);
}

static void seccomp_eperm_child(void)
{
	drop_to_nobody();
	deny_userfaultfd(EPERM);
	check_blocked("seccomp");
}

static void seccomp_enosys_child(void)
{
	drop_to_nobody();
	deny_userfaultfd(ENOSYS);
	check_blocked("ENOSYS");
}

START_TEST(seccomp_eperm_is_named)
{
	run_child(seccomp_eperm_child);
}
END_TEST

START_TEST(seccomp_enosys_is_named)
{
	run_child(seccomp_enosys_child);
}
END_TEST

/*
 * UFFDWP_EXPECT="key=value ...": facts a run asserts about its kernel, set
 * by the kernel-matrix setups (and CI for its host), e.g. "soft_dirty=1
 * auto=uffd_sync". The probe decides by behaviour; this states what that
 * behaviour must be on a kernel whose facts are known.
 */
static const char *expect_actual(const struct uffdwp_caps *c, const char *key,
				 char *buf, size_t len)
{
	static const struct {
		const char *key;
		int backend;
	} usable[] = {
		{ "uffd_async", UFFDWP_BACKEND_UFFD_ASYNC },
		{ "uffd_sync", UFFDWP_BACKEND_UFFD_SYNC },
		{ "mprotect", UFFDWP_BACKEND_MPROTECT },
	};
	size_t i;
	int v = -1;

	if (!strcmp(key, "auto"))
		return uffdwp_backend_name(c->auto_backend);
	if (!strcmp(key, "uffd_mode"))
		return uffdwp_uffd_mode_name(c->uffd_mode);
	if (!strcmp(key, "soft_dirty"))
		v = c->soft_dirty;
	else if (!strcmp(key, "wp_async"))
		v = !!(c->uffd_features & UFFD_FEATURE_WP_ASYNC);
	else if (!strcmp(key, "pagemap_scan"))
		v = c->pagemap_scan;
	else if (!strcmp(key, "uffd_wp"))
		v = c->uffd_wp;
	else if (!strcmp(key, "event_fork"))
		v = c->event_fork;
	for (i = 0; i < sizeof(usable) / sizeof(*usable); i++)
		if (!strcmp(key, usable[i].key))
			v = c->backend[usable[i].backend].usable;
	if (v < 0)
		return NULL;
	snprintf(buf, len, "%d", v);
	return buf;
}

START_TEST(expected_facts)
{
	struct uffdwp_caps c = probe();
	char *spec = strdup(getenv("UFFDWP_EXPECT")), *save = NULL, *tok;
	char buf[16];
	const char *actual;
	int checked = 0;

	for (tok = strtok_r(spec, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');

		ck_assert_msg(eq, "UFFDWP_EXPECT: '%s' is not key=value", tok);
		*eq = 0;
		actual = expect_actual(&c, tok, buf, sizeof(buf));
		ck_assert_msg(actual, "UFFDWP_EXPECT: unknown key '%s'", tok);
		ck_assert_msg(!strcmp(actual, eq + 1),
			      "%s is %s on this kernel, expected %s", tok,
			      actual, eq + 1);
		checked++;
	}
	ck_assert_int_gt(checked, 0);
	free(spec);
}
END_TEST

static Suite *probe_suite(void)
{
	Suite *s = suite_create("probe");
	TCase *facts = tcase_create("facts");
	TCase *rights = tcase_create("rights");
	TCase *filtered = tcase_create("seccomp");
	TCase *expect = tcase_create("expect");

	tcase_set_timeout(facts, 30);
	tcase_add_test(facts, open_modes_match);
	tcase_add_test(facts, features_match);
	tcase_add_test(facts, event_fork_matches_capability);
	tcase_add_test(facts, soft_dirty_matches_bit55);
	tcase_add_test(facts, pagemap_scan_matches_ioctl);
	tcase_add_test(facts, uffd_wp_matches_bit57);
	tcase_add_test(facts, uffd_async_matches_bit57);
	tcase_add_test(facts, thp_matches_sysfs);
	tcase_add_test(facts, auto_is_first_usable);
	tcase_add_test(facts, defect_walk_end_matches);
	tcase_add_test(facts, defect_read_zero_page_matches);
	tcase_add_test(facts, defects_follow_mechanisms);
	suite_add_tcase(s, facts);

	tcase_set_tags(expect, "expect");
	tcase_add_test(expect, expected_facts);
	suite_add_tcase(s, expect);

	/* Each forks a child that must probe from scratch. */
	tcase_set_tags(rights, "fresh");
	tcase_set_timeout(rights, 30);
	tcase_add_test(rights, unprivileged_user_mode_only);
	suite_add_tcase(s, rights);

	tcase_set_tags(filtered, "fresh seccomp");
	tcase_set_timeout(filtered, 30);
	tcase_add_test(filtered, seccomp_eperm_is_named);
	tcase_add_test(filtered, seccomp_enosys_is_named);
	suite_add_tcase(s, filtered);
	return s;
}

int main(void)
{
	struct test_exclusions ex = { 0 };

	test_check_sanitizer_setup();
	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (access("/proc/self/pagemap", R_OK))
		test_skip("/proc/self/pagemap is not readable");
	if (!test_forking())
		test_exclude(
			&ex, "fresh",
			"CK_FORK=no: a forked child would inherit the cached probe");
	if (!getenv("UFFDWP_EXPECT"))
		test_exclude(
			&ex, "expect",
			"UFFDWP_EXPECT is not set: no kernel facts to assert");
	if (!SECCOMP_ARCH)
		test_exclude(
			&ex, "seccomp",
			"no seccomp architecture constant for this machine");
	return test_run(probe_suite(), &ex);
}
