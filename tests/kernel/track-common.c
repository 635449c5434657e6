/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tracking suite's shared parts: see track-common.h. */
#include "track-common.h"

const int backends[4] = { UFFDWP_BACKEND_UFFD_ASYNC, UFFDWP_BACKEND_UFFD_SYNC,
			  UFFDWP_BACKEND_SOFT_DIRTY, UFFDWP_BACKEND_MPROTECT };

char *map(size_t pages, int prot)
{
	char *p = mmap(NULL, pages * ps, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* --- the oracle rig ----------------------------------------------------- */

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct oracle *o = w->o;
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (w->id + 1), n = 0, v;
	size_t page = w->id, off;
	bool started = false;

	while (!atomic_load(&o->stop)) {
		if (atomic_load(&o->pause)) {
			atomic_fetch_add(&o->paused, 1);
			while (atomic_load(&o->pause))
				sched_yield();
			atomic_fetch_sub(&o->paused, 1);
			continue;
		}
		v = rnd(&seed);
		switch (o->pattern) {
		case RANDOM:
		case COUNTERS:
			page = v % o->npages;
			break;
		case SEQUENTIAL:
			page = (page + 1) % o->npages;
			break;
		case HOTSPOT:
			page = (v & 7) ? v % 8 : v % o->npages;
			break;
		}
		if (o->pattern == COUNTERS) {
			/* Each writer owns one counter slot in every page. */
			uint64_t *c = (uint64_t *)(o->mem + page * ps) + w->id;

			__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
			o->incs[w->id * o->npages + page]++;
		} else {
			off = (v >> 32) % (ps / 8) * 8;
			*(volatile uint64_t *)(o->mem + page * ps + off) = v |
									   1;
			if (o->zap && ++n % 97 == 0)
				madvise(o->mem + (v >> 20) % o->npages * ps, ps,
					MADV_DONTNEED);
		}
		if (!started) {
			started = true;
			atomic_fetch_add(&o->started, 1);
		}
	}
	return NULL;
}

static int copy_run(void *arg, void *addr, size_t len)
{
	struct oracle *o = arg;
	size_t off = (size_t)((char *)addr - o->mem);

	ck_assert_uint_eq((uintptr_t)addr % ps, 0);
	ck_assert_uint_le(off + len, o->npages * ps);
	memcpy(o->shadow + off, addr, len);
	o->reported += len / ps;
	return 0;
}

static long collect(struct oracle *o)
{
	int tries;
	long n;

	if (o->quiesce) {
		atomic_store(&o->pause, 1);
		while (atomic_load(&o->paused) < (int)o->nwriters)
			sched_yield();
	}
	n = uffdwp_collect(o->ctx, copy_run, o);
	for (tries = 0; n == -EAGAIN && tries < 3; tries++) {
		/* Address-space events kept the kernel from re-arming
		 * (writers zapping without pause, under emulation): as a
		 * program would, let the writers pause and call again.
		 * Nothing may have been lost meanwhile: the oracle says. */
		printf("collect: -EAGAIN, pausing writers and retrying\n");
		atomic_store(&o->pause, 1);
		while (atomic_load(&o->paused) < (int)o->nwriters &&
		       !atomic_load(&o->stop))
			sched_yield();
		n = uffdwp_collect(o->ctx, copy_run, o);
		if (!o->quiesce)
			atomic_store(&o->pause, 0);
	}
	if (o->quiesce)
		atomic_store(&o->pause, 0);
	return n;
}

void oracle_setup(struct oracle *o, int backend, size_t npages)
{
	struct uffdwp_ctx_opts opts = { .sz = sizeof(opts),
					.backend = backend,
					.flags = test_ctx_flags(backend) };

	memset(o, 0, sizeof(*o));
	o->backend = backend;
	o->npages = npages;
	o->nwriters = 4;
	o->quiesce = backend == UFFDWP_BACKEND_SOFT_DIRTY;
	o->mem = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	o->shadow = malloc(npages * ps);
	ck_assert_ptr_ne(o->mem, MAP_FAILED);
	ck_assert_ptr_nonnull(o->shadow);
	/* Some pages populated, some never touched before tracking. */
	memset(o->mem, 0x5a, npages / 2 * ps);
	memcpy(o->shadow, o->mem, npages * ps);
	ck_assert_int_eq(uffdwp_ctx_new(&opts, &o->ctx), 0);
	ck_assert_int_eq(uffdwp_ctx_backend(o->ctx), backend);
	ck_assert_int_eq(uffdwp_track(o->ctx, o->mem, npages * ps, 0), 0);
}

void oracle_teardown(struct oracle *o)
{
	o->ctx = uffdwp_ctx_free(o->ctx);
	munmap(o->mem, o->npages * ps);
	free(o->shadow);
	free(o->incs);
}

/* Returns the number of pages whose shadow differs from memory. */
size_t oracle_run(struct oracle *o, unsigned int epochs)
{
	struct writer w[8];
	size_t bad = 0, i;
	unsigned int e;

	if (o->pattern == COUNTERS)
		o->incs = calloc(o->nwriters * o->npages, sizeof(uint64_t));
	for (i = 0; i < o->nwriters; i++) {
		w[i] = (struct writer){ o, (unsigned int)i, 0 };
		ck_assert_int_eq(
			pthread_create(&w[i].tid, NULL, writer_main, &w[i]), 0);
	}
	/* Every writer has written before the first collect: on a loaded
	 * machine the collects can otherwise all run before a writer is
	 * scheduled, and the oracle would check nothing. */
	while (atomic_load(&o->started) < (int)o->nwriters)
		sched_yield();
	for (e = 0; e < epochs; e++) {
		ck_assert_int_ge(collect(o), 0);
		if (e % 16 == 0)
			usleep(200);
	}
	atomic_store(&o->stop, 1);
	for (i = 0; i < o->nwriters; i++)
		pthread_join(w[i].tid, NULL);
	o->quiesce = false;
	ck_assert_int_ge(collect(o), 0);
	for (i = 0; i < o->npages; i++)
		bad += memcmp(o->shadow + i * ps, o->mem + i * ps, ps) != 0;
	if (o->pattern == COUNTERS) {
		for (i = 0; i < o->npages * o->nwriters; i++) {
			size_t page = i % o->npages, id = i / o->npages;
			uint64_t got =
				((uint64_t *)(o->shadow + page * ps))[id];
			uint64_t base = 0x5a5a5a5a5a5a5a5aULL;

			if (page >= o->npages / 2)
				base = 0;
			ck_assert_msg(
				got == base + o->incs[i] || bad,
				"page %zu writer %zu: %llu increments seen, %llu made",
				page, id, (unsigned long long)(got - base),
				(unsigned long long)o->incs[i]);
		}
	}
	return bad;
}
