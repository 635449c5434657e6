/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Page bitmaps: see dirtymap.h.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "dirtymap.h"
#include "shadow-alloc.h"
#include "internal.h"

/*
 * Maps come from mmap, not malloc: fault and signal handlers write them,
 * and a program may track its own heap (a garbage collector does), where a
 * handler's write would fault on itself. Untouched words cost nothing, so
 * a sparse 16 GiB range costs what its written pages touch.
 */
static size_t map_bytes(size_t nbits)
{
	size_t b = (DIRTYMAP_WORDS(nbits) ? DIRTYMAP_WORDS(nbits) : 1) *
		   sizeof(uint64_t);

	return (b + page_size() - 1) / page_size() * page_size();
}

int dirtymap_init(struct dirtymap *m, size_t nbits)
{
	/* The handlers write it: the library's own memory (shadow-alloc.h). */
	m->nbits = nbits;
	m->w = own_map(map_bytes(nbits));
	return m->w ? 0 : -ENOMEM;
}

void dirtymap_free(struct dirtymap *m)
{
	if (m->w)
		own_unmap(m->w, map_bytes(m->nbits));
	m->w = NULL;
	m->nbits = 0;
}

/* The bits [lo, hi) of one word. */
static inline uint64_t word_mask(size_t lo, size_t hi)
{
	uint64_t m = hi >= 64 ? ~0ULL : (1ULL << hi) - 1;

	return m & ~((1ULL << lo) - 1);
}

void dirtymap_set_range(struct dirtymap *m, size_t start, size_t n)
{
	size_t end = start + n, i, lo, hi;

	for (i = start; i < end; i = (i / 64 + 1) * 64) {
		lo = i % 64;
		hi = end - i / 64 * 64;
		__atomic_fetch_or(&m->w[i / 64],
				  word_mask(lo, hi > 64 ? 64 : hi),
				  __ATOMIC_RELAXED);
	}
}

void dirtymap_clear_range(struct dirtymap *m, size_t start, size_t n)
{
	size_t end = start + n, i, lo, hi;

	for (i = start; i < end; i = (i / 64 + 1) * 64) {
		lo = i % 64;
		hi = end - i / 64 * 64;
		__atomic_fetch_and(&m->w[i / 64],
				   ~word_mask(lo, hi > 64 ? 64 : hi),
				   __ATOMIC_RELAXED);
	}
}

size_t dirtymap_take(struct dirtymap *dst, struct dirtymap *src)
{
	size_t i, moved = 0;
	uint64_t v;

	for (i = 0; i < DIRTYMAP_WORDS(src->nbits); i++) {
		if (!__atomic_load_n(&src->w[i], __ATOMIC_RELAXED))
			continue;
		v = __atomic_exchange_n(&src->w[i], 0, __ATOMIC_ACQ_REL);
		dst->w[i] |= v;
		moved += (size_t)__builtin_popcountll(v);
	}
	return moved;
}

void dirtymap_or(struct dirtymap *dst, const struct dirtymap *src)
{
	size_t i;

	for (i = 0; i < DIRTYMAP_WORDS(src->nbits); i++)
		dst->w[i] |= __atomic_load_n(&src->w[i], __ATOMIC_RELAXED);
}

/* The first bit at or after @from equal to 1 after xor with @flip. */
static size_t next_bit(const struct dirtymap *m, size_t from, uint64_t flip)
{
	size_t i = from / 64;
	uint64_t v;

	if (from >= m->nbits)
		return m->nbits;
	v = (__atomic_load_n(&m->w[i], __ATOMIC_RELAXED) ^ flip) &
	    ~((1ULL << (from % 64)) - 1);
	for (;;) {
		if (v) {
			size_t bit = i * 64 + (size_t)__builtin_ctzll(v);

			return bit < m->nbits ? bit : m->nbits;
		}
		if (++i >= DIRTYMAP_WORDS(m->nbits))
			return m->nbits;
		v = __atomic_load_n(&m->w[i], __ATOMIC_RELAXED) ^ flip;
	}
}

size_t dirtymap_next_set(const struct dirtymap *m, size_t from)
{
	return next_bit(m, from, 0);
}

size_t dirtymap_next_clear(const struct dirtymap *m, size_t from)
{
	return next_bit(m, from, ~0ULL);
}

size_t dirtymap_count(const struct dirtymap *m)
{
	size_t i, n = 0;

	for (i = 0; i < DIRTYMAP_WORDS(m->nbits); i++)
		n += (size_t)__builtin_popcountll(
			__atomic_load_n(&m->w[i], __ATOMIC_RELAXED));
	return n;
}
