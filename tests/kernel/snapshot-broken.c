/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot suite, section 5: the oracle catches a broken copy-before-write
 * (test hooks), and uffd_async's move back that fails.
 */
#include "snapshot-common.h"

/* --- 5. the oracle catches a broken copy-before-write ------------------- */

/* Snapshot @i of the whole rig, narrow options, the memory sink every
 * other time; with @check, everything a good snapshot promises. */
static void narrow_shot(struct rig *r, struct shot *s, unsigned int i,
			char *img, char *oracle, uint64_t *seed, bool check)
{
	memset(s, 0, sizeof(*s));
	s->n = r->npages;
	s->kind = i % 2 ? SINK_MEMORY : SINK_WRITE;
	s->opt = OPTS_NARROW;
	s->oracle = oracle;
	s->dst = img;
	shot_take(r, s, seed);
	if (check)
		shot_check(r, s, true);
	if (s->kind != SINK_MEMORY)
		usink_fini(&s->us);
}

/*
 * With a hook that breaks copy-before-write, the oracle must find a page of
 * an image that is not its pre-image within @max snapshots of @npages.
 */
static void broken_is_caught(const char *name, int *hook, size_t npages)
{
	uint64_t seed = test_seed(name);
	unsigned int i, max = (unsigned int)test_scaled(3000, 1000);
	struct rig r;
	struct shot s;
	char *img, *oracle;
	long bad = -1;

	NEED_BACKEND(UFFDWP_BACKEND_UFFD_SYNC);
	rig_setup(&r, UFFDWP_BACKEND_UFFD_SYNC, npages, HOTSPOT, seed);
	img = map(npages);
	oracle = map(npages);
	rig_start(&r);
	*hook = 1;
	for (i = 0; i < max && bad < 0; i++) {
		narrow_shot(&r, &s, i, img, oracle, &seed, false);
		if (s.ret)
			break;
		bad = s.bad;
	}
	*hook = 0;
	ck_assert_msg(s.ret == 0, "snapshot %u with the hook: wait %d", i,
		      s.ret);
	rig_stop(&r);
	printf("%s: %s after %u snapshots\n", name,
	       bad >= 0 ? "caught" : "NOT caught", i);
	ck_assert_msg(bad >= 0, "the oracle did not catch %s in %u snapshots",
		      name, i);
	munmap(img, npages * ps);
	munmap(oracle, npages * ps);
	rig_teardown(&r);
}

START_TEST(unprotect_first_is_caught)
{
	broken_is_caught("unprotect-first",
			 &uffdwp_test_hooks.snapshot_unprotect_first, 64);
}
END_TEST

/*
 * A handler thread's word copy (snapshot.c fault_word()) that marks the
 * word done before it copies it: with two handler threads, the other one
 * resolves a fault on a page of the word before its copy. Many words, so
 * that faults reach words before the sweep does. The same rig with the
 * real code passes the oracle first (two handler threads are the only way
 * a word copy races another fault).
 */
START_TEST(word_done_first_is_caught)
{
	uint64_t seed = test_seed("word-done-first-control");
	size_t npages = 2048;
	unsigned int i;
	struct shot s;
	struct rig r;
	char *img, *oracle;

	/* The self-service mode copies only in the writer's handler. */
	if (test_self_service())
		return;
	NEED_BACKEND(UFFDWP_BACKEND_UFFD_SYNC);
	test_handler_threads = 2;
	rig_setup(&r, UFFDWP_BACKEND_UFFD_SYNC, npages, HOTSPOT, seed);
	img = map(npages);
	oracle = map(npages);
	rig_start(&r);
	for (i = 0; i < (unsigned int)test_scaled(100, 30); i++)
		narrow_shot(&r, &s, i, img, oracle, &seed, true);
	rig_stop(&r);
	munmap(img, npages * ps);
	munmap(oracle, npages * ps);
	rig_teardown(&r);
	broken_is_caught("word-done-first",
			 &uffdwp_test_hooks.snapshot_word_done_first, npages);
	test_handler_threads = 0;
}
END_TEST

/*
 * uffd_async's move back after a snapshot fails (a test hook makes the
 * kernel calls fail with -ENOMEM): with mode 1 the range stays on the
 * synchronous userfaultfd, with mode 2 it lands on neither. Either way no
 * write may go unreported: the first collects report a superset, and
 * tracking is exact again once the range is back on a userfaultfd.
 */
struct seen {
	char *base;
	size_t n, count;
	uint8_t hit[256];
};

static int seen_run(void *arg, void *addr, size_t len)
{
	struct seen *sn = arg;
	size_t i, first = (size_t)((char *)addr - sn->base) / ps;

	for (i = 0; i < len / ps; i++) {
		ck_assert_uint_lt(first + i, sn->n);
		sn->hit[first + i] = 1;
		sn->count++;
	}
	return 0;
}

static struct seen *collect_seen(struct uffdwp_ctx *ctx, char *base, size_t n,
				 struct seen *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->base = base;
	sn->n = n;
	ck_assert_int_ge(uffdwp_collect(ctx, seen_run, sn), 0);
	return sn;
}

static void write_pages(char *mem, const size_t *pages, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		*(volatile uint64_t *)(mem + pages[i] * ps + 24) = v + i;
}

START_TEST(move_back_fails)
{
	const int mode = _i;
	const size_t npages = 256, a[] = { 3, 77, 200 }, b[] = { 5, 100 },
		     c[] = { 7, 9, 255 };
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o), .copiers = 1 };
	struct uffdwp_ctx *ctx = new_ctx(UFFDWP_BACKEND_UFFD_ASYNC);
	char *mem = map(npages), *buf = map(npages), *oracle = map(npages);
	struct uffdwp_snapshot *snap;
	struct sgate gate;
	struct usink us;
	struct seen sn;
	size_t i;

	fill_pages(mem, npages, 5);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	collect_seen(ctx, mem, npages, &sn);
	memcpy(oracle, mem, npages * ps);
	sgate_init(&gate);
	usink_init(&us, SINK_WRITE, buf, npages * ps);
	us.gate = &gate;
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, &us.sink,
					       &o, &snap),
			 0);
	sgate_wait_entered(&gate);
	uffdwp_test_hooks.async_arm_fails = mode;
	sgate_open(&gate);
	/* The move back comes after the image: the snapshot is exact. */
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	expect_equal("the snapshot before the failed move", buf, oracle,
		     npages);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);

	write_pages(mem, a, ARRAY_LEN(a), 0x1000);
	collect_seen(ctx, mem, npages, &sn);
	ck_assert_uint_eq(sn.count, npages); /* all of it, once */
	if (mode == 2) /* on no userfaultfd: no snapshot until armed */
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       &us.sink, &o, &snap),
				 -EBUSY);

	write_pages(mem, b, ARRAY_LEN(b), 0x2000);
	collect_seen(ctx, mem, npages, &sn);
	if (mode == 1) {
		/* Synchronous now, and exact. */
		ck_assert_uint_eq(sn.count, ARRAY_LEN(b));
		for (i = 0; i < ARRAY_LEN(b); i++)
			ck_assert(sn.hit[b[i]]);
	} else {
		/* On neither, and still unable to arm: all of it again. */
		ck_assert_uint_eq(sn.count, npages);
	}

	uffdwp_test_hooks.async_arm_fails = 0;
	if (mode == 1) /* from the synchronous userfaultfd, and back */
		snapshot_now(ctx, mem, npages);
	if (mode == 2) {
		/* This collect arms it, and reports it whole a last time. */
		collect_seen(ctx, mem, npages, &sn);
		ck_assert_uint_eq(sn.count, npages);
	}
	write_pages(mem, c, ARRAY_LEN(c), 0x3000);
	collect_seen(ctx, mem, npages, &sn);
	ck_assert_uint_eq(sn.count, ARRAY_LEN(c));
	for (i = 0; i < ARRAY_LEN(c); i++)
		ck_assert(sn.hit[c[i]]);
	if (mode == 2)
		snapshot_now(ctx, mem, npages); /* back on uffd_async */
	ck_assert_int_eq(uffdwp_untrack(ctx, mem, npages * ps), 0);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
	munmap(oracle, npages * ps);
}
END_TEST

/*
 * uffd_async learns of no unmap while the range is on its asynchronous
 * userfaultfd. A mapping placed in a hole the program punched (here by
 * the test; it may be the library's own memory) is not the range's: the
 * moves of a snapshot must neither register it nor hold its writers, or a
 * library thread writing it behind the gate would wait for itself.
 */
static bool vma_has_uffd_wp(const void *addr)
{
	char line[512];
	unsigned long lo, hi, a = (unsigned long)(uintptr_t)addr;
	bool in = false, wp = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo <= a && a < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			wp = strstr(line, " uw") != NULL;
			break;
		}
	}
	fclose(f);
	return wp;
}

START_TEST(foreign_mapping_in_hole)
{
	const size_t npages = 256, hole = 128, nhole = 16;
	struct uffdwp_ctx *ctx = new_ctx(UFFDWP_BACKEND_UFFD_ASYNC);
	char *mem = map(npages), *foreign, *buf;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	int k;

	fill_pages(mem, npages, 6);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	ck_assert(vma_has_uffd_wp(mem));
	ck_assert_int_eq(munmap(mem + hole * ps, nhole * ps), 0);
	foreign = mmap(mem + hole * ps, nhole * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(foreign, mem + hole * ps);
	memset(foreign, 0x33, nhole * ps);
	ck_assert(!vma_has_uffd_wp(foreign));
	for (k = 0; k < 3; k++) {
		/* Both moves, each time; the range's own parts snapshot. */
		snapshot_now(ctx, mem, 64);
		snapshot_now(ctx, mem + (hole + nhole) * ps,
			     npages - hole - nhole);
		ck_assert_msg(!vma_has_uffd_wp(foreign),
			      "a snapshot registered the foreign mapping");
		ck_assert(vma_has_uffd_wp(mem));
		ck_assert(vma_has_uffd_wp(mem + (npages - 1) * ps));
		memset(foreign, 0x44 + k, nhole * ps);
	}
	/* Over the hole: not the range's pages, no exact image. */
	buf = map(npages);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, npages * ps, &sink), 0);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, sink,
					       NULL, &snap),
			 0);
	expect_failed(snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	ck_assert(!vma_has_uffd_wp(foreign));
	snapshot_now(ctx, mem, 64);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

void snapshot_broken_cases(Suite *s)
{
	TCase *hook = tcase_create("unprotect-first");
	TCase *word = tcase_create("word-done-first");
	TCase *moveback = tcase_create("move-back-fails");
	TCase *foreign = tcase_create("foreign-in-hole");

	tcase_set_tags(hook, "uffd_sync");
	tcase_set_timeout(hook, 300);
	tcase_add_test(hook, unprotect_first_is_caught);
	suite_add_tcase(s, hook);

	tcase_set_tags(word, "uffd_sync");
	tcase_set_timeout(word, 300);
	tcase_add_test(word, word_done_first_is_caught);
	suite_add_tcase(s, word);

	tcase_set_tags(foreign, "uffd_async");
	tcase_add_test(foreign, foreign_mapping_in_hole);
	suite_add_tcase(s, foreign);

	tcase_set_tags(moveback, "uffd_async");
	tcase_add_loop_test(moveback, move_back_fails, 1, 3);
	suite_add_tcase(s, moveback);
}
