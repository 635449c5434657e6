/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library's signal discipline: see segv.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"
#include "segv.h"

/* Raised by the faulting instruction itself: never block these. */
static const int sync_signals[] = { SIGSEGV, SIGBUS,  SIGILL,
				    SIGFPE,  SIGTRAP, SIGSYS };

void segv_thread_mask(sigset_t *set)
{
	size_t i;

	sigfillset(set);
	for (i = 0; i < ARRAY_SIZE(sync_signals); i++)
		sigdelset(set, sync_signals[i]);
}

static segv_owner_fn owners[SEGV_OWNERS];
/* The signal each owner's faults raise. */
static const int owner_sig[SEGV_OWNERS] = {
	[SEGV_OWNER_GATE] = SIGSEGV,
	[SEGV_OWNER_MPROTECT] = SIGSEGV,
	[SEGV_OWNER_SELF] = SIGBUS,
};
/* The handlers that were there before ours (the program's, or the
 * default): [0] for SIGSEGV, [1] for SIGBUS. */
static struct sigaction before[2];
static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed[2];

static int sig_slot(int sig)
{
	return sig == SIGBUS;
}

/* Hand the fault to the handler before ours, run under the mask it asked
 * for (the interrupted mask and its sa_mask) rather than ours. */
static void chain(const struct sigaction *previous, int sig, siginfo_t *info,
		  void *uctx)
{
	const ucontext_t *uc = uctx;
	sigset_t mask, ours;
	size_t i;

	if (!(previous->sa_flags & SA_SIGINFO) &&
	    (previous->sa_handler == SIG_IGN ||
	     previous->sa_handler == SIG_DFL)) {
		/* Ignoring a synchronous signal would spin on the fault.
		 * Returning with the default restored re-runs the access,
		 * which now kills the process as if we had never been
		 * installed. */
		signal(sig, SIG_DFL);
		return;
	}
	/* The program's handler runs as the kernel would have run it: the
	 * interrupted mask plus its own sa_mask. Synchronous signals stay
	 * deliverable as under ours. (The kernel restores the interrupted
	 * mask when the outer handler returns.) */
	mask = uc->uc_sigmask;
	for (i = 1; i < NSIG; i++)
		if (sigismember(&previous->sa_mask, (int)i) == 1)
			sigaddset(&mask, (int)i);
	for (i = 0; i < ARRAY_SIZE(sync_signals); i++)
		if (sigismember(&uc->uc_sigmask, sync_signals[i]) != 1)
			sigdelset(&mask, sync_signals[i]);
	pthread_sigmask(SIG_SETMASK, &mask, &ours);
	if (previous->sa_flags & SA_SIGINFO)
		previous->sa_sigaction(sig, info, uctx);
	else
		previous->sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &ours, NULL);
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
	segv_owner_fn fn;
	int saved = errno;
	size_t i;

	for (i = 0; i < SEGV_OWNERS; i++) {
		if (owner_sig[i] != sig)
			continue;
		fn = __atomic_load_n(&owners[i], __ATOMIC_ACQUIRE);
		if (fn && fn(sig, info, uctx)) {
			errno = saved;
			return;
		}
		errno = saved;
	}
	chain(&before[sig_slot(sig)], sig, info, uctx);
}

int segv_own(enum segv_owner owner, segv_owner_fn fn)
{
	int sig = owner_sig[owner], slot = sig_slot(sig);
	struct sigaction sa;
	int ret = 0;

	pthread_mutex_lock(&own_lock);
	if (!installed[slot]) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_fault;
		/* NODEFER: a fault while one is handled (a chained
		 * handler's own) is delivered; a blocked synchronous signal
		 * would be a forced kill. */
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
		/* No asynchronous signal while in flight (see segv.h). */
		segv_thread_mask(&sa.sa_mask);
		if (sigaction(sig, &sa, &before[slot]))
			ret = neg_errno();
		else
			installed[slot] = true;
	}
	if (!ret)
		__atomic_store_n(&owners[owner], fn, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&own_lock);
	return ret;
}

void segv_wait_unblocked(const void *uctx)
{
	const ucontext_t *uc = uctx;
	sigset_t mask = uc->uc_sigmask;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sync_signals); i++)
		sigdelset(&mask, sync_signals[i]);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

void segv_window_enter(sigset_t *old)
{
	sigset_t set;

	segv_thread_mask(&set);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

void segv_window_leave(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* The thread inside fork() with urcu-bp's mask, or 0. */
static pid_t forking_tid;

void segv_fork_begin(void)
{
	__atomic_store_n(&forking_tid, (pid_t)syscall(SYS_gettid),
			 __ATOMIC_SEQ_CST);
}

void segv_fork_end(void)
{
	__atomic_store_n(&forking_tid, 0, __ATOMIC_SEQ_CST);
}

/* Whether the "SigBlk:" line of one thread's status file has @sig. */
static int status_blocks(int dirfd, const char *tid, int sig)
{
	char path[64], buf[4096], *line;
	unsigned long long mask;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/status", tid);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : neg_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return errno == ESRCH ? 0 : neg_errno(); /* exited meanwhile */
	buf[n] = '\0';
	line = strstr(buf, "\nSigBlk:");
	if (!line || sscanf(line + 8, "%llx", &mask) != 1)
		return -EIO;
	/* Signal 32 (glibc's SIGCANCEL) is never blocked by the program:
	 * pthread_sigmask() and sigprocmask() leave it out. glibc blocks it
	 * only around creating a thread (in the creator, and in the new
	 * thread until it takes its own mask): that is not the program's
	 * mask, however long the new thread waits for a CPU. */
	if (mask & (1ULL << (32 - 1)))
		return 0;
	return !!(mask & (1ULL << (sig - 1)));
}

/* getdents64(2)'s record: glibc 2.36 has no wrapper. */
struct dirent64_rec {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* One pass over /proc/self/task, read with getdents64 into a buffer on
 * the stack (not opendir()'s heap: see proc_fopen()). */
static int one_look(int sig)
{
	char buf[4096];
	struct dirent64_rec *e;
	long n, i;
	int dir, ret = 0;

	dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return neg_errno();
	while (!ret && (n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
		for (i = 0; !ret && i < n; i += e->reclen) {
			e = (struct dirent64_rec *)(buf + i);
			if (e->name[0] != '.' &&
			    atol(e->name) != __atomic_load_n(&forking_tid,
							     __ATOMIC_SEQ_CST))
				ret = status_blocks(dir, e->name, sig);
		}
	if (!ret && n < 0)
		ret = neg_errno();
	close(dir);
	return ret;
}

/*
 * A thread blocks every signal for a moment while glibc creates a thread
 * (both the creator and the new thread, until it takes its own mask), and
 * so do posix_spawn() and others. Those masks hold signal 32, which no
 * program mask does (status_blocks()); besides, only a thread seen
 * blocking in three looks a millisecond apart counts.
 */
int segv_blocked_somewhere(int sig)
{
	const struct timespec ms = { .tv_nsec = 1000 * 1000 };
	int look, ret = 0;

	for (look = 0; look < 3; look++) {
		if (look)
			nanosleep(&ms, NULL);
		ret = one_look(sig);
		if (ret <= 0)
			break;
	}
	return ret;
}
