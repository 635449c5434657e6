/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The self-service round trip (UFFD_FEATURE_SIGBUS), tried for real: a
 * write to a write-protected page must raise SIGBUS in the writing thread,
 * at that address; a handler that unprotects the page must let the write
 * land; and a write the kernel makes there must fail with EFAULT at once.
 *
 * A signal handler is process-wide, and the probe must not install one in
 * the program. So the round trip runs in a throw-away child: a raw
 * clone(2), which runs no fork handler (neither the program's nor ours)
 * and signals nobody when it exits (no exit signal: a program that reaps
 * every child with waitpid(-1) does not see it). The child makes system
 * calls only (its own userfaultfd: registration does not survive a fork)
 * and ends with _exit(); it never returns into the library.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "sys-uffd.h"

#define CHILD_TIMEOUT_MS 2000

/* The child's exit statuses past 0: what went wrong, for the reason. */
enum {
	BUS_OK,
	BUS_NO_UFFD,
	BUS_NO_API,
	BUS_NO_MAP,
	BUS_NO_REGISTER,
	BUS_NO_PROTECT,
	BUS_NO_HANDLER,
	BUS_WRONG_SIGNAL, /* not at the page, or not BUS_ADRERR */
	BUS_UNPROTECT_FAILED,
	BUS_NO_SIGNAL, /* the write went through without one */
	BUS_LOST_WRITE,
	BUS_KERNEL_WRITE, /* read(2) into a protected page did not EFAULT */
	BUS_STATUSES
};

static const char *const bus_text[BUS_STATUSES] = {
	[BUS_NO_UFFD] = "the child could not open a userfaultfd",
	[BUS_NO_API] =
		"UFFDIO_API refused UFFD_FEATURE_SIGBUS with write-protect",
	[BUS_NO_MAP] = "the child could not map a page",
	[BUS_NO_REGISTER] = "UFFDIO_REGISTER_MODE_WP failed",
	[BUS_NO_PROTECT] = "UFFDIO_WRITEPROTECT failed",
	[BUS_NO_HANDLER] = "sigaction(SIGBUS) failed",
	[BUS_WRONG_SIGNAL] =
		"the SIGBUS was not a BUS_ADRERR at the written page",
	[BUS_UNPROTECT_FAILED] = "unprotecting in the SIGBUS handler failed",
	[BUS_NO_SIGNAL] = "a write to a protected page raised no SIGBUS",
	[BUS_LOST_WRITE] = "the write did not land after the handler returned",
	[BUS_KERNEL_WRITE] =
		"read(2) into a protected page did not fail with EFAULT",
};

static volatile char *bus_page;
static int bus_fd;
static volatile sig_atomic_t bus_hits;

static void bus_handler(int sig, siginfo_t *info, void *uctx)
{
	(void)sig;
	(void)uctx;
	bus_hits++;
	if (info->si_addr != (void *)bus_page || info->si_code != BUS_ADRERR)
		_exit(BUS_WRONG_SIGNAL);
	if (uffd_writeprotect(bus_fd, (void *)bus_page, page_size(),
			      UFFDIO_WRITEPROTECT_MODE_DONTWAKE))
		_exit(BUS_UNPROTECT_FAILED);
}

static __attribute__((noreturn)) void child(int mode)
{
	struct sigaction sa = { .sa_sigaction = bus_handler,
				.sa_flags = SA_SIGINFO };
	size_t ps = page_size();
	sigset_t bus;
	int pfd[2];

	bus_fd = uffd_open(mode, O_CLOEXEC);
	if (bus_fd < 0)
		_exit(BUS_NO_UFFD);
	if (uffd_api(bus_fd, SYNC_UFFD_FEATURES | UFFD_FEATURE_SIGBUS, NULL))
		_exit(BUS_NO_API);
	bus_page = mmap(NULL, ps, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bus_page == MAP_FAILED)
		_exit(BUS_NO_MAP);
	bus_page[0] = 1;
	if (uffd_register(bus_fd, (void *)bus_page, ps, UFFDIO_REGISTER_MODE_WP,
			  NULL))
		_exit(BUS_NO_REGISTER);
	if (uffd_writeprotect(bus_fd, (void *)bus_page, ps,
			      UFFDIO_WRITEPROTECT_MODE_WP))
		_exit(BUS_NO_PROTECT);
	/* A kernel write first: EFAULT, and no signal. */
	if (pipe(pfd) || write(pfd[1], "k", 1) != 1)
		_exit(BUS_NO_MAP);
	if (read(pfd[0], (void *)bus_page, 1) != -1 || errno != EFAULT)
		_exit(BUS_KERNEL_WRITE);
	sigemptyset(&sa.sa_mask);
	sigemptyset(&bus);
	sigaddset(&bus, SIGBUS);
	if (sigaction(SIGBUS, &sa, NULL) ||
	    sigprocmask(SIG_UNBLOCK, &bus, NULL))
		_exit(BUS_NO_HANDLER);
	bus_page[0] = 2;
	if (bus_hits != 1)
		_exit(BUS_NO_SIGNAL);
	if (bus_page[0] != 2)
		_exit(BUS_LOST_WRITE);
	_exit(BUS_OK);
}

/* The child's status within CHILD_TIMEOUT_MS, or -1 (killed). */
static int reap(pid_t pid)
{
	const struct timespec ms = { .tv_nsec = 1000 * 1000 };
	int status, i;

	for (i = 0; i < CHILD_TIMEOUT_MS; i++) {
		if (waitpid(pid, &status, __WCLONE | WNOHANG) == pid)
			return status;
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, __WCLONE);
	return -1;
}

int probe_sigbus(struct probe_result *r)
{
	struct uffdwp_caps *c = &r->caps;
	int status;
	pid_t pid;

	if (!c->uffd_wp) {
		textf(r->sigbus_reason,
		      "needs userfaultfd write-protect: %.500s",
		      r->reason[UFFDWP_BACKEND_UFFD_SYNC]);
		return 0;
	}
	if (!(c->uffd_features & UFFD_FEATURE_SIGBUS)) {
		textf(r->sigbus_reason,
		      "kernel lacks UFFD_FEATURE_SIGBUS (Linux 4.14+)");
		return 0;
	}
	/* No flags but the exit signal's (none): a copy of this process,
	 * like fork() without its handlers. */
	pid = (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		if (resource_error(-errno) || errno == EAGAIN)
			return -errno;
		textf(r->sigbus_reason, "clone(2) for the round trip: %s",
		      strerror(errno));
		return 0;
	}
	if (pid == 0)
		child(c->uffd_mode);
	status = reap(pid);
	if (status == -1) {
		textf(r->sigbus_reason,
		      "the round trip did not finish within %d ms",
		      CHILD_TIMEOUT_MS);
	} else if (WIFSIGNALED(status)) {
		textf(r->sigbus_reason, "the round trip died of signal %d (%s)",
		      WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (WEXITSTATUS(status) != BUS_OK) {
		textf(r->sigbus_reason, "%s",
		      WEXITSTATUS(status) < BUS_STATUSES ?
			      bus_text[WEXITSTATUS(status)] :
			      "the round trip failed");
	} else {
		c->uffd_sigbus = 1;
		textf(r->sigbus_reason,
		      "SIGBUS round trip works: the writing thread resolves its own fault; a kernel write into a protected page fails with EFAULT");
	}
	return 0;
}
