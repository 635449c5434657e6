/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * userfaultfd probes: which way of opening one works, what UFFDIO_API offers,
 * and whether a synchronous and an asynchronous write-protect round trip
 * really work. Everything is tried on throw-away fds and private pages.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "segv.h"
#include "sys-pagemap.h"
#include "probe.h"
#include "sys-uffd.h"

#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

/* How long a probe waits for a fault message before calling it lost. */
#define PROBE_FAULT_TIMEOUT_MS 2000

static int read_int_file(const char *path, const char *key, long *val)
{
	char line[256];
	size_t klen = key ? strlen(key) : 0;
	FILE *f = fopen(path, "re");
	int ret = -ENOENT;

	if (!f)
		return neg_errno();
	while (fgets(line, sizeof(line), f)) {
		if (key && strncmp(line, key, klen))
			continue;
		if (sscanf(line + klen, "%ld", val) == 1)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* Why no userfaultfd opens, from the three errors and the environment. */
static void diagnose_blocked(struct probe_result *r)
{
	const struct uffdwp_caps *c = &r->caps;
	long seccomp = 0, sysctl = -1;
	bool filtered;
	char why[PROBE_TEXT], dev[PROBE_TEXT] = "";

	read_int_file("/proc/self/status", "Seccomp:", &seccomp);
	read_int_file("/proc/sys/vm/unprivileged_userfaultfd", NULL, &sysctl);
	filtered = seccomp == 2;

	if (c->uffd_user_mode_only_err == -ENOSYS &&
	    c->uffd_syscall_err == -ENOSYS) {
		if (filtered)
			textf(why,
			      "userfaultfd(2) fails with ENOSYS under this process's seccomp filter: the filter blocks it (or the kernel lacks CONFIG_USERFAULTFD); allow userfaultfd in the seccomp profile");
		else
			textf(why,
			      "kernel built without CONFIG_USERFAULTFD (userfaultfd(2) returns ENOSYS); use a kernel with CONFIG_USERFAULTFD=y");
	} else if (c->uffd_user_mode_only_err == -EPERM ||
		   c->uffd_user_mode_only_err == -EACCES) {
		/* The kernel itself never refuses a user-mode-only fd. */
		if (filtered)
			textf(why,
			      "blocked by a seccomp filter (Docker's default profile does this): userfaultfd(2) is refused even with UFFD_USER_MODE_ONLY; run with a seccomp profile that allows userfaultfd (e.g. docker run --security-opt seccomp=PROFILE)");
		else
			textf(why,
			      "denied by a security module: userfaultfd(2) is refused even with UFFD_USER_MODE_ONLY and no seccomp filter is active; check the LSM policy (SELinux userfaultfd class)");
	} else if (c->uffd_syscall_err == -EPERM) {
		/* Pre-5.11 kernels reject UFFD_USER_MODE_ONLY as unknown. */
		textf(why,
		      "vm.unprivileged_userfaultfd=%ld and the process lacks CAP_SYS_PTRACE (this kernel has no UFFD_USER_MODE_ONLY); run 'sysctl -w vm.unprivileged_userfaultfd=1' or grant CAP_SYS_PTRACE",
		      sysctl);
	} else {
		textf(why, "userfaultfd(2): %s; with UFFD_USER_MODE_ONLY: %s",
		      strerror(-c->uffd_syscall_err),
		      strerror(-c->uffd_user_mode_only_err));
	}
	if (c->uffd_dev_err == -EACCES || c->uffd_dev_err == -EPERM)
		textf(dev,
		      "; /dev/userfaultfd exists but this user may not open it (give it access, e.g. a group with chmod 0660)");
	else if (c->uffd_dev_err == -ENOENT)
		textf(dev,
		      "; there is no /dev/userfaultfd (kernel before 6.1, or not exposed in this container)");
	textf(r->blocked, "%s%s", why, dev);
	r->caps.uffd_blocked = r->blocked;
}

static void describe_mode_limits(struct probe_result *r)
{
	switch (r->caps.uffd_mode) {
	case UFFDWP_UFFD_USER_MODE_ONLY:
		textf(r->mode_limits,
		      "user-mode-only: under uffd_sync a system call that writes into a protected page (read(2) or recv into the buffer, O_DIRECT, io_uring, process_vm_writev) fails with EFAULT instead of waiting for the handler; uffd_async is unaffected. Access to /dev/userfaultfd, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1 lifts it");
		break;
	case UFFDWP_UFFD_DEV:
	case UFFDWP_UFFD_SYSCALL:
		textf(r->mode_limits,
		      "none: faults taken inside system calls wait for the handler like user faults");
		break;
	default:
		textf(r->mode_limits, "no userfaultfd can be opened");
		break;
	}
	r->caps.uffd_mode_limits = r->mode_limits;
}

struct fault_writer {
	volatile char *addr;
	volatile int done;
};

static void *fault_writer_fn(void *arg)
{
	struct fault_writer *w = arg;

	*w->addr = 2; /* blocks until the probe resolves the fault */
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Protect a populated page, let a thread write it, and require a write-
 * protect fault message for that page, then resolve it and see the write
 * land. Returns 1 if it worked, 0 if not (reason in @why), -errno on a
 * resource failure.
 */
static int sync_round_trip(int mode, char *why, size_t wlen)
{
	size_t ps = page_size();
	struct fault_writer w = { 0 };
	struct pollfd pfd;
	struct uffd_msg msg;
	sigset_t all, old;
	pthread_t tid;
	uint64_t ioctls;
	char *p;
	int fd, ret = 0, err;
	bool started = false;

	fd = uffd_open(mode, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return resource_error(fd) ? fd : 0;
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED) {
		ret = neg_errno();
		goto out_fd;
	}
	p[0] = 1;
	err = uffd_api(fd, SYNC_UFFD_FEATURES, NULL);
	if (err) {
		snprintf(why, wlen, "UFFDIO_API with PAGEFAULT_FLAG_WP: %s",
			 strerror(-err));
		goto out;
	}
	err = uffd_register(fd, p, ps, UFFDIO_REGISTER_MODE_WP, &ioctls);
	if (err) {
		snprintf(why, wlen,
			 "UFFDIO_REGISTER_MODE_WP on anonymous memory: %s",
			 strerror(-err));
		goto out;
	}
	if (!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		snprintf(why, wlen,
			 "UFFDIO_REGISTER did not offer UFFDIO_WRITEPROTECT");
		goto out;
	}
	err = uffd_writeprotect(fd, p, ps, UFFDIO_WRITEPROTECT_MODE_WP);
	if (err) {
		snprintf(why, wlen, "UFFDIO_WRITEPROTECT: %s", strerror(-err));
		goto out;
	}

	/* The writer must not run the application's signal handlers. */
	w.addr = p;
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&tid, NULL, fault_writer_fn, &w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		ret = err;
		goto out;
	}
	started = true;

	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, PROBE_FAULT_TIMEOUT_MS) != 1) {
		snprintf(why, wlen, "no fault message within %d ms",
			 PROBE_FAULT_TIMEOUT_MS);
		goto out;
	}
	if (read(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		snprintf(why, wlen, "reading the fault message: %s",
			 strerror(errno));
		goto out;
	}
	if (msg.event != UFFD_EVENT_PAGEFAULT ||
	    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) ||
	    (msg.arg.pagefault.address & ~(uint64_t)(ps - 1)) != (uintptr_t)p) {
		snprintf(why, wlen, "unexpected message (event %u flags %#llx)",
			 msg.event,
			 (unsigned long long)msg.arg.pagefault.flags);
		goto out;
	}
	err = uffd_writeprotect(fd, p, ps, 0);
	if (err) {
		snprintf(why, wlen, "unprotect: %s", strerror(-err));
		goto out;
	}
	pthread_join(tid, NULL);
	started = false;
	if (p[0] != 2) {
		snprintf(why, wlen, "the resolved write did not land");
		goto out;
	}
	ret = 1;
out:
	/* Closing the uffd drops the protection and wakes a stuck writer. */
	close(fd);
	fd = -1;
	if (started)
		pthread_join(tid, NULL);
	munmap(p, ps);
out_fd:
	if (fd >= 0)
		close(fd);
	return ret;
}

struct scan_count {
	size_t regions;
	uintptr_t first_start, first_end;
};

static int count_regions(const struct page_region *vec, size_t n, void *arg)
{
	struct scan_count *c = arg;

	if (!c->regions) {
		c->first_start = vec[0].start;
		c->first_end = vec[0].end;
	}
	c->regions += n;
	return 0;
}

/*
 * The async backend's cycle on four pages: register with WP_ASYNC, arm with
 * the backend's scan, read one page (maps the zero page, must stay clean),
 * write another, and require the scan to report exactly that page and then,
 * re-armed, nothing. Returns 1, 0 (reason in @why) or -errno (resources).
 */
static int async_round_trip(int mode, char *why, size_t wlen)
{
	size_t ps = page_size(), len = 4 * ps;
	struct page_region vec[8];
	struct scan_count c;
	volatile char *v;
	char *p;
	long n;
	int fd, pm, ret = 0, err;

	fd = uffd_open(mode, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return resource_error(fd) ? fd : 0;
	pm = pagemap_open();
	if (pm < 0) {
		snprintf(why, wlen, "open /proc/self/pagemap: %s",
			 strerror(-pm));
		ret = resource_error(pm) ? pm : 0;
		goto out_fd;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED) {
		ret = neg_errno();
		goto out_pm;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	v = p;

	err = uffd_api(fd, ASYNC_UFFD_FEATURES, NULL);
	if (err) {
		snprintf(why, wlen, "UFFDIO_API with WP_ASYNC: %s",
			 strerror(-err));
		goto out;
	}
	err = uffd_register(fd, p, len, UFFDIO_REGISTER_MODE_WP, NULL);
	if (err) {
		snprintf(why, wlen, "UFFDIO_REGISTER_MODE_WP: %s",
			 strerror(-err));
		goto out;
	}
	n = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + len, ASYNC_SCAN_FLAGS,
			 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, vec, ARRAY_SIZE(vec),
			 NULL, NULL);
	if (n < 0) {
		snprintf(why, wlen, "arming PAGEMAP_SCAN(WP_MATCHING): %s",
			 strerror((int)-n));
		goto out;
	}
	(void)v[ps];
	v[2 * ps] = 1;
	memset(&c, 0, sizeof(c));
	n = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + len, ASYNC_SCAN_FLAGS,
			 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, vec, ARRAY_SIZE(vec),
			 count_regions, &c);
	if (n < 0) {
		snprintf(why, wlen, "collecting PAGEMAP_SCAN: %s",
			 strerror((int)-n));
		goto out;
	}
	if (c.regions != 1 || c.first_start != (uintptr_t)p + 2 * ps ||
	    c.first_end != (uintptr_t)p + 3 * ps) {
		snprintf(
			why, wlen,
			"PAGEMAP_SCAN reported %zu regions for one written page",
			c.regions);
		goto out;
	}
	memset(&c, 0, sizeof(c));
	n = pagemap_scan(pm, (uintptr_t)p, (uintptr_t)p + len, ASYNC_SCAN_FLAGS,
			 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, vec, ARRAY_SIZE(vec),
			 count_regions, &c);
	if (n < 0 || c.regions) {
		snprintf(why, wlen,
			 "the written page was not re-protected by the scan");
		goto out;
	}
	ret = 1;
out:
	munmap(p, len);
out_pm:
	close(pm);
out_fd:
	close(fd);
	return ret;
}

/*
 * valgrind implements neither userfaultfd(2) nor its ioctls, and it runs one
 * thread at a time: a thread blocked in a write-protect fault would stall
 * the handler that should resolve it, and the whole process with it.
 */
static bool under_valgrind(void)
{
	const char *preload = getenv("LD_PRELOAD");

#ifdef HAVE_VALGRIND_H
	if (RUNNING_ON_VALGRIND)
		return true;
#endif
	return preload && strstr(preload, "vgpreload");
}

int probe_uffd(struct probe_result *r)
{
	static const int order[] = { UFFDWP_UFFD_DEV, UFFDWP_UFFD_SYSCALL,
				     UFFDWP_UFFD_USER_MODE_ONLY };
	struct uffdwp_caps *c = &r->caps;
	char why[PROBE_TEXT];
	uint64_t features = 0;
	int *errs[] = { &c->uffd_dev_err, &c->uffd_syscall_err,
			&c->uffd_user_mode_only_err };
	int fd, ret;
	size_t i;

	/*
	 * Prefer a mode that serves faults taken in system calls: the device
	 * (no sysctl, no capability), then the plain syscall, then user-mode
	 * only, which works for anyone on 5.11+.
	 */
	c->uffd_mode = UFFDWP_UFFD_NONE;
	if (under_valgrind()) {
		for (i = 0; i < ARRAY_SIZE(errs); i++)
			*errs[i] = -ENOSYS;
		describe_mode_limits(r);
		textf(r->blocked,
		      "running under valgrind, which does not implement userfaultfd (a blocked write-protect fault would stall every thread); run without valgrind");
		c->uffd_blocked = r->blocked;
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(order); i++) {
		fd = uffd_open(order[i], O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 && resource_error(fd))
			return fd;
		*errs[i] = fd < 0 ? fd : 0;
		if (fd >= 0) {
			close(fd);
			if (c->uffd_mode == UFFDWP_UFFD_NONE)
				c->uffd_mode = order[i];
		}
	}
	describe_mode_limits(r);
	if (c->uffd_mode == UFFDWP_UFFD_NONE) {
		diagnose_blocked(r);
		return 0;
	}

	/* UFFDIO_API works once per fd: ask for nothing to learn everything. */
	fd = uffd_open(c->uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return resource_error(fd) ? fd : 0;
	ret = uffd_api(fd, 0, &features);
	close(fd);
	if (ret) {
		textf(r->blocked, "UFFDIO_API failed: %s", strerror(-ret));
		c->uffd_blocked = r->blocked;
		return 0;
	}
	c->uffd_features = features;

	if (features & UFFD_FEATURE_EVENT_FORK) {
		fd = uffd_open(c->uffd_mode, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return resource_error(fd) ? fd : 0;
		c->event_fork = uffd_api(fd, UFFD_FEATURE_EVENT_FORK, NULL) ==
				0;
		close(fd);
	}

	if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		textf(r->reason[UFFDWP_BACKEND_UFFD_SYNC],
		      "kernel lacks userfaultfd write-protect (UFFD_FEATURE_PAGEFAULT_FLAG_WP: Linux 5.7+ on x86_64, 6.10+ on arm64)");
	} else {
		why[0] = 0;
		ret = sync_round_trip(c->uffd_mode, why, sizeof(why));
		if (ret < 0)
			return ret;
		c->uffd_wp = ret;
		if (ret && (features & UFFD_FEATURE_WP_UNPOPULATED))
			textf(r->reason[UFFDWP_BACKEND_UFFD_SYNC],
			      "write-protect fault round trip works (%s)",
			      uffdwp_uffd_mode_name(c->uffd_mode));
		else if (ret)
			textf(r->reason[UFFDWP_BACKEND_UFFD_SYNC],
			      "write-protect fault round trip works (%s); no WP_UNPOPULATED (6.4+), so tracked ranges are populated before arming",
			      uffdwp_uffd_mode_name(c->uffd_mode));
		else
			textf(r->reason[UFFDWP_BACKEND_UFFD_SYNC],
			      "write-protect fault round trip failed: %s", why);
	}
	c->backend[UFFDWP_BACKEND_UFFD_SYNC].usable = c->uffd_wp;

	if (!(features & UFFD_FEATURE_WP_ASYNC)) {
		textf(r->reason[UFFDWP_BACKEND_UFFD_ASYNC],
		      "kernel lacks UFFD_FEATURE_WP_ASYNC (Linux 6.7+)");
	} else if (!c->pagemap_scan) {
		textf(r->reason[UFFDWP_BACKEND_UFFD_ASYNC],
		      "PAGEMAP_SCAN does not accept the async masks (see pagemap_scan)");
	} else {
		why[0] = 0;
		ret = async_round_trip(c->uffd_mode, why, sizeof(why));
		if (ret < 0)
			return ret;
		r->uffd_async = ret;
		if (ret)
			textf(r->reason[UFFDWP_BACKEND_UFFD_ASYNC],
			      "WP_ASYNC + PAGEMAP_SCAN get-and-re-protect round trip works");
		else
			textf(r->reason[UFFDWP_BACKEND_UFFD_ASYNC],
			      "WP_ASYNC round trip failed: %s", why);
	}
	return 0;
}
