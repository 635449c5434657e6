/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Page bitmaps in 64-bit words (not libbsd's bitstring: it scans a byte at a
 * time with int indices). Fault handlers and signal handlers set bits
 * atomically while a collect moves them out word by word with an exchange,
 * so a bit set concurrently is either taken now or stays for next time.
 */
#ifndef UFFDWP_DIRTYMAP_H
#define UFFDWP_DIRTYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dirtymap {
	uint64_t *w;
	size_t nbits;
};

#define DIRTYMAP_WORDS(n) (((n) + 63) / 64)

int dirtymap_init(struct dirtymap *m, size_t nbits);
void dirtymap_free(struct dirtymap *m);

/* Async-signal-safe. */
static inline void dirtymap_set(struct dirtymap *m, size_t i)
{
	__atomic_fetch_or(&m->w[i / 64], 1ULL << (i % 64), __ATOMIC_RELAXED);
}

static inline bool dirtymap_test(const struct dirtymap *m, size_t i)
{
	return __atomic_load_n(&m->w[i / 64], __ATOMIC_RELAXED) &
	       (1ULL << (i % 64));
}

void dirtymap_set_range(struct dirtymap *m, size_t start, size_t n);
void dirtymap_clear_range(struct dirtymap *m, size_t start, size_t n);

/* dst |= src, src = 0, atomically per word of src; returns bits moved. */
size_t dirtymap_take(struct dirtymap *dst, struct dirtymap *src);

/* dst |= src (src unchanged). */
void dirtymap_or(struct dirtymap *dst, const struct dirtymap *src);

/* The first set (clear) bit at or after @from; m->nbits if none. */
size_t dirtymap_next_set(const struct dirtymap *m, size_t from);
size_t dirtymap_next_clear(const struct dirtymap *m, size_t from);

size_t dirtymap_count(const struct dirtymap *m);

#endif /* UFFDWP_DIRTYMAP_H */
