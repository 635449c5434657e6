/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by every file of the library. Nothing here is exported.
 */
#ifndef UFFDWP_INTERNAL_H
#define UFFDWP_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

/*
 * Around fork(): process-wide state is locked before (so no thread of the
 * parent holds it half-updated), unlocked after, and in the child the
 * parent's ranges are forgotten so the child can track again.
 */
enum fork_phase {
	FORK_PREPARE,
	FORK_PARENT,
	FORK_CHILD,
};

/* [lo, hi): a piece of an address range. */
struct span {
	uintptr_t lo, hi;
};

/* The only way a symbol leaves the library (with libuffdwp.sym). */
#define UFFDWP_EXPORT __attribute__((visibility("default")))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The structure of type @type whose @member @ptr points to. */
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr)-offsetof(type, member)))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline size_t page_size(void)
{
	static size_t ps;

	if (unlikely(!ps))
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

/* Negative errno of the last failed call, never 0 (a stray 0 means EIO). */
static inline int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/*
 * fopen() of a /proc file, read through @buf (at least 1 KiB), which the
 * caller keeps on its stack: the kernel fills that buffer, and a heap
 * buffer may lie in memory the program tracks, where mprotect and a
 * user-mode-only userfaultfd fail the kernel's writes (EFAULT).
 */
static inline FILE *proc_fopen(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	if (f)
		setvbuf(f, buf, _IOFBF, len);
	return f;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Statistics counters: written by one thread, read by any. */
static inline void cnt_add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static inline uint64_t cnt_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/*
 * Caller structures start with `size_t sz` (see the header's conventions).
 * sz_check(): -EINVAL if @dst is NULL or its sz cannot even hold sz, -E2BIG
 * if it is longer than the @known size with a non-zero tail, else 0.
 * sz_copy_in(): after a successful check of @src, copy min(sz, @known)
 * bytes of it into @dst, zero the rest of @dst's @known bytes, and set
 * @dst's sz to @known: an older caller's missing fields read as zero.
 * sz_copy_out(): after a successful check, copy min(sz, @known) bytes of
 * @src past sz, keeping the caller's sz.
 */
int sz_check(const void *dst, size_t known);
void sz_copy_in(void *dst, const void *src, size_t known);
void sz_copy_out(void *dst, const void *src, size_t known);

#endif /* UFFDWP_INTERNAL_H */
