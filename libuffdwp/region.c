/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracked ranges: see region.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-bp.h>

#include "internal.h"
#include "region.h"
#include "shadow-alloc.h"

static int region_cmp(const struct region *a, const struct region *b)
{
	return (a->start > b->start) - (a->start < b->start);
}

RB_HEAD(region_tree, region);
/* libbsd's RB_GENERATE_STATIC needs a __unused it leaves undefined. */
RB_GENERATE_INTERNAL(region_tree, region, node, region_cmp,
		     __attribute__((unused)) static)

static struct region_tree claims = RB_INITIALIZER(&claims);
static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;

struct region *region_new(struct backend_ctx *ctx, uintptr_t start, size_t len,
			  unsigned int flags, int memtype)
{
	/* Handlers write it (zap watch): not from a heap that may be tracked. */
	struct region *r = shadow_zalloc(sizeof(*r));
	size_t n = len / page_size();

	if (!r)
		return NULL;
	r->start = start;
	r->end = start + len;
	r->npages = n;
	r->flags = flags;
	r->memtype = memtype;
	r->ctx = ctx;
	if (dirtymap_init(&r->pending, n) || dirtymap_init(&r->recorded, n) ||
	    dirtymap_init(&r->present, n) || dirtymap_init(&r->gone, n) ||
	    dirtymap_init(&r->zapwatch, n)) {
		region_free(r);
		return NULL;
	}
	return r;
}

void region_free(struct region *r)
{
	if (!r)
		return;
	dirtymap_free(&r->pending);
	dirtymap_free(&r->recorded);
	dirtymap_free(&r->present);
	dirtymap_free(&r->gone);
	dirtymap_free(&r->zapwatch);
	shadow_free(r, sizeof(*r));
}

int region_claim(struct region *r)
{
	struct region *next, *prev;
	int ret = 0;

	pthread_mutex_lock(&claims_lock);
	next = RB_NFIND(region_tree, &claims, r);
	prev = next ? RB_PREV(region_tree, &claims, next) :
		      RB_MAX(region_tree, &claims);
	if ((next && next->start < r->end) || (prev && prev->end > r->start))
		ret = -EEXIST;
	else
		RB_INSERT(region_tree, &claims, r);
	pthread_mutex_unlock(&claims_lock);
	return ret;
}

bool region_overlaps(uintptr_t start, uintptr_t end)
{
	struct region key = { .start = start, .end = end };
	struct region *next, *prev;
	bool ret;

	pthread_mutex_lock(&claims_lock);
	next = RB_NFIND(region_tree, &claims, &key);
	prev = next ? RB_PREV(region_tree, &claims, next) :
		      RB_MAX(region_tree, &claims);
	ret = (next && next->start < end) || (prev && prev->end > start);
	pthread_mutex_unlock(&claims_lock);
	return ret;
}

void region_unclaim(struct region *r)
{
	pthread_mutex_lock(&claims_lock);
	RB_REMOVE(region_tree, &claims, r);
	pthread_mutex_unlock(&claims_lock);
}

void region_claims_atfork(enum fork_phase phase)
{
	switch (phase) {
	case FORK_PREPARE:
		pthread_mutex_lock(&claims_lock);
		break;
	case FORK_PARENT:
		pthread_mutex_unlock(&claims_lock);
		break;
	case FORK_CHILD:
		/* The regions stay allocated: the parent's contexts, freed
		 * in the child, keep theirs (see uffdwp_ctx_free()). */
		RB_INIT(&claims);
		pthread_mutex_unlock(&claims_lock);
		break;
	}
}

static struct region_set *set_alloc(size_t n)
{
	struct region_set *s = malloc(sizeof(*s) + n * sizeof(s->r[0]));

	if (s) {
		s->n = n;
		s->holes = false;
	}
	return s;
}

int regions_add(struct region_set **set, struct region *r)
{
	struct region_set *old = *set, *s;
	size_t n = old ? old->n : 0, i, j = 0, lo, hi;

	s = set_alloc(n + 1);
	if (!s)
		return -ENOMEM;
	if (old && !old->holes) {
		/* Sorted and whole: two copies around the new slot, as a
		 * program tracking thousands of ranges adds one at a time. */
		for (lo = 0, hi = n; lo < hi;) {
			i = lo + (hi - lo) / 2;
			if (old->r[i]->start < r->start)
				lo = i + 1;
			else
				hi = i;
		}
		memcpy(s->r, old->r, lo * sizeof(s->r[0]));
		s->r[lo] = r;
		memcpy(s->r + lo + 1, old->r + lo, (n - lo) * sizeof(s->r[0]));
		j = n + 1;
		r = NULL;
		n = 0; /* nothing left for the loop below */
	}
	/* Slots emptied by a low-memory removal are dropped here. */
	for (i = 0; i < n; i++) {
		if (!old->r[i])
			continue;
		if (r && old->r[i]->start > r->start) {
			s->r[j++] = r;
			r = NULL;
		}
		s->r[j++] = old->r[i];
	}
	if (r)
		s->r[j++] = r;
	s->n = j;
	rcu_assign_pointer(*set, s);
	urcu_bp_synchronize_rcu();
	free(old);
	return 0;
}

void regions_remove(struct region_set **set, struct region *r)
{
	struct region_set *old = *set, *s;
	size_t i, j = 0;

	/* If the smaller array cannot be had, an empty slot keeps it
	 * correct: lookups skip NULL. */
	s = set_alloc(old->n - 1);
	if (s) {
		for (i = 0; i < old->n; i++)
			if (old->r[i] && old->r[i] != r)
				s->r[j++] = old->r[i];
		s->n = j;
		rcu_assign_pointer(*set, s);
		urcu_bp_synchronize_rcu();
		free(old);
	} else {
		for (i = 0; i < old->n; i++)
			if (old->r[i] == r)
				__atomic_store_n(&old->r[i], NULL,
						 __ATOMIC_RELEASE);
		old->holes = true;
		urcu_bp_synchronize_rcu();
	}
}

void regions_free(struct region_set **set)
{
	free(*set);
	*set = NULL;
}

struct region *regions_lookup(struct region_set *set, uintptr_t addr)
{
	size_t lo = 0, hi, mid;
	struct region *r;

	if (!set)
		return NULL;
	hi = set->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = __atomic_load_n(&set->r[mid], __ATOMIC_ACQUIRE);
		if (!r) {
			/* A removed slot: fall back to a linear look. */
			for (mid = 0; mid < set->n; mid++) {
				r = __atomic_load_n(&set->r[mid],
						    __ATOMIC_ACQUIRE);
				if (r && addr >= r->start && addr < r->end)
					return r;
			}
			return NULL;
		}
		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct region *regions_find_exact(struct region_set *set, uintptr_t start,
				  size_t len)
{
	size_t i;

	for (i = 0; set && i < set->n; i++)
		if (set->r[i] && set->r[i]->start == start &&
		    set->r[i]->end - set->r[i]->start == len)
			return set->r[i];
	return NULL;
}
