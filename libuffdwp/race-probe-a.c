/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race probe A: lost updates of the kernel's copy-on-write under
 * write-protection (the 2020 stale-TLB race, reference/kernel.md 1-2).
 *
 * A write-protect that demotes PTEs under mmap_read_lock defers its TLB
 * flush. If another CPU faults on the hot page H meanwhile and the kernel
 * copies H, a third CPU still holding a writable translation of the old
 * page stores into it after the copy, and the store is lost. Fixed kernels
 * flush before such a copy; this probe tests the behaviour, not a version.
 *
 * Roles, each a thread pinned to its own CPU where there are enough:
 *  - T_stale increments a counter in H and nothing else, so its TLB entry
 *    stays hot;
 *  - T_fault increments it too, then reads thousands of other pages of the
 *    region so its own entry is evicted and its next write walks the page
 *    table and faults;
 *  - T_cow keeps H shared with a short-lived child process: since 5.19 an
 *    exclusive anonymous page is reused whatever its reference count, and
 *    only sharing forces the copy;
 *  - T_prot cycles the protect primitive over the whole region (sync uffd:
 *    UFFDIO_WRITEPROTECT on and off, a handler thread unprotecting each
 *    faulting page; async: PAGEMAP_SCAN; soft-dirty: clear_refs).
 * Copies of H are counted as changes of its page frame number. Every thread counts its increments; afterwards the counter in H must equal
 * their sum. The test build's software model (race-probe-a-model.c)
 * goes through the same verdict code.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "segv.h"
#include "sys-pagemap.h"
#include "race-probe-a.h"
#include "race-probe.h"
#include "sys-uffd.h"

#define A_DEFAULT_BYTES (64UL << 20)
/* Below this a mapping failure is not a matter of size any more. */
#define A_MIN_BYTES (1UL << 20)
/* More pages than a current x86 STLB holds (1.5-3k entries): enough to
 * evict T_fault's entry for H. */
#define A_EVICT_PAGES 4096
/* How long T_cow keeps a child: H is copied on the first write after a
 * fork, and T_stale writes all the time, so a short hold suffices. */
#define A_HOLD_NS 200000ULL
/* A child left alone (its parent thread gone) exits after this long. */
#define A_CHILD_TICKS 3000 /* x 10 ms */
#define A_FORK_RETRIES 10
/* Bound on joining writers before the uffd is closed to free them. */
#define A_JOIN_S 10
#define A_POLL_MS 50

void a_ns_sleep(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL),
			       (long)(ns % 1000000000ULL) };

	nanosleep(&ts, NULL);
}

void a_wait_until(uint64_t deadline, const int *flag)
{
	uint64_t now;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		now = now_ns();
		if (now >= deadline)
			break;
		a_ns_sleep(deadline - now < 10000000ULL ? deadline - now :
							  10000000ULL);
	}
}

void a_judge(struct race_run *run, const struct a_tally *t)
{
	struct uffdwp_race_result *out = run->out;
	unsigned long long cycles = t->cycles, copies = t->copies;
	char weak[120];
	size_t off = 0;

	out->cycles = t->cycles;
	out->faults = t->faults;
	out->copy_events = t->copies;
	out->expected = t->expected;
	out->actual = t->actual;
	out->lost = 0;
	out->fail_offset = 0;
	out->fail_cycle = 0;

	if (t->actual < t->expected) {
		out->lost = t->expected - t->actual;
		out->fail_cycle = t->cycles;
		out->verdict = UFFDWP_RACE_FAIL;
		race_why(
			out,
			"lost %llu increments on the hot page under %s after %llu cycles",
			(unsigned long long)out->lost, t->label, cycles);
		return;
	}
	if (t->actual > t->expected) {
		/* More increments than anyone made: the count is broken, so
		 * nothing the run says can be trusted. */
		out->fail_cycle = t->cycles;
		out->verdict = UFFDWP_RACE_FAIL;
		race_why(
			out,
			"probe bug: hot page counter %llu exceeds the %llu increments counted under %s",
			(unsigned long long)t->actual,
			(unsigned long long)t->expected, t->label);
		return;
	}
	if (t->evict_bad) {
		out->fail_offset = t->evict_off;
		out->expected = 0;
		out->actual = t->evict_val;
		out->fail_cycle = t->cycles;
		out->verdict = UFFDWP_RACE_FAIL;
		race_why(
			out,
			"page at offset %#llx, never written, read %#llx under %s",
			(unsigned long long)t->evict_off,
			(unsigned long long)t->evict_val, t->label);
		return;
	}
	if (t->err) {
		out->verdict = UFFDWP_RACE_INCONCLUSIVE;
		race_why(out, "%s failed after %llu cycles: %s", t->err_what,
			 cycles, strerror(-t->err));
		return;
	}
	if (!t->copies) {
		out->verdict = UFFDWP_RACE_INCONCLUSIVE;
		race_why(out, "no copy-on-write happened: nothing could race");
		return;
	}

	weak[0] = 0;
	if (run->cpus < RACE_STRONG_CPUS)
		off += (size_t)snprintf(weak + off, sizeof(weak) - off,
					"%u CPUs < %d (roles share CPUs)",
					run->cpus, RACE_STRONG_CPUS);
	if (off < sizeof(weak) && t->cycles < RACE_STRONG_CYCLES)
		off += (size_t)snprintf(weak + off, sizeof(weak) - off,
					"%s%llu cycles < %d", off ? ", " : "",
					cycles, RACE_STRONG_CYCLES);
	if (off < sizeof(weak) && t->copies < RACE_STRONG_COPIES)
		off += (size_t)snprintf(weak + off, sizeof(weak) - off,
					"%s%llu copies < %d", off ? ", " : "",
					copies, RACE_STRONG_COPIES);
	if (off) {
		out->verdict = UFFDWP_RACE_PASS_WEAK;
		race_why(out, "no loss; weak: %s%s%s", weak,
			 t->note ? "; " : "", t->note ? t->note : "");
	} else {
		out->verdict = UFFDWP_RACE_PASS_STRONG;
		race_why(
			out,
			"no loss in %llu cycles, %llu copies of the hot page%s%s",
			cycles, copies, t->note ? "; " : "",
			t->note ? t->note : "");
	}
}

/* --- the kernel probe ------------------------------------------------- */

struct a_kernel {
	char *mem;
	size_t len, npages, evict;
	uint64_t *hot; /* first word of the first page */
	int mechanism;
	int uffd, pm;
	int stop; /* writers, T_cow, T_prot */
	int hstop; /* the handler, stopped last */
	int failed;
	int err;
	/* H's frame as last seen by T_prot or T_cow, and the changes. */
	pthread_mutex_t pfn_lock;
	uint64_t last_pfn, copies;
	bool pfn_seen, pfn_hidden;
	const char *err_what;
	/* Each written by one thread, read after it is joined. */
	uint64_t n_stale, n_fault, cycles, handled, forks;
	bool evict_bad;
	uint64_t evict_off, evict_val;
};

/* The first error wins; the main thread notices and ends the run. */
static void a_fail(struct a_kernel *k, const char *what, int err)
{
	int zero = 0;

	if (__atomic_compare_exchange_n(&k->failed, &zero, 1, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		k->err = err;
		k->err_what = what;
	}
}

static void *t_stale(void *arg)
{
	struct a_kernel *k = arg;
	uint64_t n = 0;

	race_pin(CPU_STALE);
	while (!stopping(&k->stop)) {
		__atomic_fetch_add(k->hot, 1, __ATOMIC_RELAXED);
		n++;
	}
	k->n_stale = n;
	return NULL;
}

static void *t_fault(void *arg)
{
	struct a_kernel *k = arg;
	size_t ps = page_size(), next = 1, i, off;
	uint64_t n = 0, v;

	race_pin(CPU_FAULT);
	while (!stopping(&k->stop)) {
		__atomic_fetch_add(k->hot, 1, __ATOMIC_RELAXED);
		n++;
		for (i = 0; i < k->evict; i++) {
			/* Varying the offset spreads the reads over cache
			 * sets; only the TLB is meant to be thrashed. */
			off = next * ps + (next * 64) % ps;
			v = *(volatile uint64_t *)(k->mem + off);
			if (unlikely(v) && !k->evict_bad) {
				k->evict_bad = true;
				k->evict_off = off;
				k->evict_val = v;
			}
			if (++next == k->npages)
				next = 1;
		}
	}
	k->n_fault = n;
	return NULL;
}

/* The child only waits to be killed; it runs no code that touches R. */
static __attribute__((noreturn)) void cow_child(pid_t parent)
{
	int i;

	/* Die with the thread that forked it, and never linger alone. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (i = 0; i < A_CHILD_TICKS && getppid() == parent; i++)
		a_ns_sleep(10000000ULL);
	_exit(0);
}

/*
 * fork() without the C library: pthread_atfork handlers of the application
 * and of other libraries must not run for a child that only waits, and the
 * child, a copy of a multithreaded process, may only make system calls. No
 * exit signal either: the application's SIGCHLD handling never sees it (a
 * handler reaping with waitpid(-1) would not find it, SIG_IGN would not
 * reap it away from us); waitpid(__WALL) reaps it.
 */
static pid_t raw_fork(void)
{
#if defined(__s390__) || defined(__CRIS__)
	return (pid_t)syscall(SYS_clone, 0, 0);
#else
	return (pid_t)syscall(SYS_clone, 0, 0, 0, 0, 0);
#endif
}

/*
 * A copy of H gives it a new frame: count the changes. Sampled by T_prot
 * every cycle and by T_cow before each child dies, whichever sees the
 * change first counts it: one reader alone misses copies that follow each
 * other faster than it samples. The lock orders read and compare, else a
 * sample read before a copy but compared after it would count it twice.
 */
static void sample_pfn(struct a_kernel *k)
{
	uint64_t e, pfn;

	pthread_mutex_lock(&k->pfn_lock);
	if (pagemap_entry(k->pm, k->hot, &e) || !(e & PM_PRESENT))
		goto out;
	pfn = e & PM_PFN_MASK;
	if (!pfn) {
		/* Without CAP_SYS_ADMIN pagemap hides frame numbers. */
		k->pfn_hidden = true;
		goto out;
	}
	k->pfn_seen = true;
	if (k->last_pfn && pfn != k->last_pfn)
		k->copies++;
	k->last_pfn = pfn;
out:
	pthread_mutex_unlock(&k->pfn_lock);
}

static void *t_cow(void *arg)
{
	struct a_kernel *k = arg;
	pid_t parent = getpid(), pid;
	int fails = 0;

	race_pin(CPU_COW);
	while (!stopping(&k->stop)) {
		pid = raw_fork();
		if (pid == 0)
			cow_child(parent);
		if (pid < 0) {
			/* EAGAIN under a process limit can be transient. */
			if (++fails >= A_FORK_RETRIES) {
				a_fail(k, "fork", neg_errno());
				break;
			}
			a_ns_sleep(10000000ULL);
			continue;
		}
		fails = 0;
		k->forks++;
		a_ns_sleep(A_HOLD_NS);
		sample_pfn(k);
		kill(pid, SIGKILL);
		/* Reap it whatever happens: no zombie outlives the probe. */
		while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

/* One protect cycle over the whole region. */
static int a_protect(struct a_kernel *k)
{
	long n;
	int ret;

	switch (k->mechanism) {
	case UFFDWP_RACE_UFFD_SYNC:
		ret = uffd_writeprotect(k->uffd, k->mem, k->len,
					UFFDIO_WRITEPROTECT_MODE_WP);
		if (ret && ret != -EAGAIN)
			return ret;
		/* The unprotect races the handler's per-page ones too:
		 * the second sequence of reference/kernel.md 1.2. */
		ret = uffd_writeprotect(k->uffd, k->mem, k->len, 0);
		return ret == -EAGAIN ? 0 : ret;
	case UFFDWP_RACE_UFFD_ASYNC:
		n = pagemap_scan(k->pm, (uintptr_t)k->mem,
				 (uintptr_t)k->mem + k->len, ASYNC_SCAN_FLAGS,
				 ASYNC_SCAN_MASK, ASYNC_SCAN_MASK, NULL, 0,
				 NULL, NULL);
		return n < 0 ? (int)n : 0;
	default:
		return pagemap_clear_soft_dirty();
	}
}

static const char *a_protect_name(int mechanism)
{
	switch (mechanism) {
	case UFFDWP_RACE_UFFD_SYNC:
		return "UFFDIO_WRITEPROTECT";
	case UFFDWP_RACE_UFFD_ASYNC:
		return "PAGEMAP_SCAN";
	default:
		return "clear_refs";
	}
}

static void *t_prot(void *arg)
{
	struct a_kernel *k = arg;
	int ret;

	race_pin(CPU_PROT);
	while (!stopping(&k->stop)) {
		ret = a_protect(k);
		if (ret) {
			a_fail(k, a_protect_name(k->mechanism), ret);
			break;
		}
		k->cycles++;
		sample_pfn(k);
	}
	return NULL;
}

/* Sync uffd: resolve every write fault at once, so writers never wait. */
static void *t_handler(void *arg)
{
	struct a_kernel *k = arg;
	struct pollfd pfd = { .fd = k->uffd, .events = POLLIN };
	struct uffd_msg msgs[16];
	uintptr_t mask = ~(uintptr_t)(page_size() - 1);
	ssize_t got;
	size_t i;
	int ret;

	race_pin(CPU_COW);
	while (!stopping(&k->hstop)) {
		if (poll(&pfd, 1, A_POLL_MS) <= 0)
			continue;
		got = read(k->uffd, msgs, sizeof(msgs));
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			a_fail(k, "reading the userfaultfd", neg_errno());
			break;
		}
		for (i = 0; i < (size_t)got / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			ret = uffd_writeprotect(
				k->uffd,
				(void *)(uintptr_t)(msgs[i].arg.pagefault
							    .address &
						    mask),
				page_size(), 0);
			if (ret && ret != -EAGAIN) {
				a_fail(k, "unprotecting a faulting page", ret);
				break;
			}
			k->handled++;
		}
	}
	return NULL;
}

static uint64_t minor_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)ru.ru_minflt;
}

/* Map R, small pages only, every page populated with a page of its own. */
static int a_map(struct a_kernel *k, size_t want)
{
	size_t ps = page_size(), len = want / ps * ps, i;

	if (len < 2 * ps)
		return -EINVAL;
	for (;; len /= 2) {
		len = len / ps * ps;
		if (len < A_MIN_BYTES && len < want)
			return -ENOMEM;
		k->mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (k->mem != MAP_FAILED)
			break;
		k->mem = NULL;
		if (len <= 2 * ps)
			return -ENOMEM;
	}
	k->len = len;
	k->npages = len / ps;
	if (k->npages < 2) {
		munmap(k->mem, len);
		k->mem = NULL;
		return -EINVAL;
	}
	/* No THP: 4 KiB PTEs lengthen the window between the PTE change and
	 * the flush. Advised before populating (MAP_POPULATE would fault in
	 * huge pages first under THP=always). */
	madvise(k->mem, len, MADV_NOHUGEPAGE);
#ifdef MADV_POPULATE_WRITE
	if (madvise(k->mem, len, MADV_POPULATE_WRITE))
#endif
		for (i = 0; i < k->npages; i++)
			((volatile char *)k->mem)[i * ps] = 0;
	k->hot = (uint64_t *)k->mem;
	k->evict = k->npages - 1 < A_EVICT_PAGES ? k->npages - 1 :
						   A_EVICT_PAGES;
	return 0;
}

static int a_setup_uffd(struct a_kernel *k, const struct uffdwp_caps *caps)
{
	uint64_t want = k->mechanism == UFFDWP_RACE_UFFD_SYNC ?
				SYNC_UFFD_FEATURES :
				ASYNC_UFFD_FEATURES;
	int ret;

	k->uffd = uffd_open(caps->uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (k->uffd < 0) {
		ret = k->uffd;
		k->uffd = -1;
		return ret;
	}
	ret = uffd_api(k->uffd, want, NULL);
	if (!ret)
		ret = uffd_register(k->uffd, k->mem, k->len,
				    UFFDIO_REGISTER_MODE_WP, NULL);
	return ret;
}

static bool a_usable(const struct uffdwp_caps *c, int mechanism,
		     const char **reason)
{
	int b;

	switch (mechanism) {
	case UFFDWP_RACE_UFFD_SYNC:
		b = UFFDWP_BACKEND_UFFD_SYNC;
		if (c->uffd_wp)
			return true;
		break;
	case UFFDWP_RACE_UFFD_ASYNC:
		b = UFFDWP_BACKEND_UFFD_ASYNC;
		if (c->backend[b].usable)
			return true;
		break;
	default:
		b = UFFDWP_BACKEND_SOFT_DIRTY;
		if (c->soft_dirty)
			return true;
		break;
	}
	*reason = c->backend[b].reason ? c->backend[b].reason : "not usable";
	return false;
}

static int join_by(pthread_t t, time_t seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	return pthread_timedjoin_np(t, NULL, &ts);
}

static int a_kernel(struct race_run *run, uint64_t t0)
{
	struct uffdwp_race_result *out = run->out;
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct a_kernel k = { .uffd = -1,
			      .pm = -1,
			      .pfn_lock = PTHREAD_MUTEX_INITIALIZER };
	struct a_tally t = { 0 };
	const char *reason = NULL;
	pthread_t tid[5];
	void *(*role[5])(void *);
	bool is_uffd = run->mechanism != UFFDWP_RACE_SOFT_DIRTY;
	bool joined[5] = { false };
	bool writers_out = true;
	unsigned int n = 0, started = 0, i;
	sigset_t all, old;
	uint64_t flt0, flt;
	int ret;

	k.mechanism = run->mechanism;
	ret = uffdwp_probe(&caps);
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		race_why(out, "uffdwp_probe() failed: %s", strerror(-ret));
		return 0;
	}
	if (!a_usable(&caps, run->mechanism, &reason)) {
		race_why(out, "%s is not usable here: %s",
			 uffdwp_race_mechanism_name(run->mechanism), reason);
		return 0;
	}

	ret = a_map(&k,
		    run->region_bytes ? run->region_bytes : A_DEFAULT_BYTES);
	if (ret) {
		race_why(out, "cannot map a region of %zu bytes: %s",
			 run->region_bytes ? run->region_bytes :
					     A_DEFAULT_BYTES,
			 strerror(-ret));
		return ret;
	}
	k.pm = pagemap_open();
	if (k.pm < 0) {
		ret = k.pm;
		k.pm = -1;
		race_why(out, "cannot open /proc/self/pagemap: %s",
			 strerror(-ret));
		ret = 0;
		goto out;
	}
	if (is_uffd) {
		ret = a_setup_uffd(&k, &caps);
		if (ret) {
			race_why(out, "%s: cannot register the region: %s",
				 uffdwp_race_mechanism_name(run->mechanism),
				 strerror(-ret));
			ret = ret == -ENOMEM ? ret : 0;
			goto out;
		}
	}

	/* The handler first, so no writer waits for it; T_prot last. */
	if (run->mechanism == UFFDWP_RACE_UFFD_SYNC)
		role[n++] = t_handler;
	role[n++] = t_stale;
	role[n++] = t_fault;
	role[n++] = t_cow;
	role[n++] = t_prot;

	flt0 = minor_faults();
	/* Helper threads take no signal meant for the application. */
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		ret = pthread_create(&tid[i], NULL, role[i], &k);
		if (ret)
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started < n) {
		ret = -ret;
		a_fail(&k, "starting threads", ret);
	} else {
		ret = 0;
		a_wait_until(t0 + (uint64_t)(run->seconds * 1e9), &k.failed);
	}

	/*
	 * Stop in an order that frees every writer: the protector and the
	 * forker first, then a full unprotect wakes any writer still waiting
	 * in a fault, and the handler runs until the writers are joined.
	 */
	__atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < started; i++)
		if (role[i] == t_prot || role[i] == t_cow)
			pthread_join(tid[i], NULL);
	if (run->mechanism == UFFDWP_RACE_UFFD_SYNC && k.uffd >= 0)
		uffd_writeprotect(k.uffd, k.mem, k.len, 0);
	for (i = 0; i < started; i++) {
		if (role[i] != t_stale && role[i] != t_fault)
			continue;
		joined[i] = !join_by(tid[i], A_JOIN_S);
		writers_out &= joined[i];
	}
	__atomic_store_n(&k.hstop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < started; i++)
		if (role[i] == t_handler)
			pthread_join(tid[i], NULL);
	if (!writers_out) {
		/* Only a sync uffd can hold a writer: closing it releases
		 * every waiter whatever the handler did. */
		if (k.uffd >= 0)
			close(k.uffd);
		k.uffd = -1;
		for (i = 0; i < started; i++)
			if ((role[i] == t_stale || role[i] == t_fault) &&
			    !joined[i])
				pthread_join(tid[i], NULL);
	}
	flt = minor_faults() - flt0;
	if (started < n) {
		race_why(out, "cannot start the probe's threads: %s",
			 strerror(-ret));
		goto out;
	}

	t.cycles = k.cycles;
	t.faults = run->mechanism == UFFDWP_RACE_UFFD_SYNC ? k.handled : flt;
	t.copies = k.copies;
	if (!k.pfn_seen && k.pfn_hidden) {
		/* A fork shares H once: at most one copy each. */
		t.copies = flt < k.forks ? flt : k.forks;
		t.note = "PFNs hidden: copies = minor faults, capped at forks";
	}
	t.expected = k.n_stale + k.n_fault;
	t.actual = __atomic_load_n(k.hot, __ATOMIC_RELAXED);
	t.evict_bad = k.evict_bad;
	t.evict_off = k.evict_off;
	t.evict_val = k.evict_val;
	t.err = k.err;
	t.err_what = k.err_what;
	t.label = uffdwp_race_mechanism_name(run->mechanism);
	a_judge(run, &t);
out:
	if (k.uffd >= 0) {
		uffd_unregister(k.uffd, k.mem, k.len);
		close(k.uffd);
	}
	if (k.pm >= 0)
		close(k.pm);
	if (k.mem)
		munmap(k.mem, k.len);
	return ret;
}

int race_probe_a(struct race_run *run)
{
	struct uffdwp_race_result *out = run->out;
	uint64_t t0 = now_ns();
	int ret;

	memset(out, 0, sizeof(*out));
	out->probe = UFFDWP_RACE_PROBE_A;
	out->mechanism = run->mechanism;
	out->cpus = run->cpus;
	out->verdict = UFFDWP_RACE_INCONCLUSIVE;

	switch (run->variant) {
	case RACE_CORRECT:
		if (run->mechanism < UFFDWP_RACE_UFFD_SYNC ||
		    run->mechanism > UFFDWP_RACE_SOFT_DIRTY)
			return -EINVAL;
		ret = a_kernel(run, t0);
		break;
#ifdef UFFDWP_TESTING
	case RACE_MODEL:
	case RACE_MODEL_BROKEN:
		ret = a_model(run, t0);
		break;
#endif
	default:
		return -EINVAL;
	}
	out->seconds = (double)(now_ns() - t0) / 1e9;
	return ret;
}
