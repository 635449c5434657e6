/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The wp batch (invariant 3.2): every protection change of the sync and
 * mprotect backends is queued here and issued by wpbatch_flush() as sorted,
 * merged runs, one system call per run. Unprotects go out with DONTWAKE and
 * then one wake per run, so a waiter is woken only when its whole run is
 * writable. A hashed filter of queued pages (address bits 12-17) lets a
 * fault handler see at no cost whether a pending change could cover its
 * page, and flush first only then (the flush barrier).
 */
#ifndef UFFDWP_WPBATCH_H
#define UFFDWP_WPBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* How a batch's changes reach the kernel. Each returns 0 or -errno. */
struct wp_target {
	int (*protect)(void *arg, uintptr_t start, size_t len);
	int (*unprotect)(void *arg, uintptr_t start, size_t len); /* no wake */
	int (*wake)(void *arg, uintptr_t start, size_t len); /* may be NULL */
	/* Unprotect and wake in one call (may be NULL): used when the batch
	 * holds a single unprotect run, where waking after "all runs" and
	 * after "this run" are the same moment, one system call earlier. */
	int (*unprotect_wake)(void *arg, uintptr_t start, size_t len);
	void *arg;
};

struct wp_op {
	uintptr_t start, end;
	const void *owner; /* protect runs of one owner may merge across gaps */
};

struct wp_counters {
	uint64_t calls; /* system calls issued */
	uint64_t queued; /* ranges queued */
	uint64_t pages; /* pages protected */
	uint64_t retries; /* EAGAIN retries */
	uint64_t merged; /* queued ranges folded into another by merging */
};

struct wpbatch {
	struct wp_op *prot, *unprot;
	size_t nprot, nunprot, capprot, capunprot;
	/* Protecting a page that is already protected changes nothing, so
	 * protect runs of the same owner separated by at most this many
	 * bytes go out as one call: one 0.9 us call costs as much as
	 * protecting ~14 pages inside a range (reference/raw-limits.md). */
	size_t protect_gap;
	uint64_t filter;
	struct wp_counters *stats;
	/* Fixed buffers (handler threads): never grow, never malloc. */
	bool fixed;
	/* EAGAIN retries inside a flush; a fault handler wants none, it
	 * must go back to reading the event that causes them. */
	unsigned int max_retries;
};

void wpbatch_init(struct wpbatch *b, size_t protect_gap,
		  struct wp_counters *stats);
/* A batch over caller-provided arrays of @cap entries each. */
void wpbatch_init_fixed(struct wpbatch *b, struct wp_op *prot,
			struct wp_op *unprot, size_t cap,
			struct wp_counters *stats);
void wpbatch_fini(struct wpbatch *b);

static inline size_t wpbatch_room(const struct wpbatch *b)
{
	size_t used = b->nprot > b->nunprot ? b->nprot : b->nunprot;

	return b->fixed ? b->capprot - used : (size_t)-1;
}

int wpbatch_protect(struct wpbatch *b, uintptr_t start, size_t len,
		    const void *owner);
int wpbatch_unprotect(struct wpbatch *b, uintptr_t start, size_t len);

/* May a queued change cover the page at @addr? Lock-free. */
static inline bool wpbatch_may_cover(const struct wpbatch *b, uintptr_t addr)
{
	return __atomic_load_n(&b->filter, __ATOMIC_ACQUIRE) &
	       (1ULL << ((addr >> 12) & 63));
}

/*
 * Issue everything queued: protect runs first, then unprotect runs with no
 * wake, then the wakes. Returns 0 or the first -errno (the failed run and
 * those after it are dropped from the batch; the caller decides).
 */
int wpbatch_flush(struct wpbatch *b, const struct wp_target *t);

#endif /* UFFDWP_WPBATCH_H */
