/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race probe C: the snapshot oracle, over synchronous uffd write-protect
 * (reference/kernel.md 2.4 item C).
 *
 * Writer threads store unique values into random pages of a region R. Each
 * snapshot round parks them, write-protects R, takes the oracle (a copy of
 * R made while nobody writes), and lets them go. A handler thread (write
 * faults) and a sweep then race for each page through a per-page state,
 * 0 (to copy) -> 1 (copying) -> 2 (copied), claimed with a CAS 0 -> 1: the
 * winner copies the page into the snapshot and only then unprotects it,
 * which wakes any writer blocked on it; the loser waits for 2 (the handler
 * then unprotects the faulting page itself). At the end the snapshot must
 * equal the oracle page for page. A page that differs holds a write made
 * after the protect that reached memory before the copy: the kernel let a
 * write through a protected page (a stale writable TLB entry, say), or the
 * ordering is wrong.
 *
 * Broken on purpose (tests only), to show a wrong order is caught:
 * RACE_UNPROTECT_BEFORE_COPY makes the handler unprotect (and wake) the
 * faulting page before copying it; RACE_COPY_BEFORE_PROTECT resumes the
 * writers and starts an unclaimed copy before the protect ioctl is issued.
 *
 * Stale messages: a fault message read in one round may be acted on only
 * in that round. The handler raises `hbusy` before it reads and looks at
 * `active` after; the main thread clears `active` and waits for `hbusy` to
 * drop before it ends a round, so no unprotect decided on one round's page
 * states lands after the next round's protect. A message seen while
 * `active` is 0 is only woken.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "segv.h"
#include "race-probe.h"
#include "sys-uffd.h"

#define C_WRITERS 3
#define C_DEFAULT_BYTES (16UL << 20)
/* A strong pass wants this many snapshots (each a full protect cycle). */
#define C_STRONG_ROUNDS 50
/* Bound on any one wait: generous for qemu, short of a hang. */
#define C_WAIT_NS (10ULL * 1000000000ULL)
#define C_POLL_MS 50
#define C_MSGS 16
/* COPY_BEFORE_PROTECT: stores the writers make before the protect. */
#define C_EARLY_STORES 64

enum { PG_TODO = 0, PG_COPYING = 1, PG_COPIED = 2 };

struct c_state;

struct c_writer {
	struct c_state *st;
	unsigned int id;
	pthread_t tid;
	uint64_t stores; /* published for COPY_BEFORE_PROTECT */
} __attribute__((aligned(64)));

struct c_state {
	char *mem; /* R, registered */
	char *oracle; /* R copied with the writers parked */
	char *snap; /* the copy-then-unprotect snapshot */
	uint8_t *pg; /* PG_* per page */
	size_t npages, len, ps;
	int uffd, variant;
	int stop, pause, parked;
	uint64_t active; /* current round, 0 between rounds */
	int hbusy; /* handler between read() and acting */
	uint64_t early; /* pages the early copier went through */
	int err; /* first helper failure, -errno */
	const char *err_what;
	uint64_t faults, fault_copies;
};

static void c_fail(struct c_state *st, int err, const char *what)
{
	int zero = 0;

	if (__atomic_compare_exchange_n(&st->err, &zero, err, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		st->err_what = what;
}

static bool c_stopped(struct c_state *st)
{
	return __atomic_load_n(&st->stop, __ATOMIC_SEQ_CST) ||
	       __atomic_load_n(&st->err, __ATOMIC_SEQ_CST);
}

static void *c_writer_main(void *arg)
{
	struct c_writer *w = arg;
	struct c_state *st = w->st;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (w->id + 1), v = 0;
	size_t page, off;

	race_pin(w->id + 1);
	while (!__atomic_load_n(&st->stop, __ATOMIC_SEQ_CST)) {
		if (__atomic_load_n(&st->pause, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(&st->parked, 1, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&st->pause, __ATOMIC_SEQ_CST) &&
			       !__atomic_load_n(&st->stop, __ATOMIC_SEQ_CST))
				sched_yield();
			__atomic_fetch_sub(&st->parked, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		race_rand(&x);
		page = (size_t)(x % st->npages);
		off = (size_t)((x >> 40) % (st->ps / 8)) * 8;
		/* Unique per writer and store: a stale copy cannot match.
		 * A store to a protected page blocks here until unprotect. */
		*(volatile uint64_t *)(st->mem + page * st->ps + off) =
			((uint64_t)(w->id + 1) << 56) | ++v;
		__atomic_store_n(&w->stores, v, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void c_unprotect(struct c_state *st, char *page)
{
	/* Mode 0 (no DONTWAKE) also wakes the writers blocked on it. */
	int ret = uffd_writeprotect(st->uffd, page, st->ps, 0);

	if (ret)
		c_fail(st, ret, "UFFDIO_WRITEPROTECT (unprotect a page)");
}

/* Wait for the owner of page @p to finish its copy. */
static bool c_wait_copied(struct c_state *st, size_t p)
{
	uint64_t deadline = now_ns() + C_WAIT_NS;

	while (__atomic_load_n(&st->pg[p], __ATOMIC_ACQUIRE) != PG_COPIED) {
		if (now_ns() > deadline) {
			c_fail(st, -ETIMEDOUT, "waiting for a page copy");
			return false;
		}
		sched_yield();
	}
	return true;
}

/* Claim, copy, mark, then unprotect: the order the probe checks. */
static void c_copy_page(struct c_state *st, size_t p, bool fault)
{
	char *page = st->mem + p * st->ps;
	uint8_t todo = PG_TODO;

	if (!__atomic_compare_exchange_n(&st->pg[p], &todo, PG_COPYING, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* The sweep has it (or a repeated message): unprotect only
		 * after its copy, waking the faulting writer. */
		if (fault && c_wait_copied(st, p))
			c_unprotect(st, page);
		return;
	}
	if (fault && race_variant(st->variant, RACE_UNPROTECT_BEFORE_COPY)) {
		/* Broken: the woken writer's store can land in the copy. */
		c_unprotect(st, page);
		memcpy(st->snap + p * st->ps, page, st->ps);
		__atomic_store_n(&st->pg[p], PG_COPIED, __ATOMIC_RELEASE);
	} else {
		memcpy(st->snap + p * st->ps, page, st->ps);
		__atomic_store_n(&st->pg[p], PG_COPIED, __ATOMIC_RELEASE);
		c_unprotect(st, page);
	}
	if (fault)
		cnt_add(&st->fault_copies, 1);
}

static void c_fault(struct c_state *st, const struct uffd_msg *msg,
		    uint64_t round)
{
	uintptr_t addr = (uintptr_t)msg->arg.pagefault.address &
			 ~(uintptr_t)(st->ps - 1);
	uintptr_t base = (uintptr_t)st->mem;

	if (msg->event != UFFD_EVENT_PAGEFAULT || addr < base ||
	    addr >= base + st->len)
		return;
	if (!round || !(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		/* A stale message (its writer was woken by the round's
		 * final unprotect), or not ours: waking is always safe. */
		uffd_wake(st->uffd, (void *)addr, st->ps);
		return;
	}
	cnt_add(&st->faults, 1);
	c_copy_page(st, (addr - base) / st->ps, true);
}

static void *c_handler_main(void *arg)
{
	struct c_state *st = arg;
	struct uffd_msg msg[C_MSGS];
	struct pollfd pfd = { .fd = st->uffd, .events = POLLIN };
	uint64_t round;
	ssize_t n, i;

	while (!__atomic_load_n(&st->stop, __ATOMIC_SEQ_CST)) {
		/* Timed, so a stop is seen even if no fault ever comes. */
		if (poll(&pfd, 1, C_POLL_MS) <= 0)
			continue;
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
			c_fail(st, -EIO, "poll on the userfaultfd");
			break;
		}
		__atomic_store_n(&st->hbusy, 1, __ATOMIC_SEQ_CST);
		n = read(st->uffd, msg, sizeof(msg));
		round = __atomic_load_n(&st->active, __ATOMIC_SEQ_CST);
		for (i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			c_fault(st, &msg[i], round);
		__atomic_store_n(&st->hbusy, 0, __ATOMIC_SEQ_CST);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			c_fail(st, neg_errno(), "read on the userfaultfd");
			break;
		}
	}
	return NULL;
}

/* COPY_BEFORE_PROTECT: copies straight into the snapshot, claiming
 * nothing, from before the protect ioctl is issued. */
static void *c_early_copier_main(void *arg)
{
	struct c_state *st = arg;
	size_t p;

	for (p = 0; p < st->npages && !c_stopped(st); p++) {
		if (__atomic_load_n(&st->pg[p], __ATOMIC_ACQUIRE) == PG_TODO) {
			memcpy(st->snap + p * st->ps, st->mem + p * st->ps,
			       st->ps);
			__atomic_store_n(&st->pg[p], PG_COPIED,
					 __ATOMIC_RELEASE);
		}
		__atomic_store_n(&st->early, p + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Park (@on) or release the writers. Parking waits until every writer
 * spins at the barrier, so none is between two stores. */
static bool c_park(struct c_state *st, bool on)
{
	uint64_t deadline = now_ns() + C_WAIT_NS;

	__atomic_store_n(&st->pause, on, __ATOMIC_SEQ_CST);
	while (on &&
	       __atomic_load_n(&st->parked, __ATOMIC_SEQ_CST) < C_WRITERS) {
		if (now_ns() > deadline) {
			c_fail(st, -ETIMEDOUT, "parking the writers");
			return false;
		}
		sched_yield();
	}
	return true;
}

static uint64_t c_stores(const struct c_writer *w)
{
	uint64_t s = 0;
	unsigned int i;

	for (i = 0; i < C_WRITERS; i++)
		s += __atomic_load_n(&w[i].stores, __ATOMIC_RELAXED);
	return s;
}

/* Compare snapshot and oracle; note the first difference. */
static uint64_t c_check(struct c_state *st, struct uffdwp_race_result *out,
			uint64_t round)
{
	uint64_t bad = 0;
	size_t p, w;

	for (p = 0; p < st->npages; p++) {
		const uint64_t *o = (const uint64_t *)(st->oracle + p * st->ps);
		const uint64_t *s = (const uint64_t *)(st->snap + p * st->ps);

		out->checked++;
		if (!memcmp(o, s, st->ps))
			continue;
		if (!bad++) {
			for (w = 0; w < st->ps / 8 && o[w] == s[w]; w++)
				;
			out->fail_offset = p * st->ps;
			out->expected = o[w];
			out->actual = s[w];
			out->fail_cycle = round;
		}
	}
	return bad;
}

/*
 * One snapshot round; false if a step failed (st->err says which). The
 * correct order: park, protect, oracle, resume, then copy-then-unprotect
 * every page (sweep here, faults in the handler).
 */
static bool c_round(struct c_state *st, struct c_writer *w, uint64_t round)
{
	bool early = race_variant(st->variant, RACE_COPY_BEFORE_PROTECT);
	uint64_t deadline, s0;
	pthread_t copier;
	sigset_t all, old;
	size_t p;
	int ret;

	if (!c_park(st, true))
		return false;
	if (!early) {
		ret = uffd_writeprotect(st->uffd, st->mem, st->len,
					UFFDIO_WRITEPROTECT_MODE_WP);
		if (ret) {
			c_fail(st, ret, "UFFDIO_WRITEPROTECT (protect R)");
			return false;
		}
	}
	memcpy(st->oracle, st->mem, st->len);
	/* Reset after the protect: a late message then finds protected
	 * pages in TODO, which it may copy correctly. */
	memset(st->pg, PG_TODO, st->npages);
	__atomic_store_n(&st->active, round, __ATOMIC_SEQ_CST);

	if (early) {
		/* Broken: copy and writers both start before the protect;
		 * wait until both have made progress so the ioctl surely
		 * comes after, as a preempted one would on a busy host. */
		__atomic_store_n(&st->early, 0, __ATOMIC_SEQ_CST);
		segv_thread_mask(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		ret = pthread_create(&copier, NULL, c_early_copier_main, st);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret) {
			c_fail(st, -ret, "starting the copier");
			c_park(st, false);
			return false;
		}
		s0 = c_stores(w);
		c_park(st, false);
		deadline = now_ns() + C_WAIT_NS;
		while ((!__atomic_load_n(&st->early, __ATOMIC_ACQUIRE) ||
			c_stores(w) - s0 < C_EARLY_STORES) &&
		       now_ns() < deadline)
			sched_yield();
		ret = uffd_writeprotect(st->uffd, st->mem, st->len,
					UFFDIO_WRITEPROTECT_MODE_WP);
		if (ret)
			c_fail(st, ret, "UFFDIO_WRITEPROTECT (protect R)");
		pthread_join(copier, NULL);
	} else {
		c_park(st, false);
		for (p = 0; p < st->npages && !c_stopped(st); p++)
			c_copy_page(st, p, false);
	}

	/* Every page copied (the handler may still own a few). */
	deadline = now_ns() + C_WAIT_NS;
	for (p = 0; p < st->npages && !c_stopped(st); p++) {
		while (__atomic_load_n(&st->pg[p], __ATOMIC_ACQUIRE) !=
			       PG_COPIED &&
		       !c_stopped(st)) {
			if (now_ns() > deadline) {
				c_fail(st, -ETIMEDOUT,
				       "waiting for the round's copies");
				break;
			}
			sched_yield();
		}
	}

	/* Let the handler finish what it decided in this round. */
	__atomic_store_n(&st->active, 0, __ATOMIC_SEQ_CST);
	deadline = now_ns() + C_WAIT_NS;
	while (__atomic_load_n(&st->hbusy, __ATOMIC_SEQ_CST)) {
		if (now_ns() > deadline) {
			c_fail(st, -ETIMEDOUT, "waiting for the handler");
			return false;
		}
		sched_yield();
	}
	if (c_stopped(st))
		return false;
	/* Everything is copied: unprotect what is left and wake all. */
	ret = uffd_writeprotect(st->uffd, st->mem, st->len, 0);
	if (ret) {
		c_fail(st, ret, "UFFDIO_WRITEPROTECT (unprotect R)");
		return false;
	}
	return true;
}

static void c_verdict(struct race_run *run, uint64_t bad, size_t npages)
{
	struct uffdwp_race_result *out = run->out;
	unsigned long long rounds = (unsigned long long)out->cycles;
	bool cpus_ok = run->cpus >= RACE_STRONG_CPUS;
	bool rounds_ok = out->cycles >= C_STRONG_ROUNDS;
	char cpus[40] = "", snaps[48] = "";

	if (bad) {
		out->verdict = UFFDWP_RACE_FAIL;
		race_why(
			out,
			"snapshot round %llu: page %llu differs from the paused-writer copy (expected %#llx, got %#llx); %llu of %zu pages differ",
			(unsigned long long)out->fail_cycle,
			(unsigned long long)(out->fail_offset / page_size()),
			(unsigned long long)out->expected,
			(unsigned long long)out->actual,
			(unsigned long long)bad, npages);
		return;
	}
	if (!out->faults) {
		out->verdict = UFFDWP_RACE_INCONCLUSIVE;
		race_why(out, "no write raced a snapshot (%llu rounds)",
			 rounds);
		return;
	}
	if (cpus_ok && rounds_ok) {
		out->verdict = UFFDWP_RACE_PASS_STRONG;
		race_why(
			out,
			"no loss in %llu snapshots (%llu faults, %llu pages compared)",
			rounds, (unsigned long long)out->faults,
			(unsigned long long)out->checked);
		return;
	}
	out->verdict = UFFDWP_RACE_PASS_WEAK;
	if (!cpus_ok)
		snprintf(cpus, sizeof(cpus), "%u CPUs < %u", run->cpus,
			 RACE_STRONG_CPUS);
	if (!rounds_ok)
		snprintf(snaps, sizeof(snaps), "%s%llu snapshots < %u",
			 cpus_ok ? "" : ", ", rounds, C_STRONG_ROUNDS);
	race_why(out, "no loss in %llu snapshots (%llu faults); weak: %s%s",
		 rounds, (unsigned long long)out->faults, cpus, snaps);
}

int race_probe_c(struct race_run *run)
{
	struct uffdwp_race_result *out = run->out;
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct c_writer w[C_WRITERS];
	struct c_state st = { 0 };
	pthread_t handler;
	bool have_handler = false;
	uint64_t t0 = now_ns(), end, round = 0, bad = 0, ioctls = 0, got = 0;
	unsigned int i, started = 0;
	sigset_t all, old;
	int ret = 0;

	out->probe = UFFDWP_RACE_PROBE_C;
	out->mechanism = UFFDWP_RACE_UFFD_SYNC;
	out->verdict = UFFDWP_RACE_INCONCLUSIVE;
	out->cpus = run->cpus;
	st.uffd = -1;
	st.variant = run->variant;
	st.ps = page_size();
	st.len = run->region_bytes ? run->region_bytes : C_DEFAULT_BYTES;
	st.len = st.len / st.ps * st.ps;
	st.npages = st.len / st.ps;
	if (!st.npages) {
		race_why(out, "region smaller than a page");
		ret = -EINVAL;
		goto out;
	}

	ret = uffdwp_probe(&caps);
	if (ret) {
		race_why(out, "cannot probe the kernel: %s", strerror(-ret));
		ret = ret == -ENOMEM ? ret : 0;
		goto out;
	}
	if (!caps.uffd_wp) {
		race_why(
			out,
			"synchronous uffd write-protect is not usable here%s%s",
			caps.uffd_blocked ? ": " : "",
			caps.uffd_blocked ? caps.uffd_blocked : "");
		goto out;
	}

	st.mem = mmap(NULL, st.len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	st.oracle = mmap(NULL, st.len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	st.snap = mmap(NULL, st.len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	st.pg = mmap(NULL, st.npages, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (st.mem == MAP_FAILED || st.oracle == MAP_FAILED ||
	    st.snap == MAP_FAILED || st.pg == MAP_FAILED) {
		ret = -ENOMEM;
		goto out;
	}
	/* 4 KiB PTEs (before the first touch), then populate: per-page
	 * protection, and no missing faults during the race. */
	madvise(st.mem, st.len, MADV_NOHUGEPAGE);
	memset(st.mem, 0x5a, st.len);

	st.uffd = uffd_open(caps.uffd_mode, O_CLOEXEC | O_NONBLOCK);
	if (st.uffd < 0) {
		race_why(out, "cannot open a userfaultfd: %s",
			 strerror(-st.uffd));
		goto out;
	}
	ret = uffd_api(st.uffd, SYNC_UFFD_FEATURES, &got);
	if (!ret && (got & SYNC_UFFD_FEATURES) != SYNC_UFFD_FEATURES)
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = uffd_register(st.uffd, st.mem, st.len,
				    UFFDIO_REGISTER_MODE_WP, &ioctls);
	if (!ret && !(ioctls & (1ULL << _UFFDIO_WRITEPROTECT)))
		ret = -EOPNOTSUPP;
	if (ret) {
		race_why(
			out,
			"synchronous uffd write-protect is not usable here: %s",
			strerror(-ret));
		ret = 0;
		goto out;
	}

	/* Helpers take no signal: a handler must run in the caller only. */
	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	have_handler = !pthread_create(&handler, NULL, c_handler_main, &st);
	for (i = 0; have_handler && i < C_WRITERS; i++) {
		w[i] = (struct c_writer){ .st = &st, .id = i };
		if (pthread_create(&w[i].tid, NULL, c_writer_main, &w[i]))
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!have_handler || started != C_WRITERS) {
		race_why(out, "cannot start the probe's threads");
		ret = -EAGAIN;
		goto stop;
	}

	end = t0 + (uint64_t)(run->seconds * 1e9);
	do {
		if (!c_round(&st, w, ++round))
			break;
		out->cycles = round;
		/* Stop at the first failure: it is the answer. */
		bad = c_check(&st, out, round);
	} while (!bad && now_ns() < end);

stop:
	/* Unprotect and wake, then closing the uffd releases any writer
	 * still blocked; only then can they see the stop. */
	__atomic_store_n(&st.stop, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&st.pause, 0, __ATOMIC_SEQ_CST);
	uffd_writeprotect(st.uffd, st.mem, st.len, 0);
	if (have_handler)
		pthread_join(handler, NULL);
	close(st.uffd);
	st.uffd = -1;
	for (i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);

	out->faults = cnt_get(&st.faults);
	out->copy_events = cnt_get(&st.fault_copies);
	out->lost = bad;
	if (bad || (!st.err && !ret))
		c_verdict(run, bad, st.npages);
	else if (st.err)
		race_why(out, "snapshot round %llu: %s failed: %s",
			 (unsigned long long)round, st.err_what,
			 strerror(-st.err));
out:
	if (st.uffd >= 0)
		close(st.uffd);
	if (st.mem && st.mem != MAP_FAILED)
		munmap(st.mem, st.len);
	if (st.oracle && st.oracle != MAP_FAILED)
		munmap(st.oracle, st.len);
	if (st.snap && st.snap != MAP_FAILED)
		munmap(st.snap, st.len);
	if (st.pg && st.pg != MAP_FAILED)
		munmap(st.pg, st.npages);
	out->seconds = (double)(now_ns() - t0) / 1e9;
	return ret;
}
