/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tracking suite: memory kinds (shmem, shared files, THP policy).
 */
#include "track-common.h"

/* --- memory kinds ------------------------------------------------------- */

static int track_kind(int b, char *p, size_t len)
{
	struct uffdwp_ctx *ctx = new_ctx(b);
	size_t n = 0;
	int ret = uffdwp_track(ctx, p, len, 0);

	if (!ret) {
		p[0] = 1;
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
		p[len - 1] = 1;
		ck_assert_int_eq(uffdwp_collect(ctx, count_run, &n), 1);
	}
	uffdwp_ctx_free(ctx);
	return ret;
}

START_TEST(memfd_shmem)
{
	int b = backends[_i], fd, ret;
	char *p;

	NEED_BACKEND(b);
	fd = memfd_create("uffdwp-test", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 16 * ps), 0);
	p = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ret = track_kind(b, p, 16 * ps);
	if (b == UFFDWP_BACKEND_SOFT_DIRTY)
		ck_assert_int_eq(ret, -EOPNOTSUPP);
	else if (b == UFFDWP_BACKEND_UFFD_SYNC &&
		 !(caps.uffd_features & (1ULL << 12)))
		ck_assert_int_eq(ret, -EOPNOTSUPP);
	else
		ck_assert_int_eq(ret, 0);
	munmap(p, 16 * ps);
	close(fd);
}
END_TEST

START_TEST(file_shared)
{
	int b = backends[_i], fd, ret;
	char path[] = "/tmp/uffdwp-test-XXXXXX", *p;

	NEED_BACKEND(b);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, 8 * ps), 0);
	p = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ret = track_kind(b, p, 8 * ps);
	ck_assert_int_eq(ret, b == UFFDWP_BACKEND_UFFD_ASYNC ? 0 : -EOPNOTSUPP);
	munmap(p, 8 * ps);
	close(fd);
}
END_TEST

START_TEST(thp_policy)
{
	int b = backends[_i];
	struct uffdwp_stats st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx;
	size_t len = 4UL << 20, n = 0;
	char *raw, *p;

	NEED_BACKEND(b);
	raw = map(len / ps * 2, PROT_READ | PROT_WRITE);
	p = (char *)(((uintptr_t)raw + len / 2 - 1) & ~(len / 2 - 1));
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	ctx = new_ctx(b);
	ck_assert_int_eq(uffdwp_track(ctx, p, len, UFFDWP_TRACK_HUGE), 0);
	p[5 * ps] = 2;
	ck_assert_int_ge(uffdwp_collect(ctx, count_run, &n), 1);
	ck_assert_int_eq(uffdwp_ctx_stats(ctx, &st), 0);
	/* Whatever the granularity, it is what was reported. */
	ck_assert_uint_ge(n * ps, st.granularity);
	printf("%s: THP kept, one write reported %zu pages, granularity %llu\n",
	       uffdwp_backend_name(b), n, (unsigned long long)st.granularity);
	uffdwp_ctx_free(ctx);
	munmap(raw, len * 2);
}
END_TEST

void track_kinds_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "kinds", 60, { memfd_shmem, file_shared, thp_policy } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
