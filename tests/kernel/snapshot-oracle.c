/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot suite, sections 1 and 2: the snapshot oracle, and snapshots
 * interleaved with collects (snapshot-main.c says what they prove).
 */
#include "snapshot-common.h"

/* --- 1. the snapshot oracle --------------------------------------------- */

struct tally {
	unsigned long shots, incremental, pages, faulted, waited, staging_full;
	unsigned long by_kind[SINK_KINDS];
};

static void tally_add(struct tally *t, const struct shot *s)
{
	t->shots++;
	t->incremental += s->flags != 0;
	t->pages += s->st.pages;
	t->faulted += s->st.pages_faulted;
	t->waited += s->st.faults_waited;
	t->staging_full += s->st.staging_full;
	t->by_kind[s->kind]++;
}

static void tally_print(const struct tally *t, const char *what, int backend)
{
	printf("%s %s: %lu snapshots (%lu incremental; memory/write/mixed/place %lu/%lu/%lu/%lu), %lu pages, %lu copied on faults, %lu faults waited, staging full %lu times\n",
	       uffdwp_backend_name(backend), what, t->shots, t->incremental,
	       t->by_kind[0], t->by_kind[1], t->by_kind[2], t->by_kind[3],
	       t->pages, t->faulted, t->waited, t->staging_full);
}

/*
 * @count snapshots of sizes from @sizes (0: random in [lo, hi] pages), at
 * random offsets, rotating sink kinds, options and full/incremental, onto
 * one image of the whole range.
 */
static void oracle_series(int backend, enum pattern pattern, size_t tracked,
			  const size_t *sizes, size_t nsizes, size_t lo,
			  size_t hi, unsigned int count, struct tally *t)
{
	uint64_t seed = test_seed(uffdwp_backend_name(backend));
	struct rig r;
	struct shot s;
	char *img, *oracle;
	unsigned int i;
	size_t n;

	rig_setup(&r, backend, tracked, pattern, seed);
	img = map(tracked);
	oracle = map(tracked);
	memcpy(img, r.mem, tracked * ps); /* the image at the track */
	rig_start(&r);
	for (i = 0; i < count; i++) {
		n = sizes ? sizes[rnd(&seed) % nsizes] : 0;
		if (!n)
			n = lo + (size_t)(rnd(&seed) % (hi - lo + 1));
		if (n > tracked)
			n = tracked;
		memset(&s, 0, sizeof(s));
		s.n = n;
		s.first = (size_t)(rnd(&seed) % (tracked - n + 1));
		s.kind = (enum sink_kind)(i % SINK_KINDS);
		s.opt = (enum opt_kind)(i / SINK_KINDS % OPT_KINDS);
		s.flags = (i + i / SINK_KINDS) % 2 ?
				  UFFDWP_SNAPSHOT_INCREMENTAL :
				  0;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		shot_take(&r, &s, &seed);
		shot_check(&r, &s, true);
		tally_add(t, &s);
	}
	rig_stop(&r);
	munmap(img, tracked * ps);
	munmap(oracle, tracked * ps);
	rig_teardown(&r);
}

static const size_t small_sizes[] = { 1, 2, 3, 64, 257, 1024, 1, 2, 3, 64 };

START_TEST(oracle_small_random)
{
	struct tally t = { 0 };

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], RANDOM, 1024, small_sizes,
		      ARRAY_LEN(small_sizes), 0, 0,
		      (unsigned int)test_scaled(240, 220), &t);
	tally_print(&t, "small, random", backends[_i]);
}
END_TEST

START_TEST(oracle_small_hotspot)
{
	struct tally t = { 0 };

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], HOTSPOT, 1024, small_sizes,
		      ARRAY_LEN(small_sizes), 0, 0,
		      (unsigned int)test_scaled(240, 220), &t);
	tally_print(&t, "small, hot spot", backends[_i]);
	/* Writers run into the snapshots' pages: the fault path must have
	 * copied some, or this oracle tested only the sweep. */
	ck_assert_uint_gt(t.faulted, 0);
}
END_TEST

/* 4 to 16 MiB. */
START_TEST(oracle_medium)
{
	struct tally t = { 0 };
	size_t pages = 16 * MIB / ps;
	unsigned int n = (unsigned int)test_scaled(24, 6);

	NEED_BACKEND(backends[_i]);
	oracle_series(backends[_i], RANDOM, pages, NULL, 0, pages / 4, pages, n,
		      &t);
	oracle_series(backends[_i], HOTSPOT, pages, NULL, 0, pages / 4, pages,
		      n, &t);
	tally_print(&t, "4-16 MiB", backends[_i]);
}
END_TEST

/*
 * 64 and 256 MiB, and small ones inside the big range, full and
 * incremental, each sink and option kind.
 */
START_TEST(oracle_large)
{
	int b = backends[_i];
	uint64_t seed = test_seed(uffdwp_backend_name(b));
	size_t tracked = 256 * MIB / ps, big = 64 * MIB / ps;
	const struct {
		size_t n; /* 0: the whole range */
		enum sink_kind kind;
		enum opt_kind opt;
		unsigned int flags;
		enum pattern pattern;
	} plan[] = {
		{ 0, SINK_MEMORY, OPTS_DEFAULT, 0, RANDOM },
		{ big, SINK_WRITE, OPTS_NARROW, 0, RANDOM },
		{ 1, SINK_MEMORY, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 257, SINK_MIXED, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 0, SINK_WRITE, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  RANDOM },
		{ big, SINK_MEMORY, OPTS_WIDE, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
		{ 0, SINK_PLACE, OPTS_WIDE, 0, HOTSPOT },
		{ 0, SINK_WRITE, OPTS_NARROW, 0, RANDOM },
		{ 1024, SINK_MIXED, OPTS_NARROW, 0, HOTSPOT },
		{ 0, SINK_MEMORY, OPTS_DEFAULT, UFFDWP_SNAPSHOT_INCREMENTAL,
		  HOTSPOT },
	};
	struct tally t = { 0 };
	struct timespec t0, t1;
	struct rig r;
	struct shot s;
	char *img, *oracle;
	size_t i;

	NEED_BACKEND(b);
	rig_setup(&r, b, tracked, RANDOM, seed);
	img = map(tracked);
	oracle = map(tracked);
	memcpy(img, r.mem, tracked * ps);
	rig_start(&r);
	for (i = 0; i < ARRAY_LEN(plan); i++) {
		memset(&s, 0, sizeof(s));
		s.n = plan[i].n ? plan[i].n : tracked;
		s.first = (size_t)(rnd(&seed) % (tracked - s.n + 1));
		if (plan[i].n == 1 && i % 2 == 0)
			s.first = tracked - 1; /* the very last page */
		s.kind = plan[i].kind;
		s.opt = plan[i].opt;
		s.flags = plan[i].flags;
		s.oracle = oracle;
		s.dst = img + s.first * ps;
		rig_pause(&r);
		r.pattern = plan[i].pattern;
		rig_resume(&r);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		shot_take(&r, &s, &seed);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		shot_check(&r, &s, true);
		tally_add(&t, &s);
		if (s.n * ps >= 64 * MIB)
			printf("%s: %zu MiB %s (%s sink, %s): %.0f ms with oracle and check, start %.1f ms, %.1f ms from the instant\n",
			       uffdwp_backend_name(b), s.n * ps / MIB,
			       s.flags ? "incremental" : "full",
			       sink_names[s.kind], opt_names[s.opt],
			       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
			       (double)s.st.start_ns / 1e6,
			       (double)s.st.elapsed_ns / 1e6);
	}
	tally_print(&t, "large", b);
	rig_stop(&r);
	munmap(img, tracked * ps);
	munmap(oracle, tracked * ps);
	rig_teardown(&r);
}
END_TEST

/* --- 2. snapshots interleaved with collects ----------------------------- */

/*
 * The shadow is what a pre-copy consumer holds: collect reports copied from
 * memory, and each snapshot's image. A page's latest copy wins: a collect
 * callback stamps each page it copies (under mu); a snapshot's page goes
 * into the shadow only if no collect copied the page after the snapshot's
 * instant. That is decided with S1, the stamp taken right after start
 * returned, writers still parked: a copy stamped later was made after the
 * instant (newer); one stamped earlier was made before the writers resumed,
 * so holds the page as it was at the instant or before (older or equal).
 */
struct interleave {
	struct rig *r;
	char *shadow;
	uint64_t *stamp;
	uint64_t seq;
	pthread_mutex_t mu;
	atomic_int stop;
	long err;
	unsigned long collects, reported;
};

static int interleave_run(void *arg, void *addr, size_t len)
{
	struct interleave *in = arg;
	size_t off = (size_t)((char *)addr - in->r->mem), i;

	if ((uintptr_t)addr % ps || off + len > in->r->npages * ps) {
		in->err = -ERANGE;
		return -ERANGE;
	}
	pthread_mutex_lock(&in->mu);
	memcpy(in->shadow + off, addr, len);
	for (i = off / ps; i < (off + len) / ps; i++)
		in->stamp[i] = ++in->seq;
	in->reported += len / ps;
	pthread_mutex_unlock(&in->mu);
	return 0;
}

static void *collector_main(void *arg)
{
	struct interleave *in = arg;
	long n;

	while (!atomic_load(&in->stop)) {
		n = uffdwp_collect(in->r->ctx, interleave_run, in);
		if (n < 0) {
			in->err = n;
			break;
		}
		in->collects++;
		usleep(100);
	}
	return NULL;
}

static void interleaved(int backend, enum pattern pattern)
{
	uint64_t seed = test_seed(uffdwp_backend_name(backend));
	size_t tracked = 2048, i, n, first, applied = 0;
	const size_t sizes[] = { 1, 3, 64, 257, 2048, 0 };
	unsigned int k, count = (unsigned int)test_scaled(80, 24);
	struct uffdwp_snapshot_opts o;
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *msink;
	struct uffdwp_snapshot_status st;
	struct interleave in = { 0 };
	const struct uffdwp_sink *sink;
	struct usink us;
	enum sink_kind kind;
	char *buf, *oracle, msg[256];
	pthread_t coll;
	struct rig r;
	uint64_t s1;
	long bad;
	int ret;

	NEED_BACKEND(backend);
	rig_setup(&r, backend, tracked, pattern, seed);
	in.r = &r;
	in.shadow = map(tracked);
	in.stamp = calloc(tracked, sizeof(uint64_t));
	ck_assert_ptr_nonnull(in.stamp);
	pthread_mutex_init(&in.mu, NULL);
	memcpy(in.shadow, r.mem, tracked * ps);
	buf = map(tracked);
	oracle = map(tracked);
	rig_start(&r);
	ck_assert_int_eq(pthread_create(&coll, NULL, collector_main, &in), 0);
	for (k = 0; k < count; k++) {
		n = sizes[rnd(&seed) % ARRAY_LEN(sizes)];
		if (!n)
			n = 1 + (size_t)(rnd(&seed) % tracked);
		first = (size_t)(rnd(&seed) % (tracked - n + 1));
		/* Full: memory, write or mixed; incremental: user sinks only
		 * (which pages came must be known). */
		fill_opts(&o, (enum opt_kind)(k / 2 % OPT_KINDS),
			  k % 2 ? UFFDWP_SNAPSHOT_INCREMENTAL : 0);
		kind = (enum sink_kind)(k / 2 % 3);
		if (o.flags && kind == SINK_MEMORY)
			kind = SINK_PLACE;
		msink = NULL;
		if (kind == SINK_MEMORY) {
			ck_assert_int_eq(
				uffdwp_sink_memory_new(buf, n * ps, &msink), 0);
			sink = msink;
		} else {
			usink_init(&us, kind, buf, n * ps);
			sink = &us.sink;
		}
		memset(buf, POISON, n * ps);

		rig_pause(&r);
		rig_focus(&r, first, n, &seed);
		memcpy(oracle, r.mem + first * ps, n * ps);
		ret = uffdwp_snapshot_start(r.ctx, r.mem + first * ps, n * ps,
					    sink, &o, &snap);
		pthread_mutex_lock(&in.mu);
		s1 = in.seq;
		pthread_mutex_unlock(&in.mu);
		rig_resume(&r);
		ck_assert_msg(ret == 0, "snapshot_start: %d", ret);
		ret = uffdwp_snapshot_wait(snap, -1);
		st.sz = sizeof(st);
		ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
		uffdwp_snapshot_free(snap);
		ck_assert_msg(ret == 0, "snapshot %u: wait %d, cause %s", k,
			      ret, uffdwp_snapshot_cause_name(st.cause));
		ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
		ck_assert_uint_eq(st.pages_done, st.pages);

		/* The image against the oracle, then into the shadow. */
		pthread_mutex_lock(&in.mu);
		for (i = 0; i < n; i++) {
			if (kind != SINK_MEMORY && !us.hits[i])
				continue;
			if (memcmp(buf + i * ps, oracle + i * ps, ps)) {
				pthread_mutex_unlock(&in.mu);
				describe_diff(msg, sizeof(msg), buf, oracle,
					      (long)i);
				ck_abort_msg(
					"%s: snapshot %u of [%zu, +%zu) with collects running differs from the oracle at %s",
					uffdwp_backend_name(backend), k, first,
					n, msg);
			}
			if (in.stamp[first + i] <= s1) {
				memcpy(in.shadow + (first + i) * ps,
				       buf + i * ps, ps);
				applied++;
			}
		}
		pthread_mutex_unlock(&in.mu);
		if (kind == SINK_MEMORY) {
			ck_assert_uint_eq(st.pages, n);
		} else {
			ck_assert_uint_eq(usink_delivered(&us), st.pages);
			ck_assert_int_eq(atomic_load(&us.ends), 1);
			if (!o.flags)
				ck_assert_uint_eq(st.pages, n);
			usink_fini(&us);
		}
		uffdwp_sink_free(msink);
	}
	rig_stop(&r);
	atomic_store(&in.stop, 1);
	pthread_join(coll, NULL);
	ck_assert_msg(in.err == 0, "collect failed: %ld", in.err);
	ck_assert_int_ge(uffdwp_collect(r.ctx, interleave_run, &in), 0);
	ck_assert_int_eq(in.err, 0);
	bad = first_diff(in.shadow, r.mem, tracked);
	printf("%s pattern %d: %u snapshots, %lu collects reported %lu pages, %zu snapshot pages applied\n",
	       uffdwp_backend_name(backend), pattern, count, in.collects,
	       in.reported, applied);
	if (bad >= 0) {
		describe_diff(msg, sizeof(msg), in.shadow, r.mem, bad);
		ck_abort_msg(
			"%s: shadow differs from memory after the final collect (a dirty page was lost) at %s",
			uffdwp_backend_name(backend), msg);
	}
	ck_assert_uint_gt(in.collects, 0);
	munmap(buf, tracked * ps);
	munmap(oracle, tracked * ps);
	munmap(in.shadow, tracked * ps);
	free(in.stamp);
	rig_teardown(&r);
}

START_TEST(interleaved_random)
{
	interleaved(backends[_i], RANDOM);
}
END_TEST

START_TEST(interleaved_hotspot)
{
	interleaved(backends[_i], HOTSPOT);
}
END_TEST

void snapshot_oracle_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "oracle",
		  900,
		  { oracle_small_random, oracle_small_hotspot, oracle_medium,
		    oracle_large } },
		{ "collects", 600, { interleaved_random, interleaved_hotspot } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}
