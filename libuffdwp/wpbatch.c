/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The wp batch: see wpbatch.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shadow-alloc.h"
#include "wpbatch.h"

/*
 * EAGAIN means an address-space event is being delivered (mmap_changing):
 * the thread that raised it runs again as soon as a handler read it, so
 * wait it out, with backoff, for up to RETRY_NS. A program that zaps its
 * tracked memory without pause (the oracle's writers do, under emulation)
 * can keep an event in flight all the time; the caller then gets -EAGAIN,
 * with nothing lost, and may retry when its threads let up.
 */
#define RETRY_MAX 2000
#define RETRY_NS (2ULL * 1000 * 1000 * 1000)

void wpbatch_init(struct wpbatch *b, size_t protect_gap,
		  struct wp_counters *stats)
{
	memset(b, 0, sizeof(*b));
	b->protect_gap = protect_gap;
	b->stats = stats;
	b->max_retries = RETRY_MAX;
}

void wpbatch_init_fixed(struct wpbatch *b, struct wp_op *prot,
			struct wp_op *unprot, size_t cap,
			struct wp_counters *stats)
{
	memset(b, 0, sizeof(*b));
	b->prot = prot;
	b->unprot = unprot;
	b->capprot = b->capunprot = cap;
	b->fixed = true;
	b->stats = stats;
}

void wpbatch_fini(struct wpbatch *b)
{
	if (!b->fixed) {
		shadow_free(b->prot, b->capprot * sizeof(*b->prot));
		shadow_free(b->unprot, b->capunprot * sizeof(*b->unprot));
	}
	memset(b, 0, sizeof(*b));
}

static void filter_add(struct wpbatch *b, uintptr_t start, size_t len)
{
	uint64_t bits = 0;
	uintptr_t a;

	if (len >= 64 * page_size()) {
		bits = ~0ULL;
	} else {
		for (a = start; a < start + len; a += page_size())
			bits |= 1ULL << ((a >> 12) & 63);
	}
	__atomic_fetch_or(&b->filter, bits, __ATOMIC_RELEASE);
}

/*
 * Growth uses mmap, not realloc: a collect queues while fault resolution
 * is paused, and a malloc that touches a tracked heap page would then wait
 * for a resolution that waits for the collect.
 */
static int push(struct wp_op **v, size_t *n, size_t *cap, bool fixed,
		struct wp_op op)
{
	size_t ncap = *cap ? *cap * 2 : 256;
	struct wp_op *nv;

	if (*n == *cap) {
		if (fixed)
			return -ENOSPC;
		nv = shadow_zalloc(ncap * sizeof(**v));
		if (!nv)
			return -ENOMEM;
		if (*v)
			memcpy(nv, *v, *n * sizeof(**v));
		shadow_free(*v, *cap * sizeof(**v));
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = op;
	return 0;
}

int wpbatch_protect(struct wpbatch *b, uintptr_t start, size_t len,
		    const void *owner)
{
	struct wp_op op = { start, start + len, owner };
	int ret = push(&b->prot, &b->nprot, &b->capprot, b->fixed, op);

	if (!ret) {
		filter_add(b, start, len);
		cnt_add(&b->stats->queued, 1);
	}
	return ret;
}

int wpbatch_unprotect(struct wpbatch *b, uintptr_t start, size_t len)
{
	struct wp_op op = { start, start + len, NULL };
	int ret = push(&b->unprot, &b->nunprot, &b->capunprot, b->fixed, op);

	if (!ret) {
		filter_add(b, start, len);
		cnt_add(&b->stats->queued, 1);
	}
	return ret;
}

/*
 * Shell sort in place: qsort() may malloc a merge buffer, and a fault
 * handler must not allocate (the program may track its own heap).
 */
static void sort_ops(struct wp_op *v, size_t n)
{
	static const size_t gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
	struct wp_op t;
	size_t g, i, j, gap;

	for (g = 0; g < ARRAY_SIZE(gaps); g++) {
		gap = gaps[g];
		for (i = gap; i < n; i++) {
			t = v[i];
			for (j = i; j >= gap && v[j - gap].start > t.start;
			     j -= gap)
				v[j] = v[j - gap];
			v[j] = t;
		}
	}
}

/* Sort and merge in place; returns the number of runs left. */
static size_t merge(struct wp_op *v, size_t n, size_t gap)
{
	size_t i, out = 0;

	if (!n)
		return 0;
	sort_ops(v, n);
	for (i = 1; i < n; i++) {
		struct wp_op *last = &v[out];
		bool joins = v[i].start <= last->end ||
			     (gap && v[i].owner && v[i].owner == last->owner &&
			      v[i].start - last->end <= gap);

		if (joins) {
			if (v[i].end > last->end)
				last->end = v[i].end;
		} else {
			v[++out] = v[i];
		}
	}
	return out + 1;
}

static int call(struct wpbatch *b, int (*fn)(void *, uintptr_t, size_t),
		void *arg, const struct wp_op *op)
{
	struct timespec ts = { 0, 100000 };
	uint64_t deadline = 0;
	int ret, tries = 0;

	for (;;) {
		cnt_add(&b->stats->calls, 1);
		ret = fn(arg, op->start, op->end - op->start);
		if (ret != -EAGAIN || ++tries > (int)b->max_retries)
			return ret;
		if (!deadline)
			deadline = now_ns() + RETRY_NS;
		else if (now_ns() > deadline)
			return ret;
		cnt_add(&b->stats->retries, 1);
		nanosleep(&ts, NULL);
		if (ts.tv_nsec < 8000000)
			ts.tv_nsec *= 2;
	}
}

int wpbatch_flush(struct wpbatch *b, const struct wp_target *t)
{
	size_t i, np, nu;
	int ret = 0;

	np = merge(b->prot, b->nprot, b->protect_gap);
	nu = merge(b->unprot, b->nunprot, 0);
	cnt_add(&b->stats->merged, (b->nprot - np) + (b->nunprot - nu));
	for (i = 0; i < np && !ret; i++) {
		ret = call(b, t->protect, t->arg, &b->prot[i]);
		if (!ret)
			cnt_add(&b->stats->pages,
				(b->prot[i].end - b->prot[i].start) /
					page_size());
	}
	if (nu == 1 && t->unprotect_wake && !ret) {
		ret = call(b, t->unprotect_wake, t->arg, &b->unprot[0]);
		/* A failed unprotect must still release its waiters. */
		if (ret && t->wake)
			call(b, t->wake, t->arg, &b->unprot[0]);
		nu = 0;
	}
	for (i = 0; i < nu && !ret; i++)
		ret = call(b, t->unprotect, t->arg, &b->unprot[i]);
	for (i = 0; i < nu && t->wake; i++)
		call(b, t->wake, t->arg, &b->unprot[i]);
	b->nprot = b->nunprot = 0;
	__atomic_store_n(&b->filter, 0, __ATOMIC_RELEASE);
	return ret;
}
