/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot suite's shared parts: see snapshot-common.h. */
#include "snapshot-common.h"

const int backends[] = { UFFDWP_BACKEND_UFFD_ASYNC, UFFDWP_BACKEND_UFFD_SYNC };

/* UFFDWP_TEST_SEED reproduces a run; otherwise a fresh seed, printed. */
uint64_t test_seed(const char *what)
{
	const char *env = getenv("UFFDWP_TEST_SEED");
	struct timespec ts;
	uint64_t seed;

	if (env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
		       (uint64_t)getpid() << 16;
	}
	if (!seed)
		seed = 1;
	printf("%s: UFFDWP_TEST_SEED=%#llx\n", what, (unsigned long long)seed);
	return seed;
}

char *map(size_t pages)
{
	char *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* The first page of @n where @a and @b differ, or -1. */
long first_diff(const char *a, const char *b, size_t n)
{
	size_t i;

	if (!memcmp(a, b, n * ps))
		return -1;
	for (i = 0; i < n; i++)
		if (memcmp(a + i * ps, b + i * ps, ps))
			return (long)i;
	return -1;
}

/* What differs in page @page of @got against @want, in words. */
void describe_diff(char *msg, size_t sz, const char *got, const char *want,
		   long page)
{
	const uint64_t *g = (const uint64_t *)(got + (size_t)page * ps);
	const uint64_t *w = (const uint64_t *)(want + (size_t)page * ps);
	size_t k, nbad = 0, first = ps;
	uint64_t poison;

	memset(&poison, POISON, sizeof(poison));
	for (k = 0; k < ps / 8; k++) {
		if (g[k] == w[k])
			continue;
		if (first == ps)
			first = k;
		nbad++;
	}
	snprintf(
		msg, sz,
		"page %ld: %zu of %zu words differ, first at byte %zu: image %#llx, oracle %#llx%s",
		page, nbad, ps / 8, first * 8, (unsigned long long)g[first],
		(unsigned long long)w[first],
		g[first] == poison ? " (never delivered)" :
				     " (copied late or torn)");
}

/* --- writers ------------------------------------------------------------ */

static struct writer writers[MAX_WRITERS];

void park(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	r->parked++;
	pthread_cond_broadcast(&r->cv);
	while (atomic_load(&r->pause) && !atomic_load(&r->stop))
		pthread_cond_wait(&r->cv, &r->mu);
	r->parked--;
	pthread_mutex_unlock(&r->mu);
}

void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct rig *r = w->r;
	uint64_t seed = r->seed ^ (0x9e3779b97f4a7c15ULL * (w->id + 1));
	uint64_t n = 0, v, tag = (uint64_t)(w->id + 1) << 48;
	size_t page, off, k;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		if (atomic_load_explicit(&r->pause, memory_order_acquire)) {
			park(r);
			continue;
		}
		v = rnd(&seed);
		if (r->pattern == HOTSPOT && v % 10)
			page = r->hlo + (size_t)(v >> 8) % (r->hhi - r->hlo);
		else
			page = r->wlo + (size_t)(v >> 8) % (r->whi - r->wlo);
		__atomic_fetch_or(&r->written[page / 64], 1ULL << (page % 64),
				  __ATOMIC_RELAXED);
		/* Several unique values per page: a copy taken between two
		 * of them, or torn, differs from the oracle. */
		for (k = 0; k < 4; k++) {
			v = rnd(&seed);
			off = (size_t)(v % (ps / 8)) * 8;
			*(volatile uint64_t *)(r->mem + page * ps + off) = tag |
									   ++n;
		}
		atomic_fetch_add_explicit(&r->batches, 1, memory_order_relaxed);
	}
	return NULL;
}

/* Every writer parked, none mid-write: memory stands still. */
void rig_pause(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->pause, 1);
	while (r->parked < r->nwriters)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

void rig_resume(struct rig *r)
{
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->pause, 0);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Pace: let the writers make some progress (dirty pages) since @since. */
void rig_settle(struct rig *r, unsigned long since)
{
	while (atomic_load(&r->batches) - since < 8 * r->nwriters)
		sched_yield();
}

/*
 * While paused: writers go to the snapshot's pages and around them, the
 * hot part inside the snapshot's range.
 */
void rig_focus(struct rig *r, size_t first, size_t n, uint64_t *seed)
{
	size_t margin = n > 16 ? n : 16, hot;

	r->wlo = first > margin ? first - margin : 0;
	r->whi = first + n + margin < r->npages ? first + n + margin :
						  r->npages;
	hot = (r->whi - r->wlo) / 20;
	if (!hot)
		hot = 1;
	if (hot > n)
		hot = n;
	r->hlo = first + (size_t)(rnd(seed) % (n - hot + 1));
	r->hhi = r->hlo + hot;
}

/* While paused: the pages written in [first, first + n) since the last
 * call, cleared. */
uint64_t rig_take_written(struct rig *r, size_t first, size_t n)
{
	uint64_t cnt = 0, bit;
	size_t i;

	for (i = first; i < first + n; i++) {
		bit = 1ULL << (i % 64);
		if (r->written[i / 64] & bit) {
			cnt++;
			r->written[i / 64] &= ~bit;
		}
	}
	return cnt;
}

void rig_setup(struct rig *r, int backend, size_t npages, enum pattern pattern,
	       uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->backend = backend;
	r->npages = npages;
	r->pattern = pattern;
	r->nwriters = 4;
	r->seed = seed;
	r->wlo = 0;
	r->whi = npages;
	r->hlo = 0;
	r->hhi = npages / 20 ? npages / 20 : 1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->mem = map(npages);
	r->written = calloc((npages + 63) / 64, sizeof(uint64_t));
	ck_assert_ptr_nonnull(r->written);
	/* Some pages populated, some never touched before tracking. */
	memset(r->mem, 0x5a, npages / 2 * ps);
	r->ctx = new_ctx(backend);
	ck_assert_int_eq(uffdwp_track(r->ctx, r->mem, npages * ps, 0), 0);
}

void rig_start(struct rig *r)
{
	unsigned int i;

	for (i = 0; i < r->nwriters; i++) {
		writers[i] = (struct writer){ r, i };
		ck_assert_int_eq(pthread_create(&r->tid[i], NULL, writer_main,
						&writers[i]),
				 0);
	}
}

void rig_stop(struct rig *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < r->nwriters; i++)
		pthread_join(r->tid[i], NULL);
	r->nwriters = 0;
}

void rig_teardown(struct rig *r)
{
	if (r->nwriters)
		rig_stop(r);
	r->ctx = uffdwp_ctx_free(r->ctx);
	munmap(r->mem, r->npages * ps);
	free(r->written);
}

/* --- sinks -------------------------------------------------------------- */

void sgate_init(struct sgate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

void sgate_enter(struct sgate *g, void *addr, size_t len)
{
	pthread_mutex_lock(&g->mu);
	if (!g->entered++) {
		g->addr = addr;
		g->len = len;
	}
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

void sgate_wait_entered(struct sgate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->entered)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

void sgate_open(struct sgate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

const char *const sink_names[] = { "memory", "write", "mixed", "place" };

bool us_account(struct usink *u, void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	size_t i;

	if (a % ps || !len || len % ps || a < u->base ||
	    a - u->base + len > u->npages * ps) {
		atomic_fetch_add(&u->bad, 1);
		return false;
	}
	for (i = 0; i < len / ps; i++)
		__atomic_fetch_add(&u->hits[(a - u->base) / ps + i], 1,
				   __ATOMIC_RELAXED);
	return true;
}

int us_begin(void *arg, const struct uffdwp_snapshot_info *info)
{
	struct usink *u = arg;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	atomic_fetch_add(&u->begins, 1);
	memcpy(&u->info, info,
	       info->sz < sizeof(u->info) ? info->sz : sizeof(u->info));
	u->base = (uintptr_t)info->addr;
	if (u->begin_err)
		ret = u->begin_err;
	else if (info->len > u->len)
		ret = -ENOSPC;
	else if (u->inner && u->inner->begin)
		ret = u->inner->begin(u->inner->arg, info);
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

void *us_place(void *arg, void *addr, size_t len)
{
	struct usink *u = arg;
	void *dst = NULL;

	atomic_fetch_add(&u->inflight, 1);
	/* Mixed: pages of every other 64-page word go through write(), on
	 * the sweep and the fault path alike (so the write() calls a test
	 * counts on are certain to come). */
	atomic_fetch_add(&u->places, 1);
	if (u->kind == SINK_MIXED &&
	    ((uintptr_t)addr - u->base) / ps / 64 % 2 != u->mix_parity)
		dst = NULL;
	else if (us_account(u, addr, len))
		dst = u->buf + ((uintptr_t)addr - u->base);
	atomic_fetch_sub(&u->inflight, 1);
	return dst;
}

int us_write(void *arg, void *addr, const void *data, size_t len)
{
	struct usink *u = arg;
	long nth = (long)atomic_fetch_add(&u->writes, 1);
	uintptr_t d = (uintptr_t)data;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	if (u->gate)
		sgate_enter(u->gate, addr, len);
	if (u->delay_us && nth > 0)
		usleep(u->delay_us);
	if (d < u->forbid_hi && d + len > u->forbid_lo)
		atomic_fetch_add(&u->in_tracked, 1);
	if (nth == u->fail_at)
		ret = u->fail_err;
	else if (!us_account(u, addr, len))
		ret = 0; /* counted as bad */
	else if (u->inner)
		ret = u->inner->write(u->inner->arg, addr, data, len);
	else
		memcpy(u->buf + ((uintptr_t)addr - u->base), data, len);
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

int us_end(void *arg, int status)
{
	struct usink *u = arg;
	int ret = 0;

	atomic_fetch_add(&u->inflight, 1);
	u->end_thread = pthread_self();
	atomic_fetch_add(&u->ends, 1);
	atomic_store(&u->end_status, status);
	if (u->end_gate && !status)
		sgate_enter(u->end_gate, NULL, 0);
	if (u->inner && u->inner->end)
		ret = u->inner->end(u->inner->arg, status);
	if (!status && !ret)
		ret = u->end_err;
	atomic_fetch_sub(&u->inflight, 1);
	return ret;
}

void usink_init(struct usink *u, enum sink_kind kind, char *buf, size_t len)
{
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->buf = buf;
	u->len = len;
	u->npages = len / ps;
	u->hits = calloc(u->npages ? u->npages : 1, 1);
	ck_assert_ptr_nonnull(u->hits);
	u->fail_at = -1;
	u->sink.sz = sizeof(u->sink);
	u->sink.arg = u;
	u->sink.begin = us_begin;
	if (kind == SINK_MIXED || kind == SINK_PLACE)
		u->sink.place = us_place;
	if (kind != SINK_PLACE)
		u->sink.write = us_write;
	u->sink.end = us_end;
}

void usink_fini(struct usink *u)
{
	free(u->hits);
	u->hits = NULL;
}

/* Pages delivered once, and a check that none came twice. */
size_t usink_delivered(struct usink *u)
{
	size_t i, n = 0;

	for (i = 0; i < u->npages; i++) {
		ck_assert_msg(u->hits[i] <= 1,
			      "page %zu reached the sink %u times", i,
			      u->hits[i]);
		n += u->hits[i];
	}
	return n;
}

/* --- one snapshot against the oracle ------------------------------------ */

const char *const opt_names[] = { "default", "copiers=1/staging=4",
				  "copiers=4/staging=16" };

void fill_opts(struct uffdwp_snapshot_opts *o, enum opt_kind k,
	       unsigned int flags)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->flags = flags;
	if (k == OPTS_NARROW) {
		o->copiers = 1;
		o->staging_pages = 4;
	} else if (k == OPTS_WIDE) {
		o->copiers = 4;
		o->staging_pages = 16;
	}
}

void shot_print(const struct shot *s, const char *what)
{
	printf("%s: %s pages [%zu, +%zu) %s sink, %s: wait %d, state %s, cause %s, pages %llu/%llu (expected %llu), faulted %llu, waited %llu, staging full %llu\n",
	       what, s->flags ? "incremental" : "full", s->first, s->n,
	       sink_names[s->kind], opt_names[s->opt], s->ret,
	       uffdwp_snapshot_state_name(s->st.state),
	       uffdwp_snapshot_cause_name(s->st.cause),
	       (unsigned long long)s->st.pages_done,
	       (unsigned long long)s->st.pages, (unsigned long long)s->expected,
	       (unsigned long long)s->st.pages_faulted,
	       (unsigned long long)s->st.faults_waited,
	       (unsigned long long)s->st.staging_full);
}

/*
 * Pause the writers, copy the oracle, start, resume, wait. The image lands
 * in s->dst; a full snapshot's destination is poisoned first so a page
 * never delivered shows.
 */
void shot_take(struct rig *r, struct shot *s, uint64_t *seed)
{
	struct uffdwp_snapshot_opts o;
	struct uffdwp_sink *msink = NULL;
	const struct uffdwp_sink *sink;
	struct uffdwp_snapshot *snap = NULL;
	char *addr = r->mem + s->first * ps;
	size_t len = s->n * ps;
	unsigned long since;
	int ret;

	fill_opts(&o, s->opt, s->flags);
	if (s->kind == SINK_MEMORY) {
		ck_assert_int_eq(uffdwp_sink_memory_new(s->dst, len, &msink),
				 0);
		sink = msink;
	} else {
		usink_init(&s->us, s->kind, s->dst, len);
		s->us.mix_parity = (unsigned int)(rnd(seed) % 2);
		s->us.forbid_lo = (uintptr_t)r->mem;
		s->us.forbid_hi = (uintptr_t)r->mem + r->npages * ps;
		sink = &s->us.sink;
	}
	if (!(s->flags & UFFDWP_SNAPSHOT_INCREMENTAL))
		memset(s->dst, POISON, len);

	rig_pause(r);
	rig_focus(r, s->first, s->n, seed);
	/* Every snapshot consumes its range's dirty state. */
	s->expected = rig_take_written(r, s->first, s->n);
	if (!(s->flags & UFFDWP_SNAPSHOT_INCREMENTAL))
		s->expected = s->n;
	memcpy(s->oracle, addr, len);
	ret = uffdwp_snapshot_start(
		r->ctx, addr, len, sink,
		s->opt == OPTS_DEFAULT && !s->flags ? NULL : &o, &snap);
	since = atomic_load(&r->batches);
	rig_resume(r);
	ck_assert_msg(ret == 0, "snapshot_start of [%zu, +%zu): %d (%s)",
		      s->first, s->n, ret, strerror(-ret));

	s->ret = uffdwp_snapshot_wait(snap, -1);
	memset(&s->st, 0, sizeof(s->st));
	s->st.sz = sizeof(s->st);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &s->st), 0);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(msink);
	s->bad = first_diff(s->dst, s->oracle, s->n);
	rig_settle(r, since);
}

/* Everything a successful snapshot promises. */
void shot_check(struct rig *r, struct shot *s, bool count_known)
{
	char msg[256];
	size_t delivered;

	if (s->ret || s->st.state != UFFDWP_SNAPSHOT_DONE || s->bad >= 0 ||
	    (count_known && s->st.pages != s->expected))
		shot_print(s, uffdwp_backend_name(r->backend));
	ck_assert_msg(s->ret == 0, "snapshot_wait: %d (%s), cause %s", s->ret,
		      strerror(-s->ret),
		      uffdwp_snapshot_cause_name(s->st.cause));
	ck_assert_int_eq(s->st.state, UFFDWP_SNAPSHOT_DONE);
	ck_assert_int_eq(s->st.error, 0);
	ck_assert_int_eq(s->st.cause, UFFDWP_CAUSE_NONE);
	ck_assert_int_eq(s->st.consistency, UFFDWP_CONSISTENCY_EXACT);
	ck_assert_uint_eq(s->st.pages_done, s->st.pages);
	if (count_known) {
		ck_assert_msg(
			s->st.pages >= s->expected,
			"incremental snapshot left out written pages: %llu delivered, %llu written",
			(unsigned long long)s->st.pages,
			(unsigned long long)s->expected);
		ck_assert_msg(
			s->st.pages == s->expected,
			"%s snapshot reports %llu pages, %llu were written",
			s->flags ? "incremental" : "full",
			(unsigned long long)s->st.pages,
			(unsigned long long)s->expected);
	}
	if (s->kind != SINK_MEMORY) {
		ck_assert_int_eq(atomic_load(&s->us.begins), 1);
		ck_assert_int_eq(atomic_load(&s->us.ends), 1);
		ck_assert_int_eq(atomic_load(&s->us.end_status), 0);
		ck_assert_uint_eq(atomic_load(&s->us.bad), 0);
		ck_assert_uint_eq(atomic_load(&s->us.in_tracked), 0);
		ck_assert_int_eq(atomic_load(&s->us.inflight), 0);
		ck_assert_ptr_eq(s->us.info.addr, r->mem + s->first * ps);
		ck_assert_uint_eq(s->us.info.len, s->n * ps);
		ck_assert_uint_eq(s->us.info.page_size, ps);
		ck_assert_uint_eq(s->us.info.pages, s->st.pages);
		ck_assert_uint_eq(s->us.info.flags, s->flags);
		delivered = usink_delivered(&s->us);
		ck_assert_uint_eq(delivered, s->st.pages);
		if (!s->flags)
			ck_assert_uint_eq(delivered, s->n);
		usink_fini(&s->us);
	}
	if (s->bad >= 0) {
		describe_diff(msg, sizeof(msg), s->dst, s->oracle, s->bad);
		ck_abort_msg(
			"%s: %s snapshot of pages [%zu, +%zu) (%s sink, %s) differs from the oracle at %s",
			uffdwp_backend_name(r->backend),
			s->flags ? "incremental" : "full", s->first, s->n,
			sink_names[s->kind], opt_names[s->opt], msg);
	}
}

/* --- shared by several sections ---------------------------------------- */

void expect_failed(struct uffdwp_snapshot *snap, int err, int cause)
{
	struct uffdwp_snapshot_status st = { .sz = sizeof(st) };

	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), err);
	ck_assert_int_eq(uffdwp_snapshot_status(snap, &st), 0);
	ck_assert_int_eq(st.state, UFFDWP_SNAPSHOT_FAILED);
	ck_assert_int_eq(st.error, err);
	ck_assert_msg(st.cause == cause, "cause %s, expected %s",
		      uffdwp_snapshot_cause_name(st.cause),
		      uffdwp_snapshot_cause_name(cause));
	ck_assert_int_eq(st.consistency, UFFDWP_CONSISTENCY_NONE);
	/* Waiting again gives the same. */
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, 0), err);
}

void expect_equal(const char *what, const char *got, const char *want, size_t n)
{
	long bad = first_diff(got, want, n);
	char msg[256];

	if (bad < 0)
		return;
	describe_diff(msg, sizeof(msg), got, want, bad);
	ck_abort_msg("%s differs from the oracle at %s", what, msg);
}

void fill_pages(char *mem, size_t npages, unsigned int salt)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		memset(mem + i * ps, (int)((i * 7 + salt) & 0xff), ps);
		*(uint64_t *)(mem + i * ps) = i | (uint64_t)salt << 32;
	}
}

/* After a failed snapshot the context still snapshots, exactly. */
void snapshot_now(struct uffdwp_ctx *ctx, char *addr, size_t n)
{
	struct uffdwp_snapshot *snap;
	struct uffdwp_sink *sink;
	char *want = malloc(n * ps), *got = malloc(n * ps);

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	memcpy(want, addr, n * ps);
	memset(got, POISON, n * ps);
	ck_assert_int_eq(uffdwp_sink_memory_new(got, n * ps, &sink), 0);
	ck_assert_int_eq(
		uffdwp_snapshot_start(ctx, addr, n * ps, sink, NULL, &snap), 0);
	ck_assert_int_eq(uffdwp_snapshot_wait(snap, -1), 0);
	uffdwp_snapshot_free(snap);
	uffdwp_sink_free(sink);
	expect_equal("a snapshot after the event", got, want, n);
	free(want);
	free(got);
}
