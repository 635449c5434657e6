/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Race probe B: the tracking oracle, through the library's own collect.
 *
 * Writer threads store unique values into random pages of a region while
 * the probe collects round after round, copying every reported run into an
 * incremental dump. Every few rounds the writers park at a barrier, one
 * more collect runs, and the dump must equal memory page for page: a write
 * made after a page's last report must have faulted and been reported
 * later. A stale page is a lost write, whoever lost it (kernel or library).
 *
 * Broken on purpose (tests only): RACE_GET_THEN_PROTECT makes the async
 * backend report with a get-only scan and protect with a second one;
 * RACE_ALIAS_WRITER stores through a second mapping of the same memfd,
 * which no tracking of the first mapping can see (a stand-in for a stale
 * writable TLB entry).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "segv.h"
#include "race-probe.h"
#include "testhooks.h"

#define B_WRITERS 3
#define B_DEFAULT_BYTES (8UL << 20)
/* Rounds between barriers: a check costs a full compare. */
#define B_CHECK_EVERY 16

struct b_state {
	char *mem; /* tracked mapping */
	char *alias; /* second mapping (alias variant), else mem */
	char *dump;
	size_t npages;
	volatile int stop, pause;
	int parked;
	uint64_t faults;
};

struct b_writer {
	struct b_state *st;
	unsigned int id;
	pthread_t tid;
};

static void *b_writer_main(void *arg)
{
	struct b_writer *w = arg;
	struct b_state *st = w->st;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (w->id + 1), v = 0;
	size_t page, off;

	race_pin(w->id + 1);
	while (!st->stop) {
		if (st->pause) {
			__atomic_fetch_add(&st->parked, 1, __ATOMIC_SEQ_CST);
			while (st->pause && !st->stop)
				sched_yield();
			__atomic_fetch_sub(&st->parked, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		race_rand(&x);
		page = (size_t)(x % st->npages);
		off = (size_t)((x >> 40) % (page_size() / 8)) * 8;
		/* Unique per writer and store: a stale copy cannot match. */
		*(volatile uint64_t *)(st->alias + page * page_size() + off) =
			((uint64_t)w->id << 56) | ++v;
	}
	return NULL;
}

static int b_copy(void *arg, void *addr, size_t len)
{
	struct b_state *st = arg;

	memcpy(st->dump + ((char *)addr - st->mem), addr, len);
	return 0;
}

static int b_backend(int mechanism)
{
	switch (mechanism) {
	case UFFDWP_RACE_UFFD_SYNC:
		return UFFDWP_BACKEND_UFFD_SYNC;
	case UFFDWP_RACE_SOFT_DIRTY:
		return UFFDWP_BACKEND_SOFT_DIRTY;
	default:
		return UFFDWP_BACKEND_UFFD_ASYNC;
	}
}

static void park(struct b_state *st, bool on)
{
	uint64_t deadline = now_ns() + 5000000000ULL;

	st->pause = on;
	/* Writers blocked in a fault get through once it is resolved;
	 * bounded all the same. */
	while (on &&
	       __atomic_load_n(&st->parked, __ATOMIC_SEQ_CST) < B_WRITERS &&
	       now_ns() < deadline)
		sched_yield();
}

/* Compare dump and memory; note the first difference. */
static uint64_t b_check(struct b_state *st, struct uffdwp_race_result *out,
			uint64_t round)
{
	size_t p, w, ps = page_size();
	uint64_t bad = 0;

	for (p = 0; p < st->npages; p++) {
		const uint64_t *m = (const uint64_t *)(st->mem + p * ps);
		const uint64_t *d = (const uint64_t *)(st->dump + p * ps);

		out->checked++;
		if (!memcmp(m, d, ps))
			continue;
		if (!bad++) {
			for (w = 0; w < ps / 8 && m[w] == d[w]; w++)
				;
			out->fail_offset = p * ps;
			out->expected = m[w];
			out->actual = d[w];
			out->fail_cycle = round;
		}
	}
	return bad;
}

int race_probe_b(struct race_run *run)
{
	struct uffdwp_race_result *out = run->out;
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts) };
	struct uffdwp_stats stats = { .sz = sizeof(stats) };
	struct b_writer w[B_WRITERS];
	struct uffdwp_ctx *ctx = NULL;
	struct b_state st = { 0 };
	size_t len = run->region_bytes ? run->region_bytes : B_DEFAULT_BYTES;
	uint64_t t0 = now_ns(), end, round = 0, bad = 0;
	sigset_t all, old;
	unsigned int i, started = 0;
	int fd = -1, ret = 0;
	long n;

	len = len / page_size() * page_size();
	st.npages = len / page_size();
	opts.backend = b_backend(run->mechanism);
	if (race_variant(run->variant, RACE_GET_THEN_PROTECT) ||
	    race_variant(run->variant, RACE_ALIAS_WRITER))
		opts.backend = UFFDWP_BACKEND_UFFD_ASYNC;
	out->mechanism = run->mechanism;

	if (race_variant(run->variant, RACE_ALIAS_WRITER)) {
		fd = memfd_create("uffdwp-race-b", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)len)) {
			ret = neg_errno();
			goto out;
		}
		st.mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			      0);
		st.alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
				fd, 0);
	} else {
		st.mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		st.alias = st.mem;
	}
	st.dump = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st.mem == MAP_FAILED || st.alias == MAP_FAILED ||
	    st.dump == MAP_FAILED) {
		ret = -ENOMEM;
		goto out;
	}
	memset(st.mem, 0x5a, len);
	memcpy(st.dump, st.mem, len);

	ret = uffdwp_ctx_new(&opts, &ctx);
	if (!ret)
		ret = uffdwp_track(ctx, st.mem, len, 0);
	if (ret) {
		race_why(out, "%s: cannot track the region: %s",
			 uffdwp_backend_name(opts.backend), strerror(-ret));
		ret = 0;
		goto out;
	}
	testhook_set(async_get_then_protect,
		     race_variant(run->variant, RACE_GET_THEN_PROTECT));

	segv_thread_mask(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < B_WRITERS; i++) {
		w[i] = (struct b_writer){ &st, i, 0 };
		if (pthread_create(&w[i].tid, NULL, b_writer_main, &w[i]))
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	end = t0 + (uint64_t)(run->seconds * 1e9);
	while (!bad && started == B_WRITERS) {
		bool check = ++round % B_CHECK_EVERY == 0 || now_ns() >= end;
		bool quiet = check || opts.backend == UFFDWP_BACKEND_SOFT_DIRTY;

		/* soft-dirty needs quiescent writers during every collect. */
		if (quiet)
			park(&st, true);
		n = uffdwp_collect(ctx, b_copy, &st);
		if (check && n >= 0)
			bad = b_check(&st, out, round);
		if (quiet)
			park(&st, false);
		if (n < 0 && n != -EAGAIN) {
			race_why(out, "collect failed: %s", strerror((int)-n));
			break;
		}
		if (check && now_ns() >= end)
			break;
	}
	st.stop = 1;
	for (i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	testhook_set(async_get_then_protect, 0);
	if (!uffdwp_ctx_stats(ctx, &stats))
		out->faults = stats.faults;
	out->cycles = round;
	out->lost = bad;

	if (bad)
		out->verdict = UFFDWP_RACE_FAIL;
	if (bad)
		race_why(
			out,
			"round %llu: page at offset %#llx is stale in the dump (memory %#llx, dump %#llx): %llu pages lost writes under %s",
			(unsigned long long)out->fail_cycle,
			(unsigned long long)out->fail_offset,
			(unsigned long long)out->expected,
			(unsigned long long)out->actual,
			(unsigned long long)bad,
			uffdwp_backend_name(opts.backend));
	else if (started != B_WRITERS || !out->checked)
		race_why(out, "%s",
			 out->why[0] ? out->why : "no check could run");
	else if (run->cpus >= RACE_STRONG_CPUS && round >= RACE_STRONG_CYCLES)
		out->verdict = UFFDWP_RACE_PASS_STRONG;
	else
		out->verdict = UFFDWP_RACE_PASS_WEAK;
	if (out->verdict == UFFDWP_RACE_PASS_STRONG)
		race_why(out, "no loss in %llu rounds, %llu pages compared",
			 (unsigned long long)round,
			 (unsigned long long)out->checked);
	else if (out->verdict == UFFDWP_RACE_PASS_WEAK)
		race_why(
			out,
			"no loss in %llu rounds, %llu pages compared; weak: %u CPUs%s, %llu rounds%s",
			(unsigned long long)round,
			(unsigned long long)out->checked, run->cpus,
			run->cpus < RACE_STRONG_CPUS ? " < 3" : " ok",
			(unsigned long long)round,
			round < RACE_STRONG_CYCLES ? " < 2000" : " ok");
out:
	testhook_set(async_get_then_protect, 0);
	uffdwp_ctx_free(ctx);
	if (st.mem && st.mem != MAP_FAILED)
		munmap(st.mem, len);
	if (st.alias && st.alias != MAP_FAILED && st.alias != st.mem)
		munmap(st.alias, len);
	if (st.dump && st.dump != MAP_FAILED)
		munmap(st.dump, len);
	if (fd >= 0)
		close(fd);
	out->seconds = (double)(now_ns() - t0) / 1e9;
	return ret;
}
