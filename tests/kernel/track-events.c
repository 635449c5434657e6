/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: address-space events on tracked ranges (zaps, mprotect,
 * unmap and mremap, a write the instant after mremap, a foreign mapping
 * inside), and fork's -ECHILD.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "track-common.h"

/* anon-read-maps-fresh-page present, on a backend that sees zaps by absence. */
static bool zap_read_hidden(int b)
{
	return (b == UFFDWP_BACKEND_MPROTECT ||
		b == UFFDWP_BACKEND_SOFT_DIRTY) &&
	       test_defect_status("anon-read-maps-fresh-page") ==
		       UFFDWP_DEFECT_PRESENT;
}

/* MADV_DONTNEED made the page zeros: it counts as written. */
START_TEST(dontneed_counts_as_dirty)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0, i;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(8, PROT_READ | PROT_WRITE);
	memset(p, 1, 8 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
	ck_assert_int_eq(madvise(p + 2 * ps, 2 * ps, MADV_DONTNEED), 0);
	/*
	 * Read after the zap: the zero page, still new contents. Where a
	 * read maps a fresh page instead, backends that see zaps by absence
	 * cannot tell, and the probe says so (test-probe proves the report).
	 */
	if (!zap_read_hidden(b))
		ck_assert_int_eq(*(volatile char *)(p + 3 * ps), 0);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 2);
	/* Re-armed: a later write is seen, a quiet page is not. */
	p[2 * ps] = 5;
	if (b != UFFDWP_BACKEND_UFFD_SYNC) {
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	} else {
		/* sync watches zapped pages for a while (a superset), then
		 * settles. */
		ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 1);
		for (i = 0; i < 10 && uffdwp_collect(ctx, count_run, &n); i++)
			usleep(100000);
		ck_assert_int_lt(i, 10);
	}
	uffdwp_ctx_free(ctx);
	munmap(p, 8 * ps);
}
END_TEST

/* mprotect read-only then read-write must not lose tracking. */
START_TEST(mprotect_roundtrip_keeps_tracking)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p;

	NEED_BACKEND(b);
	if (b == UFFDWP_BACKEND_MPROTECT) {
		printf("mprotect: the program must not change protection of tracked ranges (documented)\n");
		return;
	}
	ctx = new_ctx(b);
	p = map(4, PROT_READ | PROT_WRITE);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	ck_assert_int_eq(mprotect(p, 4 * ps, PROT_READ), 0);
	ck_assert_int_eq(mprotect(p, 4 * ps, PROT_READ | PROT_WRITE), 0);
	p[ps] = 7;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
}
END_TEST

/* Move the 8 tracked pages at @q onto @dst (mremap MREMAP_FIXED with
 * @flags) and write the moved memory at once. */
static void move_and_write(char *q, char *dst, int flags)
{
	ck_assert_ptr_eq(mremap(q, 8 * ps, 8 * ps,
				MREMAP_MAYMOVE | MREMAP_FIXED | flags, dst),
			 dst);
	memset(dst, 9, 8 * ps);
	ck_assert_int_eq(dst[8 * ps - 1], 9);
}

/* munmap and mremap of a tracked range: no crash, nothing reported from
 * the old addresses, untrack still allowed. */
START_TEST(unmap_and_mremap)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p, *q, *dst;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(8, PROT_READ | PROT_WRITE);
	q = map(8, PROT_READ | PROT_WRITE);
	dst = map(8, PROT_READ | PROT_WRITE);
	if (b == UFFDWP_BACKEND_MPROTECT) {
		/* Documented: moved pages keep PROT_READ, and the handler
		 * cannot tell them from the program's own read-only pages,
		 * so mprotect ranges must be untracked before mremap. */
		ck_assert_int_eq(uffdwp_track(ctx, q, 8 * ps, 0), 0);
		ck_assert_int_eq(uffdwp_untrack(ctx, q, 8 * ps), 0);
	}
	memset(p, 1, 8 * ps);
	memset(q, 1, 8 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 8 * ps, 0), 0);
	if (b != UFFDWP_BACKEND_MPROTECT)
		ck_assert_int_eq(uffdwp_track(ctx, q, 8 * ps, 0), 0);
	ck_assert_int_eq(munmap(p + 4 * ps, 4 * ps), 0);
	/* The moved memory is writable without faults to the library. */
	move_and_write(q, dst, 0);
	p[0] = 3;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, q, 8 * ps),
			 b == UFFDWP_BACKEND_MPROTECT ? -ENOENT : 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, p, 8 * ps), 0);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(dst, 8 * ps);
}
END_TEST

/*
 * A write to a range the instant mremap(2) moved it, with the handler
 * thread held between reading UFFD_EVENT_REMAP and releasing the moved
 * mapping. With MREMAP_DONTUNMAP no unmap event follows, so mremap has
 * returned while the pages there are still write-protected. The write must
 * wait for the release, not die of SIGBUS (self-service) or stay blocked.
 */
START_TEST(write_right_after_mremap)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	char *q, *dst;
	size_t n = 0;

	NEED_BACKEND(b);
	if (b == UFFDWP_BACKEND_MPROTECT) {
		printf("mprotect: ranges must be untracked before mremap (documented)\n");
		return;
	}
	ctx = new_ctx(b);
	q = map(8, PROT_READ | PROT_WRITE);
	dst = map(8, PROT_READ | PROT_WRITE);
	memset(q, 1, 8 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, q, 8 * ps, 0), 0);
	uffdwp_test_hooks.hold_ms = 100;
	uffdwp_test_hooks.held = HOLD_NONE;
	uffdwp_test_hooks.hold = HOLD_SYNC_EVENT;
	move_and_write(q, dst, MREMAP_DONTUNMAP);
	uffdwp_test_hooks.hold = HOLD_NONE;
	/* The handler thread did hold the window the write fell into; the
	 * source stays tracked (empty now), the moved pages are not. */
	if (b == UFFDWP_BACKEND_UFFD_SYNC)
		ck_assert_int_eq(uffdwp_test_hooks.held, HOLD_SYNC_EVENT);
	n = 0;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 0);
	ck_assert_int_eq(uffdwp_untrack(ctx, q, 8 * ps), 0);
	ctx = uffdwp_ctx_free(ctx);
	ck_assert_int_eq(munmap(q, 8 * ps) | munmap(dst, 8 * ps), 0);
}
END_TEST

/*
 * A context made right after one was freed, tracking memory mapped where
 * the old one's was: the allocator and mmap hand out the same addresses,
 * and the first write is still a first write. (Self-service once took it
 * for a repeat of the old context's last fault, and killed the program.)
 */
START_TEST(new_context_where_freed_one_was)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	unsigned int round;
	size_t n;
	char *p;

	NEED_BACKEND(b);
	for (round = 0; round < 3; round++) {
		ctx = new_ctx(b);
		p = map(4, PROT_READ | PROT_WRITE);
		memset(p, 1, 4 * ps);
		ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
		p[0] = 2;
		n = 0;
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
		uffdwp_ctx_free(ctx);
		munmap(p, 4 * ps);
	}
}
END_TEST

/* A mapping the program puts inside a tracked range is not tracked, and
 * must not cost the pages around it their tracking. */
START_TEST(foreign_mapping_inside_range)
{
	int b = backends[_i];
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	char *p, *q;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(64, PROT_READ | PROT_WRITE);
	memset(p, 1, 64 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	q = mmap(p + 32 * ps, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(q, p + 32 * ps);
	q[0] = 5; /* the foreign page itself */
	p[30 * ps] = 2;
	p[34 * ps] = 2;
	p[40 * ps] = 2;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 3);
	/* Re-armed around the hole: the next writes are seen again. */
	p[0] = 3;
	p[63 * ps] = 3;
	n = 0;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 2);
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 0);
	uffdwp_ctx_free(ctx);
	munmap(p, 64 * ps);
}
END_TEST

/*
 * The mappings of /proc/self/smaps that overlap [@p, @p + @len): how many,
 * and how many still carry a userfaultfd registration ("uw": write-protect
 * mode, "um": missing).
 */
static void range_mappings(const char *p, size_t len, unsigned int *maps,
			   unsigned int *registered)
{
	uintptr_t lo, hi, a = (uintptr_t)p, e = a + len;
	char line[512];
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	ck_assert_ptr_nonnull(f);
	*maps = *registered = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo < e && hi > a;
			*maps += in;
		} else if (in && !strncmp(line, "VmFlags:", 8) &&
			   (strstr(line, " uw") || strstr(line, " um"))) {
			(*registered)++;
		}
	}
	fclose(f);
}

struct scribbler {
	char *p;
	size_t pages;
	atomic_int stop;
	uint64_t writes;
};

static void *scribble(void *arg)
{
	struct scribbler *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	while (!atomic_load(&w->stop)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w->p[(x % w->pages) * ps + 8] = (char)x;
		w->writes++;
	}
	return NULL;
}

/*
 * Untrack releases a large range in steps (sys-uffd.h) while a thread
 * writes it: afterwards it is one mapping again, with no registration
 * left, every byte written is there, and tracking it again works.
 */
START_TEST(untrack_large_range_while_written)
{
	int b = backends[_i];
	size_t pages = (40UL << 20) / ps, n = 0, i; /* 2.5 release steps */
	unsigned int maps, registered;
	struct scribbler w = { .pages = 0 };
	struct uffdwp_ctx *ctx;
	pthread_t t;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(pages, PROT_READ | PROT_WRITE);
	memset(p, 1, pages * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, pages * ps, 0), 0);
	uffdwp_collect(ctx, count_run, &n); /* every page protected */
	w.p = p;
	w.pages = pages;
	ck_assert_int_eq(pthread_create(&t, NULL, scribble, &w), 0);
	while (!w.writes)
		sched_yield();
	ck_assert_int_eq(uffdwp_untrack(ctx, p, pages * ps), 0);
	atomic_store(&w.stop, 1);
	pthread_join(t, NULL);
	range_mappings(p, pages * ps, &maps, &registered);
	ck_assert_msg(maps == 1 && registered == 0,
		      "after untrack: %u mappings, %u still registered", maps,
		      registered);
	/* Writable without the library: a write lands at once. */
	for (i = 0; i < pages; i += 97)
		p[i * ps] = 7;
	for (i = 0; i < pages; i += 97)
		ck_assert_int_eq(p[i * ps], 7);
	/* Tracked again over the merged mapping: writes are seen. */
	ck_assert_int_eq(uffdwp_track(ctx, p, pages * ps, 0), 0);
	n = 0;
	uffdwp_collect(ctx, count_run, &n);
	p[5 * ps] = 3;
	p[(pages - 1) * ps] = 3;
	n = 0;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 2);
	uffdwp_ctx_free(ctx);
	range_mappings(p, pages * ps, &maps, &registered);
	ck_assert_int_eq(registered, 0);
	munmap(p, pages * ps);
}
END_TEST

/* After fork the child gets -ECHILD and may free; the parent goes on. */
START_TEST(fork_child_gets_echild)
{
	int b = backends[_i], status;
	struct uffdwp_ctx *ctx;
	size_t n = 0;
	pid_t pid;
	char *p;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(4, PROT_READ | PROT_WRITE);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffdwp_stats st = { .sz = sizeof(st) };
		int ok = uffdwp_collect(ctx, count_run, &n) == -ECHILD &&
			 uffdwp_track(ctx, p, ps, 0) == -ECHILD &&
			 uffdwp_untrack(ctx, p, 4 * ps) == -ECHILD &&
			 uffdwp_ctx_backend(ctx) == -ECHILD &&
			 uffdwp_ctx_stats(ctx, &st) == -ECHILD;

		/* The child's copy is not tracked: writing it just works,
		 * before and after freeing the parent's context. */
		p[ps] = 8;
		uffdwp_ctx_free(ctx);
		*(volatile char *)(p + 3 * ps) = 8;
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %#x", status);
	p[2 * ps] = 9;
	ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
}
END_TEST

void track_events_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "events",
		  60,
		  { dontneed_counts_as_dirty, mprotect_roundtrip_keeps_tracking,
		    unmap_and_mremap, write_right_after_mremap,
		    new_context_where_freed_one_was, fork_child_gets_echild,
		    foreign_mapping_inside_range,
		    untrack_large_range_while_written } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
