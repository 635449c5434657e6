/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot suite, section 4: address-space events, misuse, fork, and the
 * backends that cannot snapshot.
 */
#include "snapshot-common.h"

/* --- 4. events and misuse ----------------------------------------------- */

/*
 * A range of distinct pages, tracked, and a snapshot of it whose one copier
 * is held in its first write() (pages 0..63 at most): nothing else is
 * copied unless a writer faults.
 */
struct held {
	struct uffdwp_ctx *ctx;
	char *mem, *oracle, *buf;
	size_t npages;
	struct sgate gate;
	struct usink us;
	struct uffdwp_snapshot *snap;
};

static void held_start(struct held *h, int backend, size_t npages,
		       unsigned int staging)
{
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o),
					  .copiers = 1,
					  .staging_pages = staging };

	NEED_BACKEND(backend);
	memset(h, 0, sizeof(*h));
	h->npages = npages;
	h->ctx = new_ctx(backend);
	h->mem = map(npages);
	h->oracle = map(npages);
	h->buf = map(npages);
	fill_pages(h->mem, npages, 1);
	ck_assert_int_eq(uffdwp_track(h->ctx, h->mem, npages * ps, 0), 0);
	memcpy(h->oracle, h->mem, npages * ps);
	memset(h->buf, POISON, npages * ps);
	sgate_init(&h->gate);
	usink_init(&h->us, SINK_WRITE, h->buf, npages * ps);
	h->us.gate = &h->gate;
	h->us.forbid_lo = (uintptr_t)h->mem;
	h->us.forbid_hi = (uintptr_t)h->mem + npages * ps;
	ck_assert_int_eq(uffdwp_snapshot_start(h->ctx, h->mem, npages * ps,
					       &h->us.sink, &o, &h->snap),
			 0);
	sgate_wait_entered(&h->gate);
}

static void held_expect_exact(struct held *h)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };

	ck_assert_int_eq(uffdwp_snapshot_wait(h->snap, -1), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(h->snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(st.pages, h->npages);
	ck_assert_uint_eq(st.pages_done, h->npages);
	ck_assert_uint_eq(usink_delivered(&h->us), h->npages);
	ck_assert_int_eq(atomic_load(&h->us.ends), 1);
	ck_assert_int_eq(atomic_load(&h->us.end_status), 0);
	expect_equal("the held snapshot", h->buf, h->oracle, h->npages);
}

static void held_end(struct held *h, bool unmapped_tail)
{
	h->snap = uffdwp_snapshot_free(h->snap);
	usink_fini(&h->us);
	h->ctx = uffdwp_ctx_free(h->ctx);
	munmap(h->mem, (h->npages - (unmapped_tail ? 64 : 0)) * ps);
	munmap(h->oracle, h->npages * ps);
	munmap(h->buf, h->npages * ps);
}

START_TEST(zap_uncopied_cancels)
{
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	/* The last page is far from the held run, and nobody wrote it. */
	ck_assert_int_eq(
		madvise(h.mem + (h.npages - 1) * ps, ps, MADV_DONTNEED), 0);
	sgate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_ZAPPED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	ck_assert_int_eq(*(volatile char *)(h.mem + (h.npages - 1) * ps), 0);
	snapshot_now(h.ctx, h.mem, h.npages);
	held_end(&h, false);
}
END_TEST

START_TEST(unmap_uncopied_cancels)
{
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	ck_assert_int_eq(munmap(h.mem + (h.npages - 64) * ps, 64 * ps), 0);
	sgate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	/* What is still mapped still snapshots; the range still untracks. */
	snapshot_now(h.ctx, h.mem, 1024);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), 0);
	held_end(&h, true);
}
END_TEST

/*
 * Zaps of pages already copied cancel nothing: one in the run the copier
 * holds (its data is in the sink's hands), one a writer's fault copied.
 */
START_TEST(zap_copied_keeps_snapshot)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	size_t held_page, last;
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	held_page = (size_t)((char *)h.gate.addr - h.mem) / ps;
	last = h.npages - 1;
	ck_assert_uint_lt(held_page, h.npages);
	ck_assert_int_eq(madvise(h.mem + held_page * ps, ps, MADV_DONTNEED), 0);
	/* A write after the instant: copied first on the fault path. */
	*(volatile uint64_t *)(h.mem + last * ps + 64) = 0xdeadbeef;
	ck_assert_int_eq(madvise(h.mem + last * ps, ps, MADV_DONTNEED), 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), -ETIMEDOUT);
	sgate_open(&h.gate);
	held_expect_exact(&h);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_uint_ge(st.pages_faulted, 1);
	held_end(&h, false);
}
END_TEST

/*
 * An unmap's event comes after the fact: even pages already copied give
 * no exact image once part of the range is unmapped before the end.
 */
START_TEST(unmap_copied_cancels)
{
	struct held h;
	size_t i;

	held_start(&h, backends[_i], 4096, 0);
	/* Writes after the instant: the last 64 pages are copied first, on
	 * the fault path. */
	for (i = h.npages - 64; i < h.npages; i++)
		*(volatile uint64_t *)(h.mem + i * ps + 8) = 0xfeed;
	ck_assert_int_eq(munmap(h.mem + (h.npages - 64) * ps, 64 * ps), 0);
	sgate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	usink_delivered(&h.us);
	snapshot_now(h.ctx, h.mem, 1024);
	held_end(&h, true);
}
END_TEST

/*
 * mmap(MAP_FIXED) puts new pages where uncopied ones were, and (by a test
 * hook) the snapshot never sees the unmap event, as when a copier reads
 * the new pages before a handler reads the event: the check at the end
 * must still refuse to call the image exact.
 */
START_TEST(replaced_mapping_caught_at_end)
{
	char *tail;
	struct held h;

	held_start(&h, backends[_i], 4096, 0);
	uffdwp_test_hooks.snapshot_late_unmap_events = 1;
	tail = mmap(h.mem + (h.npages - 64) * ps, 64 * ps,
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(tail, h.mem + (h.npages - 64) * ps);
	memset(tail, 0x5a, 64 * ps);
	sgate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_UNMAPPED);
	uffdwp_test_hooks.snapshot_late_unmap_events = 0;
	/* The copier did read the new pages: without the check this would
	 * have been an "exact" image holding them. */
	ck_assert_uint_eq(usink_delivered(&h.us), h.npages);
	munmap(tail, 64 * ps);
	held_end(&h, true);
}
END_TEST

/*
 * The sink's begin() (like malloc, or start itself, when the heap is
 * tracked) writes a page of the range after the instant: the write is
 * served from staging and start returns; the image has the pre-image.
 */
struct begin_writer {
	struct usink us; /* first: the us_* callbacks take the arg as it */
	volatile uint64_t *target;
};

static int begin_writes(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct begin_writer *bw = arg;

	*bw->target = 0x1234567890abcdefULL;
	return us_begin(&bw->us, info);
}

START_TEST(begin_writes_the_range)
{
	const enum sink_kind kinds[] = { SINK_WRITE, SINK_PLACE };
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	size_t npages = 256, k;
	char *mem = map(npages), *oracle = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct begin_writer bw;

	fill_pages(mem, npages, 3);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	for (k = 0; k < ARRAY_LEN(kinds); k++) {
		memcpy(oracle, mem, npages * ps);
		memset(buf, POISON, npages * ps);
		usink_init(&bw.us, kinds[k], buf, npages * ps);
		bw.us.sink.arg = &bw;
		bw.us.sink.begin = begin_writes;
		bw.target = (volatile uint64_t *)(mem + (100 + k) * ps + 16);
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       &bw.us.sink, NULL,
						       &snap),
				 0);
		ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
		ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
		ck_assert_uint_ge(st.pages_faulted, 1);
		ck_assert_uint_eq(usink_delivered(&bw.us), npages);
		expect_equal("begin() wrote the range", buf, oracle, npages);
		ck_assert(*bw.target == 0x1234567890abcdefULL);
		uffdwp_snapshot_free(snap);
		usink_fini(&bw.us);
	}
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(oracle, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/* Once the sink commits (a file sink: fsync, rename), the outcome is the
 * sink's: a cancel then changes nothing. */
START_TEST(cancel_while_committing)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	size_t npages = 64;
	char *mem = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct sgate end_gate;
	struct usink us;

	fill_pages(mem, npages, 4);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	sgate_init(&end_gate);
	usink_init(&us, SINK_WRITE, buf, npages * ps);
	us.end_gate = &end_gate;
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, &us.sink,
					       NULL, &snap),
			 0);
	sgate_wait_entered(&end_gate);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_int_eq(st.committing, 1);
	ck_assert_int_eq(uffdwp_snapshot_cancel(snap), 0);
	sgate_open(&end_gate);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_int_eq(atomic_load(&us.end_status), 0);
	ck_assert_int_eq(atomic_load(&us.ends), 1);
	expect_equal("the committed snapshot", buf, mem, npages);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/*
 * The sink's end() (an fsync, for the file sink) runs on a copier, never
 * in the program's thread inside uffdwp_snapshot_start(), even when the
 * copiers are done before start returns: the hook holds start there.
 * Before, start's count could be the last, and start ran the teardown.
 */
START_TEST(end_never_runs_in_start)
{
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	size_t npages = 16;
	char *mem = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct usink us;

	fill_pages(mem, npages, 5);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	usink_init(&us, SINK_WRITE, buf, npages * ps);
	uffdwp_test_hooks.hold_ms = 300;
	uffdwp_test_hooks.held = HOLD_NONE;
	uffdwp_test_hooks.hold = HOLD_SNAPSHOT_LAUNCH;
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps, &us.sink,
					       NULL, &snap),
			 0);
	ck_assert_int_eq(uffdwp_test_hooks.held, HOLD_SNAPSHOT_LAUNCH);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	ck_assert_int_eq(atomic_load(&us.ends), 1);
	ck_assert_msg(!pthread_equal(us.end_thread, pthread_self()),
		      "the sink's end() ran inside uffdwp_snapshot_start()");
	expect_equal("the snapshot", buf, mem, npages);
	uffdwp_snapshot_free(snap);
	usink_fini(&us);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

struct page_writer {
	char *mem;
	size_t first, n;
	pthread_t tid;
};

static void *page_writer_main(void *arg)
{
	struct page_writer *w = arg;
	size_t i;

	for (i = 0; i < w->n; i++)
		*(volatile uint64_t *)(w->mem + (w->first + i) * ps + 128) =
			0xabcd0000 + i;
	return NULL;
}

/* Staging full: the faulting writer waits (the copier is held), then goes
 * on; the image is still the instant's. */
START_TEST(staging_backpressure)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct page_writer w;
	struct held h;

	held_start(&h, backends[_i], 1024, 4);
	w = (struct page_writer){ h.mem, 512, 16, 0 };
	ck_assert_int_eq(pthread_create(&w.tid, NULL, page_writer_main, &w), 0);
	do {
		usleep(1000);
		ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	} while (!st.staging_full);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_uint_eq(st.pages_faulted, 4);
	sgate_open(&h.gate);
	pthread_join(w.tid, NULL);
	held_expect_exact(&h);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_uint_ge(st.staging_full, 1);
	ck_assert_uint_ge(st.pages_faulted, 4);
	printf("%s: staging full %llu times, %llu pages copied on faults\n",
	       uffdwp_backend_name(backends[_i]),
	       (unsigned long long)st.staging_full,
	       (unsigned long long)st.pages_faulted);
	held_end(&h, false);
}
END_TEST

static int nop_write(void *arg, void *addr, const void *data, size_t len)
{
	(void)arg;
	(void)addr;
	(void)data;
	(void)len;
	return 0;
}

START_TEST(misuse)
{
	int b = backends[_i];
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_snapshot *snap, *const unset = (void *)&st, *other;
	struct uffdwp_sink nosink = { .sz = sizeof(nosink) };
	struct uffdwp_sink wsink = { .sz = sizeof(wsink), .write = nop_write };
	struct uffdwp_snapshot_opts o = { .sz = sizeof(o) };
	struct {
		struct uffdwp_snapshot_opts o;
		uint64_t future;
	} bigo = { { .sz = sizeof(bigo) }, 1 };
	struct {
		struct uffdwp_sink s;
		uint64_t future;
	} bigs = { { .sz = sizeof(bigs), .write = nop_write }, 1 };
	struct uffdwp_sink *msink;
	struct uffdwp_ctx *ctx;
	char *p, *buf, *small;
	struct held h;
	size_t n = 0;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	/* A: pages [0, 64), B: [64, 80), both tracked; [80, 96) not. */
	p = map(96);
	fill_pages(p, 96, 3);
	ck_assert_int_eq(uffdwp_track(ctx, p, 64 * ps, 0), 0);
	ck_assert_int_eq(uffdwp_track(ctx, p + 64 * ps, 16 * ps, 0), 0);
	buf = map(96);
	snap = unset;

#define START(c, a, l, s, op) uffdwp_snapshot_start(c, a, l, s, op, &snap)
	ck_assert_int_eq(START(NULL, p, ps, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, NULL, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, p, ps, &wsink, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(START(ctx, p + 1, ps, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps + 1, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, p, 0, &wsink, NULL), -EINVAL);
	ck_assert_int_eq(START(ctx, (void *)-ps, 2 * ps, &wsink, NULL),
			 -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, &nosink, NULL), -EINVAL);
	o.flags = 1u << 7;
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &o), -EINVAL);
	o.flags = 0;
	o.copiers = 65;
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &o), -EINVAL);
	ck_assert_int_eq(START(ctx, p, ps, &wsink, &bigo.o), -E2BIG);
	ck_assert_int_eq(START(ctx, p, ps, &bigs.s, NULL), -E2BIG);
	/* Not within one tracked range. */
	ck_assert_int_eq(START(ctx, p + 80 * ps, ps, &wsink, NULL), -ENOENT);
	ck_assert_int_eq(START(ctx, p + 60 * ps, 8 * ps, &wsink, NULL),
			 -ENOENT);
	ck_assert_int_eq(START(ctx, p + 78 * ps, 4 * ps, &wsink, NULL),
			 -ENOENT);
	ck_assert_int_eq(START(ctx, buf, ps, &wsink, NULL), -ENOENT);
	ck_assert_int_eq(START(ctx, p - 1024 * ps, ps, &wsink, NULL), -ENOENT);
	/* A memory sink too small: its begin() refuses. */
	small = malloc(2 * ps);
	ck_assert_int_eq(uffdwp_sink_memory_new(small, 2 * ps, &msink), 0);
	ck_assert_int_eq(START(ctx, p, 4 * ps, msink, NULL), -ENOSPC);
	uffdwp_sink_free(msink);
	free(small);
	ck_assert_ptr_eq(snap, unset);
#undef START

	ck_assert_int_eq(uffdwp_snapshot_wait(NULL, 0), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_cancel(NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_snapshot_status(NULL, &st), -EINVAL);
	ck_assert_ptr_null(uffdwp_snapshot_free(NULL));
	ck_assert_ptr_null(uffdwp_sink_free(NULL));
	ck_assert_int_eq(uffdwp_sink_memory_new(NULL, ps, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, ps, NULL), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new(NULL, 0, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("", 0, &msink), -EINVAL);
	ck_assert_int_eq(uffdwp_sink_file_new("/tmp/x.img", 1u << 9, &msink),
			 -EINVAL);
	ck_assert_str_eq(uffdwp_snapshot_cause_name(UFFDWP_CAUSE_ZAPPED),
			 "zapped");
	ck_assert_str_eq(uffdwp_snapshot_state_name(UFFDWP_SNAPSHOT_DONE),
			 "done");
	ck_assert_str_eq(uffdwp_consistency_name(UFFDWP_CONSISTENCY_EXACT),
			 "exact");
	ck_assert_ptr_null(uffdwp_snapshot_cause_name(99));
	ctx = uffdwp_ctx_free(ctx);
	munmap(p, 96 * ps);
	munmap(buf, 96 * ps);

	/* One snapshot per tracked range at a time. */
	held_start(&h, b, 256, 0);
	buf = map(16);
	fill_pages(buf, 16, 5);
	ck_assert_int_eq(uffdwp_track(h.ctx, buf, 16 * ps, 0), 0);
	snap = unset;
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem, h.npages * ps,
					       &wsink, NULL, &snap),
			 -EBUSY);
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem + 200 * ps, ps,
					       &wsink, NULL, &snap),
			 -EBUSY);
	ck_assert_ptr_eq(snap, unset);
	/* Another tracked range of the context is free. */
	snapshot_now(h.ctx, buf, 16);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, buf, 16 * ps), 0);
	munmap(buf, 16 * ps);
	/* Running: no untrack, a wait times out, the status says so. */
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), -EBUSY);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), -ETIMEDOUT);
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 20), -ETIMEDOUT);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	ck_assert_int_eq(st.error, 0);
	ck_assert_int_eq(st.cause, UFFDWP_CAUSE_NONE);
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	ck_assert_uint_eq(st.pages, h.npages);
	ck_assert_uint_lt(st.pages_done, h.npages);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, NULL), -EINVAL);
	/* Collects run alongside. */
	ck_assert_int_ge(uffdwp_collect(h.ctx, count_run, &n), 0);
	sgate_open(&h.gate);
	held_expect_exact(&h);
	/* Ended: untrack, and a new snapshot, are allowed again. */
	other = NULL;
	ck_assert_int_eq(uffdwp_snapshot_start(h.ctx, h.mem, ps, &wsink, NULL,
					       &other),
			 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(other, -1), 0);
	uffdwp_snapshot_free(other);
	ck_assert_int_eq(uffdwp_untrack(h.ctx, h.mem, h.npages * ps), 0);
	/* Cancelling an ended snapshot changes nothing. */
	ck_assert_int_eq(uffdwp_snapshot_cancel(h.snap), 0);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_msg(
		st.state == UFFDWP_SNAPSHOT_DONE && st.error == 0 &&
			st.cause == UFFDWP_CAUSE_NONE &&
			st.consistency == UFFDWP_CONSISTENCY_EXACT,
		"cancel after the end changed the outcome: state %s, error %d, cause %s, consistency %s",
		uffdwp_snapshot_state_name(st.state), st.error,
		uffdwp_snapshot_cause_name(st.cause),
		uffdwp_consistency_name(st.consistency));
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, 0), 0);
	held_end(&h, false);
}
END_TEST

struct waiter {
	struct uffdwp_snapshot *snap;
	int ret;
	pthread_t tid;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = uffdwp_snapshot_wait(w->snap, -1);
	return NULL;
}

static void *canceller_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = uffdwp_snapshot_cancel(w->snap);
	return NULL;
}

START_TEST(cancel_from_thread)
{
	struct waiter wa, ca;
	struct held h;

	held_start(&h, backends[_i], 1024, 0);
	wa = (struct waiter){ h.snap, 1, 0 };
	ca = (struct waiter){ h.snap, 1, 0 };
	ck_assert_int_eq(pthread_create(&wa.tid, NULL, waiter_main, &wa), 0);
	ck_assert_int_eq(pthread_create(&ca.tid, NULL, canceller_main, &ca), 0);
	pthread_join(ca.tid, NULL);
	ck_assert_int_eq(ca.ret, 0);
	sgate_open(&h.gate);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	pthread_join(wa.tid, NULL);
	ck_assert_int_eq(wa.ret, -ECANCELED);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	usink_delivered(&h.us);
	ck_assert_int_eq(uffdwp_snapshot_cancel(h.snap), 0);
	expect_failed(h.snap, -ECANCELED, UFFDWP_CAUSE_CALLER);
	snapshot_now(h.ctx, h.mem, h.npages);
	held_end(&h, false);
}
END_TEST

/*
 * Free and ctx_free while running. The copier is held at its first write()
 * until the main thread announced the free; each later write() sleeps, so
 * the sweep of 256 runs would need over half a second: far longer than the
 * free takes to cancel.
 */
struct releaser {
	struct sgate *gate;
	atomic_int go;
	pthread_t tid;
};

static void *releaser_main(void *arg)
{
	struct releaser *rl = arg;

	while (!atomic_load(&rl->go))
		sched_yield();
	usleep(20000);
	sgate_open(rl->gate);
	return NULL;
}

static void held_start_slow(struct held *h, int backend, struct releaser *rl)
{
	held_start(h, backend, 16384, 0);
	h->us.delay_us = 2000;
	rl->gate = &h->gate;
	atomic_store(&rl->go, 0);
	ck_assert_int_eq(pthread_create(&rl->tid, NULL, releaser_main, rl), 0);
}

START_TEST(free_while_running)
{
	struct releaser rl;
	struct held h;

	held_start_slow(&h, backends[_i], &rl);
	atomic_store(&rl.go, 1);
	h.snap = uffdwp_snapshot_free(h.snap);
	/* Returned: the sink was told, and no callback is in flight. */
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	ck_assert_int_eq(atomic_load(&h.us.inflight), 0);
	pthread_join(rl.tid, NULL);
	usink_delivered(&h.us);
	snapshot_now(h.ctx, h.mem, 64);
	held_end(&h, false);
}
END_TEST

START_TEST(ctx_free_while_running)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct releaser rl;
	struct held h;

	held_start_slow(&h, backends[_i], &rl);
	atomic_store(&rl.go, 1);
	h.ctx = uffdwp_ctx_free(h.ctx);
	pthread_join(rl.tid, NULL);
	/* The snapshot outlives its context until freed. */
	ck_assert_int_eq(uffdwp_snapshot_wait(h.snap, -1), -ECANCELED);
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_FAILED);
	ck_assert_msg(st.cause == UFFDWP_CAUSE_CONTEXT, "cause %s",
		      uffdwp_snapshot_cause_name(st.cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	ck_assert_int_eq(atomic_load(&h.us.ends), 1);
	ck_assert_int_eq(atomic_load(&h.us.end_status), -ECANCELED);
	/* Untracked now: writable without faults. */
	memset(h.mem, 7, h.npages * ps);
	held_end(&h, false);
}
END_TEST

/*
 * fork() while a snapshot runs: in the child every call on the parent's
 * context and snapshot gives -ECHILD, and writing the range works; the
 * parent's snapshot completes and is exact.
 */
START_TEST(fork_during_snapshot)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };
	struct uffdwp_sink wsink = { .sz = sizeof(wsink), .write = nop_write };
	int status;
	struct held h;
	pid_t pid;

	held_start(&h, backends[_i], 1024, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uffdwp_snapshot *snap2 = NULL;
		size_t n = 0;
		int bad = 0;

		bad |= (uffdwp_snapshot_wait(h.snap, 0) != -ECHILD) << 0;
		bad |= (uffdwp_snapshot_status(h.snap, &st) != -ECHILD) << 1;
		bad |= (uffdwp_snapshot_cancel(h.snap) != -ECHILD) << 2;
		bad |= (uffdwp_snapshot_start(h.ctx, h.mem, ps, &wsink, NULL,
					      &snap2) != -ECHILD)
		       << 3;
		bad |= (uffdwp_collect(h.ctx, count_run, &n) != -ECHILD) << 4;
		/* The child's copy: written where the parent's snapshot has
		 * not copied yet, and where it has. */
		*(volatile uint64_t *)(h.mem + (h.npages - 1) * ps) = 1;
		*(volatile uint64_t *)(h.mem + 8) = 1;
		uffdwp_snapshot_free(h.snap);
		uffdwp_ctx_free(h.ctx);
		*(volatile uint64_t *)(h.mem + (h.npages - 2) * ps) = 1;
		_exit(bad);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(
		WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"child: status %#x (exit bits: wait 1, status 2, cancel 4, start 8, collect 16)",
		status);
	/* The parent writes too (copy-on-write after the fork). */
	*(volatile uint64_t *)(h.mem + (h.npages - 3) * ps + 16) = 2;
	ck_assert_int_eq(uffdwp_snapshot_status(h.snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_RUNNING);
	sgate_open(&h.gate);
	held_expect_exact(&h);
	held_end(&h, false);
}
END_TEST

/*
 * wait() returns while the window may still be closing (uffd_async's move
 * back holds the range read-only behind a gate): a fork right after it
 * must give a child whose writes go through, every time.
 */
START_TEST(fork_right_after_wait)
{
	const size_t npages = 64 * MIB / ps;
	struct uffdwp_ctx *ctx = new_ctx(backends[_i]);
	char *mem = map(npages), *buf = map(npages);
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	int k, status;
	pid_t pid;

	fill_pages(mem, npages, 7);
	ck_assert_int_eq(uffdwp_track(ctx, mem, npages * ps, 0), 0);
	ck_assert_int_eq(uffdwp_sink_memory_new(buf, npages * ps, &sink), 0);
	for (k = 0; k < 8; k++) {
		ck_assert_int_eq(uffdwp_snapshot_start(ctx, mem, npages * ps,
						       sink, NULL, &snap),
				 0);
		ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			size_t i;

			alarm(20); /* a write held forever: killed, not hung */
			for (i = 0; i < npages; i += 64)
				*(volatile uint64_t *)(mem + i * ps) = i;
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child after wait(): status %#x", status);
		snap = uffdwp_snapshot_free(snap);
	}
	uffdwp_sink_free(sink);
	uffdwp_ctx_free(ctx);
	munmap(mem, npages * ps);
	munmap(buf, npages * ps);
}
END_TEST

/* soft_dirty and mprotect cannot hold a writer before its first write. */
START_TEST(unsupported_backend)
{
	static const int others[] = { UFFDWP_BACKEND_SOFT_DIRTY,
				      UFFDWP_BACKEND_MPROTECT };
	int b = others[_i];
	struct uffdwp_snapshot *snap = NULL;
	struct usink us;
	struct uffdwp_ctx *ctx;
	char *p, *buf;

	NEED_BACKEND(b);
	ctx = new_ctx(b);
	p = map(4);
	buf = map(4);
	memset(p, 1, 4 * ps);
	ck_assert_int_eq(uffdwp_track(ctx, p, 4 * ps, 0), 0);
	usink_init(&us, SINK_WRITE, buf, 4 * ps);
	ck_assert_int_eq(uffdwp_snapshot_start(ctx, p, 4 * ps, &us.sink, NULL,
					       &snap),
			 -EOPNOTSUPP);
	ck_assert_ptr_null(snap);
	ck_assert_int_eq(atomic_load(&us.begins), 0);
	ck_assert_int_eq(atomic_load(&us.ends), 0);
	usink_fini(&us);
	uffdwp_ctx_free(ctx);
	munmap(p, 4 * ps);
	munmap(buf, 4 * ps);
}
END_TEST

void snapshot_events_cases(Suite *s, const char *tag, int i)
{
	const struct test_group groups[] = {
		{ "events",
		  120,
		  { zap_uncopied_cancels, unmap_uncopied_cancels,
		    zap_copied_keeps_snapshot, unmap_copied_cancels,
		    replaced_mapping_caught_at_end, begin_writes_the_range,
		    cancel_while_committing, end_never_runs_in_start,
		    staging_backpressure, misuse, cancel_from_thread,
		    free_while_running, ctx_free_while_running,
		    fork_during_snapshot, fork_right_after_wait } },
	};

	test_add_groups(s, tag, i, groups, ARRAY_LEN(groups));
}

void snapshot_unsupported_cases(Suite *s)
{
	TCase *sd = tcase_create("unsupported-soft_dirty");
	TCase *mp = tcase_create("unsupported-mprotect");

	tcase_set_tags(sd, "soft_dirty");
	tcase_add_loop_test(sd, unsupported_backend, 0, 1);
	suite_add_tcase(s, sd);
	tcase_set_tags(mp, "mprotect");
	tcase_add_loop_test(mp, unsupported_backend, 1, 2);
	suite_add_tcase(s, mp);
}
