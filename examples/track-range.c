/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Build: cc track-range.c $(pkg-config --cflags --libs libuffdwp) -o track-range
 *
 * The smallest full cycle of dirty tracking: track a range, write some of its
 * pages, ask which pages were written; write again, ask again. Each collect
 * must report exactly the pages written since the previous one: a page
 * missed would leave a stale copy, a page too many would be copied for
 * nothing. The program checks both, so it doubles as a test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffdwp/uffdwp.h>

#define NPAGES 16

/* What one collect reported, page by page. */
struct report {
	char *base;
	size_t page;
	int times[NPAGES];
	int bad_runs;
};

static int on_run(void *arg, void *addr, size_t len)
{
	struct report *r = arg;
	char *p = addr, *end = r->base + NPAGES * r->page;
	size_t first, i;

	if (p < r->base || p + len > end || (p - r->base) % r->page || !len ||
	    len % r->page) {
		printf("  run %p+%zu is not a run of tracked pages\n", addr,
		       len);
		r->bad_runs++;
		return 0;
	}
	first = (p - r->base) / r->page;
	printf("  pages %zu-%zu\n", first, first + len / r->page - 1);
	for (i = first; i < first + len / r->page; i++)
		r->times[i]++;
	return 0;
}

/*
 * Write the pages listed in @pages (ended by -1; a page may appear twice and
 * still counts once), collect, and compare. Returns 0 if exact.
 */
static int write_and_collect(struct uffdwp_ctx *ctx, char *base, size_t page,
			     const int *pages)
{
	struct report r = { .base = base, .page = page };
	int written[NPAGES] = { 0 };
	int i, nwritten = 0, wrong = 0;
	long got;

	for (i = 0; pages[i] >= 0; i++) {
		base[pages[i] * page]++;
		if (!written[pages[i]]++)
			nwritten++;
	}
	printf("wrote %d pages; collect reports:\n", nwritten);

	got = uffdwp_collect(ctx, on_run, &r);
	if (got < 0) {
		fprintf(stderr, "uffdwp_collect: %s\n", strerror((int)-got));
		return -1;
	}
	for (i = 0; i < NPAGES; i++) {
		if (r.times[i] == !!written[i])
			continue;
		printf("  page %d: written %s, reported %d times\n", i,
		       written[i] ? "yes" : "no", r.times[i]);
		wrong++;
	}
	if (got != nwritten) {
		printf("  collect returned %ld, expected %d\n", got, nwritten);
		wrong++;
	}
	return wrong || r.bad_runs ? -1 : 0;
}

int main(int argc, char **argv)
{
	/* Runs of several pages, a page written twice, and the range's ends. */
	static const int first[] = { 0, 1, 2, 5, 9, 9, -1 };
	static const int second[] = { 2, 3, 15, -1 };
	struct uffdwp_caps caps = { .sz = sizeof(caps) };
	struct uffdwp_stats st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	const char *env = getenv("UFFDWP_BACKEND");
	char *base;
	int b, err, ret = 1;

	if (argc > 1) {
		int help = argc == 2 && (!strcmp(argv[1], "--help") ||
					 !strcmp(argv[1], "-h"));

		fprintf(help ? stdout : stderr,
			"usage: %s [--help]\n"
			"Tracks 16 pages, writes some, and checks that each collect\n"
			"reports exactly the pages written; UFFDWP_BACKEND forces a\n"
			"backend. Exit status: 0 exact, 1 not, 2 usage, 77 no backend.\n",
			argv[0]);
		return help ? 0 : 2;
	}
	err = uffdwp_ctx_new(NULL, &ctx);
	if (err == -EOPNOTSUPP && uffdwp_probe(&caps) == 0) {
		/* AUTO found nothing, or UFFDWP_BACKEND names one that fails. */
		b = env ? uffdwp_backend_from_name(env) : 0;
		printf("SKIP: %s\n",
		       b > 0 ? caps.backend[b].reason : caps.auto_reason);
		return 77;
	}
	if (err) {
		fprintf(stderr, "uffdwp_ctx_new: %s\n", strerror(-err));
		return 1;
	}
	printf("backend %s: %s\n", uffdwp_backend_name(uffdwp_ctx_backend(ctx)),
	       uffdwp_ctx_backend_reason(ctx));

	base = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		perror("mmap");
		goto out_ctx;
	}
	err = uffdwp_track(ctx, base, NPAGES * page, 0);
	if (err) {
		fprintf(stderr, "uffdwp_track: %s\n", strerror(-err));
		goto out_unmap;
	}

	if (write_and_collect(ctx, base, page, first) ||
	    write_and_collect(ctx, base, page, second))
		goto out_untrack;

	if (uffdwp_ctx_stats(ctx, &st) == 0)
		printf("%llu collects, %llu pages reported, %llu write faults, %llu protection calls\n",
		       (unsigned long long)st.collects,
		       (unsigned long long)st.pages_reported,
		       (unsigned long long)st.faults,
		       (unsigned long long)st.wp_calls);
	printf("OK: each collect reported exactly the pages written\n");
	ret = 0;

out_untrack:
	err = uffdwp_untrack(ctx, base, NPAGES * page);
	if (err) {
		fprintf(stderr, "uffdwp_untrack: %s\n", strerror(-err));
		ret = 1;
	}
out_unmap:
	munmap(base, NPAGES * page);
out_ctx:
	uffdwp_ctx_free(ctx);
	return ret;
}
